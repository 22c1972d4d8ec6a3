"""Full training of an exported configuration with a recipe, on CPU, one GPU or several (``torchrun``).

It is the search's training loop (``refiner_nas.refiner_space.training.train_model``) with the recipe's settings:
AdamW, cosine schedule with warm-up, mixup/cutmix, label smoothing, EMA, and the recipe's drop path
on the model. The run folder holds ``run.yaml`` (what is trained), ``last.pt`` (written after every
epoch) and ``result.yaml`` (final metrics); running the same command again resumes from ``last.pt``
and, with the same seed, ends with the same metrics as an uninterrupted run. The final top-1 goes to
the leaderboard.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from refiner_nas.refiner_space import ModelConfig, build_model
from refiner_nas.refiner_space.data import DataBundle, DataSpec, load_data
from refiner_nas.refiner_space.training import (
    CHECKPOINT_NAME,
    Report,
    TrainResult,
    TrainSettings,
    seed_everything,
    train_model,
)
from refiner_nas.results.distributed import (
    DistributedContext,
    ShardedImageSet,
    barrier,
    init_distributed,
    make_data_parallel,
    shutdown,
)
from refiner_nas.results.entries import full_training_row, record_full_result
from refiner_nas.results.export import load_export
from refiner_nas.results.store import UpsertReport
from refiner_nas.search.provenance import provenance

ValSource = Literal["auto", "split", "official"]
RUN_FILE = "run.yaml"
RESULT_FILE = "result.yaml"


class RunFolderError(ValueError):
    """A run folder that holds another run or cannot be written."""


@dataclass(frozen=True)
class FullTrainingResult:
    """What a full training produced and where it went."""

    name: str
    config: ModelConfig
    recipe: str
    settings: TrainSettings
    train: TrainResult
    output: Path
    not_applied: tuple[str, ...]
    adapted: tuple[str, ...]
    leaderboard: UpsertReport | None

    @property
    def final_top1(self) -> float:
        return self.train.final_top1


def resolve_val_source(spec: DataSpec, val_source: ValSource) -> Literal["split", "official"]:
    """``auto``: the official validation set where the data has one (CIFAR's test batch, an image
    folder's ``val/`` next to ``train/``), else a held-out split."""
    if val_source != "auto":
        return val_source
    if spec.kind in ("cifar10", "cifar100"):
        return "official"
    if spec.kind == "imagefolder" and spec.path is not None and (spec.path / "train").is_dir():
        return "official" if (spec.path / "val").is_dir() else "split"
    return "split"


def run_full_training(
    config_file: Path,
    *,
    data: str,
    output: Path,
    recipe: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    img_size: int | None = None,
    drop_path: float | None = None,
    seed: int = 0,
    device: str = "auto",
    amp: bool = True,
    val_source: ValSource = "auto",
    val_fraction: float = 0.1,
    num_workers: int | None = None,
    results_dir: Path | None = Path("runs"),
    force: bool = False,
    report: Report | None = None,
    note: Callable[[str], None] | None = None,
) -> FullTrainingResult:
    """Train the configuration in ``config_file`` (an export or a ModelConfig YAML) on ``data``.

    Args:
        data: a dataset spec (``digits``, ``cifar10:DIR``, ``imagefolder:DIR`` or a bare folder).
        output: the run folder; an existing run there (same settings) is resumed.
        recipe: ``standard``, ``advanced``, ``released`` or a recipe of the file (default: the file's).
        epochs: override the recipe's (the warm-up keeps its share).
        batch_size: override the recipe's (the learning rate scales with it).
        lr: the peak learning rate, instead of the recipe's scaled one.
        img_size: train at another size than the configuration's (e.g. 224 after a 32 px search).
        drop_path: override the recipe's stochastic depth.
        results_dir: leaderboard to record the final top-1 in; None records nothing.
        force: discard the run folder's checkpoint and results and start again.
        report: ``report(epoch, top1)`` after every epoch (see ``train_model``).
        note: ``note(text)`` for each way the recipe was fitted to the data, before training starts.

    The recipe is fitted to the data (``Recipe.scale_to_data``; a shorter run keeps the warm-up's share);
    what changed is in ``adapted`` and in ``run.yaml`` and ``result.yaml``.

    Raises:
        RunFolderError: the folder holds a different run (without ``force``) or cannot be written.
        ExportError, RecipeError, DatasetError, ValueError: bad inputs, each named in one line.
    """
    check_numbers(epochs=epochs, batch_size=batch_size, lr=lr, img_size=img_size, drop_path=drop_path, seed=seed,
                  num_workers=num_workers, val_fraction=val_fraction)
    exported = load_export(config_file)
    chosen = exported.recipe(recipe)
    spec = DataSpec.parse(data)
    context = init_distributed(device)
    try:
        bundle = load_data(
            spec,
            img_size=img_size or exported.config.img_hw,
            val_source=resolve_val_source(spec, val_source),
            val_fraction=val_fraction,
            split_seed=seed,
            num_workers=num_workers,
        )
        config = exported.config.replace(
            **bundle.model_overrides(),
            drop_path_rate=chosen.drop_path_for(exported.timm_model) if drop_path is None else drop_path,
        )
        output = Path(output)
        scaling = chosen.scale_to_data(len(bundle.train), batch_size=batch_size, lr=lr)
        settings = chosen.train_settings(
            epochs=epochs, batch_size=scaling.batch_size, lr=scaling.lr, seed=seed, device=context.device, amp=amp,
            checkpoint_dir=output, resume=True,
        )
        adapted = [*scaling.changes]
        if settings.epochs != chosen.epochs:
            adapted.append(f"warm-up {chosen.warmup_epochs:g} of {chosen.epochs} epochs -> "
                           f"{settings.warmup_epochs:.3g} of {settings.epochs} (the recipe's share)")
        plan = {
            "name": exported.name,
            "config": config.to_dict(),
            "config_hash": config.config_hash(),
            "recipe": chosen.model_dump(mode="json"),
            "data": bundle.name,
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "lr": settings.lr,
            "adapted": adapted,
            "seed": seed,
        }
        if context.is_main:  # if this fails, torchrun stops the processes waiting at the barrier
            _prepare_folder(output, plan, force=force)
            for change in adapted if note is not None else ():
                note(change)
        barrier(context)
        result = _train(config, bundle, settings, context, report)
        recorded = None
        if context.is_main:
            _write_yaml(output / RESULT_FILE, {**_result_document(result, settings), "adapted": adapted})
            if results_dir is not None:
                row = full_training_row(
                    config=config, exported=exported.config, top1=result.final_top1, dataset=bundle.name,
                    epochs=settings.epochs, recipe=chosen.name, name=exported.name, seed=seed,
                    source="refiner-nas train",
                    output=str(output.resolve()), study=exported.proxy.get("study"),
                    trial=exported.proxy.get("trial"), wall_time_s=result.wall_time_s,
                    provenance=provenance(context.device),
                )
                recorded = record_full_result(row, results_dir, force=True)
        return FullTrainingResult(
            name=exported.name, config=config, recipe=chosen.name, settings=settings, train=result,
            output=output, not_applied=tuple(chosen.unsupported()), adapted=tuple(adapted), leaderboard=recorded,
        )
    finally:
        shutdown(context)


def check_numbers(
    *, epochs: int | None = None, batch_size: int | None = None, lr: float | None = None, img_size: int | None = None,
    drop_path: float | None = None, seed: int = 0, num_workers: int | None = None, val_fraction: float = 0.1,
) -> None:
    """Refuse numeric options that cannot train, before anything is loaded or trained (None: the recipe's).

    Raises:
        ValueError: every bad option in one line, each with its value and what is allowed.
    """
    problems = [
        f"{option} {value} must be {allowed}"
        for option, value, bad, allowed in (
            ("--epochs", epochs, epochs is not None and epochs < 1, "at least 1 (or left out: the recipe's)"),
            ("--batch-size", batch_size, batch_size is not None and batch_size < 1, "at least 1"),
            ("--lr", lr, lr is not None and not 0 < lr < float("inf"), "a positive number"),
            ("--img-size", img_size, img_size is not None and img_size < 1, "at least 1 pixel"),
            ("--drop-path", drop_path, drop_path is not None and not 0 <= drop_path < 1, "in [0, 1)"),
            ("--seed", seed, seed < 0, "at least 0"),
            ("--workers", num_workers, num_workers is not None and num_workers < 0, "at least 0"),
            ("val_fraction", val_fraction, not 0 < val_fraction < 1, "in (0, 1)"),
        )
        if bad
    ]
    if problems:
        raise ValueError("; ".join(problems))


def _prepare_folder(output: Path, plan: dict[str, Any], *, force: bool) -> None:
    """Create the run folder, or check that the run there is this one (then it is resumed)."""
    run_file = output / RUN_FILE
    if force:
        for name in (CHECKPOINT_NAME, RESULT_FILE, RUN_FILE):
            if (output / name).is_file():
                (output / name).unlink()
    elif run_file.is_file():
        earlier = yaml.safe_load(run_file.read_text()) or {}
        changed = sorted(key for key in plan if key != "adapted" and earlier.get(key) != plan[key])  # derived
        if changed:
            raise RunFolderError(
                f"--output {output} holds another run (different {', '.join(changed)}); use another --output, "
                "or --force to discard it"
            )
        return
    elif output.exists() and any(output.iterdir()):
        raise RunFolderError(f"--output {output} is not empty and holds no run; use another --output or --force")
    _write_yaml(run_file, plan)


def _write_yaml(path: Path, document: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    except OSError as error:
        raise RunFolderError(f"cannot write {path}: {error.strerror or error}; choose another --output") from None


def _train(
    config: ModelConfig, data: DataBundle, settings: TrainSettings, context: DistributedContext, report: Report | None
) -> TrainResult:
    seed_everything(settings.seed)
    model = build_model(config)
    if not context.distributed:
        return train_model(model, data, settings, report=report)
    # Only rank 0 keeps the run folder's checkpoint; the others resume from a private copy of it and
    # write theirs where nobody reads them (train_model writes whenever it has a checkpoint folder).
    shards = ShardedImageSet(data.train, rank=context.rank, world_size=context.world_size)
    if (settings.mixup or settings.cutmix) and shards.share(settings.batch_size) % 2:
        raise ValueError(
            f"batch_size={settings.batch_size} gives {shards.share(settings.batch_size)} images per process; mixup "
            f"pairs images within a process, so use a multiple of {2 * context.world_size}"
        )
    sharded = DataBundle(
        name=data.name, train=shards, val=data.val, num_classes=data.num_classes, in_chans=data.in_chans,
        img_size=data.img_size, class_names=data.class_names,
    )
    model.to(context.device)
    handles = make_data_parallel(model, context)
    try:
        if context.is_main:
            return train_model(model, sharded, settings, report=report)
        with tempfile.TemporaryDirectory(prefix=f"refiner-nas-rank{context.rank}-") as private:
            shared = settings.checkpoint_dir / CHECKPOINT_NAME  # type: ignore[operator]
            if shared.exists():
                shutil.copy(shared, Path(private) / CHECKPOINT_NAME)
            return train_model(model, sharded, replace(settings, checkpoint_dir=Path(private)), report=report)
    finally:
        for handle in handles:
            handle.remove()


def _result_document(result: TrainResult, settings: TrainSettings) -> dict[str, Any]:
    return {
        "final_top1": result.final_top1,
        "best_top1": result.best_top1,
        "top1_curve": list(result.reported_curve),
        "weights_top1_curve": list(result.top1_curve),
        "train_loss_curve": list(result.train_loss_curve),
        "epochs_run": result.epochs_run,
        "resumed_at_epoch": result.start_epoch,
        "wall_time_s": result.wall_time_s,
        "settings": settings.to_dict(),
    }
