"""Running searches: a launch and its plan (``_launch``, ``_plan``), trials in this process (``_run``),
local worker processes (``_local``), one worker's loop (``_loop``), a worker joining from another machine
(``_remote``), Ray Tune (``_ray``; ``_ray_searcher`` subclasses Ray's searcher, so it is imported only
when Ray runs: Ray is an optional dependency) and the live display (``_progress``).
"""

from refiner_nas.search.runner._launch import launch
from refiner_nas.search.runner._local import LocalWorkers
from refiner_nas.search.runner._loop import (
    REPEATED_DRAWS_LIMIT,
    StudyProgress,
    requeue_dead_trials,
    run_one_trial,
    study_progress,
    work_on_study,
)
from refiner_nas.search.runner._plan import DIGITS_USEFUL_SIZE, LONG_RUN_S, LaunchPlan, plan_launch
from refiner_nas.search.runner._progress import (
    RunningTrial,
    SearchProgress,
    WorkEstimate,
    describe_best,
    estimate_work,
    seconds_per_epoch,
)
from refiner_nas.search.runner._ray import (
    RAY_FOLDER,
    RAY_INTERRUPTED,
    RayOptions,
    launch_ray,
    ray_folder,
    ray_settings,
    ray_trial,
    resume_ray,
)
from refiner_nas.search.runner._remote import run_worker, worker_settings
from refiner_nas.search.runner._run import Terminated, interrupt_on_signals, prepare_space, run_trials, stop_signal

__all__ = [
    "DIGITS_USEFUL_SIZE",
    "LONG_RUN_S",
    "LaunchPlan",
    "LocalWorkers",
    "RAY_FOLDER",
    "RAY_INTERRUPTED",
    "REPEATED_DRAWS_LIMIT",
    "RayOptions",
    "RunningTrial",
    "SearchProgress",
    "StudyProgress",
    "Terminated",
    "WorkEstimate",
    "describe_best",
    "estimate_work",
    "interrupt_on_signals",
    "launch",
    "launch_ray",
    "plan_launch",
    "prepare_space",
    "ray_folder",
    "ray_settings",
    "ray_trial",
    "requeue_dead_trials",
    "resume_ray",
    "run_one_trial",
    "run_trials",
    "run_worker",
    "seconds_per_epoch",
    "stop_signal",
    "study_progress",
    "work_on_study",
    "worker_settings",
]
