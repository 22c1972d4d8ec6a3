"""One search trial: sample an architecture, cost it, skip it if over budget or already seen, train it.

Everything a trial learns goes into its record (``refiner_nas.search.records``) as soon as it is known, so a
trial that fails or is interrupted still says how far it got and why.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from refiner_nas.search.evaluation._evaluator import ArchitectureEvaluator, EpochCallback, TrainingState
from refiner_nas.search.records import TrialRecord, record_fields
from refiner_nas.search.samplers import prunes_over_budget, resumed_trial
from refiner_nas.search.stoppers import EarlyStoppedTrial, EarlyStopper, PausedTrial, launch_stopper
from refiner_nas.search.storages import Heartbeat, TrialTakenOver, requeue_interrupted, this_worker
from refiner_nas.search.study import StudyIndex

INTERRUPTED = "interrupted by the user (Ctrl-C or SIGTERM); re-queued, the next launch trains it first"
_logger = logging.getLogger("refiner_nas.search")


_UNSET = object()
_TRAINING = "training"  # system attribute: this trial passed its duplicate checks and trains


class DuplicateOfFailedTrial(RuntimeError):
    """The same architecture and budget already failed in this study; it is not trained again."""


class DuplicateOfRunningTrial(optuna.TrialPruned):
    """Another worker is training the same architecture and budget; this trial leaves it to them."""


class OverBudgetTrial(optuna.TrialPruned):
    """An architecture over the space's budget, never trained. Told to Optuna as pruned, not as a result
    of top-1 0, so the dashboard, ``best_trials`` and plots leave it out; its constraints still mark it
    infeasible, which TPE learns from as it does from a completed trial (see
    ``refiner_nas.search.samplers._factory.prunes_over_budget`` for the sampler that keeps it completed)."""


class OptunaSink:
    """Writes record fields to an Optuna trial's user attributes and keeps a copy for the runner.

    When the storage refuses a write because the trial was declared dead and re-queued while this
    worker was cut off, the trial stops (``TrialTakenOver``), except for the final result of a
    completed training, which is kept in ``fields`` for the runner to save.
    """

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.fields: dict[str, Any] = {}
        self.taken_over = False

    def write(self, **fields: Any) -> None:
        """Validate ``fields`` and store those that change the record: a value this trial already holds,
        or None for a field never set (which reads as None), costs no storage write."""
        validated = record_fields(**fields)
        changed = {key: value for key, value in validated.items()
                   if self.fields.get(key, _UNSET) != value and not (value is None and key not in self.fields)}
        self.fields.update(validated)
        try:
            for key, value in changed.items():
                self.trial.set_user_attr(key, value)
        except UpdateFinishedTrialError:
            self._taken_over(final=validated.get("status") == "trained")

    def set_constraint(self, name: str, value: float) -> None:
        try:
            self.trial.set_constraint(name, value)
        except UpdateFinishedTrialError:
            self._taken_over(final=False)

    def _taken_over(self, *, final: bool) -> None:
        self.taken_over = True
        if not final:
            raise TrialTakenOver(f"trial {self.trial.number} was re-queued by another worker")


class TrialRunner:
    """The Optuna objective of a launch: ``runner(trial)`` returns the objective values.

    On top of ``ArchitectureEvaluator`` it reuses earlier results of the same architecture and
    budget, prunes single-objective trials and early-stops dominated multi-objective ones.
    """

    def __init__(self, evaluator: ArchitectureEvaluator) -> None:
        self.evaluator = evaluator
        self.objectives = evaluator.objectives
        self.budget_key = evaluator.budget_key
        settings = evaluator.settings
        self.early_stop = launch_stopper(settings, evaluator.space)
        self.last: OptunaSink | None = None  # the sink of the latest trial: its record fields, taken over or not
        self.index = StudyIndex()  # of the study this runner's trials belong to
        self.prune_over_budget = prunes_over_budget(settings)

    def __call__(self, trial: optuna.Trial) -> Sequence[float]:
        """Evaluate the trial's architecture; ``self.last`` then says what became of it."""
        started = time.perf_counter()
        sink = OptunaSink(trial)
        self.last = sink
        # First, so a worker that dies before its trial beats is found dead by its process, not its silence.
        sink.write(worker=this_worker())
        heartbeat = Heartbeat(trial.study._storage, trial._trial_id, self.evaluator.settings.heartbeat_s)
        try:
            with heartbeat:
                values = self._run(trial, sink, started)
            sink.taken_over |= heartbeat.taken_over.is_set()
            if sink.taken_over:
                self._keep_result(trial, sink, values)
            return values
        except (optuna.TrialPruned, TrialTakenOver):
            raise
        except KeyboardInterrupt:
            sink.write(status="failed", fail_reason=INTERRUPTED, requeued=True)
            requeue_interrupted(trial.study, trial)
            raise
        except Exception as error:
            sink.write(status="failed", fail_reason=f"{type(error).__name__}: {error}",
                       wall_time_s=time.perf_counter() - started)
            raise

    def _run(self, trial: optuna.Trial, sink: OptunaSink, started: float) -> Sequence[float]:
        config, data = self.evaluator.fit_to_data(self.evaluator.space.suggest(trial))
        self.evaluator.describe(config, data, sink, retry_of=trial.user_attrs.get("retry_of"))
        config_hash = config.config_hash()
        # Only a launch that pauses trials resumes them: no other trial pays for the lookup.
        pauses = self.early_stop is not None and self.early_stop.pauses
        paused = resumed_trial(trial.study, trial._trial_id) if pauses else None
        if paused is not None:
            sink.write(resumed_from=paused.number)
        resumes = None if paused is None else paused.number
        same = [t for t in self._same_architecture(trial.study, config_hash, trial.number) if t.number != resumes]
        running = _running_elsewhere(same, trial.number)
        if running is None:
            # Mark this trial as training, then look again: of two trials that passed the first look at
            # once, each sees the other's mark and yields, so at most one of them trains.
            trial.study._storage.set_trial_system_attr(trial._trial_id, _TRAINING, True)
            running = _training_elsewhere(self._same_architecture(trial.study, config_hash, trial.number))
        if running is not None:
            sink.write(status="duplicate", duplicate_of=running, wall_time_s=time.perf_counter() - started)
            raise DuplicateOfRunningTrial(f"same architecture and budget as trial {running}, running in another worker")
        earlier = _earlier_result(same)
        if earlier is not None:
            return self._reuse(sink, earlier, started)
        state = self._training_state(trial, paused)
        # A resumed trial is past the rung: nothing stops or pauses it again.
        stopper = self.early_stop if paused is None else None
        try:
            values = self.evaluator.evaluate(config, data, sink, self._on_epoch(trial, sink, stopper, state), state)
        finally:
            # A paused trial's state waits there; trained, failed or cut short, nothing of this run is resumed.
            if sink.fields.get("status") != "paused":
                _remove(state.directory)
        if paused is not None:
            _remove(paused.user_attrs.get("checkpoint_dir"))  # trained to the end: nothing is left to resume
        if sink.fields["status"] == "over_budget" and self.prune_over_budget:
            raise OverBudgetTrial(f"over budget: constraint values {sink.fields['constraint_values']}")
        return values

    def _training_state(self, trial: optuna.Trial, paused: FrozenTrial | None) -> TrainingState:
        """Where this trial keeps its training state (only when its stopper pauses trials and its training
        writes checkpoints), and the epochs it goes on after. A trial resuming a paused one goes on from a
        copy of its state, so the paused state stays as it was if this trial is cut short."""
        if self.early_stop is None or not self.early_stop.pauses:
            return TrainingState()
        curve = tuple(paused.user_attrs.get("top1_curve") or ()) if paused is not None else ()
        if not self.evaluator.checkpoints:  # a table's trial: its curve is the whole state
            return TrainingState(done=curve)
        folder = self.evaluator.settings.study_dir / "checkpoints" / f"trial-{trial.number}"
        _remove(folder)  # left by an earlier run of this trial number
        if paused is None:
            return TrainingState(directory=folder)
        source = paused.user_attrs.get("checkpoint_dir")
        if source is None or not Path(source).is_dir():
            _logger.warning("trial %d resumes trial %d, whose training state %s is not on this machine: it trains "
                            "from the start", trial.number, paused.number, source)
            return TrainingState(directory=folder)
        shutil.copytree(source, folder)
        return TrainingState(directory=folder, done=curve)

    def _keep_result(self, trial: optuna.Trial, sink: OptunaSink, values: Sequence[float]) -> None:
        """A training that completed after its trial was re-queued: saved as a trial of its own, which
        the re-queued copy then reuses instead of training again."""
        if sink.fields.get("status") == "trained":
            frozen = optuna.trial.create_trial(params=trial.params, distributions=trial.distributions,
                                               values=list(values), user_attrs=sink.fields)
            trial.study.add_trial(frozen)
        raise TrialTakenOver(f"trial {trial.number} was re-queued by another worker; its result is kept")

    def _on_epoch(self, trial: optuna.Trial, sink: OptunaSink, stopper: EarlyStopper | None,
                  state: TrainingState) -> EpochCallback:
        single_objective = len(self.objectives) == 1

        def on_epoch(epoch: int, top1: float, curve: list[float]) -> None:
            if single_objective:
                trial.report(top1, epoch)
                if trial.should_prune():
                    reason = f"pruned by {type(trial.study.pruner).__name__} at epoch {epoch + 1}"
                    sink.write(status="pruned", stop_reason=reason)
                    raise optuna.TrialPruned(reason)
            elif stopper is not None:
                reason = stopper.stop_reason(
                    trial.study.get_trials(deepcopy=False), number=trial.number, epoch=len(curve), top1=top1,
                    costs=self.evaluator.cost_values(sink.fields), budget_key=self.budget_key)
                if reason is not None and stopper.pauses:
                    directory = None if state.directory is None else str(state.directory)
                    sink.write(status="paused", stop_reason=reason, checkpoint_dir=directory)
                    raise PausedTrial(reason)
                if reason is not None:
                    sink.write(status="early_stopped", stop_reason=reason)
                    raise EarlyStoppedTrial(reason)

        return on_epoch

    def _same_architecture(self, study: optuna.Study, config_hash: str, number: int) -> list[FrozenTrial]:
        return [t for t in self.index.refresh(study).same_architecture(config_hash, self.budget_key)
                if t.number != number]

    def _reuse(self, sink: OptunaSink, earlier: FrozenTrial, started: float) -> Sequence[float]:
        record = TrialRecord.from_trial(earlier)
        copied = record.model_dump(include={"params", "macs", "flops", "latency_ms", "throughput",
                                            "constraint_values", "top1_curve", "top1", "epochs_run"})
        sink.write(**copied, status="duplicate", duplicate_of=earlier.number, wall_time_s=time.perf_counter() - started)
        for name, value in earlier.constraints.items():
            sink.set_constraint(name, value)
        if earlier.state == TrialState.COMPLETE:
            return earlier.values
        if earlier.state == TrialState.PRUNED:
            raise optuna.TrialPruned(f"same architecture and budget as {record.status} trial {earlier.number}")
        raise DuplicateOfFailedTrial(
            f"same architecture and budget as failed trial {earlier.number} ({record.fail_reason})"
        )


