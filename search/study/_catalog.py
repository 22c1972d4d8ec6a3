"""Which studies exist, found without writing anything: the journals under a run folder, or a storage URL.

Queries (``search status``, ``search list``) must not create a journal or a folder for a name that does
not exist, so they look here first; only launches and workers open storages for writing.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna

from refiner_nas.search.storages import JOURNAL_FILE, check_journal, open_storage, redact


@dataclass(frozen=True)
class StudyEntry:
    """One study: where it lives, its objectives (``name:dir,...``) and its trials by Optuna state."""

    name: str
    location: str
    objectives: str
    trials: dict[str, int]


def journal_studies(run_dir: Path) -> list[str]:
    """Names of the studies with a journal file under ``run_dir`` (``RUN_DIR/NAME/journal.log``), sorted."""
    return sorted(path.parent.name for path in Path(run_dir).glob(f"*/{JOURNAL_FILE}"))


def require_study_storage(study: str, *, run_dir: Path, storage: str | None = None, readable: bool = True) -> None:
    """Raise when opening the storage of ``study`` would create it: no journal (the default
    ``RUN_DIR/STUDY/journal.log`` or a ``journal:///path`` URL), or a SQLite URL whose file does not exist.
    With ``readable``, a journal must also be text (see ``check_journal``); deleting a damaged one
    needs no reading.

    Raises:
        KeyError: the storage does not exist; the message names the studies that do.
    """
    if storage is None or storage.startswith("journal://"):
        journal = Path(run_dir) / study / JOURNAL_FILE if storage is None else Path(storage.removeprefix("journal://"))
        if not journal.is_file():
            existing = journal_studies(run_dir) if storage is None else []
            where = f"under {run_dir} (studies there: {', '.join(existing) or 'none'})" if storage is None else (
                f"at {journal}")
            raise KeyError(f"--study {study!r}: no such study {where}; check --study, --storage and --run-dir")
        if readable:
            check_journal(journal)
    elif storage.startswith("sqlite:///"):
        path = Path(storage.removeprefix("sqlite:///"))
        if str(path) != ":memory:" and not path.is_file():
            raise KeyError(f"--storage {storage}: {path} does not exist; check --storage")


def load_study(name: str, *, run_dir: Path = Path("runs"), storage: str | None = None) -> optuna.Study:
    """The existing study ``name``, opened without creating anything (``search status``'s view).

    Raises:
        KeyError: no such study; the message names the studies there.
    """
    from refiner_nas.search.settings import SearchSettings
    from refiner_nas.search.study._open import load_existing_study

    require_study_storage(name, run_dir=run_dir, storage=storage)
    return load_existing_study(SearchSettings(study=name, storage=storage, run_dir=run_dir))


def list_studies(run_dir: Path, storage: str | None = None) -> list[StudyEntry]:
    """Every study in ``storage`` (a URL), or in the journals under ``run_dir`` when it is None.

    Raises:
        StorageError: a storage URL that cannot be opened.
    """
    if storage is not None:
        require_study_storage("", run_dir=run_dir, storage=storage)
        return _entries(open_storage(storage, Path(run_dir), create=False), redact(storage))
    entries = []
    for name in journal_studies(run_dir):
        folder = Path(run_dir) / name
        check_journal(folder / JOURNAL_FILE)
        entries += _entries(open_storage(None, folder, create=False), str(folder / JOURNAL_FILE))
    return entries


def delete_study(name: str, *, run_dir: Path, storage: str | None = None) -> str:
    """Delete study ``name`` and say what was removed: its study in ``storage``, or, in the default
    journal, its whole run folder (journal and Ray state).

    Raises:
        KeyError: no such study.
    """
    if storage is None:
        require_study_storage(name, run_dir=run_dir, readable=False)
        folder = Path(run_dir) / name
        shutil.rmtree(folder)
        return f"{folder}/"
    opened = open_storage(storage, Path(run_dir))
    try:
        optuna.delete_study(study_name=name, storage=opened)
    except KeyError:
        existing = [entry.name for entry in _entries(opened, "")]
        raise KeyError(
            f"--study {name!r}: no such study in {redact(storage)} (studies there: {', '.join(existing) or 'none'})"
        ) from None
    return f"study {name} in {redact(storage)}"


def _entries(storage: optuna.storages.BaseStorage, location: str) -> list[StudyEntry]:
    entries = []
    for summary in sorted(optuna.get_all_study_summaries(storage), key=lambda s: s.study_name):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        states = Counter(trial.state.name.lower() for trial in study.get_trials(deepcopy=False))
        objectives = summary.user_attrs.get("objectives") or ",".join(d.name.lower() for d in summary.directions)
        entries.append(StudyEntry(summary.study_name, location, str(objectives), dict(sorted(states.items()))))
    return entries
