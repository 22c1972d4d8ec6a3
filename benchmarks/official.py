"""The released-code variant (docs/models.md#the-released-code-variant) against a plain reference built the way the
released code is.

The reference is a copy of the model whose refiners are ``PlainOfficialRefiner``: Conv2d 1×1,
BatchNorm2d modules, ReLU6 and a depthwise Conv2d called one after another, with the same weights, so
both compute the same function. One process measures, the two taking turns in every iteration,
whole-model inference and the refiner chain alone in training (forward and backward on a batch of maps),
on CPU or CUDA, in float32 or under bf16 autocast.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from refiner_nas.refiner_space import ModelConfig, build_model, named_config
from refiner_nas.refiner_space.costs.environment import environment
from refiner_nas.refiner_space.costs.speed import MIN_ITERS, amp_autocast, cpu_threads
from refiner_nas.refiner_space.costs.timing import Stats, time_interleaved
from refiner_nas.refiner_space.layers import OfficialMapRefiner, OfficialShareAttention

DEFAULT_MODELS = ("refined_vit_s", "refined_vit_m")


class PlainOfficialRefiner(nn.Module):
    """The released-code refiner (docs/models.md#the-released-code-variant) as the released code runs it,
    sharing the modules of ``refiner``."""

    def __init__(self, refiner: OfficialMapRefiner) -> None:
        super().__init__()
        self.scale = refiner.scale
        self.expand, self.bn1, self.dla, self.bn2 = refiner.expand, refiner.bn1, refiner.dla, refiner.bn2
        self.reduce, self.bn3, self.adapt_bn = refiner.reduce, refiner.bn3, refiner.adapt_bn
        self.act = nn.ReLU6()

    def forward(self, maps: Tensor) -> Tensor:
        expanded = self.act(self.bn1(self.expand(maps)))
        branch = self.bn3(self.reduce(self.act(self.bn2(self.dla(expanded)))))
        return self.scale * self.adapt_bn(maps + branch)


def plain_reference(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose released-code refiners are plain chains with the same weights."""
    reference = copy.deepcopy(model)
    for module in reference.modules():
        if isinstance(module, OfficialShareAttention):
            module.refine = PlainOfficialRefiner(module.refine)  # type: ignore[assignment]
    return reference


@dataclass(frozen=True)
class OfficialRow:
    """One model: times in ms, ratios per iteration (reference time / our time: above 1 is faster)."""

    model: str
    inference_ms: Stats
    reference_inference_ms: Stats
    inference_ratio: Stats
    train_chain_ms: Stats  # the refiner alone, forward + backward, batch statistics
    reference_train_chain_ms: Stats
    train_chain_ratio: Stats
    inference_error: float  # max |ours - reference| / max |reference| of the logits
    # Training: max |x - exact| / max |exact| against the plain chain in float64, worst of the output, the
    # maps' gradient and all weight gradients; the maps' gradient is ill-conditioned (normalisation by
    # small batch variances), so the float32 reference's own error is reported next to ours.
    train_error: float
    reference_train_error: float

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"model": self.model}
        for name in (
            "inference_ms", "reference_inference_ms", "inference_ratio",
            "train_chain_ms", "reference_train_chain_ms", "train_chain_ratio",
        ):  # fmt: skip
            data[name] = getattr(self, name).to_dict()
        data["inference_error"] = self.inference_error
        data["train_error"] = self.train_error
        data["reference_train_error"] = self.reference_train_error
        return data


@dataclass(frozen=True)
class OfficialReport:
    batch_size: int
    img_size: int
    iters: int
    warmup: int
    rows: tuple[OfficialRow, ...]
    environment: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    amp: str = "off"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "batch_size": self.batch_size,
            "img_size": self.img_size,
            "iters": self.iters,
            "warmup": self.warmup,
            "device": self.device,
            "amp": self.amp,
            "rows": [row.to_dict() for row in self.rows],
            "environment": self.environment,
        }


