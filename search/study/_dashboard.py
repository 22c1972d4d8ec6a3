"""What optuna-dashboard and Optuna's plots read from a study besides the trials: the objectives' names.

Per-epoch accuracy reaches them as intermediate values (``Trial.report``) in single-objective studies;
Optuna refuses intermediate values in multi-objective studies, where the curve stays in the trial record
(``top1_curve``).
"""

from __future__ import annotations

import warnings

import optuna

from refiner_nas.search.objectives import Objective


def name_metrics(study: optuna.Study, objectives: list[Objective]) -> None:
    """Name the study's objective values after ``objectives`` (the dashboard shows 'top1', 'params'
    instead of 'Objective 0', 'Objective 1'); a study already named so is not written to."""
    names = [objective.name for objective in objectives]
    if study.metric_names != names:
        with warnings.catch_warnings():  # marked experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
