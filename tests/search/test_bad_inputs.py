"""A corpus of bad inputs: each gives one line ``error: ...`` naming the option, the value and what is
allowed, exits 2, and changes nothing already recorded."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import optuna
import pytest
from PIL import Image
from typer.testing import CliRunner

from refiner_nas.cli import app
from refiner_nas.search.storages import open_storage

runner = CliRunner()


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    """A run folder holding one study with a trial."""
    runs = tmp_path / "runs"
    study = optuna.create_study(study_name="kept", storage=open_storage(None, runs / "kept"))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=1.0))
    return runs


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_folder(root: Path, classes: dict[str, bytes | None]) -> Path:
    for name, content in classes.items():
        (root / name).mkdir(parents=True)
        for index in range(2):
            path = root / name / f"{index}.png"
            if content is None:
                Image.new("RGB", (8, 8), (index * 40, 0, 0)).save(path)
            else:
                path.write_bytes(content)
    return root


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, str]:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"dimensions:\n\x89PNG\xff\xfe\n")
    huge = tmp_path / "huge.yaml"
    huge.write_text("dimensions:\n  img_size: 16\n  depth: 1\n  embed_dim: 16\n  num_heads: 2\n  patch_size: 4\n"
                    "constraints: {max_params: 1e999}\n")
    return {
        "binary": str(binary), "huge": str(huge),
        "one_class": str(write_folder(tmp_path / "one", {"a": None})),
        "not_images": str(write_folder(tmp_path / "broken", {"a": b"not an image", "b": b"nor this"})),
    }


CORPUS = [
    (["--objectives", "accuracy:max"], r"^--objectives: accuracy:max: unknown objective 'accuracy'; choose from top1"),
    (["--objectives", "top1:up"], r"^--objectives: top1:up: objective 'top1': direction 'up' is not one of max, min$"),
    (["--sampler", "cmaes"], r"^--sampler: cmaes: should be 'auto', 'tpe', 'nsga2', 'random', 'grid', 'gp' or 'ehvi'$"),
    (["--trials", "-1"], r"^--trials: -1: should be greater than or equal to 1$"),
    (["--epochs", "0"], r"^--epochs: 0: should be greater than or equal to 1$"),
    (["--workers", "-3"], r"^--workers: -3: should be greater than or equal to 0$"),
    (["--batch-size", "0"], r"^--batch-size: 0: should be greater than or equal to 1$"),
    (["--lr", "nan"], r"^--lr: nan: should be a finite number$"),
    (["--prescreen", "-1"], r"^--prescreen: -1: should be greater than or equal to 0$"),
    (["--proxy", "flops"], r"^--proxy: flops: should be 'synflow', 'naswot', 'grad_norm' or 'params'$"),
    (["--prescreen", "4", "--sampler", "grid"], r"^prescreen=4 cannot pick for the grid sampler"),
    (["--heartbeat", "0"], r"^--heartbeat: 0: should be greater than or equal to 1$"),
    (["--stopper", "hyperband"], r"^--stopper: hyperband: should be 'dominance', 'mo_asha' or 'promote'$"),
    (["--backend", "ray", "--early-stop", "--stopper", "promote"],
     r"^--stopper promote: Ray trials cannot be paused and resumed; use --stopper dominance or mo_asha"),
    (["--space", "{binary}"], r"binary.yaml: not a text \(UTF-8\) file: byte 12 is 0x89; give a YAML search space$"),
    (["--space", "{huge}"], r"huge.yaml:7 \(constraints.max_params\): inf must be a positive, finite count"),
    (["--dataset", "imagefolder:{one_class}"], r"has 1 class folder \(a\); a classifier needs at least 2"),
    (["--dataset", "imagefolder:{not_images}"], r"cannot decode image .*broken/a/0.png .*; remove or replace it$"),
]


@pytest.mark.parametrize(("args", "pattern"), CORPUS, ids=[" ".join(a) for a, _ in CORPUS])
def test_bad_launch_input_is_one_line_and_changes_nothing(recorded: Path, inputs: dict[str, str], args: list[str],
                                                          pattern: str) -> None:
    before = snapshot(recorded)
    filled = [arg.format(**inputs) for arg in args]
    result = runner.invoke(app, ["search", "launch", "--study", "kept", "--run-dir", str(recorded), *filled])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert re.search(pattern, lines[0].removeprefix("error: ")), lines[0]
    assert snapshot(recorded) == before


def test_a_damaged_journal_is_named_with_its_position(recorded: Path) -> None:
    damaged = recorded / "damaged"
    shutil.copytree(recorded / "kept", damaged)
    with (damaged / "journal.log").open("ab") as journal:
        journal.write(b"\x89\xff\n")
    before = snapshot(recorded)
    for args in (["search", "status", "--study", "damaged"], ["search", "list"]):
        result = runner.invoke(app, [*args, "--run-dir", str(recorded)])
        assert result.exit_code == 2
        assert re.fullmatch(r"error: study journal .*damaged/journal.log is damaged at line \d+ \(byte \d+\): byte "
                            r"0x89 at 0 in the line is not UTF-8 text; it was left as it is: restore it from a copy, "
                            r"or delete the study \(refiner-nas search delete\)", result.output.strip())
    assert snapshot(recorded) == before
    deleted = runner.invoke(app, ["search", "delete", "--study", "damaged", "--run-dir", str(recorded), "--yes"])
    assert deleted.exit_code == 0 and not damaged.exists()  # the way out the message names works
