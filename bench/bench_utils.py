"""Only for bench/bench_loader.py, which still imports ``bench_utils`` as a top-level module
until it moves into the package (``python -m bench.cpu.loader``); everything else imports
``bench.common`` directly. Delete this file with that move."""

from bench.common.machine import machine_line

__all__ = ["machine_line"]
