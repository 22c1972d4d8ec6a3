"""Exporting the best configurations for full training: one YAML file per architecture.

Each file names a registered timm model and the keyword arguments that rebuild the architecture
exactly (``timm.create_model(timm.model, **timm.kwargs)``), with its measured costs, its proxy
result, provenance and the full-training recipes, so ``refiner-nas train --config FILE`` can run it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from refiner_nas.refiner_space import NAMED_CONFIGS, ModelConfig, named_config
from refiner_nas.refiner_space.files import read_text_file
from refiner_nas.results.leaderboard import EmptyResultError
from refiner_nas.results.pareto import FrontObjective, competing_rows, minimised
from refiner_nas.results.recipes import RECIPES, Recipe, get_recipe
from refiner_nas.search.pareto import nondominated_ranks
from refiner_nas.search.provenance import provenance

EXPORT_VERSION = 1
DEFAULT_RECIPE = "standard"


class ExportError(ValueError):
    """An export that cannot be written or a file that cannot be read back; the message says why."""


def timm_spec(config: ModelConfig) -> tuple[str, dict[str, Any]]:
    """The registered model nearest to ``config`` and the overrides that turn it into ``config``.

    timm drops keyword arguments whose value is None, so a registered model qualifies only when
    overriding fields (never unsetting them) rebuilds ``config``; the plain vanilla names always do.
    """
    target = config.to_dict()
    best: tuple[str, dict[str, Any]] | None = None
    for name in NAMED_CONFIGS:
        base = named_config(name).to_dict()
        kwargs = {key: value for key, value in target.items() if base.get(key) != value}
        if set(base) - set(target) or (best is not None and len(kwargs) >= len(best[1])):
            continue
        try:
            rebuilt = named_config(name, **kwargs)
        except ValueError:
            continue
        if rebuilt == config:
            best = (name, kwargs)
    if best is None:  # unreachable while a vanilla name is registered; kept as a clear failure
        raise ExportError(f"no registered timm model can be turned into configuration {config.config_hash()}")
    return best


def rank_rows(frame: pd.DataFrame, objectives: list[FrontObjective]) -> pd.DataFrame:
    """Rows with a configuration, best first: by Pareto rank (front 0 first), then by the first
    objective; one row per architecture (its best)."""
    rows = competing_rows(frame[frame["config"].notna().to_numpy(bool)].reset_index(drop=True), objectives)
    if rows.empty:
        raise EmptyResultError(
            f"no complete, feasible result with a configuration and {', '.join(o.column for o in objectives)}"
        )
    rows = rows.assign(pareto_rank=nondominated_ranks(minimised(rows, objectives)))
    first = objectives[0]
    rows = rows.sort_values(["pareto_rank", first.column], ascending=[True, first.direction == "min"], kind="stable")
    return rows.drop_duplicates("config_hash").reset_index(drop=True)


def export_document(row: pd.Series, *, rank: int, objectives: list[FrontObjective]) -> dict[str, Any]:
    """The YAML content for one leaderboard row."""
    config = ModelConfig.from_dict(json.loads(row["config"]))
    model, kwargs = timm_spec(config)
    return {
        "export_version": EXPORT_VERSION,
        "name": str(row["model"]),
        "rank": rank,
        "timm": {"model": model, "kwargs": kwargs},
        "config_hash": config.config_hash(),
        "config": config.to_dict(),
        "costs": {
            "params": _count(row["params_m"], 1e6),
            "macs": _count(row["macs_g"], 1e9),
            "flops": _count(row["flops_g"], 1e9),
            "img_size": config.to_dict()["img_size"],
        },
        "proxy": {
            "top1": _plain(row["top1"]),
            "full_top1": _plain(row["full_top1"]),
            "dataset": _plain(row["dataset"]),
            "epochs": _plain(row["epochs"]),
            "budget_key": _plain(row["budget_key"]),
            "study": _plain(row["study"]),
            "trial": _plain(row["trial"]),
            "storage": _plain(row["storage"]),
            "status": _plain(row["status"]),
            "pareto_rank": int(row["pareto_rank"]),
            "objectives": ",".join(str(o) for o in objectives),
        },
        "provenance": {
            "measured": json.loads(row["provenance"]) if isinstance(row["provenance"], str) else None,
            "exported": {**provenance("cpu"), "at": datetime.now(UTC).isoformat(timespec="seconds")},
        },
        "default_recipe": DEFAULT_RECIPE,
        "recipes": {name: recipe.model_dump(mode="json") for name, recipe in RECIPES.items()},
    }


def _count(value: Any, unit: float) -> int | None:
    return None if pd.isna(value) else int(round(float(value) * unit))


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value


def check_top_k(k: int) -> None:
    """Raises ExportError: ``k`` < 1."""
    if k < 1:
        raise ExportError(f"--top-k {k} must be at least 1; give how many configurations to export")


def export_top_k(
    frame: pd.DataFrame, objectives: list[FrontObjective], *, k: int, out_dir: Path, force: bool = False
) -> list[Path]:
    """Write the ``k`` best configurations of ``frame`` (see ``rank_rows``) to ``out_dir``.

    Raises:
        ExportError: ``k`` < 1, an output folder that is not empty (without ``force``) or cannot be written.
        EmptyResultError: nothing to export.
    """
    check_top_k(k)
    rows = rank_rows(frame, objectives).head(k)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"--out {out_dir} is a file; give a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ExportError(f"--out {out_dir} is not empty; pass --force to write into it (same names are overwritten)")
    paths = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for rank, (_, row) in enumerate(rows.iterrows(), start=1):
            document = export_document(row, rank=rank, objectives=objectives)
            path = out_dir / f"{rank:02d}-{document['config_hash']}.yaml"
            path.write_text(_HEADER + yaml.safe_dump(document, sort_keys=False))
            paths.append(path)
    except OSError as error:
        reason = error.strerror or error
        raise ExportError(f"cannot write to --out {out_dir}: {reason}; choose another folder") from None
    return paths


_HEADER = "# refiner-nas export: train with `refiner-nas train --config THIS_FILE --data-dir DIR [--recipe NAME]`\n"


@dataclass(frozen=True)
class ExportedConfig:
    """A configuration file read back: an export, or a plain ModelConfig YAML (then name = file stem
    and no measured costs or proxy result). ``recipes`` holds the built-in recipes and the file's (the
    file's win on equal names)."""

    name: str
    config: ModelConfig
    timm_model: str | None = None
    recipes: dict[str, Recipe] = field(default_factory=lambda: dict(RECIPES))
    default_recipe: str = DEFAULT_RECIPE
    proxy: dict[str, Any] = field(default_factory=dict)
    costs: dict[str, Any] = field(default_factory=dict)

    def recipe(self, name: str | None) -> Recipe:
        return get_recipe(name or self.default_recipe, self.recipes)


