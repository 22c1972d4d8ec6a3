"""The stored leaderboard under concurrent writers: real processes collecting into one results directory."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from refiner_nas.results.store import load_leaderboard

# Each process says it is ready, waits for the go file, then collects its studies one by one: every
# collection is a read-modify-write of the same Parquet file, so without a lock they overwrite each other.
_COLLECTOR = """
import sys, time
from pathlib import Path
from refiner_nas.results.collect import collect
run_dir, results_dir, ready, go = map(Path, sys.argv[1:5])
ready.touch()
while not go.exists():
    time.sleep(0.002)
for name in sys.argv[5:]:
    collect(studies=[name], run_dir=run_dir, results_dir=results_dir)
"""


@pytest.mark.slow
def test_two_processes_collecting_at_once_lose_no_row(tmp_path: Path, make_study, tiny_config) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    groups = {side: [f"{side}{i}" for i in range(12)] for side in ("a", "b")}
    for names in groups.values():
        for number, name in enumerate(names):
            make_study(name, [(tiny_config(embed_dim=8 * (1 + number % 3)), 50.0 + number, {}),
                              (tiny_config(depth=2), 60.0 + number, {})])
    go = tmp_path / "go"
    processes = [
        subprocess.Popen([sys.executable, "-c", _COLLECTOR, str(tmp_path / "runs"), str(tmp_path / "res"),
                          str(tmp_path / f"ready-{side}"), str(go), *names])
        for side, names in groups.items()
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{side}").exists() for side in groups) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    assert [process.wait(timeout=120) for process in processes] == [0, 0]
    stored = load_leaderboard(tmp_path / "res")
    expected = {(name, trial) for names in groups.values() for name in names for trial in (0, 1)}
    assert set(zip(stored["study"], stored["trial"], strict=True)) == expected
    assert len(stored) == len(expected) == 48