def measure_official(
    *,
    models: Sequence[str | tuple[str, ModelConfig]] = DEFAULT_MODELS,
    batch_size: int = 8,
    img_size: int = 224,
    iters: int = MIN_ITERS,
    warmup: int = 2,
    threads: int | None = None,
    device: str = "cpu",
    amp: str = "off",
) -> OfficialReport:
    """Measure released-code models against their plain references (see the module docstring); ``amp``
    is ``off`` or ``bf16`` (autocast for both).

    Raises:
        ValueError: fewer than 10 iterations, a model that is not ``attention='refiner_official'``, an
            unknown ``amp`` or a device that is not here.
        KeyError: an unknown model name.
    """
    if iters < MIN_ITERS:
        raise ValueError(f"iters={iters}: at least {MIN_ITERS} timed iterations are needed")
    if amp not in ("off", "bf16"):
        raise ValueError(f"amp={amp!r}: choose 'off' or 'bf16'")
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use --device cpu")
    resolved = [(m, named_config(m)) if isinstance(m, str) else m for m in models]
    for label, config in resolved:
        if config.attention != "refiner_official":
            raise ValueError(f"model {label!r} has attention={config.attention!r}; this compares 'refiner_official'")
    with cpu_threads(threads):
        rows = tuple(
            _measure_model(label, config.replace(img_size=img_size), batch_size, iters, warmup, target, amp)
            for label, config in resolved
        )
        env = environment(target)  # inside: records the threads used
    return OfficialReport(batch_size, img_size, iters, warmup, rows, env, device, amp)


def _relative_error(ours: Tensor, reference: Tensor) -> float:
    return ((ours - reference).abs().max() / reference.abs().max()).item()


def _measure_model(
    label: str, config: ModelConfig, batch_size: int, iters: int, warmup: int, device: torch.device, amp: str
) -> OfficialRow:
    torch.manual_seed(0)
    model = build_model(config).to(device).eval()
    reference = plain_reference(model)
    images = torch.randn(batch_size, config.in_chans, *config.img_hw, device=device)

    def inference(module: nn.Module) -> Callable[[], Tensor]:
        def step() -> Tensor:
            with torch.inference_mode(), amp_autocast(device, amp):
                return module(images).float()

        return step

    ours_step, reference_step = inference(model), inference(reference)
    inference_error = _relative_error(ours_step(), reference_step())
    ours_t, reference_t = time_interleaved([ours_step, reference_step], device=device, warmup=warmup, iters=iters)
    refiner = next(m for m in model.modules() if isinstance(m, OfficialMapRefiner))
    chain_t, reference_chain_t, errors = _time_train_chain(refiner, config, batch_size, iters, warmup, amp)
    return OfficialRow(
        model=label,
        inference_ms=Stats.of(ours_t).scaled(1000.0),
        reference_inference_ms=Stats.of(reference_t).scaled(1000.0),
        inference_ratio=Stats.of([r / o for o, r in zip(ours_t, reference_t, strict=True)]),
        train_chain_ms=Stats.of(chain_t).scaled(1000.0),
        reference_train_chain_ms=Stats.of(reference_chain_t).scaled(1000.0),
        train_chain_ratio=Stats.of([r / o for o, r in zip(chain_t, reference_chain_t, strict=True)]),
        inference_error=inference_error,
        train_error=errors[0],
        reference_train_error=errors[1],
    )


def _time_train_chain(
    refiner: OfficialMapRefiner, config: ModelConfig, batch_size: int, iters: int, warmup: int, amp: str
) -> tuple[list[float], list[float], tuple[float, float]]:
    ours = copy.deepcopy(refiner).train()
    plain = PlainOfficialRefiner(copy.deepcopy(refiner)).train()
    exact = PlainOfficialRefiner(copy.deepcopy(refiner).double()).train()
    tokens = config.num_tokens
    device = refiner.expand.weight.device
    maps = torch.rand(batch_size, config.num_heads, tokens, tokens, device=device).softmax(-1)
    upstream = torch.randn(batch_size, config.num_heads, tokens, tokens, device=device)

    def train_step(module: nn.Module, dtype: torch.dtype = torch.float32) -> Callable[[], list[Tensor]]:
        inputs = maps.to(dtype).detach().requires_grad_()
        gradient = upstream.to(dtype)
        autocast = amp_autocast(device, amp if dtype == torch.float32 else "off")  # the exact chain: float64

        def step() -> list[Tensor]:
            module.zero_grad(set_to_none=True)
            inputs.grad = None
            with autocast:
                out = module(inputs)
            out.backward(gradient.to(out.dtype))
            weight_grads = torch.cat([p.grad.flatten() for p in module.parameters()])  # type: ignore[union-attr]
            return [t.double() for t in (out.detach(), inputs.grad, weight_grads)]  # type: ignore[union-attr]

        return step

    ours_step, plain_step = train_step(ours), train_step(plain)
    # Weight gradients together: some (a BatchNorm shift before another BatchNorm) are zero up to rounding.
    truth = train_step(exact, torch.float64)()
    errors = tuple(
        max(_relative_error(x, t) for x, t in zip(step(), truth, strict=True)) for step in (ours_step, plain_step)
    )
    ours_t, plain_t = time_interleaved([ours_step, plain_step], device=device, warmup=warmup, iters=iters)
    return ours_t, plain_t, errors  # type: ignore[return-value]
