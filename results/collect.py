"""Collecting search trials into the leaderboard: find the studies, turn each trial into a row, upsert.

A study is named by ``--study NAME`` (its journal ``RUN_DIR/NAME/journal.log`` by default) and/or found
in ``--storage URL``; with neither, every study under the run directory is collected. Nothing is
created while looking: a study or storage that does not exist is an error naming what does exist.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from refiner_nas.results.schema import conform
from refiner_nas.results.store import UpsertReport, leaderboard_lock, load_leaderboard, save_leaderboard, upsert
from refiner_nas.search.records import TrialRecord
from refiner_nas.search.storages import JOURNAL_FILE, open_storage, redact


class StudyNotFoundError(ValueError):
    """A study or storage that does not exist; the message lists what does."""


@dataclass(frozen=True)
class SourceStudy:
    """A study to collect and where it is stored (a journal path or a redacted URL)."""

    study: optuna.Study
    storage_label: str


@dataclass(frozen=True)
class CollectResult:
    """The leaderboard after collecting, the studies read and what changed."""

    frame: pd.DataFrame
    studies: tuple[str, ...]
    report: UpsertReport


def find_studies(*, studies: Sequence[str] = (), storages: Sequence[str] = (), run_dir: Path) -> list[SourceStudy]:
    """The studies to collect (see the module docstring for the rules).

    Raises:
        StudyNotFoundError: a named study in none of the storages, a missing journal or database file.
        refiner_nas.search.storages.StorageError: a storage that cannot be opened.
    """
    run_dir = Path(run_dir)
    if not storages:
        found = []
        for name, path in _journals(studies, run_dir).items():
            storage = open_storage(None, path.parent, create=False)
            available = optuna.get_all_study_names(storage)
            if studies and name not in available:
                raise StudyNotFoundError(
                    f"no study {name!r} in {path} (it holds: {', '.join(available) or 'nothing'}); check --study"
                )
            label = str(path.resolve())
            found += [_load(storage, study, label) for study in ([name] if studies else available)]
        return found
    found = []
    missing = set(studies)
    for url in storages:
        path = _local_file(url)
        storage = open_storage(url, run_dir, create=False)
        available = optuna.get_all_study_names(storage)
        wanted = [name for name in studies if name in available] if studies else available
        missing -= set(wanted)
        label = str(path.resolve()) if path is not None and url.startswith("journal://") else redact(url)
        found += [_load(storage, name, label) for name in wanted]
    if missing:
        raise StudyNotFoundError(
            f"no study {', '.join(repr(name) for name in sorted(missing))} in "
            f"{', '.join(redact(url) for url in storages)}; "
            "check --study and --storage (refiner-nas search status lists a study)"
        )
    return found


def _journals(studies: Sequence[str], run_dir: Path) -> dict[str, Path]:
    """The journal of each named study, or every journal under ``run_dir``; each must exist."""
    existing = {path.parent.name: path for path in sorted(run_dir.glob(f"*/{JOURNAL_FILE}"))}
    if not studies:
        if not existing:
            raise StudyNotFoundError(
                f"no study journals under {run_dir}/; run a search first, or pass --study, --storage or --run-dir"
            )
        return existing
    for name in studies:
        if name not in existing:
            raise StudyNotFoundError(
                f"no study {name!r}: {run_dir / name / JOURNAL_FILE} does not exist (studies under {run_dir}/: "
                f"{', '.join(existing) or 'none'}); check --study and --run-dir"
            )
    return {name: existing[name] for name in studies}


def _local_file(url: str) -> Path | None:
    """The file of a SQLite or journal URL, which must exist (opening a missing one would create it);
    None for a database server."""
    for prefix in ("sqlite:///", "journal://"):
        if url.startswith(prefix):
            path = Path(url.removeprefix(prefix))
            if not path.is_file():
                raise StudyNotFoundError(f"storage {url} does not exist ({path} is missing); check --storage")
            return path
    return None


def _load(storage: BaseStorage, name: str, label: str) -> SourceStudy:
    return SourceStudy(optuna.load_study(study_name=name, storage=storage), label)


def architecture_label(config: dict[str, Any]) -> str:
    """A short readable name of a configuration, e.g. ``refiner-16x384h12-r3k3-cb@224``."""
    size = config.get("img_size")
    size_text = "x".join(str(s) for s in size) if isinstance(size, (list, tuple)) else str(size)
    shape = f"{config.get('depth')}x{config.get('embed_dim')}h{config.get('num_heads')}"
    label = f"{config.get('attention', 'vanilla')}-{shape}"
    if config.get("expansion_ratio") is not None:
        label += f"-r{config['expansion_ratio']}k{config.get('kernel_size')}"
    if config.get("share_span", 1) > 1:
        label += f"-s{config['share_span']}"
    if config.get("context_broadcast", "off") != "off":
        label += "-cb"
    return f"{label}@{size_text}"


def trial_row(trial: FrozenTrial, *, study: str, storage_label: str) -> dict[str, Any]:
    """One trial as a leaderboard row of kind ``proxy``."""
    record = TrialRecord.from_trial(trial)
    config = record.config or {}
    size = config.get("img_size")
    budget = record.budget or {}
    return {
        "kind": "proxy",
        "model": architecture_label(config) if config else None,
        "config_hash": record.config_hash,
        "params_m": None if record.params is None else record.params / 1e6,
        "macs_g": None if record.macs is None else record.macs / 1e9,
        "flops_g": None if record.flops is None else record.flops / 1e9,
        "img_size": size[0] if isinstance(size, (list, tuple)) else size,
        "top1": record.top1,
        "dataset": record.dataset or budget.get("dataset"),
        "epochs": budget.get("epochs"),
        "throughput": record.throughput,
        "latency_ms": record.latency_ms,
        "study": study,
        "trial": trial.number,
        "storage": storage_label,
        "state": trial.state.name.lower(),
        "status": record.status,
        "feasible": all(value <= 0 for value in trial.constraints.values()),
        "budget_key": record.budget_key,
        "epochs_run": record.epochs_run,
        "duplicate_of": record.duplicate_of,
        "resumed_from": record.resumed_from,
        **{name: config.get(name) for name in ("attention", "depth", "embed_dim", "num_heads")},
        "wall_time_s": record.wall_time_s,
        "completed_at": None if trial.datetime_complete is None else trial.datetime_complete.isoformat(),
        "source": f"search ({record.backend})",
        "config": json.dumps(config, sort_keys=True) if config else None,
        "provenance": json.dumps(record.provenance, sort_keys=True) if record.provenance else None,
        "row_key": row_key("proxy", storage_label, study, str(trial.number)),
    }


def row_key(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def study_rows(source: SourceStudy) -> pd.DataFrame:
    trials = source.study.get_trials(deepcopy=False)
    name = source.study.study_name
    return conform([trial_row(t, study=name, storage_label=source.storage_label) for t in trials])


def collect(
    *, studies: Sequence[str] = (), storages: Sequence[str] = (), run_dir: Path, results_dir: Path
) -> CollectResult:
    """Collect every trial of the selected studies into the leaderboard of ``results_dir``.

    Incremental and idempotent: new trials are added, changed ones (a running trial that finished)
    replaced, unchanged ones counted; rows of other studies and full trainings are kept.

    Raises:
        StudyNotFoundError, refiner_nas.search.storages.StorageError: see ``find_studies``.
        ValueError: the results directory cannot be written.
    """
    sources = find_studies(studies=studies, storages=storages, run_dir=run_dir)
    rows = pd.concat([study_rows(source) for source in sources], ignore_index=True)
    with leaderboard_lock(results_dir):
        merged, report = upsert(load_leaderboard(results_dir), rows)
        if report.added or report.updated:
            save_leaderboard(merged, results_dir)
    return CollectResult(merged, tuple(source.study.study_name for source in sources), report)
