"""What a launch will cost, said before it starts: trials, epochs, images, and (on request) a measured time.

``refiner-nas search launch`` prints the plan and its warnings before the first trial; ``--dry-run``
validates everything a launch would (space, data, options, an existing study), measures a few training
steps of the first architecture the launch would draw, prints the plan and trains nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from refiner_nas.search.settings import SearchSettings

if TYPE_CHECKING:
    from refiner_nas.refiner_space import ModelConfig, RefinedViT
    from refiner_nas.search.space import SearchSpace

# Warn when the estimate exceeds this (seconds): a search the user may not expect to wait for.
LONG_RUN_S = 3600.0
# The digits are 8x8 images; beyond this they are only upsampled, at a quadratic cost in tokens.
DIGITS_USEFUL_SIZE = 32
# Training steps are timed on at most this many images and scaled to the batch size (the default batch
# is timed whole: a batch of 4 scaled up overestimated the quick start's steps 2-3x).
_MEASURED_BATCH = 32
# Architectures timed (their mean is the estimate), unless timing has taken this many seconds already.
_MEASURED_ARCHITECTURES = 4
_MEASURING_S = 10.0
# Steps of that batch run before timing: a fresh process's first steps of a shape took up to 15x longer.
_WARM_UP_STEPS = 3


@dataclass(frozen=True)
class LaunchPlan:
    """A launch's work: trials still to run, their epochs and images, and the seconds it should take
    (None when not measured). ``step_s`` is a training step's seconds on an idle machine: on a CPU its
    CPU seconds (``step_cpu_s``, which other work on the machine does not inflate) over the ``threads``
    training uses, on a GPU its wall time. ``architectures`` is the grid size for grid searches, else
    None; ``pause_epoch`` the ``promote`` stopper's rung when trials pause, else None."""

    study: str
    trials_to_run: int
    finished: int
    epochs: int
    architectures: int | None
    img_size: int | tuple[int, int] | None
    train_images: int
    steps_per_epoch: int
    device: str
    step_s: float | None = None
    step_cpu_s: float | None = None
    threads: int | None = None
    measured_on: str | None = None
    pause_epoch: int | None = None

    @property
    def steps(self) -> int:
        """Training steps of every trial still to run, each trained in full."""
        return self.trials_to_run * self.epochs * self.steps_per_epoch

    @property
    def estimate_s(self) -> float | None:
        """Training time of every trial still to run on an idle machine (duplicates, over-budget and
        early-stopped trials take less, other work on the machine longer)."""
        return None if self.step_s is None else self.steps * self.step_s

    @property
    def estimate_cpu_s(self) -> float | None:
        """CPU seconds of that training (None on a GPU)."""
        return None if self.step_cpu_s is None else self.steps * self.step_cpu_s

    def warnings(self, settings: SearchSettings) -> list[str]:
        """What the user may not expect: upsampled digits, a very long run, more trials than the grid."""
        notes = []
        side = max(self.img_size) if isinstance(self.img_size, tuple) else self.img_size
        if settings.dataset == "digits" and side is not None and side > DIGITS_USEFUL_SIZE:
            notes.append(f"the digits are 8x8 images upsampled to {side} px here, which costs "
                         f"{(side / DIGITS_USEFUL_SIZE) ** 2:.0f}x the tokens of {DIGITS_USEFUL_SIZE} px and adds no "
                         "detail; use a real dataset (--dataset imagefolder:DIR) for this space")
        if self.estimate_s is not None and self.estimate_s > LONG_RUN_S:
            notes.append(f"about {_duration(self.estimate_s)} of training on {self.device}; lower --trials or "
                         "--epochs, or use a GPU (--device cuda)")
        if self.architectures is not None and settings.trials > self.architectures:
            notes.append(f"the grid has {self.architectures} architectures: the search stops after them "
                         f"although --trials is {settings.trials}")
        return notes

    def lines(self) -> list[str]:
        """The plan in a few lines of text."""
        grid = f" of a {self.architectures}-architecture grid" if self.architectures is not None else ""
        size = "x".join(map(str, self.img_size)) if isinstance(self.img_size, tuple) else self.img_size
        lines = [
            f"plan: study {self.study}: {self.trials_to_run} trials to run{grid} ({self.finished} finished), "
            f"{self.epochs} epochs each, {self.train_images} training images at {size or 'the drawn'} px "
            f"({self.steps_per_epoch} steps per epoch) on {self.device}"
        ]
        if self.pause_epoch is not None:
            lines.append(f"pausing: a trial that does not lead after epoch {self.pause_epoch} pauses there and is "
                         "resumed if promoted (--stopper promote; --no-early-stop trains every trial in full)")
        if self.step_cpu_s is not None:
            lines.append(f"estimate: {self.step_cpu_s * 1e3:.0f} ms of CPU per training step, timed on one thread "
                         f"on {self.measured_on}: expect about {_duration(self.estimate_s or 0.0)} of training on "
                         f"{self.threads} threads of an idle machine ({(self.estimate_cpu_s or 0.0) / 60:.1f} "
                         f"CPU-minutes); {_FEWER_OR_MORE}")
        elif self.step_s is not None:
            lines.append(f"estimate: {self.step_s * 1e3:.0f} ms per training step on {self.measured_on}: expect "
                         f"about {_duration(self.estimate_s or 0.0)} of training; {_FEWER_OR_MORE}")
        return lines


