"""Every command line of the README and the docs: ``refiner-nas`` lines name real commands, options and
defaults, and run with tiny sizes; ``python -m refiner_nas...`` lines name real modules; every other line
is one of the known set-up commands; every Python example runs as written. So docs and CLI cannot drift
apart."""

from __future__ import annotations

import re
import runpy
import shlex
import subprocess
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer
from documented import ROOT, documented_lines, python_examples
from typer.testing import CliRunner

from refiner_nas.cli import app
from refiner_nas.search.tabular import SHIPPED_TABLE

COMMAND = typer.main.get_command(app)  # Typer's own Click-like groups: duck-typed below
# Lines that need a service this test does not start (a PostgreSQL server, Ray, a GPU) or minutes of
# full-size models: their commands and options are still checked against the CLI.
NOT_RUN = ("postgresql://", "--backend ray", "search resume", "search worker", "bench regress", "bench fold",
           "bench throughput", "bench table build", "bench official", "--device cuda", "torchrun")
# Lines that are not the product's own commands: installing, testing, CI and the docs build run them
# (.ci/run: pip install, pytest, mkdocs build), and optuna-dashboard is Optuna's.
SET_UP = ("pip install", "pytest", "ruff check", "bash .ci/run", "source .ci/postgres", "optuna-dashboard",
          "bash benchmarks/gpu_check.sh", "mkdocs build", "python -m refiner_nas.cli._reference")


def refiner_lines() -> list[str]:
    """The ``refiner-nas`` command lines (from the command on, after ``pip install ... &&`` or ``torchrun``)."""
    return sorted({line[line.index("refiner-nas "):] for _, line in documented_lines() if "refiner-nas " in line})


def command_of(line: str) -> tuple[list[str], Any]:
    words, command = [], COMMAND
    for word in line.split()[1:]:
        if word.startswith("--") and not words:  # a global option such as --debug
            continue
        if word not in getattr(command, "commands", {}):
            break
        words.append(word)
        command = command.commands[word]
    return words, command


def options_of(command: Any) -> dict[str, Any]:
    return {name: param for param in [*command.params, *COMMAND.params]
            for name in [*param.opts, *param.secondary_opts]}


def shown_default(text: str, default: object) -> bool:
    if isinstance(default, Enum):
        default = default.value
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return float(text) == float(default)
    return text == str(default)


def test_every_documented_line_is_a_known_kind() -> None:
    unknown = [(page, line) for page, line in documented_lines()
               if "refiner-nas " not in line and not line.startswith("python -m refiner_nas.")
               and not line.startswith(SET_UP)]
    assert unknown == []


def test_python_module_lines_name_modules_that_take_their_options() -> None:
    shown: dict[str, set[str]] = {}
    for _, line in documented_lines():
        if line.startswith("python -m refiner_nas."):
            shown.setdefault(shlex.split(line)[2], set()).update(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line))
    assert shown
    for module, options in shown.items():
        usage = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
        assert usage.returncode == 0, f"python -m {module} --help: {usage.stderr[-500:]}"
        assert {option for option in options if option not in usage.stdout} == set(), module


@pytest.mark.parametrize("line", refiner_lines())
def test_documented_line_names_real_commands_options_and_defaults(line: str) -> None:
    words, command = command_of(line)
    runs_itself = not hasattr(command, "commands") or command.invoke_without_command
    assert words and runs_itself, f"unknown command: {line}"
    options = options_of(command)
    for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line):
        assert option in options, f"{' '.join(words)} has no {option} (docs: {line})"
    # [--option VALUE] shows the default; [--option a|b] the choices, the default first.
    for option, value in re.findall(r"\[(--[a-z][a-z0-9-]*) ([^\]\s]+)\]", line):
        first = value.split("|")[0]
        default = options[option].default
        if first.isupper() or "..." in first or default is None or "." in first and "/" in first:
            continue
        assert shown_default(first, default), f"the docs show {option} {first}, the CLI default is {default!r}"


def runnable(line: str, files: dict[str, str]) -> list[str]:
    """The line without its optional [...] parts, with placeholders replaced by tiny real values."""
    required = re.sub(r"\[[^\]]*\]", " ", line)
    required = required.replace("--table FILE", f"--table {SHIPPED_TABLE}")
    required = required.replace("journal:///shared/study.log", f"journal://{files['journal']}")
    replacements = {"NAME": files["study"], "exported/NAME.yaml": files["config"], "FILE": files["config"],
                    "DIR": "digits", "ACC": "50", "exported/": files["out"], "plots/": files["plots"],
                    "MODEL|CHECKPOINT|CONFIG...": files["config"], "MODEL...": files["config"],
                    "MODEL|CONFIG.yaml...": files["config"], "table:FILE.parquet": f"table:{SHIPPED_TABLE}",
                    "tiny": files["study"], "K": "2", "MODEL": files["config"], "CONFIG.yaml": files["config"],
                    "FILE.csv": files["csv"]}
    return [replacements.get(word, word) for word in shlex.split(required)[1:]]


