"""Loader worker processes live exactly as long as the training process.

A stop signal sent to the whole process group (SLURM's ``--signal=USR1@90``, ``kill -TERM -<pgid>``,
Ctrl-C in a terminal) reaches the workers and the fork server that starts them too. Their default
action (terminate) would make the training process fail with "DataLoader worker exited
unexpectedly" while it saves its checkpoint; the training process decides when to stop
(``lit_rpe.training.signals``), so the workers ignore these signals. And when the training process
dies, even by SIGKILL, its workers must not linger as orphans holding their shuffle buffers: on
Linux each of them asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``); the
fork server does the same, so the chain training process -> fork server -> worker unwinds at once.

``ignore_stop_signals_and_die_with_parent`` is the loader's ``worker_init_fn``. The fork server
imports ``lit_rpe.training.data.forkserver_init`` (a preload module), which calls it in the server
itself.
Python's resource tracker (a helper process the workers' queues register with) would die of
SIGUSR1 too, and a worker writing to it after that dies of a broken pipe: the loader starts it
first with the stop signals blocked (``start_resource_tracker``), a mask it keeps for life.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from multiprocessing import resource_tracker

PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


def die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent exits; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    return True


def ignore_stop_signals_and_die_with_parent(_worker_id: int | None = None) -> None:
    """``worker_init_fn``: ignore SIGTERM / SIGUSR1 / SIGINT, die with the parent process."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    die_with_parent()


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker, if not yet running, with the stop signals
    blocked (an exec'd helper inherits the signal mask, so they never reach it)."""
    if sys.platform == "win32":
        return  # no signal masks, no process groups: nothing to protect
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
