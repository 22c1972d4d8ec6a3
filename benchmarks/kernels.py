"""Both refiner chains alone at inference, every implementation on the same maps in one process: time,
achieved bandwidth next to a copy's, and error against float64.

Released chain (docs/models.md#the-released-code-variant; a released-code model's first refiner): ``modules`` is the
reference, its modules one after another as the released code runs them (``PlainOfficialRefiner``); ``pytorch``
is the model's own path with the Triton kernels off (BatchNorms folded, in chunks); ``triton`` the model's path on
CUDA; ``compiled`` the modules through ``torch.compile``. Paper chain (docs/models.md#the-paper-variant):
``modules`` is expansion, depthwise and reduction as three steps; ``pytorch`` the folded dense convolution;
``triton`` and ``compiled`` as above. Bandwidth counts the least any implementation moves: the maps read once and
the refined maps written once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from refiner_nas.benchmarks.official import PlainOfficialRefiner
from refiner_nas.refiner_space import build_model, named_config, triton_kernels
from refiner_nas.refiner_space.costs.bandwidth import COPY_BYTES, copy_step, find_refiner, gb_per_s
from refiner_nas.refiner_space.costs.environment import environment
from refiner_nas.refiner_space.costs.speed import MIN_ITERS, amp_autocast
from refiner_nas.refiner_space.costs.timing import Stats, time_interleaved
from refiner_nas.refiner_space.layers import AttentionRefiner, OfficialMapRefiner
from refiner_nas.refiner_space.layers.fused import uses_triton

Dtype = Literal["fp32", "bf16"]
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}
CHAIN_MODELS = {"released": "refined_vit_s", "paper": "refined_vit_16b_384"}


@dataclass(frozen=True)
class KernelRow:
    """One implementation of one chain: ``ratio`` is the reference's time over this one's, per iteration."""

    chain: str
    implementation: str
    ms: Stats
    gb_per_s: Stats
    ratio: Stats
    error: float  # ‖out − exact‖ / ‖exact‖, exact = the modules in float64

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "implementation": self.implementation,
            "ms": self.ms.to_dict(),
            "gb_per_s": self.gb_per_s.to_dict(),
            "ratio_to_modules": self.ratio.to_dict(),
            "error": self.error,
        }


@dataclass(frozen=True)
class KernelReport:
    device: str
    dtype: Dtype
    batch_size: int
    img_size: int
    iters: int
    copy_gb_per_s: Stats
    rows: tuple[KernelRow, ...]
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "device": self.device,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "img_size": self.img_size,
            "iters": self.iters,
            "copy_gb_per_s": self.copy_gb_per_s.to_dict(),
            "rows": [row.to_dict() for row in self.rows],
            "environment": self.environment,
        }


def measure_kernels(
    *,
    device: str = "cpu",
    dtype: Dtype = "bf16",
    batch_size: int = 8,
    img_size: int = 224,
    iters: int = 20,
    warmup: int = 3,
    compile_modules: bool = False,
) -> KernelReport:
    """Time every implementation of both chains (see the module docstring), taking turns with a copy of
    ``COPY_BYTES``, on maps of Refined-ViT-S's and refined_vit_16b_384's shapes at ``img_size``.

    Raises:
        ValueError: fewer than 10 iterations, an unknown dtype, or a device that is not here.
    """
    if iters < MIN_ITERS:
        raise ValueError(f"iters={iters}: at least {MIN_ITERS} timed iterations are needed")
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: choose one of {', '.join(DTYPES)}")
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use --device cpu")
    large_copy = copy_step(target)
    rows: list[KernelRow] = []
    copy_times: list[float] = []
    for chain, model_name in CHAIN_MODELS.items():
        config = named_config(model_name, img_size=img_size)
        torch.manual_seed(0)
        refiner = find_refiner(build_model(config).to(target).eval())
        if refiner is None:
            raise RuntimeError(f"{model_name} has no refiner")  # both registered models have one
        tokens = config.num_tokens
        maps = torch.rand(batch_size, config.num_heads, tokens, tokens, device=target).softmax(-1)
        maps = maps.to(DTYPES[dtype])
        implementations = _implementations(refiner, maps, compile_modules)
        exact = _exact(refiner)(maps.double())
        errors = {name: _norm_error(run(), exact) for name, run in implementations.items()}
        *times, copy_t = time_interleaved([*implementations.values(), large_copy], device=target, warmup=warmup,
                                          iters=iters)  # fmt: skip
        copy_times += copy_t
        moved = 2 * maps.numel() * maps.element_size()
        for name, durations in zip(implementations, times, strict=True):
            rows.append(
                KernelRow(
                    chain=chain,
                    implementation=name,
                    ms=Stats.of(durations).scaled(1000.0),
                    gb_per_s=gb_per_s(moved, durations),
                    ratio=Stats.of([r / t for t, r in zip(durations, times[0], strict=True)]),
                    error=errors[name],
                )
            )
    return KernelReport(
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        img_size=img_size,
        iters=iters,
        copy_gb_per_s=gb_per_s(2 * COPY_BYTES, copy_times),
        rows=tuple(rows),
        environment=environment(target),
    )


def _implementations(refiner: nn.Module, maps: Tensor, compile_modules: bool) -> dict[str, Callable[[], Tensor]]:
    """Each implementation as a call on ``maps``; the reference (the modules) first."""
    modules = _modules(refiner)
    autocast = amp_autocast(maps.device, "bf16" if maps.dtype == torch.bfloat16 else "off")

    def run(module: Callable[[Tensor], Tensor], kernels: bool, folded: bool) -> Callable[[], Tensor]:
        def call() -> Tensor:
            if isinstance(refiner, AttentionRefiner):
                refiner.set_folded(folded)
            with torch.inference_mode(), autocast, triton_kernels(kernels):
                return module(maps)

        return call

    implementations = {
        "modules": run(modules, kernels=False, folded=False),
        "pytorch": run(refiner, kernels=False, folded=True),
    }
    with torch.inference_mode():
        if uses_triton(maps):
            implementations["triton"] = run(refiner, kernels=True, folded=True)
    if compile_modules:
        implementations["compiled"] = run(torch.compile(modules), kernels=False, folded=False)
    return implementations


def _modules(refiner: nn.Module) -> nn.Module:
    """The chain as separate modules: the released code's structure, or the paper's three steps."""
    if isinstance(refiner, OfficialMapRefiner):
        return PlainOfficialRefiner(refiner)
    return refiner  # the same module, run unfolded


def _exact(refiner: nn.Module) -> Callable[[Tensor], Tensor]:
    exact = copy.deepcopy(refiner).double()
    if isinstance(exact, AttentionRefiner):
        exact.set_folded(False)
    modules = _modules(exact)

    def call(maps: Tensor) -> Tensor:
        with torch.inference_mode(), triton_kernels(False):
            return modules(maps)

    return call


def _norm_error(out: Tensor, exact: Tensor) -> float:
    return ((out.double() - exact).norm() / exact.norm()).item()


def chain_rows(report: KernelReport) -> Sequence[dict[str, Any]]:
    """Table rows of ``report``: one per chain and implementation."""
    return [
        {
            "chain": row.chain,
            "implementation": row.implementation,
            "ms [q1-q3]": f"{row.ms.median:.3f} [{row.ms.q1:.3f}-{row.ms.q3:.3f}]",
            "GB/s": f"{row.gb_per_s.median:.3g}",
            "of copy": f"{row.gb_per_s.median / report.copy_gb_per_s.median:.0%}",
            "ratio [q1-q3]": f"{row.ratio.median:.2f} [{row.ratio.q1:.2f}-{row.ratio.q3:.2f}]",
            "error": f"{row.error:.1e}",
        }
        for row in report.rows
    ]
