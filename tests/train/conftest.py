"""Training tests run single-threaded: the CI machine has 2 shared cores, and one thread keeps CPU results
reproducible and avoids OpenMP spin-waiting under load (measured: up to 20x slower with 2 threads)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