def load_export(path: Path) -> ExportedConfig:
    """Read an export file (or a plain ModelConfig YAML).

    The timm model and arguments are authoritative: a ``config`` that disagrees with them (one of
    the two edited by hand) is an error naming the fields.

    Raises:
        ExportError: a missing or unreadable file, another export version, disagreeing fields.
        refiner_space.ConfigError / RecipeError: invalid configuration or recipe values.
    """
    path = Path(path)
    text = read_text_file(path, "--config file", expected="an export file or a ModelConfig YAML", error=ExportError)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ExportError(f"--config {path} is not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(document, dict):
        raise ExportError(f"--config {path} does not hold a mapping; give an export file or a ModelConfig YAML")
    if "export_version" not in document:
        return ExportedConfig(name=path.stem, config=ModelConfig.from_dict(document))
    if document["export_version"] != EXPORT_VERSION:
        raise ExportError(
            f"--config {path} has export_version {document['export_version']!r}; this version reads "
            f"{EXPORT_VERSION}: export it again"
        )
    spec = document.get("timm") or {}
    if "model" not in spec:
        raise ExportError(f"--config {path} lacks timm.model; export it again")
    try:
        config = named_config(spec["model"], **(spec.get("kwargs") or {}))
    except KeyError as error:
        raise ExportError(f"--config {path}: {error.args[0]}") from None
    written = document.get("config")
    if written is not None:
        stated = ModelConfig.from_dict(written)
        differing = [name for name in ModelConfig.model_fields if getattr(stated, name) != getattr(config, name)]
        if differing:
            raise ExportError(
                f"--config {path}: config and timm.kwargs disagree on {', '.join(differing)}; edit both or only "
                "timm.kwargs and delete config"
            )
    recipes = {name: Recipe.from_dict({"name": name, **data}) for name, data in (document.get("recipes") or {}).items()}
    return ExportedConfig(
        name=str(document.get("name") or path.stem),
        config=config,
        timm_model=spec["model"],
        recipes={**RECIPES, **recipes},  # the built-in recipes stay available next to the file's
        default_recipe=str(document.get("default_recipe") or DEFAULT_RECIPE),
        proxy=document.get("proxy") or {},
        costs=document.get("costs") or {},
    )
