"""Shared test settings: deterministic seeds and one torch thread (small models; CI has 2 cores and some
tests run worker processes beside the test process, where more threads oversubscribe the cores)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


torch.set_num_threads(1)
