"""What an analysis runs on: a registered model name, a configuration YAML (a ModelConfig mapping or an
exported configuration), or a checkpoint with the configuration it was trained with.

A model without weights is randomly initialised from a seed; a checkpoint is loaded strictly.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from refiner_nas.refiner_space.checkpoint import (
    CheckpointMismatchError,
    convert_released_state_dict,
    state_dict_mismatches,
)
from refiner_nas.refiner_space.config import ModelConfig
from refiner_nas.refiner_space.files import read_text_file
from refiner_nas.refiner_space.model import RefinedViT, build_model
from refiner_nas.refiner_space.registry import NAMED_CONFIGS, named_config

CHECKPOINT_SUFFIXES = (".pt", ".pth")
CONFIG_SUFFIXES = (".yaml", ".yml")
# Randomly initialised models are analysed at most this large by default: features of untrained weights
# say nothing about resolution, and full-size models at 224 px take tens of seconds a batch on a CPU.
UNTRAINED_MAX_SIZE = 112


class SourceError(ValueError):
    """A model, configuration or checkpoint argument that cannot be used; the message says why."""


@dataclass(frozen=True)
class ModelSource:
    """A model ready to analyse (eval mode), its label in tables and figures, and the checkpoint its
    weights came from (None: randomly initialised)."""

    label: str
    model: RefinedViT
    weights: Path | None


def resolve_config(text: str) -> ModelConfig:
    """A registered model name or a YAML file: a ModelConfig mapping, an exported configuration
    (``timm: {model, kwargs}``, as ``refiner-nas export`` writes it), ``model_name`` + ``model_kwargs``
    (timm's name and keyword arguments), or either of the last two under a top-level ``model`` key.

    Raises:
        SourceError: an unknown name, a missing or unreadable file, or a mapping of neither form.
    """
    if text in NAMED_CONFIGS:
        return named_config(text)
    path = Path(text)
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise SourceError(
            f"unknown model {text!r}: neither a registered name ({', '.join(NAMED_CONFIGS)}) nor a "
            f"configuration file ({'/'.join(CONFIG_SUFFIXES)})"
        )
    if not path.is_file():
        raise SourceError(f"configuration file {path} does not exist; pass an existing YAML file")
    text = read_text_file(path, "model configuration", error=SourceError)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SourceError(f"{path}: cannot read YAML ({str(error).splitlines()[0]})") from None
    try:
        return _config_from_mapping(data)
    except ValueError as error:
        raise SourceError(f"{path}: {error}") from None


def _config_from_mapping(data: Any) -> ModelConfig:
    if isinstance(data, Mapping) and isinstance(data.get("timm"), Mapping):  # an export: timm rebuilds it
        data = {"model_name": data["timm"].get("model"), "model_kwargs": data["timm"].get("kwargs")}
    if isinstance(data, Mapping) and isinstance(data.get("model"), Mapping):
        data = data["model"]
    if not isinstance(data, Mapping):
        raise SourceError(
            "expected a mapping: ModelConfig fields, or model_name and model_kwargs (optionally under 'model')"
        )
    if "model_name" not in data:
        return ModelConfig.from_dict(dict(data))
    kwargs = data.get("model_kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise SourceError(f"model_kwargs must be a mapping of ModelConfig fields, got {kwargs!r}")
    return _named_with_overrides(str(data["model_name"]), dict(kwargs))


def _named_with_overrides(name: str, kwargs: dict[str, Any]) -> ModelConfig:
    if name in NAMED_CONFIGS:
        return named_config(name, **kwargs)
    import timm

    if not timm.is_model(name):
        raise SourceError(f"model_name {name!r} is not registered in timm; use one of {', '.join(NAMED_CONFIGS)}")
    model = timm.create_model(name, pretrained=False, **kwargs)
    if not isinstance(model, RefinedViT):
        raise SourceError(f"model_name {name!r} builds a {type(model).__name__}, not a refiner_space model")
    return model.config


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of a ``.pt``/``.pth`` file: a state dict, possibly under ``model`` or ``state_dict``
    (training checkpoints), with a ``module.`` prefix (DataParallel/DDP) removed.

    Raises:
        SourceError: a missing or unreadable file, or one that holds no state dict.
    """
    if not path.is_file():
        raise SourceError(f"checkpoint {path} does not exist; pass an existing .pt/.pth file")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise SourceError(f"cannot read checkpoint {path} ({str(error).splitlines()[0]})") from None
    for key in ("state_dict", "model"):
        if isinstance(content, Mapping) and isinstance(content.get(key), Mapping):
            content = content[key]
            break
    if not isinstance(content, Mapping) or not content or not all(isinstance(v, Tensor) for v in content.values()):
        raise SourceError(f"checkpoint {path} holds no state dict (a mapping of parameter names to tensors)")
    if all(key.startswith("module.") for key in content):
        return {key.removeprefix("module."): value for key, value in content.items()}
    return dict(content)


def _listed(keys: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def load_weights(model: RefinedViT, state_dict: Mapping[str, Tensor], path: Path) -> RefinedViT:
    """Load strictly; released-code key names are accepted for ``refiner_official`` models. A position
    embedding for another image size is resampled.

    Raises:
        CheckpointMismatchError: one line naming the missing, unexpected and mis-shaped keys.
    """
    if model.config.attention == "refiner_official":
        state_dict = convert_released_state_dict(state_dict, model)
    missing, unexpected, shapes = state_dict_mismatches(model, state_dict)
    mismatched = [f"{key} {ours} vs {theirs}" for key, ours, theirs in shapes]
    problems = [
        f"{what}: {_listed(keys)}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("shapes differ", mismatched))
        if keys
    ]
    if problems:
        raise CheckpointMismatchError(
            f"checkpoint {path} does not match its configuration ({'; '.join(problems)}); "
            "pass the --config it was trained with"
        )
    model.load_state_dict(state_dict, strict=True)
    return model


def default_img_size(config: ModelConfig, *, trained: bool) -> tuple[int, int]:
    """Trained weights: the configured size (features depend on it). Untrained: at most
    ``UNTRAINED_MAX_SIZE`` per side, a multiple of the patch size, so a CPU run takes seconds."""
    if trained:
        return config.img_hw
    patch = config.patch_size
    height, width = (max(patch, min(side, UNTRAINED_MAX_SIZE) // patch * patch) for side in config.img_hw)
    return height, width


def load_source(text: str, *, config: str | None = None, img_size: int | None = None, seed: int = 0) -> ModelSource:
    """Build the model named by ``text`` (see ``resolve_config``), or load the checkpoint ``text``
    into the configuration ``config`` (a name or YAML file), at ``img_size`` (default:
    ``default_img_size``).

    Raises:
        SourceError: unknown models, unreadable files, a checkpoint without ``config`` or a ``config``
            without a checkpoint; CheckpointMismatchError; ConfigError for an impossible ``img_size``.
    """
    path = Path(text)
    is_checkpoint = _is_checkpoint(text)
    if is_checkpoint and config is None:
        raise SourceError(
            f"checkpoint {path} needs its configuration: pass --config NAME|FILE.yaml (a registered model "
            "name, a ModelConfig YAML or an exported configuration)"
        )
    if config is not None and not is_checkpoint:
        raise SourceError(f"--config applies to checkpoints ({'/'.join(CHECKPOINT_SUFFIXES)}), not to {text!r}")
    state_dict = read_state_dict(path) if is_checkpoint else None
    resolved = resolve_config(config if is_checkpoint else text)  # type: ignore[arg-type]
    size = (img_size, img_size) if img_size is not None else default_img_size(resolved, trained=is_checkpoint)
    if size != resolved.img_hw:
        resolved = ModelConfig.from_dict({**resolved.to_dict(), "img_size": size[0] if size[0] == size[1] else size})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(resolved)
    if state_dict is not None:
        load_weights(model, state_dict, path)
    return ModelSource(label=unique_labels([text])[0], model=model.eval(), weights=path if is_checkpoint else None)


def load_sources(
    texts: Sequence[str], *, configs: Sequence[str] = (), img_size: int | None = None, seed: int = 0
) -> list[ModelSource]:
    """Several sources, with one ``configs`` entry per checkpoint in order (or one for all of them),
    labelled by ``unique_labels``.

    Raises:
        SourceError: no sources, or a number of configurations that fits neither rule.
    """
    if not texts:
        raise SourceError("name at least one model, configuration file or checkpoint to analyse")
    checkpoints = [text for text in texts if _is_checkpoint(text)]
    if configs and len(configs) not in (1, len(checkpoints)):
        raise SourceError(
            f"{len(configs)} --config options for {len(checkpoints)} checkpoints; give one for each "
            "checkpoint in order, or one for all of them"
        )
    if configs and not checkpoints:
        raise SourceError("--config applies to checkpoints (.pt/.pth); none was given")
    per_checkpoint = iter(configs if len(configs) > 1 else list(configs) * len(checkpoints))
    sources = []
    for text, label in zip(texts, unique_labels(texts), strict=True):
        config = next(per_checkpoint) if _is_checkpoint(text) and configs else None
        sources.append(replace(load_source(text, config=config, img_size=img_size, seed=seed), label=label))
    return sources


def unique_labels(texts: Sequence[str]) -> list[str]:
    """Short distinct labels: the name or file stem, with as many parent folders as it takes to tell files
    apart (``runs/a/last.pt`` and ``runs/b/last.pt`` give ``a/last`` and ``b/last``); repeats get ``#2``..."""
    paths = [Path(text).with_suffix("") if Path(text).suffix else Path(text) for text in texts]
    labels = []
    for path in paths:
        depth = 1
        while depth < len(path.parts) and sum(p.parts[-depth:] == path.parts[-depth:] for p in paths) > sum(
            p == path for p in paths
        ):
            depth += 1
        labels.append("/".join(path.parts[-depth:]))
    counts: dict[str, int] = {}
    for index, label in enumerate(labels):
        counts[label] = counts.get(label, 0) + 1
        if counts[label] > 1:
            labels[index] = f"{label}#{counts[label]}"
    return labels


def _is_checkpoint(text: str) -> bool:
    return Path(text).suffix.lower() in CHECKPOINT_SUFFIXES
