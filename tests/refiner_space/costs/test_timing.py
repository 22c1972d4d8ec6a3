"""Measurement primitives: statistics, interleaved timing, peak memory, largest-batch search."""

from __future__ import annotations

import pytest
import torch

from refiner_nas.refiner_space.costs.timing import (
    CPU_MEMORY_METHOD,
    Stats,
    cuda_batch_fits,
    largest_fitting_batch,
    peak_memory,
    time_interleaved,
)

CPU = torch.device("cpu")


def test_stats_of_known_samples() -> None:
    stats = Stats.of([float(i) for i in range(10, 0, -1)])  # 1..10, unordered
    assert (stats.median, stats.q1, stats.q3, stats.iqr, stats.n) == (5.5, 3.25, 7.75, 4.5, 10)
    assert stats.p90 == pytest.approx(9.1)
    assert stats.scaled(2.0).median == 11.0
    with pytest.raises(ValueError, match="at least 2 samples"):
        Stats.of([1.0])


def test_steps_take_turns_after_the_warm_up() -> None:
    calls: list[str] = []
    durations = time_interleaved([lambda: calls.append("a"), lambda: calls.append("b")], device=CPU, warmup=2, iters=3)
    assert calls == ["a", "b"] * 5
    assert [len(d) for d in durations] == [3, 3]
    assert all(t >= 0 for d in durations for t in d)
    with pytest.raises(ValueError, match="iters >= 2"):
        time_interleaved([lambda: None], device=CPU, warmup=0, iters=1)


def test_cpu_peak_memory_sees_a_step_allocate() -> None:
    def allocate() -> None:
        torch.ones(64 * 2**20 // 4)  # 64 MiB, written, then freed

    big = peak_memory(allocate, CPU)
    small = peak_memory(lambda: None, CPU)
    assert big.method == CPU_MEMORY_METHOD
    assert big.bytes is not None and small.bytes is not None
    assert big.bytes > 56 * 2**20
    assert small.bytes < 16 * 2**20


@pytest.mark.parametrize(
    ("capacity", "start", "limit"), [(37, 1, 4096), (37, 64, 4096), (1, 1, 8), (8, 1, 8), (5, 3, 100)]
)
def test_largest_fitting_batch_brackets_then_bisects(capacity: int, start: int, limit: int) -> None:
    tried: list[int] = []

    def fits(batch: int) -> bool:
        tried.append(batch)
        return batch <= capacity

    assert largest_fitting_batch(fits, start=start, limit=limit) == min(capacity, limit)
    assert len(tried) <= 2 * (limit.bit_length() + 1)


def test_largest_fitting_batch_errors() -> None:
    with pytest.raises(ValueError, match="not even a batch of 1"):
        largest_fitting_batch(lambda batch: False)
    with pytest.raises(ValueError, match="start=0"):
        largest_fitting_batch(lambda batch: True, start=0)


def test_out_of_memory_means_does_not_fit() -> None:
    # A fake step that "runs out of CUDA memory" above 20 images; the search finds 20 without a GPU.
    def step(batch: int) -> None:
        if batch > 20:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")

    assert largest_fitting_batch(cuda_batch_fits(step, CPU), start=4) == 20


def test_other_errors_are_not_mistaken_for_out_of_memory() -> None:
    def step(batch: int) -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        cuda_batch_fits(step, CPU)(1)
