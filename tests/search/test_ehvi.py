"""The known-cost EHVI sampler: its improvement formula against brute force, and its searches."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from refiner_nas.benchmarks.simulate import Strategy, simulate_search
from refiner_nas.search.objectives import parse_objectives
from refiner_nas.search.pareto import hypervolume, hypervolume_improvements
from refiner_nas.search.records import TrialRecord
from refiner_nas.search.runner import launch
from refiner_nas.search.samplers._ehvi import KnownCostSampler, _features, _posterior
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import ENUMERATE_LIMIT, Budget, SearchSpace, design_levels, design_size
from refiner_nas.search.tabular import read_table, simulated_launch_settings, write_table


@pytest.mark.parametrize("dims", [2, 3])
def test_improvements_equal_brute_force_hypervolume_differences(dims):
    rng = np.random.default_rng(dims)
    for _ in range(100):
        front = rng.random((int(rng.integers(0, 7)), dims))
        points = rng.random((15, dims))
        reference = np.full(dims, 0.9)
        got = hypervolume_improvements(front, points, reference)
        want = [hypervolume(np.vstack([front, point[None]]), reference) - hypervolume(front, reference)
                for point in points]
        np.testing.assert_allclose(got, want, atol=1e-12)


def _planted_table(random_table, tmp_path, *, noise: float) -> str:
    """The random table's costs with a top-1 that the architecture's dimensions decide: wider and deeper
    models and the refiner blocks are better, plus seed noise of ``noise`` points."""
    table = read_table(random_table())
    rows = table.rows.copy()
    rng = np.random.default_rng(0)
    gains = {"vanilla": 0, "talking_heads": 2, "refiner_r1_k3": 8, "refiner_r3_k1": 4, "refiner_r3_k3": 10,
             "refiner_r3_k3_shared": 9}
    for index, row in rows.iterrows():
        params = json.loads(row["space_params"])
        quality = (40 + 20 * (params["embed_dim"] == 32) + 8 * (params["depth"] == 3)
                   + gains[params["attention_block"]] + 3 * (params["context_broadcast"] == "mlp_end"))
        final = float(quality + rng.normal(0, noise))
        rows.at[index, "top1"] = final
        rows.at[index, "top1_curve"] = [final * (epoch + 1) / table.epochs for epoch in range(table.epochs)]
        rows.at[index, "params"] = 1000 * params["embed_dim"] * params["depth"] + 37 * len(params["attention_block"])
    path = tmp_path / "planted.parquet"
    write_table(rows, table.provenance, path)
    return str(path)


def _epochs_to(trace: pd.DataFrame, fraction: float) -> float:
    reached = trace[trace["hv_params"] >= fraction]
    return float(reached["epochs"].iloc[0]) if len(reached) else np.inf


def test_ehvi_never_trains_an_architecture_twice_and_covers_the_table(random_table):
    path = random_table()
    architectures = len(read_table(path).architectures)
    trace = simulate_search(path, Strategy.parse("ehvi+none"), seed=1, max_trials=architectures)
    assert (trace["status"] == "trained").all(), trace["status"].value_counts()
    assert trace["hv_params"].iloc[-1] == pytest.approx(1.0)


def test_ehvi_never_proposes_an_architecture_over_a_known_limit(random_table):
    path = random_table()
    limit = int(read_table(path).architectures["params"].median())
    trace = simulate_search(path, Strategy.parse("ehvi+none"), seed=0, budget=Budget(max_params=limit))
    assert set(trace["status"]) == {"trained"}
    assert trace["hv_params"].iloc[-1] == pytest.approx(1.0)
    random = simulate_search(path, Strategy.parse("random+none"), seed=0, budget=Budget(max_params=limit))
    assert "over_budget" in set(random["status"])


def test_ehvi_finds_a_planted_front_with_fewer_epochs_than_random_search(random_table, tmp_path):
    path = _planted_table(random_table, tmp_path, noise=1.0)
    ehvi = [_epochs_to(simulate_search(path, Strategy.parse("ehvi+none"), seed=seed), 0.99) for seed in range(5)]
    random = [_epochs_to(simulate_search(path, Strategy.parse("random+none"), seed=seed), 0.99)
              for seed in range(5)]
    assert np.median(ehvi) <= 0.5 * np.median(random), (ehvi, random)


def test_workers_sharing_a_study_train_distinct_architectures(random_table, tmp_path):
    path = random_table()
    settings = simulated_launch_settings(
        SearchSettings(trials=10, workers=2, sampler="ehvi", early_stop=False, run_dir=tmp_path / "runs"), path)
    study = launch(settings, show_progress=False)
    records = [TrialRecord.from_trial(t) for t in study.trials]
    # Each worker may start a trial before it sees the other's last one finish: at least 10 trained. Each
    # sees the other's running pick, so none trains an architecture twice. Picks are read, then written:
    # two workers can still pick the same architecture within milliseconds, and the later trial then
    # yields as a duplicate that trains nothing (seen once in about ten CI runs).
    trained = [r for r in records if r.status == "trained"]
    duplicates = [r for r in records if r.status == "duplicate"]
    assert len(trained) >= 10 and len(trained) + len(duplicates) == len(records) and len(duplicates) <= 1
    assert len({r.config_hash for r in trained}) == len(trained)
    assert all(r.duplicate_of is not None and r.config_hash in {t.config_hash for t in trained} for r in duplicates)


def test_a_space_too_large_to_enumerate_is_searched_through_random_pools():
    space = SearchSpace.load("tiny").with_budget(Budget(max_params="60K"))
    assert np.prod([len(values) for values in space.grid().values()]) > ENUMERATE_LIMIT
    objectives = parse_objectives("top1:max,params:min")

    def costs_of(config):
        return {"params": config.embed_dim * config.depth * 500 / 1e6, "macs": config.embed_dim * 1e-6}

    sampler = KnownCostSampler(space, objectives, architecture_of=lambda config: config.config_hash(),
                               costs_of=costs_of, seed=0, pool=16, samples=32)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    seen = []

    def objective(trial):
        config = space.suggest(trial)
        seen.append(config.config_hash())
        trial.set_user_attr("config_hash", config.config_hash())
        trial.set_user_attr("status", "trained")
        return 50 + config.embed_dim / 4 + 5 * (config.attention == "refiner"), costs_of(config)["params"]

    study.optimize(objective, n_trials=12)
    assert len(set(seen)) == 12
    assert all(t.values[1] * 1e6 <= 60_000 for t in study.trials)


def test_bad_sampler_settings_name_the_value():
    with pytest.raises(ValueError, match="pool=0"):
        KnownCostSampler(SearchSpace.load("tabular"), parse_objectives("top1:max,params:min"),
                         architecture_of=str, costs_of=dict, seed=0, pool=0)


def _tabular_sampler(cost: str) -> KnownCostSampler:
    space = SearchSpace.load("tabular")

    def costs_of(config):  # more blocks, wider and refined attention cost more
        size = config.depth * config.embed_dim * (1 + (config.attention == "refiner"))
        return {"params": size / 1e3, "macs": (100 - size) / 1e3}

    return KnownCostSampler(space, parse_objectives(f"top1:max,{cost}:min"),
                            architecture_of=lambda config: config.config_hash(), costs_of=costs_of, seed=0)


@pytest.mark.parametrize("cost", ["params", "macs"])
def test_the_design_tries_every_value_cheapest_architectures_first(cost):
    sampler = _tabular_sampler(cost)
    assert design_levels(sampler.space) == {
        "depth": {2, 3}, "embed_dim": {16, 32}, "context_broadcast": {"off", "mlp_end"},
        "attention_block": {"vanilla", "talking_heads", "refiner_r1_k3", "refiner_r3_k1", "refiner_r3_k3",
                            "refiner_r3_k3_shared"}}
    assert sampler.design_size == design_size(sampler.space) == 6
    fixed = SearchSpace.from_dict({"dimensions": {"img_size": 32, "in_chans": 1, "num_classes": 10, "patch_size": 4,
                                                  "depth": 2, "embed_dim": 16, "num_heads": 4}})
    assert design_levels(fixed) == {} and design_size(fixed) == 2
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    design = []
    for _ in range(sampler.design_size):
        trial = study.ask()
        config = sampler.space.suggest(trial)
        design.append(sampler._candidate(trial.params, config))
        trial.set_user_attr("config_hash", config.config_hash())
        study.tell(trial, [50.0, design[-1].costs[cost]])
    # Six picks try every value of every dimension; each first covers as many new values as one can.
    for name, levels in design_levels(sampler.space).items():
        assert {c.params[name] for c in design} == levels
    everything = sampler.candidates()
    first_cost = min(c.costs[cost] for c in everything)
    assert design[0].costs[cost] == first_cost  # the cheapest architecture of the space
    # The sixth pick covers only the last block left; it is the cheapest architecture with that block.
    last_block = design[-1].params["attention_block"]
    assert design[-1].costs[cost] == min(c.costs[cost] for c in everything
                                         if c.params["attention_block"] == last_block)


def test_the_model_carries_a_value_effect_to_sizes_it_has_not_seen():
    # Additive top-1: the refiner_r1_k3 block adds 20 points at every size. Seen at the smallest size only,
    # it is predicted at the largest, where no trial has been.
    sampler = _tabular_sampler("params")
    candidates = sampler.candidates()
    small = [c for c in candidates if c.params["depth"] == 2 and c.params["embed_dim"] == 16
             and c.params["context_broadcast"] == "off"]
    large = [c for c in candidates if c.params["depth"] == 3 and c.params["embed_dim"] == 32
             and c.params["context_broadcast"] == "off"]
    sizes = [c for c in candidates
             if c.params["attention_block"] == "vanilla" and c.params["context_broadcast"] == "off"]

    def quality(c):
        return 50 + 10 * (c.params["embed_dim"] == 32) + 5 * (c.params["depth"] == 3) + 20 * (
            c.params["attention_block"] == "refiner_r1_k3")

    seen = small + sizes
    features = _features(seen + large)
    mean, spread = _posterior(features[: len(seen)], np.array([quality(c) for c in seen]), features[len(seen):])
    np.testing.assert_allclose(mean, [quality(c) for c in large], atol=0.5)
    assert spread.max() < 1.0


def test_auto_is_ehvi_on_a_space_it_enumerates_and_tpe_beyond():
    from refiner_nas.search.strategy import resolve_sampler

    settings = SearchSettings(sampler="auto")
    assert resolve_sampler(settings, SearchSpace.load("tabular")) == "ehvi"
    assert resolve_sampler(settings, SearchSpace.load("tiny")) == "tpe"
    assert resolve_sampler(settings.model_copy(update={"sampler": "random"}), SearchSpace.load("tabular")) == "random"


def test_trials_pause_and_resume_by_default_where_the_sampler_is_ehvi():
    from refiner_nas.search.stoppers import RungPromotion, launch_stopper
    from refiner_nas.search.strategy import resolve_early_stop

    tabular, tiny = SearchSpace.load("tabular"), SearchSpace.load("tiny")
    settings = SearchSettings(sampler="auto")
    assert resolve_early_stop(settings, tabular) and not resolve_early_stop(settings, tiny)
    assert not resolve_early_stop(settings.model_copy(update={"objectives": "top1:max"}), tabular)
    assert not resolve_early_stop(settings.model_copy(update={"early_stop": False}), tabular)
    assert resolve_early_stop(settings.model_copy(update={"early_stop": True}), tiny)
    stopper = launch_stopper(settings, tabular)
    assert isinstance(stopper, RungPromotion) and stopper.min_population == 6  # the design's six architectures
    short = launch_stopper(settings.model_copy(update={"trials": 4}), tabular)
    assert isinstance(short, RungPromotion) and short.min_population == 4  # a launch shorter than the design


def _rung_trial(number, candidate, top1, status):
    """A trial of ``candidate`` that reached epoch 2 at ``top1`` there: paused (pruned) or trained."""
    state = TrialState.COMPLETE if status == "trained" else TrialState.PRUNED
    trial = optuna.trial.create_trial(
        state=state, values=[top1, candidate.costs["params"]] if state == TrialState.COMPLETE else None,
        params=candidate.params,
        distributions={name: CategoricalDistribution([value]) for name, value in candidate.params.items()},
        user_attrs={"config_hash": candidate.architecture, "status": status, "top1_curve": [top1 / 2, top1],
                    "params": candidate.costs["params"] * 1e6, "macs": candidate.costs["macs"] * 1e9})
    trial.number = number
    return trial


@pytest.mark.parametrize("paused_top1, resumed", [(95.0, True), (55.0, False)])
def test_a_paused_trial_is_resumed_when_it_adds_more_than_any_new_architecture_is_expected_to(paused_top1, resumed):
    space = SearchSpace.load("tabular")

    def costs_of(config):
        return {"params": config.depth * config.embed_dim / 1e3, "macs": config.embed_dim / 1e3}

    sampler = KnownCostSampler(space, parse_objectives("top1:max,params:min"),
                               architecture_of=lambda c: c.config_hash(), costs_of=costs_of, seed=0, fidelity_epoch=2)
    candidates = sorted(sampler.candidates(), key=lambda c: (c.costs["params"], c.architecture))
    # Every architecture but two has been seen at the rung around 60 %; the cheapest one was trained there.
    seen = [_rung_trial(n, c, 60.0 + (n % 3), "paused") for n, c in enumerate(candidates[2:-2], start=2)]
    completed = _rung_trial(0, candidates[0], 70.0, "trained")
    paused = _rung_trial(1, candidates[1], paused_top1, "paused")  # as cheap as the trained one
    trials = [completed, paused, *seen]
    choice = sampler.worth_resuming(trials, [paused], [completed])
    assert (choice is paused) == resumed
    # What it weighed: the paused trial's exact point over the trained trial's, and the untried two.
    finished, observed = sampler.observations(trials)
    gains = sampler.expected_improvements(finished, observed, [], candidates[-2:], front=observed[:1],
                                          exact=observed[1:2])
    assert gains.shape == (3,) and (gains[2] > 0) == resumed
    # During the design (fewer architectures tried than it holds), nothing is weighed.
    assert sampler.worth_resuming(trials[: sampler.design_size - 1], [paused], [completed]) is None
