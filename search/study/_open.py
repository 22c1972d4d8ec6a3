"""Opening a launch's Optuna study: created or resumed with its storage, directions, sampler and pruner
(``create_or_resume_study``), joined by a worker from another machine (``join_study``), or loaded
read-only (``load_existing_study``)."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import BaseStorage

from refiner_nas.search.samplers import worker_sampler
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace
from refiner_nas.search.stoppers import make_pruner
from refiner_nas.search.storages import open_storage, redact
from refiner_nas.search.study._dashboard import name_metrics

# Launch options that belong to one machine and are not stored with the study.
_MACHINE_LOCAL = {"storage", "run_dir", "device", "workers", "space"}


class StudyMismatchError(ValueError):
    """A launch whose options differ from those the existing study was created with."""


def create_or_resume_study(settings: SearchSettings, space: SearchSpace, *, worker: str = "worker-0") -> optuna.Study:
    """Create the study, or resume it when it exists with the same objectives, space, data and epochs;
    trials run through it draw from ``worker``'s stream.

    Raises:
        StudyMismatchError: the existing study was created with other options.
    """
    storage = open_storage(settings.storage, settings.study_dir)
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=storage,
        directions=[o.direction for o in settings.objective_list],
        sampler=worker_sampler(settings, space, storage, worker),
        pruner=make_pruner(settings),
        load_if_exists=True,
    )
    if not study.user_attrs:
        for key, value in _resume_options(settings, space).items():
            study.set_user_attr(key, value)
        # What a worker on another machine needs to join: the options (no local paths, no password)
        # and the space definition itself.
        study.set_user_attr("settings", settings.model_dump(mode="json", exclude=_MACHINE_LOCAL))
        study.set_user_attr("space_yaml", Path(space.source).read_text())
        name_metrics(study, settings.objective_list)
        return study
    check_resumable(study, settings, space)
    name_metrics(study, settings.objective_list)
    return study


def check_resumable(study: optuna.Study, settings: SearchSettings, space: SearchSpace) -> None:
    """Check that a launch of ``settings`` may resume ``study`` (an existing study: what a launch and
    its ``--dry-run`` plan both check).

    Raises:
        StudyMismatchError: the study was created with other objectives, space, data or epochs.
    """
    recorded, wanted = study.user_attrs, _resume_options(settings, space)
    differing = [f"--{key} {recorded.get(key)!r} (now {wanted[key]!r})" for key in wanted
                 if recorded.get(key) != wanted[key]]
    if differing:
        raise StudyMismatchError(
            f"study {study.study_name!r} was created with {', '.join(differing)}; relaunch with the same options "
            "to resume it, or give a new --study name"
        )


def _resume_options(settings: SearchSettings, space: SearchSpace) -> dict[str, object]:
    """The options that must match for a launch to resume a study, as the study records them."""
    return {"objectives": settings.objectives, "space": space.source, "dataset": settings.dataset,
            "epochs": settings.epochs}


def join_study(settings: SearchSettings, space: SearchSpace, *, worker: str) -> optuna.Study:
    """Open an existing study to run more trials in it as ``worker``, with the launch's kind of sampler (on
    the worker's own stream) and pruner."""
    storage = open_storage(settings.storage, settings.study_dir, create=False)
    return load_existing_study(settings, sampler=worker_sampler(settings, space, storage, worker),
                               pruner=make_pruner(settings), storage=storage)


def load_existing_study(
    settings: SearchSettings,
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    storage: BaseStorage | None = None,
) -> optuna.Study:
    """Open an existing study (for status, queries, or with a sampler and pruner to run trials); a query
    never creates anything.

    Raises:
        KeyError: no such study (the message lists the studies there).
        StorageError: no journal at that place.
    """
    storage = storage or open_storage(settings.storage, settings.study_dir, create=False)
    try:
        return optuna.load_study(study_name=settings.study_name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        existing = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
        where = redact(settings.storage) if settings.storage else str(settings.study_dir)
        raise KeyError(
            f"no study {settings.study_name!r} in {where} (studies there: {', '.join(existing) or 'none'}); "
            "check --study, --storage and --run-dir"
        ) from None
