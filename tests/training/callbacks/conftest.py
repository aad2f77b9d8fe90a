"""The callback tests run their tiny models on one thread: at this size a second thread only
adds synchronisation (tens of times slower on a shared machine), and the 2-process DDP runs
use one thread per rank, so every comparison runs the same kernels."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
