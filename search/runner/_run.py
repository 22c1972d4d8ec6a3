"""Running trials in this process: the space prepared and checked, the study's trials until it is done,
and the signals that interrupt them."""

from __future__ import annotations

import signal

import optuna

from refiner_nas.refiner_space.data import DataSpec
from refiner_nas.search.evaluation import data_loader, make_evaluator
from refiner_nas.search.runner._loop import work_on_study
from refiner_nas.search.samplers import with_prescreen
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace
from refiner_nas.search.trial import TrialRunner


def prepare_space(settings: SearchSettings) -> SearchSpace:
    """Load the space, check the dataset and the training recipe before any trial starts (each raises
    a one-line error)."""
    space = SearchSpace.load(settings.space)
    DataSpec.parse(settings.dataset)
    settings.train_settings()
    fixed_size = space.fixed.get("img_size")
    if fixed_size is not None:
        data = data_loader(settings)(fixed_size)
        space = space.with_fixed(in_chans=data.in_chans, num_classes=data.num_classes)
    return space


def run_trials(settings: SearchSettings, space: SearchSpace, study: optuna.Study) -> None:
    """Run trials in this process until the study holds ``settings.trials`` evaluated architectures and
    no trial of it is running (``refiner_nas.search.runner._loop.work_on_study``)."""
    evaluator = make_evaluator(settings, space)
    study.sampler = with_prescreen(study.sampler, settings, space, evaluator)
    runner = TrialRunner(evaluator)
    work_on_study(study, runner, trials=settings.trials, heartbeat_s=settings.heartbeat_s)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster scheduler's stop), handled as Ctrl-C: the trial in flight is recorded and
    re-queued. Its own type so the process can exit 143 (128 + 15) rather than Ctrl-C's 130, as a
    process ended by the signal would: schedulers and shells read the code to tell the two apart."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def interrupt_on_signals(*, once: bool = False) -> None:
    """Ctrl-C (KeyboardInterrupt) and SIGTERM (``Terminated``) both interrupt: the trial in flight is
    recorded and re-queued. Set explicitly: a process started in the background inherits SIGINT ignored.
    Either signal blocked until now (a local worker starts with them blocked, so one sent while it imports
    waits for its handler) is delivered when this returns. With ``once`` (local workers, which a signal
    to the process group and the launch's forwarding both reach), signals after the first are ignored
    so the trial is recorded whole."""

    def interrupt(signum: int, frame: object) -> None:
        if once:
            for stop in STOP_SIGNALS:
                signal.signal(stop, signal.SIG_IGN)
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    for stop in STOP_SIGNALS:
        signal.signal(stop, interrupt)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def stop_signal(stop: KeyboardInterrupt) -> signal.Signals:
    """The signal behind ``stop``: SIGTERM for ``Terminated``, else SIGINT. A process it ends exits with
    128 + its number (130, 143)."""
    return signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT
