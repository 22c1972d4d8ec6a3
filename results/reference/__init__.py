"""Published figures shown next to measured ones: the Refiner paper's Table 7 (ImageNet top-1).

``table7.csv`` is a copy of the project's reference table (columns group, model, params_m, gflops,
train_size, test_size, top1, real_top1, source). The paper's "FLOPs" count multiply-adds
(docs/models.md#the-released-code-variant), so
they become ``macs_g``; the test size becomes ``img_size``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import pandas as pd

from refiner_nas.results.schema import conform

TABLE7_PATH = Path(__file__).with_name("table7.csv")
REPORTED_DATASET = "imagenet"

__all__ = ["REPORTED_DATASET", "TABLE7_PATH", "reported_rows", "table7"]


@cache
def table7() -> pd.DataFrame:
    """The reference table as published (a copy: callers may not change the cached frame)."""
    return pd.read_csv(TABLE7_PATH)


def reported_rows() -> pd.DataFrame:
    """Table 7 as leaderboard rows of kind ``reported``."""
    table = table7()
    rows = [
        {
            "kind": "reported",
            "model": row.model,
            "params_m": float(row.params_m),
            "macs_g": float(row.gflops),
            "img_size": int(row.test_size),
            "full_top1": float(row.top1),
            "dataset": REPORTED_DATASET,
            "state": "complete",
            "source": f"{row.source} ({row.group})",
            "row_key": hashlib.sha256(f"reported|{row.source}|{row.model}".encode()).hexdigest()[:16],
        }
        for row in table.itertuples(index=False)
    ]
    return conform(rows)