_FEWER_OR_MORE = "duplicates, over-budget and early-stopped trials take less, other work on the machine longer"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan_launch(settings: SearchSettings, *, measure: bool = False, steps: int = 3) -> LaunchPlan:
    """Validate a launch without writing anything and say what it will do; with ``measure``, time
    ``steps`` training steps of the first architecture the launch's sampler draws.

    Raises:
        ValueError: an invalid space, dataset or option (one line).
        StudyMismatchError: an existing study created with other options (a ValueError).
    """
    import optuna

    from refiner_nas.refiner_space.training import resolve_device
    from refiner_nas.search.evaluation import data_loader
    from refiner_nas.search.runner._launch import prepare_space
    from refiner_nas.search.samplers import make_sampler
    from refiner_nas.search.stoppers import promotion_rule

    space = prepare_space(settings)
    device = str(resolve_device(settings.device))
    load = data_loader(settings)
    first = space.suggest(optuna.create_study(sampler=make_sampler(settings, space)).ask())
    data = load(first.img_size)
    finished = _finished_trials(settings, space)
    architectures = math.prod(len(values) for values in space.grid().values()) if settings.sampler == "grid" else None
    to_run = max(settings.trials - finished, 0)
    if architectures is not None:
        to_run = min(to_run, max(architectures - finished, 0))
    plan = LaunchPlan(
        study=settings.study_name, trials_to_run=to_run, finished=finished, epochs=settings.epochs,
        architectures=architectures, img_size=space.fixed.get("img_size"), train_images=len(data.train),
        steps_per_epoch=math.ceil(len(data.train) / settings.batch_size), device=device,
        pause_epoch=None if (rule := promotion_rule(settings, space)) is None else rule.rung,
    )
    if not measure:
        return plan
    # The launch's first draw, then random draws: the first draws of a design are its cheapest architectures.
    random_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=settings.seed))
    drawn = [first, *(space.suggest(random_study.ask()) for _ in range(_MEASURED_ARCHITECTURES - 1))]
    threads = torch.get_num_threads()
    timed: list[tuple[float, float]] = []
    started = time.perf_counter()
    for config in drawn:
        config = config.replace(**load(config.img_size).model_overrides())
        timed.append(_time_training_steps(config, settings, device, steps))
        if time.perf_counter() - started > _MEASURING_S:
            break
    wall_s, cpu_s = (sum(values) / len(timed) for values in zip(*timed, strict=True))
    label = f"the mean of {len(timed)} architectures of the space (the first {_describe(first)})"
    if device.startswith("cuda"):
        return replace(plan, step_s=wall_s, measured_on=label)
    return replace(plan, step_s=cpu_s / threads, step_cpu_s=cpu_s, threads=threads, measured_on=label)


def _describe(config: ModelConfig) -> str:
    return f"{config.attention} depth {config.depth} width {config.embed_dim} at {config.img_hw[0]} px"


def _finished_trials(settings: SearchSettings, space: SearchSpace) -> int:
    """Evaluated architectures of the study if it exists (what --trials counts; read only: an absent study is
    not created), after checking that the launch may resume it.

    Raises:
        StudyMismatchError: the existing study was created with other options (as the launch would raise).
    """
    from refiner_nas.search.records import count_evaluated
    from refiner_nas.search.study import check_resumable, load_existing_study, require_study_storage

    try:
        require_study_storage(settings.study_name, run_dir=settings.run_dir, storage=settings.storage)
        study = load_existing_study(settings)
    except KeyError:
        return 0
    check_resumable(study, settings, space)
    return count_evaluated(study.get_trials(deepcopy=False))


def _time_training_steps(config: ModelConfig, settings: SearchSettings, device: str,
                         steps: int) -> tuple[float, float]:
    """Wall and CPU seconds of one forward, backward and AdamW step of a full batch, scaled from the median
    of ``steps`` steps on a batch of at most ``_MEASURED_BATCH`` random images (after ``_WARM_UP_STEPS``):
    the estimate of a large model on a CPU must not take as long as an epoch."""
    from refiner_nas.refiner_space import build_model

    threads = torch.get_num_threads()
    if not device.startswith("cuda"):
        # One thread: CPU seconds of several threads grow with other work on the machine (idle threads
        # spin while one waits for a core), one thread's do not.
        torch.set_num_threads(1)
    try:
        return _time_steps(build_model(config).to(device).train(), settings, device, steps)
    finally:
        torch.set_num_threads(threads)


def _time_steps(model: RefinedViT, settings: SearchSettings, device: str, steps: int) -> tuple[float, float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    height, width = model.config.img_hw

    def step(batch: int) -> tuple[float, float]:
        images = torch.randn(batch, model.config.in_chans, height, width, device=device)
        labels = torch.randint(0, model.config.num_classes, (batch,), device=device)
        started, started_cpu = time.perf_counter(), time.process_time()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - started, time.process_time() - started_cpu

    batch = min(settings.batch_size, _MEASURED_BATCH)
    for _ in range(_WARM_UP_STEPS):
        step(batch)
    timed = [step(batch) for _ in range(steps)]
    scale = settings.batch_size / batch
    return (sorted(wall for wall, _ in timed)[steps // 2] * scale, sorted(cpu for _, cpu in timed)[steps // 2] * scale)
