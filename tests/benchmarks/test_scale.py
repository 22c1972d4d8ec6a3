"""The scale benchmark's fault run, short: real worker processes on one study, kill -9 of a worker (and a
PostgreSQL restart), then the final study is checked trial by trial against the table."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import pytest
from documented import documented_lines

from refiner_nas.benchmarks.scale import Ledger, ScalePlan, fault_schedule, main, parse_arguments, run_scale

POSTGRES_URL = os.environ.get("REFINER_NAS_POSTGRES_URL")
PGDATA = os.environ.get("REFINER_NAS_PGDATA")


def assert_nothing_lost(result, plan: ScalePlan) -> None:
    assert result.left_unfinished == 0, result.states
    assert result.fail_without_reason == 0
    # --trials is reached; workers deciding at the same moment may each add one (docs/searching.md).
    assert plan.trials <= result.evaluated < plan.trials + plan.workers
    assert result.killed == len([e for e in fault_schedule(plan) if e.action == "kill"])
    # A killed worker's trial is failed as orphaned (unless it ended between the choice and the kill).
    assert result.orphaned_trials <= result.killed
    assert result.orphaned_not_finished == 0
    assert result.values_differing_from_table == 0
    assert result.front_matches
    assert result.distinct / result.trials > 0.9
    assert len(result.iterations.wall) > plan.trials / 2


@pytest.mark.slow
def test_journal_fault_run_loses_nothing(tmp_path: Path) -> None:
    plan = ScalePlan(storage=None, run_dir=tmp_path, workers=4, trials=150, faults=True, seed=1)
    result = run_scale(plan)
    assert_nothing_lost(result, plan)
    assert result.orphaned_trials >= 1
    assert set(result.states) <= {"COMPLETE", "PRUNED", "FAIL"}


@pytest.mark.slow
@pytest.mark.skipif(POSTGRES_URL is None or PGDATA is None,
                    reason="needs the server of .ci/postgres (REFINER_NAS_POSTGRES_URL, REFINER_NAS_PGDATA)")
def test_postgresql_fault_run_with_a_server_restart_loses_nothing(tmp_path: Path) -> None:
    plan = ScalePlan(storage=POSTGRES_URL, run_dir=tmp_path, workers=4, trials=100, faults=True, pgdata=PGDATA,
                     seed=2)
    assert [e.action for e in fault_schedule(plan)] == ["kill", "restart-postgres"]
    result = run_scale(plan)
    assert_nothing_lost(result, plan)


def test_ten_percent_of_the_workers_are_killed_and_postgresql_restarts_only_when_it_can() -> None:
    plan = ScalePlan(storage=None, run_dir=Path("."), workers=64, trials=400, faults=True)
    kills = fault_schedule(plan)
    assert [e.action for e in kills] == ["kill"] * 7
    assert 0.2 * 400 <= kills[0].at_trials < kills[-1].at_trials <= 0.7 * 400
    with_server = ScalePlan(storage="postgresql://u:p@127.0.0.1:5/db", run_dir=Path("."), workers=4, trials=100,
                            faults=True, pgdata="/data")
    assert sorted(e.action for e in fault_schedule(with_server)) == ["kill", "restart-postgres"]
    assert fault_schedule(ScalePlan(storage=None, run_dir=Path("."), workers=4, trials=100)) == []


def test_the_ledger_charges_nested_time_once() -> None:
    ledger = Ledger()
    started = time.perf_counter()
    with ledger.charge("sampler"):
        time.sleep(0.05)
        with ledger.charge("storage"):
            time.sleep(0.1)
    elapsed = time.perf_counter() - started
    assert ledger.totals["storage"] >= 0.1 and ledger.totals["sampler"] >= 0.05
    # Exclusive: the sampler's total leaves out the storage time nested in it, and nothing counts twice.
    assert ledger.totals["sampler"] + ledger.totals["storage"] == pytest.approx(elapsed, abs=0.005)


def documented_scale_lines() -> list[list[str]]:
    return [shlex.split(line)[3:] for _, line in documented_lines()
            if line.startswith("python -m refiner_nas.benchmarks.scale")]


@pytest.mark.slow
def test_the_documented_scale_lines_run_with_tiny_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    lines = documented_scale_lines()
    assert len(lines) >= 3
    for arguments in lines:
        parse_arguments(arguments)  # every option the docs show exists
        if any(a.startswith("postgresql://") for a in arguments):
            continue  # needs that server: the PostgreSQL fault run above covers the storage
        main([*arguments, "--workers", "2", "--trials", "8", *(["--prefill", "0", "20"] if "--prefill" in arguments
                                                               else [])])
        rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| journal")]
        assert rows and all(row.split(" | ")[12] == "0" for row in rows), rows  # no trial left running
        assert all(row.rstrip(" |").endswith("yes") for row in rows), rows