def _remove(folder: str | Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _running_elsewhere(same: list[FrozenTrial], number: int) -> int | None:
    """A running trial among ``same`` (trials of this architecture and budget) that trial ``number`` yields
    to: an earlier-numbered one, or one already training. Each worker writes its architecture before
    looking, so of two that draw it at once the later-numbered one yields, unless it looked first and is
    training already: then the earlier one yields."""
    return min((t.number for t in same if t.state == TrialState.RUNNING
                and (t.number < number or t.system_attrs.get(_TRAINING))), default=None)


def _training_elsewhere(same: list[FrozenTrial]) -> int | None:
    """A running trial among ``same`` marked as training."""
    return min((t.number for t in same if t.state == TrialState.RUNNING and t.system_attrs.get(_TRAINING)),
               default=None)


def _earlier_result(same: list[FrozenTrial]) -> FrozenTrial | None:
    """A finished trial among ``same``; not one failed through no fault of its own (Ctrl-C, a dead worker:
    ``requeued``), nor a duplicate of a running one."""
    for earlier in same:
        attrs = earlier.user_attrs
        if (
            attrs.get("requeued")
            or earlier.state in (TrialState.RUNNING, TrialState.WAITING)
            or (attrs.get("status") == "duplicate" and earlier.state == TrialState.PRUNED
                and attrs.get("top1") is None)
        ):
            continue
        return earlier
    return None
