"""How well cheap predictors rank a table's architectures: zero-cost proxies, params, MACs, and the
top-1 after a few epochs of training, each against the final top-1 (Kendall τ and Spearman ρ)."""

from __future__ import annotations

import json

import pandas as pd

from refiner_nas.search.tabular import BenchmarkTable


def proxy_scores(table: BenchmarkTable, *, batch_size: int = 64, seed: int = 0) -> pd.DataFrame:
    """Zero-cost scores (``refiner_nas.search.samplers._zero_cost``) of every architecture on one training batch
    of the table's dataset, indexed like ``table.architectures``."""
    import torch

    from refiner_nas.refiner_space import ModelConfig
    from refiner_nas.refiner_space.data import load_data
    from refiner_nas.search.samplers import score

    budget = table.provenance["budget"]
    rows = {}
    for arch_id, config_json in table.architectures["config"].items():
        config = ModelConfig.from_dict(json.loads(config_json))
        data = load_data(table.provenance["dataset"], img_size=config.img_size, val_fraction=budget["val_fraction"],
                         split_seed=budget["seed"])
        images, labels = next(iter(data.train.batches(batch_size=batch_size, device=torch.device("cpu"),
                                                      shuffle=True, seed=seed)))
        rows[arch_id] = score(config, images, labels, seed=seed)
    return pd.DataFrame.from_dict(rows, orient="index")


def rank_correlations(table: BenchmarkTable, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per predictor: its Kendall τ and Spearman ρ with the seed-mean final top-1.

    Predictors: every column of ``scores``, ``params`` and ``macs``, and ``top1@e`` (the seed-mean top-1
    after epoch ``e``) for every epoch before the last.
    """
    from scipy.stats import kendalltau, spearmanr

    arch = table.architectures
    final = arch["top1"].to_numpy(float)
    curves = table.mean_curves()
    predictors = {name: scores.loc[arch.index, name].to_numpy(float) for name in scores.columns}
    predictors |= {"params": arch["params"].to_numpy(float), "macs": arch["macs"].to_numpy(float)}
    predictors |= {f"top1@{epoch + 1}": curves[:, epoch] for epoch in range(table.epochs - 1)}
    rows = [{"predictor": name, "kendall_tau": float(kendalltau(values, final).statistic),
             "spearman": float(spearmanr(values, final).statistic)} for name, values in predictors.items()]
    return pd.DataFrame(rows)


def seed_agreement(table: BenchmarkTable) -> float:
    """Kendall τ between the first two seeds' final top-1: how far one training run ranks reliably."""
    from scipy.stats import kendalltau

    wide = table.rows.pivot(index="arch_id", columns="seed", values="top1").dropna()
    return float(kendalltau(wide.iloc[:, 0], wide.iloc[:, 1]).statistic)
