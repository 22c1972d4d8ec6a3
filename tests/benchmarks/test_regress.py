"""Regression baselines: the committed files, exact count comparison, speed tolerance, update."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refiner_nas.benchmarks.regress import (
    COSTS_SCHEMA,
    SCHEMA_VERSION,
    SPEED_SCHEMA,
    baseline_dir,
    compare_costs,
    compare_speed,
    read_baseline,
    regress,
)
from refiner_nas.refiner_space import NAMED_CONFIGS, named_config
from refiner_nas.refiner_space.costs.speed import SpeedSettings, reference_for

ENTRY = {"config_hash": "abc", "params": 10, "macs": 100, "elementwise_flops": 5, "fvcore_flops": 101}


def test_counts_must_match_exactly() -> None:
    assert all(check.ok for check in compare_costs({"m": ENTRY}, {"m": dict(ENTRY)}))
    failures = [c for c in compare_costs({"m": ENTRY}, {"m": {**ENTRY, "macs": 101}}) if not c.ok]
    assert [(c.model, c.quantity, c.baseline, c.current) for c in failures] == [("m", "macs", 100, 101)]
    changed = compare_costs({"m": ENTRY}, {"m": {**ENTRY, "config_hash": "def"}})
    assert all(c.note == "configuration changed" for c in changed)


def test_models_on_one_side_only_fail() -> None:
    checks = compare_costs({"gone": ENTRY}, {"new": ENTRY})
    assert {(c.model, c.ok) for c in checks} == {("gone", False), ("new", False)}
    assert "not in the baseline" in next(c.note for c in checks if c.model == "new")


def _ratio(median: float) -> dict[str, object]:
    return {"reference_hash": "r", "ratio": {"median": median, "q1": median, "q3": median, "iqr": 0.0}}


@pytest.mark.parametrize(("now", "ok"), [(0.5, True), (0.58, True), (0.42, True), (0.3, False), (0.7, False)])
def test_speed_ratios_hold_within_the_tolerance_on_either_side(now: float, ok: bool) -> None:
    (check,) = compare_speed({"m": _ratio(0.5)}, {"m": _ratio(now)}, tolerance=0.2)
    assert check.ok is ok


def test_update_then_compare_then_detect_a_change(tmp_path: Path) -> None:
    report = regress(directory=tmp_path, models=["vit_16b_384"], update=True, speed=False)
    assert report.written == (tmp_path / "costs.json",) and not report.checks
    data = read_baseline(tmp_path / "costs.json", COSTS_SCHEMA)
    assert data["schema_version"] == SCHEMA_VERSION and data["img_size"] == 224
    assert {"python", "cpu", "packages", "git_commit"} <= set(data["environment"])
    assert regress(directory=tmp_path, models=["vit_16b_384"], speed=False).ok

    data["models"]["vit_16b_384"]["macs"] += 1
    (tmp_path / "costs.json").write_text(json.dumps(data))
    report = regress(directory=tmp_path, models=["vit_16b_384"], speed=False)
    assert [(c.model, c.quantity) for c in report.failures] == [("vit_16b_384", "macs")]


def test_speed_baseline_round_trip_with_tiny_settings(tmp_path: Path) -> None:
    settings = SpeedSettings(batch_size=1, img_size=32, warmup=1, threads=1, modes=("inference",))
    models = ["vit_16b_384", "vit_16b_384_cb"]
    report = regress(directory=tmp_path, models=models, update=True, speed_settings=settings, tolerance=10.0)
    assert report.written == (tmp_path / "costs.json", tmp_path / "speed.json")
    data = read_baseline(tmp_path / "speed.json", SPEED_SCHEMA)
    assert list(data["models"]) == ["vit_16b_384_cb"]  # vit_16b_384 is its own reference
    assert data["models"]["vit_16b_384_cb"]["reference"] == "vit_16b_384"
    assert data["settings"]["img_size"] == 32 and data["relative_tolerance"] == 10.0
    assert regress(directory=tmp_path, models=models).ok


def test_unreadable_baselines_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--update"):
        regress(directory=tmp_path, speed=False)
    (tmp_path / "costs.json").write_text('{"schema": "refiner-nas/costs-baseline", "schema_version": 0}')
    with pytest.raises(ValueError, match="schema_version 0"):
        regress(directory=tmp_path, speed=False)
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        regress(directory=tmp_path, models=["nope"])


def test_the_committed_baselines_cover_every_registered_model() -> None:
    costs = read_baseline(baseline_dir() / "costs.json", COSTS_SCHEMA)
    assert list(costs["models"]) == list(NAMED_CONFIGS)
    speed = read_baseline(baseline_dir() / "speed.json", SPEED_SCHEMA)
    compared = [n for n in NAMED_CONFIGS if reference_for(named_config(n))[1] != named_config(n)]
    assert list(speed["models"]) == compared
    assert {"cpu", "cpu_count", "packages"} <= set(speed["environment"])
    assert speed["settings"]["iters"] >= 10


@pytest.mark.slow
def test_every_registered_model_matches_the_committed_cost_baseline() -> None:
    report = regress(speed=False)
    assert report.ok, "\n".join(
        f"{c.model} {c.quantity}: {c.baseline} -> {c.current} {c.note}" for c in report.failures
    )
