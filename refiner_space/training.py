"""One training loop for search trials and full training, on timm's optimizer, scheduler and losses.

AdamW (any timm optimizer), cosine schedule with linear warm-up stepped every update, label smoothing,
optional mixup/cutmix, AMP on CUDA, optional EMA of the weights and a checkpoint after every epoch.
Validation top-1 (percent) goes to a ``report(epoch, top1)`` callback after every epoch; whatever the
callback raises (a pruning signal) propagates untouched.

Reproducibility: the global RNGs are reseeded at the start of every epoch from (seed, epoch), and the
data order and augmentation of an epoch are a function of (seed, epoch) too. So a run resumed from its
last checkpoint follows exactly the path of an uninterrupted one. Seed the model's initialisation
yourself: call ``seed_everything`` before building the model.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from refiner_nas.refiner_space.data import DataBundle, ImageSet

CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "last.pt"
Report = Callable[[int, float], None]
Result = TypeVar("Result")


class TrainingError(RuntimeError):
    """A trial that could not finish; the one-line message says why and what to change."""


class NonFiniteLossError(TrainingError):
    """The training loss became NaN or infinite."""

    def __init__(self, *, epoch: int, step: int, loss: float) -> None:
        self.epoch, self.step, self.loss = epoch, step, loss
        super().__init__(
            f"training loss became {loss} at epoch {epoch}, step {step}; lower the learning rate, "
            "set clip_grad, or check the model and data"
        )


class TrainingOutOfMemoryError(TrainingError):
    """The device (GPU memory or host RAM) ran out of memory."""

    def __init__(self, *, device: str, batch_size: int, detail: str) -> None:
        self.device, self.batch_size, self.detail = device, batch_size, detail
        super().__init__(
            f"out of memory on {device} with batch_size={batch_size} ({detail}); "
            "use a smaller batch size or a smaller model"
        )


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """How to train: optimisation, regularisation, precision, EMA and checkpoints.

    The defaults are the search proxy's (small batches and a high learning rate let tiny ViTs learn the
    digits in 5 epochs). The schedule steps every update, so ``warmup_epochs`` may be fractional, and
    ``lr`` is the peak, reached after warm-up. ``mixup`` and ``cutmix`` are
    the Beta-distribution alphas (0 turns them off). ``ema_decay`` enables an EMA of the weights (with
    timm's decay warm-up, so it helps short runs too); its accuracy is then the one reported.
    ``checkpoint_dir`` saves ``last.pt`` after every epoch; ``resume`` continues from it.

    Raises:
        ValueError: a value out of range, naming the field and what is allowed.
    """

    epochs: int = 5
    batch_size: int = 32
    eval_batch_size: int = 256
    optimizer: str = "adamw"
    lr: float = 5e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    warmup_lr: float = 1e-5
    min_lr: float = 0.0
    label_smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    clip_grad: float | None = None
    amp: bool = True
    amp_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    ema_decay: float | None = None
    seed: int = 0
    device: str = "auto"
    checkpoint_dir: Path | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "eval_batch_size", "lr")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be positive")
        for name in ("weight_decay", "warmup_lr", "min_lr", "mixup", "cutmix"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs} must be in [0, epochs={self.epochs})")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing={self.label_smoothing} must be in [0, 1)")
        if (self.mixup or self.cutmix) and self.batch_size % 2:
            raise ValueError(f"batch_size={self.batch_size} must be even with mixup/cutmix (pairs are mixed)")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ValueError(f"clip_grad={self.clip_grad} must be positive or None")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay={self.ema_decay} must be in (0, 1), e.g. 0.9998, or None")
        if self.amp_dtype not in ("bfloat16", "float16"):
            raise ValueError(f"amp_dtype={self.amp_dtype!r} must be 'bfloat16' or 'float16'")
        if self.checkpoint_dir is not None:
            object.__setattr__(self, "checkpoint_dir", Path(self.checkpoint_dir))
        resolve_device(self.device)
        from timm.optim import list_optimizers

        if self.optimizer.lower() not in list_optimizers():
            raise ValueError(f"optimizer={self.optimizer!r} is not a timm optimizer; use e.g. 'adamw' or 'sgd'")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checkpoint_dir"] = None if self.checkpoint_dir is None else str(self.checkpoint_dir)
        return data

    def trajectory_fields(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run that wrote the checkpoint."""
        data = self.to_dict()
        for name in ("device", "checkpoint_dir", "resume", "eval_batch_size"):
            del data[name]
        return data


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """Per-epoch curves and timing of a training run (top-1 in percent).

    ``top1_curve`` is the trained weights' validation accuracy, ``ema_top1_curve`` the EMA's (empty
    without EMA); ``reported_curve`` is the one passed to ``report``. After a resume the curves hold
    every epoch, including those run before the interruption.
    """

    top1_curve: tuple[float, ...]
    ema_top1_curve: tuple[float, ...]
    train_loss_curve: tuple[float, ...]
    epochs_run: int
    start_epoch: int
    steps_per_epoch: int
    wall_time_s: float
    train_time_s: float
    eval_time_s: float
    epoch_times_s: tuple[float, ...] = field(repr=False)

    @property
    def reported_curve(self) -> tuple[float, ...]:
        return self.ema_top1_curve or self.top1_curve

    @property
    def best_top1(self) -> float:
        return max(self.reported_curve)

    @property
    def final_top1(self) -> float:
        return self.reported_curve[-1]


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; errors name the fix."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but no CUDA device is available; use device='cpu' or 'auto'")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device={name!r} is not supported; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all CUDA devices included)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, 1]).generate_state(1)[0])


