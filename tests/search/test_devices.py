"""One worker per GPU: the assignment of --device and --workers, shown by the plan, followed by launches and
workers, and named by each record. CPU only: the visible GPU count is injected."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
import torch
from typer.testing import CliRunner

from refiner_nas import api
from refiner_nas.cli import app
from refiner_nas.search.devices import assign_devices
from refiner_nas.search.records import TrialRecord
from refiner_nas.search.runner import LocalWorkers, launch, ray_settings, run_worker, worker_settings
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.study import load_existing_study

runner = CliRunner()


@pytest.mark.parametrize(("device", "workers", "visible", "expected"), [
    ("cuda", 4, 4, ("cuda:0", "cuda:1", "cuda:2", "cuda:3")),
    ("cuda", None, 3, ("cuda:0", "cuda:1", "cuda:2")),  # the default: one worker per visible GPU
    ("cuda:0,2,3", None, 4, ("cuda:0", "cuda:2", "cuda:3")),  # one per named GPU
    ("cuda:0,2,3", 5, 4, ("cuda:0", "cuda:2", "cuda:3", "cuda:0", "cuda:2")),  # round-robin
    ("cuda:1", None, 2, ("cuda:1",)),
    ("cuda", 1, 8, ("cuda:0",)),
    ("auto", None, 2, ("cuda:0", "cuda:1")),  # auto with GPUs is cuda
    ("auto", None, 0, ("cpu",)),
    ("auto", 3, 0, ("cpu", "cpu", "cpu")),
    ("cpu", None, 8, ("cpu",)),  # not a GPU device: the default stays 1
    ("cpu", 2, 8, ("cpu", "cpu")),
    ("cuda", 0, 2, ()),  # 0: the study is only created
])
def test_each_worker_gets_its_device(device: str, workers: int | None, visible: int,
                                     expected: tuple[str, ...]) -> None:
    assert assign_devices(device, workers, visible).devices == expected


def test_sqlite_keeps_one_worker_by_default_on_several_gpus(tmp_path: Path) -> None:
    sqlite = SearchSettings(storage=f"sqlite:///{tmp_path}/s.db", device="cuda")
    assert sqlite.device_assignment(4).devices == ("cuda:0",)  # SQLite takes one worker
    assert SearchSettings(device="cuda").device_assignment(4).devices == ("cuda:0", "cuda:1", "cuda:2", "cuda:3")


def test_only_more_workers_than_gpus_are_warned_of() -> None:
    assert assign_devices("cuda:0,2,3", 5, 4).warning() == (
        "5 workers share 3 GPUs round-robin, so some GPUs train several trials at once; use --workers 3 for one "
        "worker per GPU")
    assert assign_devices("cuda", 4, 4).warning() is None
    assert assign_devices("cpu", 4, 0).warning() is None


@pytest.mark.parametrize(("device", "visible", "message"), [
    ("cuda:0,5", 4, "--device cuda:0,5: GPU cuda:5 is not visible on this machine (visible: cuda:0, cuda:1, "
                    "cuda:2, cuda:3); name visible GPUs or use --device cuda for all of them"),
    ("cuda:1", 1, "--device cuda:1: GPU cuda:1 is not visible on this machine (visible: cuda:0); name visible "
                  "GPUs or use --device cuda for all of them"),
    ("cuda", 0, "--device cuda: no GPU is visible on this machine; use --device cpu or auto"),
])
def test_a_gpu_that_is_not_visible_is_named_with_the_visible_ones(device: str, visible: int, message: str) -> None:
    with pytest.raises(ValueError) as error:
        assign_devices(device, None, visible)
    assert str(error.value) == message


@pytest.mark.parametrize(("device", "problem"), [
    ("cuda:0,x", "not a device"), ("cuda:", "not a device"), ("gpu", "not a device"), ("cuda:0,,1", "not a device"),
    ("cuda:1,1", "names a GPU twice"),
])
def test_settings_refuse_a_malformed_device(device: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as error:
        SearchSettings(device=device)
    assert f"input_value='{device}'" in str(error.value)


def test_the_cli_refuses_a_bad_device_list_in_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "launch", "--device", "cuda:0,x", "--run-dir", str(tmp_path), "--dry-run"])
    assert result.exit_code == 2
    assert result.output == ("error: --device: cuda:0,x: not a device; use auto, cpu, cuda, cuda:N or cuda:N,M,... "
                             "(GPU indices)\n")
    assert not list(tmp_path.iterdir())


def test_ray_refuses_a_list_of_gpus_it_places_itself() -> None:
    assert ray_settings(SearchSettings(device="cuda")).device == "cuda"
    with pytest.raises(ValueError, match=r"^--device cuda:0,1: Ray places trials on its GPUs itself"):
        ray_settings(SearchSettings(device="cuda:0,1"))


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch):
    """Makes this process see ``count`` GPUs (nothing runs on them: the tests stop before training)."""

    def see(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)

    return see


def test_the_plan_prints_the_assignment_and_warns_of_shared_gpus(gpus, small_space, tmp_path: Path) -> None:
    gpus(4)
    base = {"space": str(small_space()), "run_dir": tmp_path / "runs", "trials": 2, "epochs": 2}
    shared = SearchSettings(**base, device="cuda:0,2,3", workers=5)
    plan = api.plan_launch(shared)
    assert plan.device == "cuda:0"
    assert ("devices: worker 0 -> cuda:0, worker 1 -> cuda:2, worker 2 -> cuda:3, worker 3 -> cuda:0, "
            "worker 4 -> cuda:2") in plan.lines()
    assert [w for w in plan.warnings(shared) if "round-robin" in w] == [
        "5 workers share 3 GPUs round-robin, so some GPUs train several trials at once; use --workers 3 for one "
        "worker per GPU"]
    every_gpu = SearchSettings(**base, device="cuda")  # --workers left out: one per GPU
    every = api.plan_launch(every_gpu)
    assert "devices: worker 0 -> cuda:0, worker 1 -> cuda:1, worker 2 -> cuda:2, worker 3 -> cuda:3" in every.lines()
    assert not [w for w in every.warnings(every_gpu) if "round-robin" in w]
    on_cpu = api.plan_launch(SearchSettings(**base, device="cpu"))
    assert on_cpu.device == "cpu" and not any(line.startswith("devices:") for line in on_cpu.lines())
    assert not (tmp_path / "runs").exists()


def test_the_dry_run_names_a_gpu_that_is_not_visible(gpus, small_space, tmp_path: Path) -> None:
    gpus(2)
    result = runner.invoke(app, ["search", "launch", "--space", str(small_space()), "--run-dir", str(tmp_path / "r"),
                                 "--device", "cuda:0,5", "--dry-run"])
    assert result.exit_code == 2
    assert result.output == ("error: --device cuda:0,5: GPU cuda:5 is not visible on this machine (visible: cuda:0, "
                             "cuda:1); name visible GPUs or use --device cuda for all of them\n")


def test_local_workers_start_each_on_its_device(small_space, tmp_path: Path) -> None:
    """What each worker process is given (the real launch below runs them; on CPU they are all ``cpu``)."""
    settings = SearchSettings(space=str(small_space()), run_dir=tmp_path, device="cuda:0,2", workers=3)
    workers = LocalWorkers(settings, optuna.create_study(), devices=("cuda:0", "cuda:2", "cuda:0"))
    given = []

    class Recorded:
        def __init__(self, *, target: object, args: tuple[str, int, int]) -> None:
            given.append((SearchSettings.model_validate_json(args[0]), args[1], args[2]))

        def start(self) -> None:
            pass

    workers.context = type("Context", (), {"Process": Recorded})()
    for index in range(3):
        workers._start(index)
    assert [(s.device, s.workers, index) for s, _, index in given] == [("cuda:0", 1, 0), ("cuda:2", 1, 1),
                                                                       ("cuda:0", 1, 2)]
    assert {threads for _, threads, _ in given} == {max(1, (os.cpu_count() or 1) // 3)}


def _cpu_settings(small_space, tmp_path: Path, **changes: object) -> SearchSettings:
    fields = {"space": str(small_space()), "trials": 2, "epochs": 1, "run_dir": tmp_path / "runs", "batch_size": 128,
              "device": "cpu", "sampler": "random", "warmup_epochs": 0.0, "early_stop": False, **changes}
    return SearchSettings(**fields)


@pytest.mark.slow
def test_a_two_worker_launch_records_each_trials_device(small_space, tmp_path: Path) -> None:
    study = launch(_cpu_settings(small_space, tmp_path, workers=2), show_progress=False)
    records = [TrialRecord.from_trial(trial) for trial in study.get_trials()]
    assert len(records) >= 2
    assert {record.device for record in records} == {"cpu"}
    assert len({record.worker for record in records}) == 2  # both workers ran trials


def test_a_joining_worker_takes_the_first_gpu_its_device_names(gpus, small_space, tmp_path: Path) -> None:
    launch(_cpu_settings(small_space, tmp_path, workers=0), show_progress=False)  # the study, no trial
    gpus(2)
    join = {"study": "small", "storage": None, "run_dir": tmp_path / "runs"}
    assert worker_settings(**join, device="cuda").device == "cuda:0"
    assert worker_settings(**join, device="cuda:1").device == "cuda:1"
    assert worker_settings(**join, device="auto").device == "cuda:0"
    with pytest.raises(ValueError, match=r"GPU cuda:3 is not visible on this machine \(visible: cuda:0, cuda:1\)"):
        worker_settings(**join, device="cuda:3")


def test_a_joining_worker_records_its_device(small_space, tmp_path: Path) -> None:
    launch(_cpu_settings(small_space, tmp_path, workers=0, trials=1), show_progress=False)
    joined = worker_settings(study="small", storage=None, run_dir=tmp_path / "runs", device="auto")
    run_worker(joined)
    study = load_existing_study(joined)
    assert [TrialRecord.from_trial(trial).device for trial in study.get_trials()] == ["cpu"]
