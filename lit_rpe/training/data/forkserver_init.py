"""Imported by the loader's fork server at start-up (``loader.WORKER_MODULES``), never
elsewhere: the server ignores stop signals sent to the process group and dies with the training
process, and the workers it forks inherit the ignored signals (``worker_lifetime``)."""

from lit_rpe.training.data.worker_lifetime import ignore_stop_signals_and_die_with_parent

ignore_stop_signals_and_die_with_parent()
