"""Inference and training throughput, batch-1 latency and peak memory of a model, each measured next to
a reference model in the same process, with the ratio between them.

Absolute images/s depend on the machine and on whatever else runs on it; the ratio to a reference measured
in the same process, the two taking turns in every iteration, is what compares across machines. The
reference is by default the vanilla ViT with the same depth, width, heads and MLP ratio (patch stem, no
sharing, no context broadcasting, no aux head): ``reference_config``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from refiner_nas.refiner_space import (
    NAMED_CONFIGS,
    FoldError,
    ModelConfig,
    build_model,
    named_config,
    set_refiner_fold,
    triton_kernels,
)
from refiner_nas.refiner_space.costs.bandwidth import Bandwidth, refiner_bandwidth
from refiner_nas.refiner_space.costs.environment import environment
from refiner_nas.refiner_space.costs.timing import (
    MemoryPeak,
    Stats,
    cuda_batch_fits,
    largest_fitting_batch,
    peak_memory,
    time_interleaved,
)

Mode = Literal["inference", "train", "latency"]
Amp = Literal["off", "bf16", "fp16"]
MODES: tuple[Mode, ...] = ("inference", "train", "latency")
MIN_ITERS = 10


@dataclass(frozen=True)
class SpeedSettings:
    """How to measure. ``iters`` timed iterations (at least 10) follow ``warmup`` untimed ones.

    Attributes:
        batch_size: images per step for ``inference`` and ``train`` (``latency`` uses 1).
        img_size: input size; None keeps each configuration's.
        device: ``cpu`` or ``cuda[:i]``.
        amp: autocast dtype (``bf16``, or ``fp16`` on CUDA only); ``off`` runs float32.
        channels_last: convert the model and the images to channels-last memory format.
        compile: wrap the models in ``torch.compile``.
        threads: CPU threads (``torch.set_num_threads``) for the whole measurement; None uses every core
            this process may run on.
        modes: which of ``inference``, ``train``, ``latency`` to measure.
        fold: fold the paper refiners into one dense kernel (training and inference); the released
            variant folds its BatchNorms by itself at inference, with or without this.
        max_batch: on CUDA, also find the largest batch that fits (doubling, then bisection on OOM).
        bandwidth: also time the model's refiner alone and a large copy
            (``refiner_nas.refiner_space.costs.bandwidth``).
        triton_kernels: on CUDA, run the refiner chains at inference in their Triton kernels
            (``refiner_nas.refiner_space.set_triton_kernels``); False times the PyTorch paths.
    """

    batch_size: int = 8
    img_size: int | None = None
    device: str = "cpu"
    amp: Amp = "off"
    channels_last: bool = False
    compile: bool = False
    warmup: int = 3
    iters: int = MIN_ITERS
    threads: int | None = None
    modes: tuple[Mode, ...] = MODES
    fold: bool = False
    max_batch: bool = False
    bandwidth: bool = False
    triton_kernels: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")
        if self.iters < MIN_ITERS:
            raise ValueError(f"iters={self.iters}: at least {MIN_ITERS} timed iterations are needed")
        if self.warmup < 0:
            raise ValueError(f"warmup={self.warmup} must be >= 0")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads={self.threads} must be >= 1")
        if self.amp not in ("off", "bf16", "fp16"):
            raise ValueError(f"amp={self.amp!r} must be 'off', 'bf16' or 'fp16'")
        unknown = set(self.modes) - set(MODES)
        if unknown or not self.modes:
            raise ValueError(f"modes={self.modes!r}: choose one or more of {', '.join(MODES)}")
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise ValueError(f"device={self.device!r} is not a device; use 'cpu' or 'cuda'") from None
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"device={self.device!r}: only 'cpu' and 'cuda' are supported")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} but CUDA is not available here; use --device cpu")
        if self.amp == "fp16" and device.type != "cuda":
            raise ValueError("amp='fp16' needs a CUDA device; use amp='bf16' on CPU")
        if self.max_batch and device.type != "cuda":
            raise ValueError(
                "max_batch searches the largest batch before CUDA runs out of memory; it needs --device cuda"
            )

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["modes"] = list(self.modes)
        return data


@dataclass(frozen=True)
class ModeResult:
    """One mode of one model: images/s, per-step time, peak memory, and the same for the reference.

    ``ratio`` is the per-iteration ratio reference step time / model step time, i.e. the model's
    throughput relative to the reference (above 1: faster).
    """

    mode: Mode
    batch_size: int
    throughput: Stats
    step_ms: Stats
    memory: MemoryPeak
    reference_throughput: Stats | None = None
    reference_memory: MemoryPeak | None = None
    ratio: Stats | None = None
    max_batch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "batch_size": self.batch_size,
            "images_per_s": self.throughput.to_dict(),
            "step_ms": self.step_ms.to_dict(),
            "peak_memory": self.memory.to_dict(),
            "reference_images_per_s": None
            if self.reference_throughput is None
            else self.reference_throughput.to_dict(),
            "reference_peak_memory": None if self.reference_memory is None else self.reference_memory.to_dict(),
            "ratio_to_reference": None if self.ratio is None else self.ratio.to_dict(),
            "max_batch": self.max_batch,
        }


@dataclass(frozen=True)
class SpeedResult:
    """Every measured mode of one model against its reference, with settings and environment."""

    model: str
    config_hash: str
    reference: str | None
    reference_hash: str | None
    settings: SpeedSettings
    modes: tuple[ModeResult, ...]
    folded: bool = False
    bandwidth: Bandwidth | None = None  # with settings.bandwidth, for models with a refiner
    environment: dict[str, Any] = field(default_factory=dict)

    def mode(self, mode: Mode) -> ModeResult:
        for result in self.modes:
            if result.mode == mode:
                return result
        raise KeyError(f"mode {mode!r} was not measured; measured: {', '.join(r.mode for r in self.modes)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "config_hash": self.config_hash,
            "reference": self.reference,
            "reference_hash": self.reference_hash,
            "folded": self.folded,
            "settings": self.settings.to_dict(),
            "modes": [m.to_dict() for m in self.modes],
            "bandwidth": None if self.bandwidth is None else self.bandwidth.to_dict(),
            "environment": self.environment,
        }


def reference_config(config: ModelConfig) -> ModelConfig:
    """The vanilla ViT with the same input, depth, width, heads and MLP ratio as ``config``."""
    return ModelConfig(
        img_size=config.img_size,
        in_chans=config.in_chans,
        num_classes=config.num_classes,
        patch_size=config.patch_size,
        depth=config.depth,
        embed_dim=config.embed_dim,
        num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=config.qkv_bias,
        class_token=config.class_token,
    )


def reference_for(config: ModelConfig) -> tuple[str, ModelConfig]:
    """The default reference of ``config`` with a label: the registered name of the same vanilla ViT
    when there is one (``vit_16b_384`` for ``refined_vit_s``), else a description of its shape."""
    reference = reference_config(config)
    for name in NAMED_CONFIGS:
        if named_config(name, img_size=reference.img_size).config_hash() == reference.config_hash():
            return name, reference
    label = f"vanilla ViT {reference.depth}x{reference.embed_dim}, {reference.num_heads} heads"
    return label, reference


def default_threads() -> int:
    """Every core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` CPU threads (default: every available core), restoring the old setting."""
    previous = torch.get_num_threads()
    chosen = threads or default_threads()
    torch.set_num_threads(chosen)
    try:
        yield chosen
    finally:
        torch.set_num_threads(previous)


def measure_speed(
    model: tuple[str, ModelConfig],
    reference: tuple[str, ModelConfig] | None,
    settings: SpeedSettings,
    *,
    progress: Callable[[str], None] | None = None,
) -> SpeedResult:
    """Measure ``model`` (a label and a configuration) and, taking turns with it, ``reference``;
    ``progress`` is told what is measured next (a long measurement is not silent).

    A reference whose configuration equals the model's is not measured twice (no ratio is reported).

    Raises:
        ValueError: settings that cannot run here (see ``SpeedSettings``).
    """
    label, config = model
    if settings.img_size is not None:
        config = config.replace(img_size=settings.img_size)
    if reference is not None:
        reference_label, ref_config = reference
        if settings.img_size is not None:
            ref_config = ref_config.replace(img_size=settings.img_size)
        if ref_config.config_hash() == config.config_hash():
            reference = None
        else:
            reference = (reference_label, ref_config)
    device = settings.torch_device
    with cpu_threads(settings.threads), triton_kernels(settings.triton_kernels):
        torch.manual_seed(0)
        candidate = build_model(config).to(device)
        other = build_model(reference[1]).to(device) if reference is not None else None
        if settings.channels_last:
            candidate = candidate.to(memory_format=torch.channels_last)
            other = other.to(memory_format=torch.channels_last) if other is not None else None
        folded = settings.fold and _fold(candidate)
        results = []
        for mode in sorted(settings.modes, key=lambda m: m != "train"):
            if progress is not None:
                against = f" against {reference[0]}" if reference is not None else ""
                progress(f"measuring {label}: {mode}{against}, {settings.warmup} warm-up + {settings.iters} timed ...")
            results.append(_measure_mode(mode, candidate, other, config, settings))
        bandwidth = (
            refiner_bandwidth(
                candidate, config, batch_size=settings.batch_size, warmup=settings.warmup, iters=settings.iters
            )
            if settings.bandwidth
            else None
        )
        env = environment(device)  # inside: records the threads used
    return SpeedResult(
        model=label,
        config_hash=config.config_hash(),
        reference=None if reference is None else reference[0],
        reference_hash=None if reference is None else reference[1].config_hash(),
        settings=settings,
        modes=tuple(results),
        folded=folded,
        bandwidth=bandwidth,
        environment=env,
    )


def _fold(model: nn.Module) -> bool:
    """Fold the paper refiners; False when the model has none (the released variant folds by itself)."""
    try:
        set_refiner_fold(model, True)
    except FoldError:
        return False
    return True


def _measure_mode(
    mode: Mode, model: nn.Module, reference: nn.Module | None, config: ModelConfig, settings: SpeedSettings
) -> ModeResult:
    device = settings.torch_device
    batch_size = 1 if mode == "latency" else settings.batch_size
    make_step = _train_step if mode == "train" else _inference_step
    steps = [make_step(m, config, batch_size, settings) for m in (model, reference) if m is not None]
    durations = time_interleaved(steps, device=device, warmup=settings.warmup, iters=settings.iters)
    memories = [peak_memory(step, device) for step in steps]
    throughputs = [Stats.of([batch_size / t for t in times]) for times in durations]
    max_batch = None
    if settings.max_batch and mode != "latency":
        fits = cuda_batch_fits(lambda b: make_step(model, config, b, settings)(), device)
        max_batch = largest_fitting_batch(fits, start=batch_size)
    return ModeResult(
        mode=mode,
        batch_size=batch_size,
        throughput=throughputs[0],
        step_ms=Stats.of(durations[0]).scaled(1000.0),
        memory=memories[0],
        reference_throughput=throughputs[1] if reference is not None else None,
        reference_memory=memories[1] if reference is not None else None,
        ratio=Stats.of([r / m for m, r in zip(*durations, strict=True)]) if reference is not None else None,
        max_batch=max_batch,
    )


def _images(config: ModelConfig, batch_size: int, settings: SpeedSettings) -> torch.Tensor:
    images = torch.randn(batch_size, config.in_chans, *config.img_hw, device=settings.torch_device)
    return images.contiguous(memory_format=torch.channels_last) if settings.channels_last else images


def amp_autocast(device: torch.device, amp: str) -> AbstractContextManager[Any]:
    """Autocast to ``amp`` (``bf16`` or ``fp16``) on ``device``, or nothing for ``off``."""
    if amp == "off":
        return nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _autocast(settings: SpeedSettings) -> AbstractContextManager[Any]:
    return amp_autocast(settings.torch_device, settings.amp)


def _compiled(model: nn.Module, settings: SpeedSettings) -> Callable[[torch.Tensor], torch.Tensor]:
    return torch.compile(model) if settings.compile else model  # type: ignore[return-value]


def _inference_step(
    model: nn.Module, config: ModelConfig, batch_size: int, settings: SpeedSettings
) -> Callable[[], object]:
    model.eval()
    images = _images(config, batch_size, settings)
    forward = _compiled(model, settings)

    def step() -> object:
        with torch.inference_mode(), _autocast(settings):
            return forward(images)

    return step


def _train_step(
    model: nn.Module, config: ModelConfig, batch_size: int, settings: SpeedSettings
) -> Callable[[], object]:
    model.train()
    images = _images(config, batch_size, settings)
    labels = torch.randint(0, max(config.num_classes, 1), (batch_size,), device=settings.torch_device)
    forward = _compiled(model, settings)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    scaler = torch.amp.GradScaler(settings.torch_device.type) if settings.amp == "fp16" else None

    def step() -> object:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(settings):
            loss = F.cross_entropy(forward(images), labels)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss

    return step


def measure_config_speed(
    config: ModelConfig, *, device: str = "cpu", batch_size: int = 8, threads: int | None = None
) -> tuple[float, float]:
    """What a search records for one candidate: (batch-1 inference latency in ms, inference images/s at
    ``batch_size``), medians of 10 timed runs after 2 warm-up runs, no reference model.

    Raises:
        ValueError: a device that is not available here.
    """
    settings = SpeedSettings(
        batch_size=batch_size, device=device, warmup=2, threads=threads, modes=("latency", "inference")
    )
    result = measure_speed((config.config_hash(), config), None, settings)
    return result.mode("latency").step_ms.median, result.mode("inference").throughput.median
