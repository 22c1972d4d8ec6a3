from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refiner_nas.cli import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "models" in result.output


@pytest.mark.slow
def test_models_lists_every_registered_model_with_params_and_macs() -> None:
    from refiner_nas.refiner_space import NAMED_CONFIGS, named_config
    from refiner_nas.refiner_space.costs import count_costs

    result = runner.invoke(app, ["models", "--json", "--img-size", "64"])
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json.loads(result.output)}
    assert set(rows) == set(NAMED_CONFIGS)
    costs = count_costs(named_config("refined_vit_s", img_size=64))
    assert rows["refined_vit_s"]["params_m"] == round(costs.params / 1e6, 2)
    assert rows["refined_vit_s"]["macs_g"] == round(costs.macs / 1e9, 2)
    # Counted once, on disk: a second command reads them; its table is complete although not on a terminal.
    from refiner_nas.refiner_space.costs import user_cache_file

    cached = user_cache_file().read_text().splitlines()
    assert sum(":64x64:" in line for line in cached) >= len(NAMED_CONFIGS)
    table = runner.invoke(app, ["models", "--img-size", "64"])
    assert table.exit_code == 0 and "…" not in table.output
    for row in rows.values():
        assert any(row["model"] in line and f"{row['params_m']}" in line for line in table.output.splitlines())


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"refiner-nas {version('refiner-nas')}\n"


