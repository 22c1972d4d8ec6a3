"""``search launch --dry-run`` and the plan printed before a launch: numbers, warnings, nothing written."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pytest
import torch
from documented import python_examples
from typer.testing import CliRunner

from refiner_nas import api
from refiner_nas.cli import app
from refiner_nas.search.runner import LaunchPlan
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.study import StudyMismatchError

runner = CliRunner()


def test_dry_run_validates_measures_and_writes_nothing(small_space, tmp_path: Path) -> None:
    space = small_space()
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["search", "launch", "--space", str(space), "--run-dir", str(runs), "--trials", "3",
                                 "--epochs", "2", "--batch-size", "64", "--device", "cpu", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == ("plan: study small: 3 trials to run (0 finished), 2 epochs each, 1438 training images at "
                        f"16 px ({math.ceil(1438 / 64)} steps per epoch) on cpu")
    assert lines[1].startswith("pausing: a trial that does not lead after epoch 1 pauses")  # EHVI's default
    assert lines[2].startswith("estimate: ") and " ms of CPU per training step, timed on one thread on " in lines[2]
    assert re.search(r"expect about \d+ s of training on \d+ threads of an idle machine \(\d+\.\d CPU-minutes\)",
                     lines[2])
    assert lines[-1] == "dry run: nothing was trained or recorded"
    assert not runs.exists()


def test_bad_options_fail_the_dry_run(small_space, tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "launch", "--space", str(tmp_path / "none.yaml"), "--dry-run"])
    assert result.exit_code == 2 and result.output.startswith("error: ")


def plan(**changes: object) -> LaunchPlan:
    fields = dict(study="s", trials_to_run=5, finished=0, epochs=5, architectures=None, img_size=32,
                  train_images=1438, steps_per_epoch=45, device="cpu")
    return LaunchPlan(**{**fields, **changes})  # type: ignore[arg-type]


def test_warnings_name_upsampled_digits_long_runs_and_short_grids() -> None:
    settings = SearchSettings(space="table1", sampler="grid", trials=16)
    assert plan().warnings(settings) == []
    long = plan(img_size=224, architectures=5, step_s=4.0)
    assert long.estimate_s == pytest.approx(5 * 5 * 45 * 4.0)
    assert long.warnings(settings) == [
        "the digits are 8x8 images upsampled to 224 px here, which costs 49x the tokens of 32 px and adds no "
        "detail; use a real dataset (--dataset imagefolder:DIR) for this space",
        "about 75 min of training on cpu; lower --trials or --epochs, or use a GPU (--device cuda)",
        "the grid has 5 architectures: the search stops after them although --trials is 16",
    ]


def test_a_launch_prints_its_plan_before_any_trial(small_space, tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "launch", "--space", str(small_space()), "--run-dir", str(tmp_path),
                                 "--trials", "4", "--epochs", "1", "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "plan: study small: 4 trials to run (0 finished), 1 epochs each, 1438 training images" in result.stderr
    assert "estimate:" not in result.output  # measured only by --dry-run


def test_the_plan_says_when_trials_pause_and_how_to_turn_it_off(tmp_path: Path) -> None:
    from refiner_nas.search.tabular import SHIPPED_TABLE

    launch = ["search", "launch", "--backend", f"table:{SHIPPED_TABLE}", "--run-dir", str(tmp_path), "--dry-run"]
    pausing = runner.invoke(app, launch)
    assert pausing.exit_code == 0, pausing.output
    assert pausing.stdout.splitlines()[1] == (
        "pausing: a trial that does not lead after epoch 8 pauses there and is resumed if promoted (--stopper "
        "promote; --no-early-stop trains every trial in full)")
    plain = runner.invoke(app, [*launch, "--no-early-stop"])
    assert plain.exit_code == 0, plain.output
    assert not any(line.startswith("pausing:") for line in plain.stdout.splitlines())


def test_the_plan_refuses_a_study_the_launch_would_refuse(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    api.launch(SearchSettings(run_dir=runs, workers=0))  # the quick start's study (5 epochs), created only
    with pytest.raises(StudyMismatchError, match=r"study 'tiny' was created with --epochs 5 \(now 1\)"):
        api.plan_launch(SearchSettings(run_dir=runs, epochs=1))
    result = runner.invoke(app, ["search", "launch", "--run-dir", str(runs), "--epochs", "1", "--dry-run"])
    assert result.exit_code == 2 and result.output.startswith("error: study 'tiny' was created with --epochs 5")
    assert api.plan_launch(SearchSettings(run_dir=runs)).finished == 0  # the same options: it resumes


@pytest.mark.slow
def test_the_readme_api_example_runs_after_the_quick_start(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    api.launch(SearchSettings(run_dir=runs, workers=0))  # the quick start's study, created with its 5 epochs
    [example] = [code for page, code in python_examples() if page == "README.md"]
    written = re.search(r"settings = (api\.SearchSettings\(.*\))", example)
    assert written is not None
    settings = eval(written.group(1), {"api": api, "runs": runs})  # the example's settings, in the same run dir
    plan = api.plan_launch(settings)
    assert (plan.study, plan.trials_to_run, plan.epochs) == ("api-demo", 2, 1)
    study = api.launch(settings, show_progress=False)
    assert len(api.study_front(study)) >= 1
    assert api.study_status(api.load_study("tiny", run_dir=runs)).states == {}  # the quick start's is untouched


@pytest.mark.slow
def test_the_estimate_is_within_2x_of_the_run_it_estimates(tmp_path: Path) -> None:
    space = tmp_path / "two.yaml"  # two architectures of nearly one cost: the estimate times both
    space.write_text("dimensions:\n  img_size: 32\n  in_chans: 1\n  num_classes: 10\n  patch_size: 4\n"
                     "  mlp_ratio: 2.0\n  depth: 2\n  embed_dim: 32\n  num_heads: {choices: [2, 4]}\n"
                     "  attention: vanilla\n")
    settings = SearchSettings(space=str(space), run_dir=tmp_path, trials=2, epochs=2, warmup_epochs=0,
                              sampler="random", early_stop=False, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU seconds of one thread: other work on the machine does not inflate them
    try:
        plan = api.plan_launch(settings, measure=True)
        started = time.process_time()
        study = api.launch(settings, show_progress=False)
        used = time.process_time() - started
    finally:
        torch.set_num_threads(threads)
    assert sorted(t.user_attrs["status"] for t in study.trials if t.user_attrs["status"] != "duplicate") == [
        "trained", "trained"]
    assert plan.threads == 1 and plan.estimate_s == plan.estimate_cpu_s
    assert plan.estimate_cpu_s is not None and 0.5 <= used / plan.estimate_cpu_s <= 2.0, (used, plan.lines())
