"""Running a search: open or resume the study, then run its trials in this process or in local worker
processes, under the live display."""

from __future__ import annotations

from contextlib import nullcontext

import optuna

from refiner_nas.search.runner._local import LocalWorkers
from refiner_nas.search.runner._progress import SearchProgress
from refiner_nas.search.runner._run import prepare_space, run_trials
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.study import create_or_resume_study


def launch(settings: SearchSettings, *, show_progress: bool = True) -> optuna.Study:
    """Run (or resume) the search ``settings`` describes and return its study.

    With ``workers`` > 1, that many processes share the study (each with its share of the CPU threads);
    with 0, the study is only created (for workers on other machines). KeyboardInterrupt propagates after
    every trial in flight is recorded as interrupted and re-queued.

    Raises:
        ValueError: bad options, a study created with other options.
    """
    space = prepare_space(settings)
    study = create_or_resume_study(settings, space)
    if settings.workers == 0:
        return study
    display = SearchProgress(study, settings.trials, epochs=settings.epochs) if show_progress else nullcontext()
    with display:
        if settings.workers == 1:
            run_trials(settings, space, study)
        else:
            LocalWorkers(settings, study).run()
    return study
