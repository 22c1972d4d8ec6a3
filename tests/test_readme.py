"""Every ``refiner-nas`` command line of the README exists with the options it shows and their defaults,
and runs (with tiny sizes), so README and CLI cannot drift apart."""

from __future__ import annotations

import re
import shlex
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from refiner_nas.cli import app
from refiner_nas.search.tabular import SHIPPED_TABLE

README = Path(__file__).resolve().parents[1] / "README.md"
ROOT = typer.main.get_command(app)  # Typer's own Click-like groups: duck-typed below
# Lines that need a service this test does not start (a PostgreSQL server, Ray) or minutes of full-size
# models: their commands and options are still checked against the CLI.
NOT_RUN = ("postgresql://", "--backend ray", "search resume", "search worker", "bench regress", "bench fold",
           "bench throughput", "bench table build", "bench official")


def readme_lines() -> list[str]:
    """The README's ``refiner-nas`` lines in bash blocks, continuation lines joined, comments dropped."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for raw in block.splitlines():
            line = raw.split("  #")[0].rstrip()
            if raw.startswith(" ") and lines:
                lines[-1] += " " + line.strip()
            elif "refiner-nas " in line and not line.startswith("#"):
                lines.append(line[line.index("refiner-nas "):])
    return lines


def command_of(line: str) -> tuple[list[str], Any]:
    words, command = [], ROOT
    for word in line.split()[1:]:
        if word not in getattr(command, "commands", {}):
            break
        words.append(word)
        command = command.commands[word]
    return words, command


def options_of(command: Any) -> dict[str, Any]:
    return {name: param for param in command.params for name in [*param.opts, *param.secondary_opts]}


def shown_default(text: str, default: object) -> bool:
    if isinstance(default, Enum):
        default = default.value
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return float(text) == float(default)
    return text == str(default)


@pytest.mark.parametrize("line", readme_lines())
def test_readme_line_names_real_commands_options_and_defaults(line: str) -> None:
    words, command = command_of(line)
    runs_itself = not hasattr(command, "commands") or command.invoke_without_command
    assert words and runs_itself, f"unknown command: {line}"
    options = options_of(command)
    for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line):
        assert option in options, f"{' '.join(words)} has no {option} (README: {line})"
    # [--option VALUE] shows the default; [--option a|b] the choices, the default first.
    for option, value in re.findall(r"\[(--[a-z][a-z0-9-]*) ([^\]\s]+)\]", line):
        first = value.split("|")[0]
        default = options[option].default
        if first.isupper() or "..." in first or default is None or "." in first and "/" in first:
            continue
        assert shown_default(first, default), f"README shows {option} {first}, the CLI default is {default!r}"


def runnable(line: str, files: dict[str, str]) -> list[str]:
    """The line without its optional [...] parts, with placeholders replaced by tiny real values."""
    required = re.sub(r"\[[^\]]*\]", " ", line)
    replacements = {"NAME": files["study"], "exported/NAME.yaml": files["config"], "FILE": files["config"],
                    "DIR": "digits", "ACC": "50", "exported/": files["out"], "plots/": files["plots"],
                    "MODEL|CHECKPOINT|CONFIG...": files["config"], "MODEL...": files["config"],
                    "MODEL|CONFIG.yaml...": files["config"], "table:FILE.parquet": f"table:{SHIPPED_TABLE}"}
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
    }[tuple(words)]
    uses_run_dir = words[0] in ("search", "leaderboard", "pareto", "export") and words != ["leaderboard", "add"]
    return extras + (["--run-dir", str(tmp_path / "runs")] if uses_run_dir else [])


@pytest.mark.slow
def test_every_readme_command_line_runs_with_tiny_sizes(small_space, tmp_path: Path) -> None:
    space = small_space()
    files = {"study": space.stem, "out": str(tmp_path / "exported"), "plots": str(tmp_path / "plots"), "config": ""}
    runner = CliRunner()
    lines = [line for line in readme_lines() if not any(skip in line for skip in NOT_RUN)]
    # Searching first and deleting last: the other commands need a study and an export.
    order = {"search launch": 0, "export": 1, "search delete": 3}
    lines.sort(key=lambda line: order.get(" ".join(command_of(line)[0]), 2))
    ran = set()
    for line in lines:
        words, _ = command_of(line)
        args = [*words, *runnable(line, files)[len(words):], *tiny_options(words, tmp_path, space, line)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"README line failed: {line}\nran: {args}\n{result.output}"
        if words == ["export"]:
            files["config"] = sorted((tmp_path / "exported").glob("*.yaml"))[0].as_posix()
        ran.add(" ".join(words))
    assert {"search launch", "search status", "search list", "search plot", "search delete", "leaderboard",
            "leaderboard add", "pareto", "export", "train", "analyze cka", "analyze attention", "analyze density",
            "bench flops"} <= ran


@pytest.mark.slow
def test_the_readme_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pattern = r"```python\n(from pathlib import Path\nfrom search import api\n.*?)```"
    (example,) = re.findall(pattern, README.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert len(namespace["paths"]) == 1 and namespace["paths"][0].is_file()
    assert namespace["front"].hypervolume > 0 and (tmp_path / "runs" / "tiny" / "journal.log").is_file()
