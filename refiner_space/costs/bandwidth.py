"""How close a model's refiner runs to memory speed: its achieved bandwidth next to a measured copy.

On a CPU the refiner is memory-bound (docs/models.md#where-the-time-goes), so its useful figure is bytes moved per
second. "Bytes moved" is the least any implementation must move: read the (B, H, N, N) maps once and write the
refined maps once. The machine's limit is measured the same way, as a tensor copy (read + write) much larger than
the caches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.refiner_space.costs.timing import Stats, time_interleaved
from refiner_nas.refiner_space.layers import AttentionRefiner, OfficialMapRefiner

COPY_BYTES = 256 * 2**20  # 8× a 32 MiB L3: the copy runs from and to main memory


@dataclass(frozen=True)
class Bandwidth:
    """The refiner alone on one batch of maps, and a large copy, both in GB/s (1e9 bytes per second)."""

    refiner_bytes: int  # maps read once + refined maps written once
    refiner_ms: Stats
    refiner_gb_per_s: Stats
    copy_gb_per_s: Stats

    @property
    def fraction_of_copy(self) -> float:
        """Median refiner bandwidth as a share of the median copy bandwidth."""
        return self.refiner_gb_per_s.median / self.copy_gb_per_s.median

    def to_dict(self) -> dict[str, Any]:
        return {
            "refiner_bytes": self.refiner_bytes,
            "refiner_ms": self.refiner_ms.to_dict(),
            "refiner_gb_per_s": self.refiner_gb_per_s.to_dict(),
            "copy_gb_per_s": self.copy_gb_per_s.to_dict(),
            "fraction_of_copy": self.fraction_of_copy,
        }


def find_refiner(model: nn.Module) -> nn.Module | None:
    """The first refiner of either variant in ``model``, or None for models without one."""
    return next((m for m in model.modules() if isinstance(m, (AttentionRefiner, OfficialMapRefiner))), None)


def refiner_bandwidth(
    model: nn.Module, config: ModelConfig, *, batch_size: int, warmup: int, iters: int
) -> Bandwidth | None:
    """Time the model's first refiner at inference on random (B, H, N, N) maps of the model's shape,
    taking turns with a copy of ``COPY_BYTES``; None when the model has no refiner."""
    refiner = find_refiner(model)
    if refiner is None:
        return None
    parameter = next(refiner.parameters())
    tokens = config.num_tokens
    maps = torch.rand(batch_size, config.num_heads, tokens, tokens, device=parameter.device).softmax(-1)
    large_copy = copy_step(parameter.device)
    training = refiner.training
    refiner.eval()

    def refine() -> None:
        with torch.inference_mode():
            refiner(maps)

    try:
        refine_t, copy_t = time_interleaved(
            [refine, large_copy], device=parameter.device, warmup=warmup, iters=iters
        )
    finally:
        refiner.train(training)
    moved = 2 * maps.numel() * maps.element_size()
    return Bandwidth(
        refiner_bytes=moved,
        refiner_ms=Stats.of(refine_t).scaled(1000.0),
        refiner_gb_per_s=gb_per_s(moved, refine_t),
        copy_gb_per_s=gb_per_s(2 * COPY_BYTES, copy_t),
    )


def copy_step(device: torch.device) -> Callable[[], object]:
    """A copy of ``COPY_BYTES`` on ``device`` (read + write: ``2 * COPY_BYTES`` moved), to time."""
    source = torch.empty(COPY_BYTES // 4, device=device).uniform_()
    target = torch.empty_like(source)
    return lambda: target.copy_(source)


def gb_per_s(moved_bytes: int, seconds: Sequence[float]) -> Stats:
    """GB/s (1e9 bytes per second) of each timed run that moved ``moved_bytes``."""
    return Stats.of([moved_bytes / t / 1e9 for t in seconds])