def evaluate_top1(
    model: nn.Module, dataset: ImageSet, *, batch_size: int = 256, device: str = "auto", amp: bool = True
) -> float:
    """Top-1 accuracy in percent of ``model`` on ``dataset`` (left in eval mode)."""
    target = resolve_device(device)
    return _evaluate(model.to(target), dataset, batch_size, target, _autocast(target, amp, "bfloat16"))


def _evaluate(
    model: nn.Module, dataset: ImageSet, batch_size: int, device: torch.device, autocast: Callable[[], Any]
) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    with torch.inference_mode():
        for images, labels in dataset.batches(batch_size=batch_size, device=device):
            with autocast():
                logits = model(images)
            correct += (logits.argmax(dim=-1) == labels).sum()
    return 100.0 * correct.item() / len(dataset)


def _autocast(device: torch.device, amp: bool, dtype: str) -> Callable[[], Any]:
    enabled = amp and device.type == "cuda"
    return lambda: torch.autocast(device.type, dtype=getattr(torch, dtype), enabled=enabled)


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text or "CUBLAS_STATUS_ALLOC_FAILED" in text
    )


def _memory_guarded(run: Callable[[], Result], device: torch.device, batch_size: int) -> Result:
    """Run ``run``, turning an out-of-memory failure into ``TrainingOutOfMemoryError``."""
    try:
        return run()
    except (MemoryError, RuntimeError) as error:
        if not _is_out_of_memory(error):
            raise
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    # Raised outside the handler so that no traceback keeps the failed step's tensors alive.
    if device.type == "cuda":
        torch.cuda.empty_cache()
    raise TrainingOutOfMemoryError(device=str(device), batch_size=batch_size, detail=detail)


class _Run:
    """The optimisation state of one training run: what a checkpoint saves and a resume restores."""

    def __init__(self, model: nn.Module, data: DataBundle, settings: TrainSettings, device: torch.device):
        from timm.data import Mixup
        from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
        from timm.optim import create_optimizer_v2
        from timm.scheduler import create_scheduler_v2
        from timm.utils import ModelEmaV3

        self.model, self.data, self.settings, self.device = model.to(device), data, settings, device
        self.steps_per_epoch = len(data.train) // settings.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"batch_size={settings.batch_size} exceeds the {len(data.train)} training images; "
                "use a smaller batch_size"
            )
        self.optimizer = create_optimizer_v2(
            model, opt=settings.optimizer, lr=settings.lr, weight_decay=settings.weight_decay
        )
        self.scheduler, _ = create_scheduler_v2(
            self.optimizer,
            sched="cosine",
            num_epochs=settings.epochs,
            warmup_epochs=settings.warmup_epochs,  # type: ignore[arg-type]  # fractions work per update
            warmup_lr=settings.warmup_lr,
            min_lr=settings.min_lr,
            step_on_epochs=False,
            updates_per_epoch=self.steps_per_epoch,
        )
        self.mixup = None
        if settings.mixup or settings.cutmix:
            self.mixup = Mixup(
                mixup_alpha=settings.mixup,
                cutmix_alpha=settings.cutmix,
                label_smoothing=settings.label_smoothing,
                num_classes=data.num_classes,
            )
            self.loss_fn: nn.Module = SoftTargetCrossEntropy()
        else:
            self.loss_fn = LabelSmoothingCrossEntropy(smoothing=settings.label_smoothing)
        self.autocast = _autocast(device, settings.amp, settings.amp_dtype)
        scaled = settings.amp and device.type == "cuda" and settings.amp_dtype == "float16"
        self.scaler = torch.amp.GradScaler(device.type, enabled=scaled)
        self.ema = None
        if settings.ema_decay is not None:
            self.ema = ModelEmaV3(model, decay=settings.ema_decay, use_warmup=True, device=device)
        self.top1: list[float] = []
        self.ema_top1: list[float] = []
        self.train_loss: list[float] = []

    @property
    def epochs_done(self) -> int:
        return len(self.top1)

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training set; returns the mean loss."""
        settings, model = self.settings, self.model
        model.train()
        total = 0.0
        batches = self.data.train.batches(
            batch_size=settings.batch_size,
            device=self.device,
            shuffle=True,
            seed=settings.seed,
            epoch=epoch,
            drop_last=True,
        )
        for step, (images, labels) in enumerate(batches):
            update = epoch * self.steps_per_epoch + step
            self.scheduler.step_update(update)
            targets: Tensor = labels
            if self.mixup is not None:
                images, targets = self.mixup(images, labels)
            with self.autocast():
                loss = self.loss_fn(model(images), targets)
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLossError(epoch=epoch, step=step, loss=value)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if settings.clip_grad is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update(model, step=update + 1)
            total += value
        return total / self.steps_per_epoch

    def evaluate(self) -> tuple[float, float | None]:
        """Validation top-1 of the weights and of their EMA (None without EMA)."""
        args = (self.data.val, self.settings.eval_batch_size, self.device, self.autocast)
        ema_top1 = None if self.ema is None else _evaluate(self.ema.module, *args)
        return _evaluate(self.model, *args), ema_top1

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "run": self.run_key(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "top1": self.top1,
            "ema_top1": self.ema_top1,
            "train_loss": self.train_loss,
        }

    def load_state_dict(self, state: dict[str, Any], path: Path) -> None:
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"checkpoint {path} has version {state.get('version')!r}, expected {CHECKPOINT_VERSION}; "
                "start a new run in another checkpoint_dir"
            )
        saved, current = state["run"], self.run_key()
        changed = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in current.items() if saved.get(k) != v]
        if changed:
            raise ValueError(
                f"checkpoint {path} was written by a different run ({'; '.join(changed)}); "
                "resume with the same settings, model and data, or use another checkpoint_dir"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.top1, self.ema_top1, self.train_loss = state["top1"], state["ema_top1"], state["train_loss"]

    def run_key(self) -> dict[str, Any]:
        """What identifies a run: settings that shape its trajectory, the architecture and the data."""
        config = getattr(self.model, "config", None)
        return {
            **self.settings.trajectory_fields(),
            "model": type(self.model).__name__,
            "config_hash": config.config_hash() if hasattr(config, "config_hash") else None,
            "data": self.data.name,
            "train_size": len(self.data.train),
            "val_size": len(self.data.val),
        }


def _checkpoint_path(settings: TrainSettings) -> Path | None:
    if settings.checkpoint_dir is None:
        return None
    path = settings.checkpoint_dir / CHECKPOINT_NAME
    if path.exists() and not settings.resume:
        raise ValueError(
            f"{path} exists from an earlier run; pass resume=True to continue it or use an empty checkpoint_dir"
        )
    return path


def _save_checkpoint(run: _Run, path: Path) -> None:
    """Write atomically, so an interruption leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    torch.save(run.state_dict(), partial)
    os.replace(partial, path)


