"""The paper refiner folded into one dense k×k convolution against the unfolded chain
(docs/models.md#the-paper-variant, #where-the-time-goes).

For each expansion ratio, one process measures the same model (same weights) unfolded and folded, and
the vanilla ViT of the same shape, the three taking turns in every timed iteration: inference time per
batch, the folded model's speed-up and its throughput relative to the vanilla ViT, and peak memory of an
inference pass and of a training step (see ``refiner_nas.refiner_space.costs.timing`` for how memory is measured).
It also
times the refiner alone on a batch of attention maps, which isolates what the fold changes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from refiner_nas.refiner_space import ModelConfig, build_model, named_config, set_refiner_fold
from refiner_nas.refiner_space.costs.environment import environment
from refiner_nas.refiner_space.costs.speed import MIN_ITERS, cpu_threads, reference_config
from refiner_nas.refiner_space.costs.timing import MemoryPeak, Stats, peak_memory, time_interleaved
from refiner_nas.refiner_space.layers import AttentionRefiner

DEFAULT_MODEL = "refined_vit_16b_384"


@dataclass(frozen=True)
class FoldRow:
    """One expansion ratio: times in ms per batch, ratios per iteration, memory per pass."""

    expansion_ratio: int
    unfolded_ms: Stats
    folded_ms: Stats
    vanilla_ms: Stats
    fold_speedup: Stats  # unfolded time / folded time
    folded_vs_vanilla: Stats  # folded throughput relative to vanilla (vanilla time / folded time)
    unfolded_vs_vanilla: Stats
    refiner_unfolded_ms: Stats  # the refiner alone on (B, H, N, N) maps
    refiner_folded_ms: Stats
    refiner_speedup: Stats
    inference_memory: dict[str, MemoryPeak]  # unfolded, folded, vanilla
    train_memory: dict[str, MemoryPeak]
    max_relative_error: float  # folded vs unfolded logits

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"expansion_ratio": self.expansion_ratio}
        for name in (
            "unfolded_ms", "folded_ms", "vanilla_ms", "fold_speedup", "folded_vs_vanilla",
            "unfolded_vs_vanilla", "refiner_unfolded_ms", "refiner_folded_ms", "refiner_speedup",
        ):  # fmt: skip
            data[name] = getattr(self, name).to_dict()
        data["inference_memory"] = {k: v.to_dict() for k, v in self.inference_memory.items()}
        data["train_memory"] = {k: v.to_dict() for k, v in self.train_memory.items()}
        data["max_relative_error"] = self.max_relative_error
        return data


@dataclass(frozen=True)
class FoldReport:
    model: str
    img_size: int
    kernel_size: int
    batch_size: int
    iters: int
    warmup: int
    rows: tuple[FoldRow, ...]
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "model": self.model,
            "img_size": self.img_size,
            "kernel_size": self.kernel_size,
            "batch_size": self.batch_size,
            "iters": self.iters,
            "warmup": self.warmup,
            "rows": [row.to_dict() for row in self.rows],
            "environment": self.environment,
        }


def measure_fold(
    *,
    model: str | ModelConfig = DEFAULT_MODEL,
    label: str | None = None,
    expansion_ratios: Sequence[int] = (3, 6),
    kernel_size: int = 3,
    img_size: int = 224,
    batch_size: int = 4,
    iters: int = MIN_ITERS,
    warmup: int = 2,
    threads: int | None = None,
) -> FoldReport:
    """Measure folded against unfolded refiners on CPU (see the module docstring).

    Args:
        model: a registered name or a configuration with ``attention='refiner'``; its expansion ratio,
            kernel size and image size are replaced by the arguments.
        label: the model's name in the report (default: the registered name or the configuration hash).

    Raises:
        ValueError: fewer than 10 iterations, or a model without a foldable refiner.
        KeyError: an unknown model name.
    """
    if iters < MIN_ITERS:
        raise ValueError(f"iters={iters}: at least {MIN_ITERS} timed iterations are needed")
    base = named_config(model) if isinstance(model, str) else model
    label = label or (model if isinstance(model, str) else base.config_hash())
    if base.attention != "refiner" or base.attention_reduction is False:
        raise ValueError(
            f"model {label!r} has attention={base.attention!r}, attention_reduction={base.attention_reduction}: "
            "the fold needs attention='refiner' with attention_reduction=True"
        )
    rows = []
    with cpu_threads(threads):
        for ratio in expansion_ratios:
            config = base.replace(expansion_ratio=ratio, kernel_size=kernel_size, img_size=img_size)
            rows.append(_measure_ratio(config, batch_size, iters, warmup))
        env = environment("cpu")  # inside: records the threads used
    return FoldReport(
        model=label,
        img_size=img_size,
        kernel_size=kernel_size,
        batch_size=batch_size,
        iters=iters,
        warmup=warmup,
        rows=tuple(rows),
        environment=env,
    )


def _measure_ratio(config: ModelConfig, batch_size: int, iters: int, warmup: int) -> FoldRow:
    torch.manual_seed(0)
    unfolded = build_model(config).eval()
    folded = copy.deepcopy(unfolded)
    set_refiner_fold(folded, True)
    vanilla = build_model(reference_config(config)).eval()
    images = torch.randn(batch_size, config.in_chans, *config.img_hw)

    def inference(model: nn.Module) -> Callable[[], torch.Tensor]:
        def step() -> torch.Tensor:
            with torch.inference_mode():
                return model(images)

        return step

    steps = [inference(m) for m in (unfolded, folded, vanilla)]
    with torch.inference_mode():
        reference_logits, folded_logits = unfolded(images), folded(images)
    error = ((folded_logits - reference_logits).abs().max() / reference_logits.abs().max()).item()
    unfolded_t, folded_t, vanilla_t = time_interleaved(steps, device=torch.device("cpu"), warmup=warmup, iters=iters)
    names = ("unfolded", "folded", "vanilla")
    inference_memory = {name: peak_memory(step, torch.device("cpu")) for name, step in zip(names, steps, strict=True)}
    train_memory = {
        name: peak_memory(_train_pass(model, images, config.num_classes), torch.device("cpu"))
        for name, model in zip(names, (unfolded, folded, vanilla), strict=True)
    }
    refiner_unfolded_t, refiner_folded_t = _time_refiner(unfolded, config, batch_size, iters, warmup)
    return FoldRow(
        expansion_ratio=config.expansion_ratio or 1,
        unfolded_ms=Stats.of(unfolded_t).scaled(1000.0),
        folded_ms=Stats.of(folded_t).scaled(1000.0),
        vanilla_ms=Stats.of(vanilla_t).scaled(1000.0),
        fold_speedup=Stats.of([u / f for u, f in zip(unfolded_t, folded_t, strict=True)]),
        folded_vs_vanilla=Stats.of([v / f for f, v in zip(folded_t, vanilla_t, strict=True)]),
        unfolded_vs_vanilla=Stats.of([v / u for u, v in zip(unfolded_t, vanilla_t, strict=True)]),
        refiner_unfolded_ms=Stats.of(refiner_unfolded_t).scaled(1000.0),
        refiner_folded_ms=Stats.of(refiner_folded_t).scaled(1000.0),
        refiner_speedup=Stats.of([u / f for u, f in zip(refiner_unfolded_t, refiner_folded_t, strict=True)]),
        inference_memory=inference_memory,
        train_memory=train_memory,
        max_relative_error=error,
    )


def _train_pass(model: nn.Module, images: torch.Tensor, num_classes: int) -> Callable[[], None]:
    labels = torch.zeros(images.shape[0], dtype=torch.long)

    def step() -> None:
        model.train()
        try:
            F.cross_entropy(model(images), labels.clamp(max=max(num_classes - 1, 0))).backward()
        finally:
            model.zero_grad(set_to_none=True)
            model.eval()

    return step


def _time_refiner(
    model: nn.Module, config: ModelConfig, batch_size: int, iters: int, warmup: int
) -> tuple[list[float], list[float]]:
    refiner = next(m for m in model.modules() if isinstance(m, AttentionRefiner))
    folded = copy.deepcopy(refiner)
    folded.set_folded(True)
    tokens = config.num_tokens
    maps = torch.randn(batch_size, config.num_heads, tokens, tokens).softmax(dim=-1)

    def run(module: nn.Module) -> Callable[[], torch.Tensor]:
        def step() -> torch.Tensor:
            with torch.inference_mode():
                return module(maps)

        return step

    unfolded_t, folded_t = time_interleaved(
        [run(refiner), run(folded)], device=torch.device("cpu"), warmup=warmup, iters=iters
    )
    return unfolded_t, folded_t
