"""Offline data set builders: embedded data sets generated or read from installed packages and
written as shards (nothing is downloaded)."""