def train_model(
    model: nn.Module, data: DataBundle, settings: TrainSettings, report: Report | None = None
) -> TrainResult:
    """Train ``model`` in place on ``data`` and evaluate it after every epoch.

    Args:
        model: a freshly built model whose input matches ``data`` (see ``DataBundle.model_overrides``).
        data: the training and validation sets.
        settings: the recipe, device, seed, EMA and checkpointing.
        report: called as ``report(epoch, top1)`` after every epoch (``epoch`` counts from 0, ``top1``
            in percent, the EMA's when EMA is on), after that epoch's checkpoint is written.
            Anything it raises propagates unchanged (pruning, early stopping).

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (the epoch, step and value are named).
        TrainingOutOfMemoryError: the device or host ran out of memory.
        ValueError: settings that do not fit the data, or a checkpoint that does not fit the run.
    """
    started = time.perf_counter()
    device = resolve_device(settings.device)
    checkpoint = _checkpoint_path(settings)
    run = _Run(model, data, settings, device)
    if checkpoint is not None and checkpoint.exists():
        run.load_state_dict(torch.load(checkpoint, map_location=device, weights_only=True), checkpoint)
    start_epoch = run.epochs_done
    train_time = eval_time = 0.0
    epoch_times = []
    for epoch in range(start_epoch, settings.epochs):
        seed_everything(_epoch_seed(settings.seed, epoch))
        epoch_start = time.perf_counter()
        loss = _memory_guarded(lambda epoch=epoch: run.train_epoch(epoch), device, settings.batch_size)
        eval_start = time.perf_counter()
        top1, ema_top1 = _memory_guarded(run.evaluate, device, settings.eval_batch_size)
        epoch_end = time.perf_counter()
        train_time += eval_start - epoch_start
        eval_time += epoch_end - eval_start
        epoch_times.append(epoch_end - epoch_start)
        run.train_loss.append(loss)
        run.top1.append(top1)
        if ema_top1 is not None:
            run.ema_top1.append(ema_top1)
        if checkpoint is not None:
            _save_checkpoint(run, checkpoint)
        if report is not None:
            report(epoch, top1 if ema_top1 is None else ema_top1)
    return TrainResult(
        top1_curve=tuple(run.top1),
        ema_top1_curve=tuple(run.ema_top1),
        train_loss_curve=tuple(run.train_loss),
        epochs_run=run.epochs_done,
        start_epoch=start_epoch,
        steps_per_epoch=run.steps_per_epoch,
        wall_time_s=time.perf_counter() - started,
        train_time_s=train_time,
        eval_time_s=eval_time,
        epoch_times_s=tuple(epoch_times),
    )
