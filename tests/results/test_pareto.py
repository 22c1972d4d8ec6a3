"""Pareto fronts and hypervolume against brute force, and fronts over leaderboard rows across studies."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from refiner_nas.results.collect import collect
from refiner_nas.results.leaderboard import EmptyResultError, select_rows, with_reported
from refiner_nas.results.pareto import (
    FrontObjective,
    ObjectiveError,
    leaderboard_front,
    parse_front_objectives,
    parse_reference,
)
from refiner_nas.results.plots import draw_html, draw_png, front_plot_data
from refiner_nas.search.pareto import hypervolume, non_dominated_mask, nondominated_ranks


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True)))


def brute_front(points: np.ndarray) -> np.ndarray:
    return np.array([not any(dominates(q, p) for q in points) for p in points], dtype=bool)


@pytest.mark.parametrize("dims", [1, 2, 3, 4])
def test_the_front_matches_brute_force_with_ties_and_duplicates(dims: int) -> None:
    rng = np.random.default_rng(dims)
    for _ in range(60):
        count = int(rng.integers(1, 40))
        points = rng.integers(0, 5, size=(count, dims)).astype(float)  # few values: many ties and duplicates
        if count > 2:
            points[-1] = points[0]  # an exact duplicate of a point in every draw
        mask = non_dominated_mask(points)
        np.testing.assert_array_equal(mask, brute_front(points))
        if count > 2:
            assert mask[0] == mask[-1]  # duplicates share their fate


def test_fronts_peel_into_ranks() -> None:
    rng = np.random.default_rng(7)
    points = rng.integers(0, 6, size=(50, 3)).astype(float)
    ranks = nondominated_ranks(points)
    assert set(ranks) == set(range(ranks.max() + 1))
    for rank in range(ranks.max() + 1):
        layer = points[ranks == rank]
        assert not any(dominates(q, p) for p in layer for q in points[ranks >= rank])
        if rank:
            assert all(any(dominates(q, p) for q in points[ranks == rank - 1]) for p in layer)


@pytest.mark.parametrize("dims", [1, 2, 3, 4])
def test_hypervolume_matches_counting_unit_cells(dims: int) -> None:
    rng = np.random.default_rng(10 + dims)
    reference = np.full(dims, 6.0)
    for _ in range(25):
        points = rng.integers(0, 8, size=(int(rng.integers(1, 12)), dims)).astype(float)  # some beyond the reference
        cells = sum(
            any(np.all(points <= corner, axis=1))
            for corner in itertools.product(range(6), repeat=dims)
        )
        assert hypervolume(points, reference) == pytest.approx(cells, abs=1e-9)
    assert hypervolume(np.empty((0, dims)), reference) == 0.0


def test_objectives_name_columns_with_aliases_and_default_directions() -> None:
    parsed = parse_front_objectives("top1, params:min, macs:max, full_top1")
    assert parsed == [FrontObjective("top1", "max"), FrontObjective("params_m", "min"),
                      FrontObjective("macs_g", "max"), FrontObjective("full_top1", "max")]
    assert parse_reference("top1=0, params=50", parsed[:2]) == {"top1": 0.0, "params_m": 50.0}
    for bad, message in [("speed:max", "is not a recorded numeric column"), ("top1:up", "is not max or min"),
                         ("top1,top1", "given twice"), ("model", "is not a recorded numeric column"),
                         ("", "no objective")]:
        with pytest.raises(ObjectiveError, match=message):
            parse_front_objectives(bad)
    with pytest.raises(ObjectiveError, match="lacks params_m"):
        parse_reference("top1=0", parsed[:2])
    with pytest.raises(ObjectiveError, match="is not a number"):
        parse_reference("top1=zero,params=1", parsed[:2])


@pytest.fixture
def two_studies(tmp_path: Path, make_study, tiny_config) -> pd.DataFrame:
    """Study a: a front of two, a dominated trial, a duplicate, an infeasible and a pruned one;
    study b: one more front member and one tie with a's best."""
    small, mid, big = tiny_config(embed_dim=8), tiny_config(embed_dim=16), tiny_config(embed_dim=32)
    make_study("a", [
        (small, 60.0, {}),
        (mid, 80.0, {}),
        (tiny_config(embed_dim=16, depth=2), 70.0, {}),  # more params than mid, lower top-1: dominated
        (mid, 80.0, {"status": "duplicate", "duplicate_of": 1}),
        (tiny_config(embed_dim=64), 0.0, {"status": "over_budget", "constraints": {"max_params": 1.0},
                                          "state": TrialState.PRUNED}),
        (tiny_config(depth=4), None, {"status": "pruned", "state": TrialState.PRUNED}),
    ])
    make_study("b", [(big, 90.0, {}), (mid, 80.0, {})])
    return collect(run_dir=tmp_path / "runs", results_dir=tmp_path / "res").frame


