"""Random benchmark tables over a real space, for the simulated backend's tests (no training)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace, enumerate_space
from refiner_nas.search.tabular import TABLE_VERSION, write_table


def random_table_rows(
    space: SearchSpace, *, seeds: tuple[int, ...], epochs: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Rows for every architecture of ``space``: random costs, rising random curves that differ by seed."""
    rows = []
    for params, config in enumerate_space(space):
        quality = rng.uniform(20, 90)
        cost = int(rng.integers(1_000, 100_000))
        for seed in seeds:
            final = float(np.clip(quality + rng.normal(0, 2), 1, 99))
            curve = np.sort(rng.uniform(5, final, epochs - 1)).tolist() + [final]
            rows.append({"arch_id": config.config_hash(), "space_params": json.dumps(params, sort_keys=True),
                         "config": json.dumps(config.to_dict()), "seed": seed, "top1_curve": curve, "top1": final,
                         "params": cost, "macs": cost * int(rng.integers(50, 150)),
                         "latency_ms": float(rng.uniform(1, 5)), "train_time_s": float(rng.uniform(5, 20)),
                         "wall_time_s": 25.0})
    return pd.DataFrame(rows)


@pytest.fixture
def random_table(tmp_path):
    """Writes a random table of a shipped space (default ``tabular``) and returns its path."""

    def write(*, space: str = "tabular", seeds: tuple[int, ...] = (0, 1), epochs: int = 5, seed: int = 0):
        settings = SearchSettings(space=space, epochs=epochs, batch_size=64)
        loaded = SearchSpace.load(space)
        rows = random_table_rows(loaded, seeds=seeds, epochs=epochs, rng=np.random.default_rng(seed))
        provenance = {"table_version": TABLE_VERSION, "space": space, "space_yaml": open(loaded.source).read(),
                      "dataset": "digits", "epochs": epochs, "seeds": list(seeds), "budget": settings.proxy_recipe(),
                      "build_seconds": 0.0}
        path = tmp_path / f"random_{space}_{seed}.parquet"
        write_table(rows, provenance, path)
        return path

    return write
