"""Joining an existing study from any machine: ``refiner-nas search worker --study NAME --storage URL``."""

from __future__ import annotations

from pathlib import Path

from refiner_nas.search.runner._launch import prepare_space, run_trials
from refiner_nas.search.settings import SearchSettings, refuse_concurrent_sqlite
from refiner_nas.search.storages import this_worker
from refiner_nas.search.study import join_study, load_existing_study


def worker_settings(*, study: str, storage: str | None, run_dir: Path, device: str = "auto") -> SearchSettings:
    """The launch options stored with ``study``, with this machine's storage URL, folders and device.

    The space definition stored with the study is written to ``run_dir/study/space.yaml``.

    Raises:
        KeyError: no such study.
        ValueError: the study was not created by ``refiner-nas search launch``.
    """
    local = SearchSettings(study=study, storage=storage, run_dir=run_dir, device=device)
    attrs = load_existing_study(local).user_attrs
    if "settings" not in attrs or "space_yaml" not in attrs:
        raise ValueError(f"study {study!r} was not created by 'refiner-nas search launch'; launch it first")
    space_file = local.study_dir / "space.yaml"
    space_file.parent.mkdir(parents=True, exist_ok=True)
    space_file.write_text(attrs["space_yaml"])
    return SearchSettings(**{**attrs["settings"], "space": str(space_file), "study": study, "storage": storage,
                             "run_dir": run_dir, "device": device})


def run_worker(settings: SearchSettings) -> None:
    """Run trials of the existing study until it holds its requested number of evaluated architectures
    and none is running (a worker joins others, so SQLite is refused)."""
    refuse_concurrent_sqlite(settings.storage, workers=2)
    space = prepare_space(settings)
    run_trials(settings, space, join_study(settings, space, worker=this_worker()))
