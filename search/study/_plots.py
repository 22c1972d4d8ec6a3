"""Optuna's own views of a study, one HTML page per objective: optimisation history and parameter
importance (``optuna.visualization``). The pages share one ``plotly.min.js`` written beside them (4.8 MB
once, not in every page), so they open offline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from refiner_nas.search.study._summary import objective_names

# The script that pages written with ``include_plotlyjs="directory"`` load from their folder.
PLOTLY_SCRIPT = "plotly.min.js"


@dataclass(frozen=True)
class StudyPlots:
    """The files written (the pages, then the plotly script they share), and why a plot was not drawn (e.g.
    importance of a one-parameter space)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def write_study_plots(study: optuna.Study, out_dir: Path, *, force: bool = False) -> StudyPlots:
    """Write ``history-NAME.html`` and ``importance-NAME.html`` for every objective into ``out_dir``.

    Raises:
        ValueError: no completed trial, or a page that exists (without ``force``).
    """
    from optuna.visualization import plot_optimization_history, plot_param_importances

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not completed:
        raise ValueError(f"study {study.study_name!r} has no completed trial to plot yet")
    names = objective_names(study)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = StudyPlots()
    for index, name in enumerate(names):
        def target(trial: optuna.trial.FrozenTrial, index: int = index) -> float:
            return trial.values[index]

        figures = {"history": plot_optimization_history(study, target=target, target_name=name)}
        if not _params_vary(completed):
            result.skipped.append(f"importance of {name}: needs 2 completed trials whose parameters differ")
        else:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            try:
                figures["importance"] = plot_param_importances(study, evaluator=evaluator, target=target,
                                                               target_name=name)
            except RuntimeError as error:  # fANOVA: e.g. every trial has the same value
                result.skipped.append(f"importance of {name}: {error}")
        for kind, figure in figures.items():
            path = out_dir / f"{kind}-{name}.html"
            if path.exists() and not force:
                raise ValueError(f"{path} exists; pass --force to overwrite it")
            figure.write_html(path, include_plotlyjs="directory")
            result.written.append(path)
    result.written.append(out_dir / PLOTLY_SCRIPT)  # plotly writes it beside the pages
    return result


def _params_vary(trials: list[optuna.trial.FrozenTrial]) -> bool:
    keys = {key for trial in trials for key in trial.params}
    return any(len({str(trial.params.get(key)) for trial in trials}) > 1 for key in keys)
