"""Full-training results as leaderboard rows, recorded next to the search trials and Table 7.

A full training is identified by its name, architecture, dataset, recipe, epochs, seed and output
folder; recording it again with the same top-1 changes nothing, with another top-1 needs ``force``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.results.collect import architecture_label, row_key
from refiner_nas.results.schema import conform
from refiner_nas.results.store import UpsertReport, leaderboard_lock, load_leaderboard, save_leaderboard, upsert


class DuplicateResultError(ValueError):
    """The same full training is already recorded with other numbers."""


def full_training_row(
    *,
    config: ModelConfig,
    exported: ModelConfig | None = None,
    top1: float,
    dataset: str,
    epochs: int | None,
    recipe: str | None,
    name: str | None = None,
    seed: int | None = None,
    source: str = "leaderboard add",
    output: str | None = None,
    study: str | None = None,
    trial: int | None = None,
    wall_time_s: float | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of kind ``full``; parameters, MACs and FLOPs are counted from ``config`` (as trained).

    ``exported`` is the architecture the run started from (an export's): its hash keys the row, so the
    full row matches its proxy row although the recipe's drop path or the data's classes changed ``config``.

    Raises:
        ValueError: a top-1 outside [0, 100], non-positive epochs or a negative seed.
    """
    from refiner_nas.refiner_space.costs import count_costs

    if not (math.isfinite(top1) and 0 <= top1 <= 100):
        raise ValueError(f"top-1 {top1} must be a percentage in [0, 100]")
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs {epochs} must be at least 1")
    if seed is not None and seed < 0:
        raise ValueError(f"seed {seed} must be at least 0 (the seed the training ran with)")
    costs = count_costs(config)
    data = config.to_dict()
    name = name or architecture_label(data)
    config_hash = (exported or config).config_hash()
    return {
        "kind": "full",
        "model": name,
        "config_hash": config_hash,
        "params_m": costs.params / 1e6,
        "macs_g": costs.macs / 1e9,
        "flops_g": costs.flops / 1e9,
        "img_size": config.img_hw[0],
        "full_top1": float(top1),
        "dataset": dataset,
        "epochs": epochs,
        "recipe": recipe,
        "study": study,
        "trial": trial,
        "state": "complete",
        **{field: data.get(field) for field in ("attention", "depth", "embed_dim", "num_heads")},
        "seed": seed,
        "wall_time_s": wall_time_s,
        "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "output": output,
        "config": json.dumps(data, sort_keys=True),
        "provenance": json.dumps(provenance, sort_keys=True) if provenance else None,
        "row_key": row_key("full", name, config_hash, dataset, str(recipe), str(epochs), str(seed),
                           str(output or "")),
    }


def record_full_result(row: dict[str, Any], results_dir: Path, *, force: bool = False) -> UpsertReport:
    """Add ``row`` to the leaderboard of ``results_dir``.

    Raises:
        DuplicateResultError: the same training is recorded with another top-1 (pass ``force``).
        ValueError: the results directory cannot be written.
    """
    with leaderboard_lock(results_dir):
        stored = load_leaderboard(results_dir)
        earlier = stored.loc[(stored["row_key"] == row["row_key"]).fillna(False).to_numpy(bool), "full_top1"]
        if not earlier.empty and float(earlier.iloc[0]) == row["full_top1"]:
            return UpsertReport(added=0, updated=0, unchanged=1)  # the same result: the first record stays
        if not earlier.empty and not force:
            raise DuplicateResultError(
                f"{row['model']} ({row['dataset']}, recipe {row['recipe']}, {row['epochs']} epochs) is already "
                f"recorded with top-1 {float(earlier.iloc[0]):.4g}; pass --force to replace it"
            )
        merged, report = upsert(stored, conform([row]))
        save_leaderboard(merged, results_dir)
    return report