def tiny_options(words: list[str], tmp_path: Path, space: Path, line: str) -> list[str]:
    if "--backend table:" in line:  # the table's own space and budget; only the number of trials is ours
        return ["--trials", "2", "--no-progress", "--run-dir", str(tmp_path / "table-runs")]
    extras = {
        ("search", "launch"): ["--space", str(space), "--trials", "2", "--epochs", "1", "--no-progress",
                               "--device", "cpu", "--batch-size", "128"],
        ("search", "status"): [], ("search", "list"): [], ("search", "delete"): ["--yes"], ("search", "plot"): [],
        ("leaderboard",): ["--results-dir", str(tmp_path / "res")],
        ("leaderboard", "add"): ["--results-dir", str(tmp_path / "res"), "--dataset", "digits"],
        ("pareto",): ["--results-dir", str(tmp_path / "res")],
        ("export",): ["--results-dir", str(tmp_path / "res"), "--force"],
        ("train",): ["--epochs", "1", "--device", "cpu", "--batch-size", "256", "--output", str(tmp_path / "train"),
                     "--results-dir", str(tmp_path / "res")],
        ("analyze", "cka"): ["--out", str(tmp_path / "cka"), "--batches", "1", "--batch-size", "4"],
        ("analyze", "attention"): ["--out", str(tmp_path / "attention")],
        ("analyze", "density"): ["--out", str(tmp_path / "density"), "--batches", "1"],
        ("bench", "flops"): [],
        ("bench", "search"): ["--seeds", "2", "--strategies", "random+none", "--out", str(tmp_path / "bench_search")],
        ("bench", "proxies"): ["--out", str(tmp_path / "proxies.csv")],
        ("bench", "kernels"): ["--batch-size", "1", "--img-size", "32", "--iters", "10", "--warmup", "0"],
        ("models",): ["--img-size", "32"],
    }[tuple(words)]
    uses_run_dir = words[0] in ("search", "leaderboard", "pareto", "export") and words != ["leaderboard", "add"]
    return extras + (["--run-dir", str(tmp_path / "runs")] if uses_run_dir else [])


def _prefix(line: str, words: list[str]) -> list[str]:
    """The global options before the command (``refiner-nas --debug search ...``)."""
    before = line.split()[1:line.split().index(words[0])]
    return [word for word in before if word.startswith("--")]


@pytest.mark.slow
def test_every_documented_command_line_runs_with_tiny_sizes(small_space, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # `refiner-nas --debug` sets REFINER_NAS_DEBUG for its worker processes: undone after this test.
    monkeypatch.setenv("REFINER_NAS_DEBUG", "0")
    space = small_space()
    files = {"study": space.stem, "out": str(tmp_path / "exported"), "plots": str(tmp_path / "plots"), "config": "",
             "journal": str(tmp_path / "shared" / "study.log"), "csv": str(tmp_path / "proxies.csv")}
    runner = CliRunner()
    lines = [line for line in refiner_lines() if not any(skip in line for skip in NOT_RUN)]
    # Searching first and deleting last: the other commands need a study and an export.
    order = {"search launch": 0, "export": 1, "search delete": 3}
    lines.sort(key=lambda line: order.get(" ".join(command_of(line)[0]), 2))
    ran = set()
    for line in lines:
        words, _ = command_of(line)
        arguments = runnable(line, files)
        arguments = [a for a in arguments if a not in _prefix(line, words)]
        args = [*_prefix(line, words), *words, *arguments[len(words):], *tiny_options(words, tmp_path, space, line)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"documented line failed: {line}\nran: {args}\n{result.output}"
        if words == ["export"]:
            files["config"] = sorted((tmp_path / "exported").glob("*.yaml"))[0].as_posix()
        ran.add(" ".join(words))
    assert {"search launch", "search status", "search list", "search plot", "search delete", "leaderboard",
            "leaderboard add", "pareto", "export", "train", "analyze cka", "analyze attention", "analyze density",
            "bench flops", "models"} <= ran


@pytest.mark.slow
@pytest.mark.parametrize(("page", "code"), python_examples(), ids=lambda value: str(value)[:40])
def test_every_documented_python_example_runs(page: str, code: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "example.py"
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    setup = [line for page, line in documented_lines() if page == "README.md" and line.startswith("pip install")]
    assert setup == ["pip install -e . && refiner-nas search launch", "pip install -e '.[test]' && pytest"]


def test_the_launch_option_tables_show_real_options_and_their_defaults() -> None:
    """docs/searching.md's option tables: the first value listed is the default."""
    text = (ROOT / "docs" / "searching.md").read_text()
    section = text[text.index("## Launch options"):]
    section = section[:section.index("\n## ", 1)]
    options = options_of(COMMAND.commands["search"].commands["launch"])
    rows = re.findall(r"^\| `(--[a-z-]+)`[^|]*\| `([^`]+)`", section, flags=re.M)
    assert len(rows) >= 15
    for option, first in rows:
        assert option in options, option
        if not first.isupper() and not first.endswith(".yaml"):
            assert shown_default(first, options[option].default), f"{option}: docs {first}"
