"""The results commands as the root CLI wires them: outputs, files, and one-line errors with exit code 2."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import typer
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

from refiner_nas.cli.results import export_command, leaderboard_app, pareto_command, train_command


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer(pretty_exceptions_enable=False)
    root.add_typer(leaderboard_app, name="leaderboard")
    root.command("pareto")(pareto_command)
    root.command("export")(export_command)
    root.command("train")(train_command)
    return root


@pytest.fixture
def studies(tmp_path: Path, make_study, tiny_config) -> list[str]:
    make_study("a", [(tiny_config(embed_dim=8), 60.0, {}), (tiny_config(), 80.0, {}),
                     (tiny_config(depth=2), 70.0, {})])
    make_study("b", [(tiny_config(attention="refiner", expansion_ratio=2), 85.0, {})])
    return ["--run-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "res")]


def run(app: typer.Typer, *args: str) -> object:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def assert_one_line_error(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.strip().splitlines() if not line.startswith("collected ")]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr  # at most a collection note before
    assert re.search(pattern, errors[0]), errors[0]


def test_leaderboard_collects_and_shows_every_format(app, studies) -> None:
    result = run(app, "leaderboard", *studies, "--format", "csv", "--study", "a")
    assert result.exit_code == 0, result.output
    assert "collected 1 study (a): 3 added, 0 updated, 0 unchanged" in result.stderr
    table = pd.read_csv(io.StringIO(result.stdout))
    assert list(table.loc[table["kind"] == "proxy", "top1"]) == [80.0, 70.0, 60.0]
    assert (table["kind"] == "reported").sum() == 36
    everything = run(app, "leaderboard", *studies, "--format", "markdown", "--where", "params_m <= 30", "--top", "2")
    assert everything.exit_code == 0 and "collected 2 studies" in everything.stderr
    assert everything.stdout.count("| proxy") == 2 and everything.stdout.count("| reported") == 2
    assert "not measured here" in everything.stdout


def test_full_training_results_are_added_next_to_table7(tmp_path: Path, app, studies) -> None:
    exported = run(app, "export", *studies, "--top-k", "1", "--out", tmp_path / "out")
    assert exported.exit_code == 0, exported.output
    config = sorted((tmp_path / "out").glob("*.yaml"))[0]
    added = run(app, "leaderboard", "add", "--config", config, "--top1", "81.5", "--epochs", "300", "--recipe",
                "standard", "--num-classes", "1000", "--in-chans", "3", "--img-size", "224",
                "--results-dir", tmp_path / "res")
    assert added.exit_code == 0, added.output
    assert "recorded refiner-1x16h2-r2k3@16: top-1 81.5 on imagenet (1 added" in added.stdout
    shown = run(app, "leaderboard", *studies, "--format", "csv", "--where", "dataset == 'imagenet'",
                "--sort", "-full_top1", "--columns", "kind,model,full_top1,img_size,study,trial")
    table = pd.read_csv(io.StringIO(shown.stdout))
    ours = table[table["kind"] == "full"].iloc[0]
    assert (ours["full_top1"], ours["img_size"], ours["study"], ours["trial"]) == (81.5, 224, "b", 0)
    assert len(table) == 37
    again = run(app, "leaderboard", "add", "--config", config, "--top1", "82", "--epochs", "300", "--recipe",
                "standard", "--num-classes", "1000", "--in-chans", "3", "--img-size", "224",
                "--results-dir", tmp_path / "res")
    assert_one_line_error(again, r"already recorded with top-1 81.5; pass --force")
    both = run(app, "leaderboard", "add", "--config", config, "--model", "vit_16b_384", "--top1", "1")
    assert_one_line_error(both, "exactly one of --config FILE or --model NAME")


def test_pareto_prints_the_front_and_writes_plots_once(tmp_path: Path, app, studies) -> None:
    png, html = tmp_path / "plots" / "front.png", tmp_path / "plots" / "front.html"
    result = run(app, "pareto", *studies, "--objectives", "top1:max,params:min", "--png", png, "--html", html,
                 "--reference", "top1=0,params=1", "--format", "csv")
    assert result.exit_code == 0, result.output
    front = pd.read_csv(io.StringIO(result.stdout.split("front:")[0]))
    assert list(front["top1"]) == [85.0, 80.0, 60.0] and "hypervolume" in result.stdout
    assert "reference top1=0, params_m=1" in result.stdout
    assert png.read_bytes()[:4] == b"\x89PNG" and "plotly" in html.read_text()
    # One self-contained page (plotly embedded, no network needed), and nothing else written beside it.
    assert sorted(path.name for path in html.parent.iterdir()) == ["front.html", "front.png"]
    assert html.stat().st_size > 1_000_000 and 'src="plotly.min.js"' not in html.read_text()
    assert not re.search(r"<script[^>]* src=", html.read_text())  # no script fetched from anywhere
    for path in (png, html):
        size = re.search(rf"wrote {re.escape(str(path))} \(([\d.]+) (kB|MB), ", result.stdout)
        assert size, result.stdout
        assert float(size[1]) * {"kB": 1e3, "MB": 1e6}[size[2]] == pytest.approx(path.stat().st_size, rel=0.1)
    assert "self-contained page, plotly embedded: opens offline" in result.stdout
    before = png.read_bytes()
    refused = run(app, "pareto", *studies, "--png", png)
    assert_one_line_error(refused, r"front.png exists; pass --force to overwrite it")
    assert png.read_bytes() == before
    assert run(app, "pareto", *studies, "--png", png, "--force").exit_code == 0
    only_a = run(app, "pareto", *studies, "--study", "a", "--objectives", "top1", "--format", "csv")
    assert pd.read_csv(io.StringIO(only_a.stdout.split("front:")[0]))["top1"].tolist() == [80.0]


def test_bad_inputs_are_one_line_errors(tmp_path: Path, app, studies) -> None:
    assert_one_line_error(run(app, "leaderboard", *studies, "--study", "nope"),
                          r"no study 'nope'.*studies under .*: a, b")
    assert_one_line_error(run(app, "pareto", *studies, "--objectives", "speed:max"), "is not a recorded numeric column")
    assert_one_line_error(run(app, "pareto", *studies, "--objectives", "top1,latency"),
                          "objective 'latency_ms' is not recorded for any selected row")
    assert_one_line_error(run(app, "leaderboard", *studies, "--where", "params_m < 0"), "no leaderboard rows match")
    assert_one_line_error(run(app, "pareto", *studies, "--where", "params_m < 0"), "no rows are selected")
    assert_one_line_error(run(app, "pareto", *studies, "--study", "zzz"), r"no study 'zzz'")
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert_one_line_error(run(app, "export", *studies, "--top-k", "1", "--out", blocker / "sub"),
                          "cannot write to --out")
    assert run(app, "export", *studies, "--top-k", "1", "--out", tmp_path / "e").exit_code == 0
    assert_one_line_error(run(app, "export", *studies, "--top-k", "1", "--out", tmp_path / "e"), "is not empty")
    assert_one_line_error(run(app, "leaderboard", *studies, "--output", blocker), "file.txt exists; pass --force")
    assert blocker.read_text() == "x"
    assert_one_line_error(run(app, "train", "--config", tmp_path / "none.yaml", "--data-dir", "digits"),
                          "cannot read --config")


@pytest.mark.usefixtures("one_thread")
def test_train_runs_an_export_and_records_it(tmp_path: Path, app, studies) -> None:
    assert run(app, "export", *studies, "--top-k", "1", "--out", tmp_path / "out").exit_code == 0
    config = sorted((tmp_path / "out").glob("*.yaml"))[0]
    result = run(app, "train", "--config", config, "--data-dir", "digits", "--epochs", "1", "--batch-size", "256",
                 "--device", "cpu", "--output", tmp_path / "run", "--results-dir", tmp_path / "res")
    assert result.exit_code == 0, result.output
    assert "epoch 1: top-1" in result.stdout and "final top-1" in result.stdout
    assert "note: not applied by the training loop: RandAugment" in result.stderr
    shown = run(app, "leaderboard", "--results-dir", tmp_path / "res", "--no-collect", "--no-reported", "--format",
                "csv", "--where", "kind == 'full'")
    table = pd.read_csv(io.StringIO(shown.stdout))
    assert list(table["recipe"]) == ["standard"] and list(table["dataset"]) == ["digits"]
    # The recipe's drop path changes the trained model, not the architecture: the rows match by hash.
    exported_hash = yaml.safe_load(config.read_text())["config_hash"]
    assert list(table["config_hash"]) == [exported_hash]
    both = run(app, "leaderboard", "--results-dir", tmp_path / "res", "--no-collect", "--no-reported", "--format",
               "csv", "--where", f"config_hash == '{exported_hash}'")
    assert sorted(pd.read_csv(io.StringIO(both.stdout))["kind"]) == ["full", "proxy"]
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "result.yaml").is_file()


def test_every_command_reads_an_exported_file(tmp_path: Path, app, studies) -> None:
    from refiner_nas.cli import app as root

    assert run(app, "export", *studies, "--top-k", "1", "--out", tmp_path / "out").exit_code == 0
    config = sorted((tmp_path / "out").glob("*.yaml"))[0]
    exported_hash = yaml.safe_load(config.read_text())["config_hash"]
    flops = run(root, "bench", "flops", config, "--json")
    assert flops.exit_code == 0, flops.output
    assert json.loads(flops.stdout)[0]["config_hash"] == exported_hash
    density = run(root, "analyze", "density", config, "--out", tmp_path / "an", "--batches", "1")
    assert density.exit_code == 0, density.output
    assert pd.read_csv(tmp_path / "an" / "density.csv")["block"].tolist() == [0]


def test_over_budget_and_duplicate_trials_only_with_all(tmp_path: Path, app, make_study, tiny_config) -> None:
    make_study("c", [(tiny_config(), 80.0, {}), (tiny_config(), 80.0, {"status": "duplicate", "duplicate_of": 0}),
                     (tiny_config(depth=2), 0.0, {"status": "over_budget", "state": TrialState.PRUNED,
                                                  "constraints": {"max_params": 1.0}})])
    options = ["--run-dir", tmp_path / "runs", "--results-dir", tmp_path / "res", "--no-reported", "--format", "csv"]
    default = run(app, "leaderboard", *options)
    assert default.exit_code == 0, default.output
    assert "2 over-budget, duplicate or resumed trials not shown (--all shows them)" in default.stderr
    shown = pd.read_csv(io.StringIO(default.stdout))
    assert list(shown["status"]) == ["trained"] and list(shown["top1"]) == [80.0]
    everything = pd.read_csv(io.StringIO(run(app, "leaderboard", *options, "--all").stdout))
    assert sorted(everything["status"]) == ["duplicate", "over_budget", "trained"]


def test_a_failed_query_writes_nothing(tmp_path: Path, app, studies) -> None:
    stored = tmp_path / "res" / "leaderboard.parquet"
    for bad, message in ((["--format", "xml"], r"unknown --format 'xml'; choose from table, markdown"),
                         (["--where", "params_m <<= 3"], r"cannot apply --where 'params_m <<= 3'"),
                         (["--where", "nope > 1"], r"cannot apply --where 'nope > 1'"),
                         (["--sort", "-speed"], r"cannot sort by 'speed'"), (["--top", "0"], r"--top 0 must be"),
                         (["--columns", "kind,speed"], r"unknown column\(s\) speed")):
        assert_one_line_error(run(app, "leaderboard", *studies, "--study", "a", *bad), message)
        assert not stored.exists(), bad  # nothing collected before the query was refused
    assert run(app, "leaderboard", *studies, "--study", "a").exit_code == 0
    before = stored.read_bytes()
    assert_one_line_error(run(app, "leaderboard", *studies, "--study", "b", "--format", "xml"), "unknown --format")
    assert_one_line_error(run(app, "pareto", *studies, "--study", "b", "--where", "top1 >"), "cannot apply --where")
    assert_one_line_error(run(app, "pareto", *studies, "--study", "b", "--format", "xml"), "unknown --format")
    assert_one_line_error(run(app, "export", *studies, "--study", "b", "--where", "x ==", "--out", tmp_path / "e"),
                          "cannot apply --where")
    assert_one_line_error(run(app, "export", *studies, "--study", "b", "--top-k", "0", "--out", tmp_path / "e"),
                          r"--top-k 0 must be at least 1")
    assert_one_line_error(run(app, "pareto", *studies, "--study", "b", "--epochs", "0"), r"--epochs 0 must be")
    assert stored.read_bytes() == before and not (tmp_path / "e").exists()  # study b was never collected


@pytest.mark.slow
def test_a_refused_query_of_the_installed_command_writes_nothing(tmp_path: Path, studies, monkeypatch) -> None:
    """The real ``refiner-nas`` process, as a user runs it: exit 2, one line, no leaderboard file."""
    monkeypatch.delenv("REFINER_NAS_DEBUG", raising=False)
    for bad in (["--format", "xml"], ["--where", "params_m <<= 3"]):
        result = subprocess.run([sys.executable, "-m", "refiner_nas", "leaderboard", *studies, *bad],
                                capture_output=True, text=True)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("error: ") and result.stdout == ""
        assert not (tmp_path / "res").exists()


def test_a_study_shows_only_its_own_full_trainings(tmp_path: Path, app, studies) -> None:
    for study in ("a", "b"):
        assert run(app, "export", *studies, "--study", study, "--top-k", "1", "--out", tmp_path / study).exit_code == 0
        config = sorted((tmp_path / study).glob("*.yaml"))[0]
        added = run(app, "leaderboard", "add", "--config", config, "--top1", "70", "--results-dir", tmp_path / "res")
        assert added.exit_code == 0, added.output
    # Recorded without an export: it belongs to the study that searched its architecture (a's best).
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(yaml.safe_load(sorted((tmp_path / "a").glob("*.yaml"))[0].read_text())["config"]))
    assert run(app, "leaderboard", "add", "--config", plain, "--top1", "71", "--results-dir", tmp_path / "res",
               "--name", "plain").exit_code == 0
    options = [*studies, "--format", "csv", "--no-reported", "--columns", "kind,model,study,full_top1"]
    for study, full in (("a", [70.0, 71.0]), ("b", [70.0])):
        table = pd.read_csv(io.StringIO(run(app, "leaderboard", *options, "--study", study).stdout))
        assert set(table.loc[table["kind"] == "proxy", "study"]) == {study}
        assert sorted(table.loc[table["kind"] == "full", "full_top1"]) == full
        assert set(table.loc[table["kind"] == "full", "study"].dropna()) == {study}
    everything = pd.read_csv(io.StringIO(run(app, "leaderboard", *options).stdout))
    assert (everything["kind"] == "full").sum() == 3


def test_empty_selections_name_the_options_each_command_has(tmp_path: Path, app, studies) -> None:
    pareto = run(app, "pareto", *studies, "--where", "params_m < 0")
    assert_one_line_error(pareto, r"no rows are selected; widen --where, --study, --dataset or --epochs")
    export = run(app, "export", *studies, "--where", "params_m < 0", "--out", tmp_path / "e")
    assert_one_line_error(export, r"; widen --where or --study, or collect a study first")
    for result in (pareto, export):
        assert "--studies" not in result.stderr


@pytest.mark.usefixtures("one_thread")
def test_the_documented_train_example_learns_on_digits(tmp_path: Path, app, studies) -> None:
    assert run(app, "export", *studies, "--top-k", "1", "--out", tmp_path / "exported").exit_code == 0
    config = sorted((tmp_path / "exported").glob("*.yaml"))[0]
    result = run(app, "train", "--config", config, "--data-dir", "digits", "--epochs", "2", "--device", "cpu",
                 "--output", tmp_path / "run", "--results-dir", tmp_path / "res")
    assert result.exit_code == 0, result.output
    assert re.search(r"note: recipe fitted to the data: batch 1024 -> 16: 16\d\d training images make 1 update",
                     result.stderr), result.stderr
    assert "warm-up 5 of 300 epochs -> 0.0333 of 2 (the recipe's share)" in result.stderr
    recorded = yaml.safe_load((tmp_path / "run" / "result.yaml").read_text())
    assert recorded["settings"]["batch_size"] == 16 and recorded["settings"]["lr"] == pytest.approx(1e-3)
    assert len(recorded["adapted"]) == 2 and yaml.safe_load((tmp_path / "run" / "run.yaml").read_text())["adapted"]
    table = pd.read_csv(io.StringIO(run(app, "leaderboard", "--results-dir", tmp_path / "res", "--no-collect",
                                        "--no-reported", "--format", "csv", "--where", "kind == 'full'").stdout))
    assert table["full_top1"].iloc[0] == recorded["final_top1"] > 20  # chance is 10 %; it stayed there unfitted


def test_train_refuses_numbers_that_cannot_train_in_one_line(tmp_path: Path, app, studies) -> None:
    assert run(app, "export", *studies, "--top-k", "1", "--out", tmp_path / "exported").exit_code == 0
    config = sorted((tmp_path / "exported").glob("*.yaml"))[0]
    for bad, message in ((["--epochs", "0"], r"--epochs 0 must be at least 1"),
                         (["--epochs", "-3"], r"--epochs -3 must be at least 1"),
                         (["--batch-size", "0"], r"--batch-size 0 must be at least 1"),
                         (["--lr", "-0.1"], r"--lr -0.1 must be a positive number"),
                         (["--img-size", "0"], r"--img-size 0 must be at least 1 pixel"),
                         (["--drop-path", "1.5"], r"--drop-path 1.5 must be in \[0, 1\)"),
                         (["--seed", "-1"], r"--seed -1 must be at least 0"),
                         (["--workers", "-2"], r"--workers -2 must be at least 0")):
        result = run(app, "train", "--config", config, "--data-dir", "digits", "--output", tmp_path / "run", *bad)
        assert_one_line_error(result, message)
        assert "epoch 1" not in result.stdout and not (tmp_path / "run").exists()
    before = (tmp_path / "res" / "leaderboard.parquet").read_bytes()
    assert_one_line_error(run(app, "leaderboard", "add", "--config", config, "--top1", "50", "--epochs", "0",
                              "--results-dir", tmp_path / "res"), r"epochs 0 must be at least 1")
    assert_one_line_error(run(app, "leaderboard", "add", "--config", config, "--top1", "50", "--seed", "-1",
                              "--results-dir", tmp_path / "res"), r"seed -1 must be at least 0")
    assert (tmp_path / "res" / "leaderboard.parquet").read_bytes() == before