def test_bad_option_gives_one_error_line() -> None:
    result = runner.invoke(app, ["models", "--img-size", "100"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: img_size=100 is not a multiple of patch_size=16; choose an image size divisible by the patch size"
    ]


def test_debug_shows_the_traceback_behind_the_one_line_error(tmp_path, monkeypatch) -> None:
    """A real process each time: without ``--debug`` one ``error:`` line and exit 2; with it (or
    ``REFINER_NAS_DEBUG=1``) the exception's traceback, naming the library function that raised."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "refiner_nas", "search", "status", "--study", "nope", "--run-dir", str(tmp_path)]
    monkeypatch.delenv("REFINER_NAS_DEBUG", raising=False)
    plain = subprocess.run(command, capture_output=True, text=True)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines() == [
        f"error: --study 'nope': no such study under {tmp_path} (studies there: none); "
        "check --study, --storage and --run-dir"]
    debug = subprocess.run([*command[:3], "--debug", *command[3:]], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "require_study_storage" in debug.stderr and debug.stderr.strip().splitlines()[-1].startswith("KeyError")
    monkeypatch.setenv("REFINER_NAS_DEBUG", "1")
    assert "Traceback" in subprocess.run(command, capture_output=True, text=True).stderr


# The installed console script, a real process each time: what a user at a shell sees.
CONSOLE_SCRIPT = str(Path(sys.executable).with_name("refiner-nas"))
USAGE_MISTAKES = [
    (["search", "launch", "--trials", "abc"],
     r"--trials 'abc': .*valid integer.*; see 'refiner-nas search launch --help'"),
    (["search", "launch", "--lr=fast"], r"--lr 'fast': .*valid number.*; see 'refiner-nas search launch --help'"),
    (["search", "launch", "--trails", "3"],
     r"refiner-nas search launch: unknown option --trails \(did you mean --trials\?\); see 'refiner-nas search "
     r"launch --help'"),
    (["search", "status", "--study"], r"--study: Option '--study' requires an argument; see 'refiner-nas search "
                                      r"status --help'"),
    (["search", "nope"], r"refiner-nas search: No such command 'nope'.*; see 'refiner-nas search --help'"),
    (["train"], r"refiner-nas train: Missing option '--config'; see 'refiner-nas train --help'"),
    (["bench", "flops"], r"refiner-nas bench flops: Missing argument 'MODEL\|CONFIG.yaml...'; see 'refiner-nas bench "
                         r"flops --help'"),
    (["bench", "throughput", "--amp", "fp8"], r"--amp 'fp8': 'fp8' is not one of 'off', 'bf16', 'fp16'; see "
                                              r"'refiner-nas bench throughput --help'"),
    (["models", "--img-size", "1.5"], r"--img-size '1.5': .*valid integer.*; see 'refiner-nas models --help'"),
    (["leaderboard", "--bogus"], r"refiner-nas leaderboard: unknown option --bogus.*; see 'refiner-nas leaderboard "
                                 r"--help'"),
    (["pareto", "--study"], r"--study: Option '--study' requires an argument; see 'refiner-nas pareto --help'"),
    (["search", "launch", "--no-progress", "3"], r"refiner-nas search launch: Got unexpected extra argument\(s\) "
                                                 r"\(3\); see 'refiner-nas search launch --help'"),
]


@pytest.mark.parametrize(("args", "pattern"), USAGE_MISTAKES, ids=[" ".join(a) for a, _ in USAGE_MISTAKES])
def test_a_usage_mistake_is_one_error_line_naming_the_option_and_the_fix(args: list[str], pattern: str) -> None:
    done = subprocess.run([CONSOLE_SCRIPT, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert re.fullmatch(pattern, lines[0].removeprefix("error: ")), lines[0]


def test_a_group_without_a_command_still_prints_its_help() -> None:
    done = subprocess.run([CONSOLE_SCRIPT, "bench"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Usage: refiner-nas bench" in done.stdout + done.stderr and "error:" not in done.stderr


# The entry point as the console script runs it, after telling the test (one byte on a pipe) that Python's
# own start-up (site, before any project code) is over: the delays count from the first project import.
_ENTRY = "import os, sys; os.write(int(sys.argv.pop(1)), b'!'); from refiner_nas.cli import main; main()"


def _interrupted_launch(run_dir: Path, delay: float, *, command: list[str] | None = None
                        ) -> subprocess.CompletedProcess[str]:
    ready, started = os.pipe()
    launch = ["search", "launch", "--study", "early", "--run-dir", str(run_dir), "--trials", "1", "--epochs", "1",
              "--no-progress"]
    process = subprocess.Popen(
        command or [sys.executable, "-c", _ENTRY, str(started), *launch], pass_fds=(started,),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A background process of a non-interactive shell starts with SIGINT ignored; a terminal's does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(started)
    if command is None:
        assert os.read(ready, 1) == b"!"
    os.close(ready)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5, 1.0, 2.0])
def test_ctrl_c_while_the_command_line_loads_is_one_line_and_exit_130(tmp_path: Path, delay: float) -> None:
    done = _interrupted_launch(tmp_path / "runs", delay)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: interrupted"), done.stderr


def test_ctrl_c_to_the_installed_console_script_is_one_line_and_exit_130(tmp_path: Path) -> None:
    done = _interrupted_launch(tmp_path / "runs", 0.5, command=[CONSOLE_SCRIPT, "search", "launch", "--study", "early",
                                                                "--run-dir", str(tmp_path / "runs"), "--no-progress"])
    assert done.returncode == 130 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: interrupted"), done.stderr


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


@pytest.mark.parametrize(("args", "expected"), [
    (["train", "--config", "{png}", "--data-dir", "digits"], "an export file or a ModelConfig YAML"),
    (["search", "launch", "--space", "{png}"], "a YAML search space"),
    (["search", "launch", "--dry-run", "--space", "{png}"], "a YAML search space"),
    (["bench", "flops", "{png}"], "a YAML model configuration"),
], ids=["train --config", "search launch --space", "search launch --dry-run", "bench flops"])
def test_a_binary_file_is_named_with_what_was_expected(tmp_path: Path, args: list[str], expected: str) -> None:
    png = tmp_path / "figure.yaml"  # a PNG renamed: the suffix does not make it text
    png.write_bytes(PNG)
    result = runner.invoke(app, [arg.format(png=png) for arg in args])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"error: {png}: not a text (UTF-8) file: byte 0 is 0x89; give {expected}"]
