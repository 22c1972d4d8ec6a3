"""The Ray Tune backend: the same space, objectives, budgets and trial records, run by Ray.

Optuna stays the searcher (Ray's ``OptunaSearch``), and its study lives in the launch's storage, so a
Ray run's trials carry the same records as an Optuna run's and every leaderboard or Pareto query reads
them alike. Single-objective runs stop unpromising trials with ASHA. Ray is imported only here.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from contextlib import nullcontext
from functools import cache
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from pydantic import BaseModel, ConfigDict, Field

from refiner_nas.search.evaluation import ArchitectureEvaluator, make_evaluator
from refiner_nas.search.records import record_fields
from refiner_nas.search.runner._launch import prepare_space
from refiner_nas.search.runner._progress import SearchProgress
from refiner_nas.search.runner._remote import worker_settings
from refiner_nas.search.runner._run import Terminated
from refiner_nas.search.samplers import make_sampler, prunes_over_budget
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.storages import open_storage
from refiner_nas.search.study import create_or_resume_study, load_existing_study

RAY_FOLDER = "ray"
RAY_INTERRUPTED = "interrupted by the user (Ctrl-C or SIGTERM); 'refiner-nas search resume' runs it again"


class RayOptions(BaseModel):
    """How Ray runs the trials: which cluster, how many at once, what each one gets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = None
    max_concurrent: int = Field(default=2, ge=1)
    cpus_per_trial: float = Field(default=1.0, gt=0)
    gpus_per_trial: float = Field(default=0.0, ge=0)
    num_cpus: int | None = Field(default=None, ge=1)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("the Ray backend needs Ray Tune: pip install 'refiner-nas[ray]'") from None
    return ray


class _ResultSink:
    """Collects record fields and constraints; they travel to the driver inside Ray results."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.constraints: dict[str, float] = {}

    def write(self, **fields: Any) -> None:
        self.fields.update(record_fields(**fields))

    def set_constraint(self, name: str, value: float) -> None:
        self.constraints[name] = value

    def result(self, values: dict[str, float], epoch: int) -> dict[str, Any]:
        # As JSON text: Ray flattens nested result dicts before the searcher sees them.
        record, constraints = json.dumps(self.fields), json.dumps(self.constraints)
        return {**values, "epoch": epoch, "record": record, "constraints": constraints}


@cache
def _evaluator(settings_json: str) -> ArchitectureEvaluator:
    # One per Ray worker process: the dataset is loaded once, not per trial.
    settings = SearchSettings.model_validate_json(settings_json)
    return make_evaluator(settings, prepare_space(settings))


def ray_trial(params: dict[str, Any], settings_json: str) -> None:
    """The Ray Tune trainable: evaluate the architecture Optuna drew and report every epoch."""
    from ray import tune

    evaluator = _evaluator(settings_json)
    names = [o.name for o in evaluator.objectives]
    sink = _ResultSink()
    config, data = evaluator.fit_to_data(evaluator.space.config_from_params(params))
    evaluator.describe(config, data, sink, backend="ray", ray_trial_id=tune.get_context().get_trial_id())

    def on_epoch(epoch: int, top1: float, curve: list[float]) -> None:
        partial = {name: 0.0 for name in names} | {"top1": top1} | evaluator.cost_values(sink.fields)
        tune.report(sink.result({n: partial[n] for n in names}, epoch + 1))

    try:
        values = evaluator.evaluate(config, data, sink, on_epoch)
    except Exception as error:
        sink.write(status="failed", fail_reason=f"{type(error).__name__}: {error}")
        tune.report(sink.result({}, len(sink.fields.get("top1_curve", [])) + 1))
        raise
    # The final result carries the finished record (one step past the last epoch).
    tune.report(sink.result(dict(zip(names, values, strict=True)), evaluator.settings.epochs + 1))


def _searcher(settings: SearchSettings, study: optuna.Study) -> Any:
    """Ray's OptunaSearch on the launch's study, writing each finished trial's record into it."""
    from refiner_nas.search.runner._ray_searcher import RecordingOptunaSearch, SpaceSuggestion

    objectives = settings.objective_list
    several = len(objectives) > 1
    return RecordingOptunaSearch(
        space=SpaceSuggestion(settings.space),
        metric=[o.name for o in objectives] if several else objectives[0].name,
        mode=[o.direction[:3] for o in objectives] if several else objectives[0].direction[:3],
        sampler=make_sampler(settings, prepare_space(settings)),
        study_name=study.study_name,
        storage=open_storage(settings.storage, settings.study_dir),
        prune_over_budget=prunes_over_budget(settings),
    )


def _trainable(settings: SearchSettings, options: RayOptions) -> Any:
    from ray import tune

    trainable = tune.with_parameters(ray_trial, settings_json=settings.model_dump_json())
    return tune.with_resources(trainable, {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial})


def _start_ray(options: RayOptions) -> None:
    ray = _import_ray()
    address = options.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level=logging.ERROR)
    else:  # Ray's own INFO lines would interleave with our progress display
        ray.init(num_cpus=options.num_cpus or os.cpu_count(), include_dashboard=False, ignore_reinit_error=True,
                 log_to_driver=False, logging_level=logging.ERROR)


