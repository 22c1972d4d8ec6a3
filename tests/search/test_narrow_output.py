"""The search commands at 80 columns, run as a user runs them (a real CLI process): in a terminal the live
display and the tables wrap instead of cutting values to ``…``; piped to a file, one plain line per trial."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from optuna.trial import TrialState

from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.study import load_existing_study

REPOSITORY = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def launch_command(space: Path, runs: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "refiner_nas", "search", "launch", "--space", str(space), "--study", "narrow",
            "--run-dir", str(runs), "--trials", "3", "--epochs", "2", "--warmup-epochs", "0", "--sampler", "random",
            "--device", "cpu", *extra]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": "1", "COLUMNS": "80"}


def in_terminal(command: list[str], columns: int = 80) -> str:
    """Run ``command`` on a pseudo-terminal ``columns`` wide; its output without escape sequences."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(command, env=environment(), stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


@pytest.mark.slow
def test_piped_output_has_one_line_per_finished_trial_and_no_cut_value(tmp_path: Path, small_space) -> None:
    runs = tmp_path / "runs"
    result = subprocess.run(launch_command(small_space(), runs), env=environment(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    study = load_existing_study(SearchSettings(study="narrow", run_dir=runs))
    finished = [t for t in study.get_trials() if t.state not in (TrialState.RUNNING, TrialState.WAITING)]
    lines = [line for line in result.stdout.splitlines() if line.startswith("trial ")]
    assert [int(line.split()[1]) for line in lines] == [t.number for t in finished]
    for line, trial in zip(lines, finished, strict=True):
        assert line.startswith(f"trial {trial.number} {trial.state.name.lower()} (")
        epochs = trial.user_attrs["epochs_run"]
        assert re.search(rf"; {epochs} epochs in \d\d:\d\d$", line), line
        if trial.state == TrialState.COMPLETE:
            top1, params = trial.values
            assert f"top1 {top1:.4g}, params {params:.4g};" in line
    table = result.stdout[result.stdout.index("Pareto front ("):]
    assert "top1 (%)" in table and "params (M)" in table and "architecture" in table


@pytest.mark.slow
def test_a_terminal_80_columns_wide_shows_every_value_whole(tmp_path: Path, small_space) -> None:
    runs = tmp_path / "runs"
    space = small_space()
    launched = in_terminal(launch_command(space, runs))
    status = in_terminal([sys.executable, "-m", "refiner_nas", "search", "status", "--study", "narrow",
                          "--run-dir", str(runs)])
    listed = in_terminal([sys.executable, "-m", "refiner_nas", "search", "list", "--run-dir", str(runs)])
    for text in (launched, status, listed):
        assert "…" not in text
        # The display's and the tables' lines fit (plain text lines are left to the terminal to wrap).
        drawn = [line for line in re.split(r"[\r\n]", text) if line.startswith("trials ") or set(line) & set("┃│━")]
        assert drawn and max(len(line) for line in drawn) <= 80
    assert re.search(r"trials 3/3 .* \d:\d\d:\d\d ETA 00:00", launched)  # the bar's line, whole
    assert "top1 (%)" in status
    # The display's last count and the summary's count the same front, duplicates once.
    shown = re.findall(r"Pareto front: (\d+) trials", launched)
    assert shown and shown[-1] == re.search(r"; Pareto front: (\d+) trials", status).group(1)
    study = load_existing_study(SearchSettings(study="narrow", run_dir=runs))
    for trial in study.best_trials:  # every value of the front's table, unbroken
        assert f"{trial.values[0]:.4g}" in status and f"{trial.values[1]:.4g}" in status