def test_a_front_spans_studies_and_counts_ties_but_not_duplicates(two_studies: pd.DataFrame) -> None:
    objectives = parse_front_objectives("top1:max,params:min")
    result = leaderboard_front(select_rows(two_studies), objectives)
    front = result.front
    assert list(front["top1"]) == [90.0, 80.0, 80.0, 60.0]  # best first
    assert sorted(zip(front["study"], front["trial"], strict=True)) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert len(result.candidates) == 5 and result.left_out == 3  # duplicate, over budget, pruned
    dominated = result.candidates.set_index(["study", "trial"]).loc[("a", 2)]
    assert not dominated["on_front"] and dominated["pareto_rank"] == 1
    points = np.column_stack([-front["top1"], front["params_m"]])
    worst_params = result.candidates["params_m"].max() * 1.1  # accuracy 0 and 110% of the worst cost
    assert result.reference == {"top1": 0.0, "params_m": pytest.approx(worst_params)}
    assert result.hypervolume == pytest.approx(hypervolume(points, np.array([0.0, worst_params])))
    assert result.hypervolume > 0 and result.budgets == 1
    alone = leaderboard_front(select_rows(two_studies, studies=["b"], where="top1 == 90"), objectives)
    params = float(alone.front["params_m"].iloc[0])
    assert alone.hypervolume == pytest.approx(90.0 * params * 0.1)  # one candidate still encloses a volume

    only_a = leaderboard_front(select_rows(two_studies, studies=["a"]), objectives,
                               reference={"top1": 0, "params_m": 1})
    assert list(only_a.front["top1"]) == [80.0, 60.0]
    mid, small = only_a.front["params_m"]
    expected = 80 * (1 - mid) + 60 * (mid - small)  # two rectangles up to top1=0, params=1
    assert only_a.hypervolume == pytest.approx(expected)
    cheap = leaderboard_front(select_rows(two_studies, where="params_m < 0.01"), parse_front_objectives("top1"))
    assert set(cheap.front["params_m"] < 0.01) == {True} and len(cheap.front) >= 1


def test_unrecorded_objectives_and_empty_selections_are_errors(two_studies: pd.DataFrame) -> None:
    unrecorded = "objective 'latency_ms' is not recorded for any selected row; recorded: top1"
    with pytest.raises(ObjectiveError, match=unrecorded):
        leaderboard_front(select_rows(two_studies), parse_front_objectives("top1,latency"))
    with pytest.raises(EmptyResultError, match="no rows are selected"):
        leaderboard_front(select_rows(two_studies, where="top1 > 95"), parse_front_objectives("top1,params"))
    with pytest.raises(EmptyResultError, match="no selected row has top1, params_m and is a complete, feasible"):
        leaderboard_front(select_rows(two_studies, where="status == 'over_budget'"),
                          parse_front_objectives("top1,params"))


def test_published_models_can_compete_on_published_columns(two_studies: pd.DataFrame) -> None:
    frame = select_rows(with_reported(two_studies), kinds=("reported",))
    result = leaderboard_front(frame, parse_front_objectives("full_top1:max,params:min"))
    names = set(result.front["model"])
    assert {"Refined-ViT-L-448", "LocalViT-PVT"} <= names and "ViT-L/16" not in names


def test_plots_show_the_front_and_table7(tmp_path: Path, two_studies: pd.DataFrame) -> None:
    result = leaderboard_front(select_rows(two_studies), parse_front_objectives("top1:max,params:min"))
    data = front_plot_data(result)
    assert (data.x, data.y, data.reported_axis, data.x_log) == ("params_m", "top1", "secondary", True)
    assert list(data.front["x"]) == sorted(data.front["x"]) and len(data.points) == len(result.candidates)
    assert len(data.reported) == 36 and "Refined-ViT-S" in set(data.reported["label"])
    assert draw_png(data, tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = draw_html(data, tmp_path / "front.html").read_text()
    assert "plotly" in page and "Refined-ViT-S" in page and "Pareto front" in page and "yaxis2" in page
    by_macs = front_plot_data(result, x="macs_g", reported=False)
    assert by_macs.x == "macs_g" and by_macs.reported.empty and not by_macs.x_log
    with pytest.raises(ValueError, match="cannot plot 'latency_ms' on the x axis"):
        front_plot_data(result, x="latency_ms")
