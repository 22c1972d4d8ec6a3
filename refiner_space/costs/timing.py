"""Measurement primitives: timed repetitions on CPU or CUDA, summary statistics, peak memory, and the
largest batch that fits.

Timing on CUDA records a pair of CUDA events around every iteration and synchronises once before reading
them (kernels are asynchronous; wall-clock time around a launch measures nothing). On CPU it uses
``time.perf_counter``. Peak memory on CUDA is ``torch.cuda.max_memory_allocated`` after a reset; on CPU it
is the increase of the process's peak resident set size (Linux ``VmHWM``, reset through
``/proc/self/clear_refs``) over the resident size before the step, after returning freed heap memory
to the system with ``malloc_trim`` so that earlier iterations do not hide the step's own peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median, quantiles

import torch


@dataclass(frozen=True)
class Stats:
    """Summary of repeated measurements: median, quartiles and 90th percentile."""

    median: float
    q1: float
    q3: float
    p90: float
    n: int

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Statistics of ``samples`` (quartiles by linear interpolation between order statistics).

        Raises:
            ValueError: fewer than two samples.
        """
        if len(samples) < 2:
            raise ValueError(f"need at least 2 samples for quartiles, got {len(samples)}")
        quartiles = quantiles(samples, n=4, method="inclusive")
        deciles = quantiles(samples, n=10, method="inclusive")
        return cls(median=median(samples), q1=quartiles[0], q3=quartiles[2], p90=deciles[8], n=len(samples))

    def scaled(self, factor: float) -> Stats:
        """The same statistics of the samples multiplied by a positive ``factor``."""
        return Stats(self.median * factor, self.q1 * factor, self.q3 * factor, self.p90 * factor, self.n)

    def to_dict(self) -> dict[str, float]:
        return {"median": self.median, "q1": self.q1, "q3": self.q3, "iqr": self.iqr, "p90": self.p90, "n": self.n}


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    steps: Sequence[Callable[[], object]], *, device: torch.device, warmup: int, iters: int
) -> list[list[float]]:
    """Seconds per call of each step, the steps taking turns in every iteration.

    Taking turns exposes every step to the same drift of a noisy machine, so ratios between steps hold
    better than their absolute times. Returns one list of ``iters`` durations per step.

    Raises:
        ValueError: ``iters`` < 2 or ``warmup`` < 0.
    """
    if iters < 2 or warmup < 0:
        raise ValueError(f"need iters >= 2 and warmup >= 0, got iters={iters}, warmup={warmup}")
    for _ in range(warmup):
        for step in steps:
            step()
    synchronize(device)
    if device.type == "cuda":
        return _time_cuda(steps, device, iters)
    durations: list[list[float]] = [[] for _ in steps]
    for _ in range(iters):
        for index, step in enumerate(steps):
            start = time.perf_counter()
            step()
            durations[index].append(time.perf_counter() - start)
    return durations


def _time_cuda(steps: Sequence[Callable[[], object]], device: torch.device, iters: int) -> list[list[float]]:
    with torch.cuda.device(device):  # events belong to the device that runs the steps
        events = [
            [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
            for _ in steps
        ]
        for iteration in range(iters):
            for index, step in enumerate(steps):
                start, end = events[index][iteration]
                start.record()
                step()
                end.record()
        torch.cuda.synchronize(device)
    return [[start.elapsed_time(end) / 1000.0 for start, end in step_events] for step_events in events]


@dataclass(frozen=True)
class MemoryPeak:
    """Peak memory of one step: ``bytes`` above what was in use before it, measured by ``method``."""

    bytes: int | None
    method: str

    def to_dict(self) -> dict[str, object]:
        return {"bytes": self.bytes, "method": self.method}


CPU_MEMORY_METHOD = "cpu peak RSS increase (VmHWM after clear_refs, after malloc_trim)"
CUDA_MEMORY_METHOD = "cuda max_memory_allocated increase over the allocation before the step"


def peak_memory(step: Callable[[], object], device: torch.device) -> MemoryPeak:
    """Run ``step`` once and measure how much memory it needed above what was already in use."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        synchronize(device)
        return MemoryPeak(torch.cuda.max_memory_allocated(device) - before, CUDA_MEMORY_METHOD)
    if not _reset_peak_rss():
        step()
        return MemoryPeak(None, "unavailable (needs Linux /proc/self/clear_refs)")
    before = _status_kib("VmRSS")
    step()
    return MemoryPeak((_status_kib("VmHWM") - before) * 1024, CPU_MEMORY_METHOD)


def _reset_peak_rss() -> bool:
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def largest_fitting_batch(fits: Callable[[int], bool], *, start: int = 1, limit: int = 4096) -> int:
    """The largest batch size ``b`` in [1, ``limit``] with ``fits(b)``: doubling from ``start`` until a
    size fails, then bisecting between the last size that fitted and the first that did not.

    Assumes that fitting is monotone (a batch that fits means every smaller one fits).

    Raises:
        ValueError: ``start`` outside [1, ``limit``], or not even a batch of 1 fits.
    """
    if not 1 <= start <= limit:
        raise ValueError(f"start={start} must be in [1, limit={limit}]")
    low, high = 0, None  # low fits (0: none known), high does not
    size = start
    while high is None:
        if fits(size):
            low = size
            if size == limit:
                return size
            size = min(2 * size, limit)
        else:
            high = size
    if low == 0:
        low, high = _first_fitting_below(fits, high)
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low


def _first_fitting_below(fits: Callable[[int], bool], failed: int) -> tuple[int, int]:
    # The starting size failed: halve until a size fits, giving a bracket for the bisection.
    size = previous = failed
    while size > 1:
        size //= 2
        if fits(size):
            return size, previous
        previous = size
    raise ValueError("not even a batch of 1 fits in memory")


def cuda_batch_fits(step: Callable[[int], object], device: torch.device) -> Callable[[int], bool]:
    """Wrap ``step(batch_size)`` into a ``fits`` test for ``largest_fitting_batch``: False when CUDA
    runs out of memory (the cache is emptied after every try)."""

    def fits(batch_size: int) -> bool:
        try:
            step(batch_size)
            synchronize(device)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            torch.cuda.empty_cache()

    return fits