def ray_folder(settings: SearchSettings) -> Path:
    """Where Ray keeps the run's state and logs: ``RUN_DIR/STUDY/ray/STUDY``."""
    return (settings.study_dir / RAY_FOLDER).resolve() / settings.study_name


def ray_settings(settings: SearchSettings) -> SearchSettings:
    """``settings`` as Ray Tune runs them: its searcher draws every trial, so none is pre-screened or
    resumed, and the default early stop (which pauses where EHVI runs) is off.

    Raises:
        ValueError: pre-screening or ``--early-stop --stopper promote``, in one line naming the fix.
    """
    if settings.prescreen:
        raise ValueError(f"--prescreen {settings.prescreen}: Ray's searcher draws its own trials; use --prescreen 0 "
                         "or --backend optuna")
    if settings.early_stop and settings.stopper == "promote":
        raise ValueError("--stopper promote: Ray trials cannot be paused and resumed; use --stopper dominance or "
                         "mo_asha, or --backend optuna")
    return settings.model_copy(update={"early_stop": bool(settings.early_stop)})


def launch_ray(settings: SearchSettings, options: RayOptions, *, show_progress: bool = False) -> optuna.Study:
    """Run the search through Ray Tune (a local Ray instance, or the cluster at ``options.address``),
    with the same live progress display as Optuna launches when ``show_progress``.

    Raises:
        KeyboardInterrupt: Ctrl-C (``Terminated``: SIGTERM) cut the run short; its running trials are
            recorded as failed and Ray saved the run for ``resume_ray``.
    """
    settings = ray_settings(settings).with_absolute_paths()  # Ray runs trials in other working directories
    space = prepare_space(settings)
    study = create_or_resume_study(settings, space)
    _start_ray(options)
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    objectives = settings.objective_list
    scheduler = None
    if len(objectives) == 1:  # ASHA needs one metric; epochs are its time steps (+1 for the final record)
        scheduler = ASHAScheduler(metric=objectives[0].name, mode=objectives[0].direction[:3], time_attr="epoch",
                                  max_t=settings.epochs + 1, grace_period=1)
    tuner = tune.Tuner(
        _trainable(settings, options),
        tune_config=tune.TuneConfig(search_alg=_searcher(settings, study), scheduler=scheduler,
                                    num_samples=settings.trials, max_concurrent_trials=options.max_concurrent),
        run_config=tune.RunConfig(name=settings.study_name, storage_path=str(ray_folder(settings).parent),
                                  verbose=0),
    )
    display = SearchProgress(study, settings.trials, epochs=settings.epochs) if show_progress else nullcontext()
    before = {t.number for t in study.get_trials(deepcopy=False)}
    with display:
        stop = _fit_until_stopped(tuner)
    ours = [t for t in study.get_trials(deepcopy=False) if t.number not in before]
    cut_short = [t for t in ours if t.state == TrialState.RUNNING]
    if stop is None and (cut_short or len(ours) < settings.trials):
        stop = signal.SIGINT  # Ray's own Ctrl-C handler ended the run early and returned as if done
    if stop is not None:
        for trial in cut_short:
            _record_interrupted(study, trial)
        raise Terminated() if stop == signal.SIGTERM else KeyboardInterrupt()
    return study


def _fit_until_stopped(tuner: Any) -> signal.Signals | None:
    """Run ``tuner`` to its end; returns SIGTERM when one cut it short. Ray Tune handles Ctrl-C itself: it
    stops the trials and saves the run's state for ``Tuner.restore``, then returns. SIGTERM (a
    scheduler's stop) is turned into that same Ctrl-C, so it leaves a run to resume too."""
    terminated: list[signal.Signals] = []

    def on_sigterm(signum: int, frame: object) -> None:
        terminated.append(signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        tuner.fit()
    except KeyboardInterrupt:  # before Ray's handler was set, or a second signal
        return signal.SIGTERM if terminated else signal.SIGINT
    finally:
        signal.signal(signal.SIGTERM, previous)
    return signal.SIGTERM if terminated else None


def _record_interrupted(study: optuna.Study, trial: FrozenTrial) -> None:
    """Record a Ray trial cut short as failed; ``refiner-nas search resume`` runs it again (its result is
    then recorded as a trial of its own, ``retry_of`` this one)."""
    running = optuna.Trial(study, trial._trial_id)
    for key, value in record_fields(status="failed", fail_reason=RAY_INTERRUPTED, requeued=True,
                                    backend="ray").items():
        running.set_user_attr(key, value)
    study.tell(trial.number, state=TrialState.FAIL)


def resume_ray(*, study: str, storage: str | None, run_dir: Path, options: RayOptions) -> optuna.Study:
    """Restore an interrupted Ray run (``Tuner.restore``) with its searcher; finished trials are kept."""
    settings = ray_settings(worker_settings(study=study, storage=storage, run_dir=run_dir.resolve()))
    path = ray_folder(settings)
    _start_ray(options)
    from ray import tune

    if not tune.Tuner.can_restore(str(path)):
        raise FileNotFoundError(f"no Ray run to resume at {path}; launch it with --backend ray first")
    tuner = tune.Tuner.restore(str(path), trainable=_trainable(settings, options), resume_unfinished=True,
                               resume_errored=False)
    tuner.fit()
    return load_existing_study(settings)
