"""Files written by refiner-nas 0.1 before the packages moved under ``refiner_nas`` still load with the same
values: a study journal, the leaderboard collected from it, an exported configuration and the shipped
table. The files in ``tests/data/written_by_0_1/`` were written by that version's own commands (a
six-trial launch on the table backend with pausing, ``leaderboard``, ``export --top-k 2``)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from optuna.trial import TrialState

from refiner_nas.api import collect, load_leaderboard, load_study, result_rows
from refiner_nas.results.export import load_export
from refiner_nas.search.tabular import SHIPPED_TABLE, read_table

WRITTEN = Path(__file__).parent / "data" / "written_by_0_1"


@pytest.fixture
def copies(tmp_path: Path) -> Path:
    shutil.copytree(WRITTEN, tmp_path / "v0_1")
    return tmp_path / "v0_1"


def test_the_journal_holds_the_same_trials(copies: Path) -> None:
    study = load_study("tabular", run_dir=copies / "studies")
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.PRUNED] * 6 + [TrialState.COMPLETE]
    assert [t.user_attrs["status"] for t in trials] == ["paused"] * 6 + ["trained"]
    assert trials[6].values == [91.36490250696379, 0.006114]
    assert trials[6].user_attrs["resumed_from"] == 3
    assert {t.user_attrs["budget_key"] for t in trials} == {"4ddbce49e292"}
    assert study.user_attrs["objectives"] == "top1:max,params:min"


def test_the_leaderboard_loads_and_collecting_the_old_journal_gives_the_same_rows(copies: Path) -> None:
    before = load_leaderboard(copies / "results")
    assert len(before) == 7 and len(result_rows(before)) == 6
    row = before.set_index("row_key").loc["bf2ecbe684fea9c9"]
    assert (row["top1"], row["params_m"], row["config_hash"]) == (91.36490250696379, 0.006114, "c8be12d05b4c1a3a")
    # The journal sits elsewhere now, so its rows are a new source (row keys name the storage): added next to
    # the old rows, which stay, with the same values per trial.
    result = collect(run_dir=copies / "studies", results_dir=copies / "results")
    assert (result.report.added, len(result.frame)) == (7, 14)
    after = load_leaderboard(copies / "results")
    assert list(after.columns) == list(before.columns)
    compared = ["trial", "state", "status", "top1", "params_m", "macs_g", "config_hash", "epochs_run", "resumed_from"]
    old = after[after["row_key"].isin(before["row_key"])].sort_values("trial")[compared].reset_index(drop=True)
    new = after[~after["row_key"].isin(before["row_key"])].sort_values("trial")[compared].reset_index(drop=True)
    assert old.equals(before.sort_values("trial")[compared].reset_index(drop=True))
    assert new.equals(old)


def test_the_exported_configuration_loads_as_the_same_architecture(copies: Path) -> None:
    exported = load_export(copies / "exported" / "01-c8be12d05b4c1a3a.yaml")
    assert exported.name == "refiner-2x16h4-r1k3-cb@32"
    assert exported.config.config_hash() == "c8be12d05b4c1a3a"
    assert exported.costs["params"] == 6114 and exported.proxy["top1"] == 91.36490250696379
    assert set(exported.recipes) >= {"standard", "advanced", "released"}


def test_the_shipped_table_is_the_file_0_1_shipped() -> None:
    digest = hashlib.sha256(SHIPPED_TABLE.read_bytes()).hexdigest()
    assert digest == "17a02e70c2c4527b1b968c1e208abba8889f08ec412ff451bfbc5d9f2debefad"
    assert len(read_table(SHIPPED_TABLE).rows) == 96
