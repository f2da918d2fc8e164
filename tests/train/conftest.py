"""Training tests run single-threaded: the CI machine has 2 shared cores, and one thread keeps CPU results
reproducible and avoids OpenMP spin-waiting under load (measured: up to 20x slower with 2 threads)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _single_thread(single_thread):
    """Every test here runs on one thread (see tests/conftest.py)."""
