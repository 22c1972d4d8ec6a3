"""The leaderboard as shown: Table 7 alongside, filters, sorting, formats, and full-training results."""

from __future__ import annotations

import io
from pathlib import Path

import optuna
import pandas as pd
import pytest

from refiner_nas.refiner_space import named_config
from refiner_nas.results.collect import collect
from refiner_nas.results.entries import DuplicateResultError, full_training_row, record_full_result
from refiner_nas.results.leaderboard import EmptyResultError, choose_columns, leaderboard_table, render, sort_rows
from refiner_nas.results.reference import TABLE7_PATH, reported_rows, table7
from refiner_nas.results.store import load_leaderboard


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def stored(tmp_path: Path, make_study, tiny_config) -> pd.DataFrame:
    make_study("a", [(tiny_config(), 70.0, {}), (tiny_config(depth=2), 75.0, {}), (tiny_config(depth=3), 72.0, {})])
    make_study("b", [(tiny_config(embed_dim=8), 60.0, {})])
    return collect(run_dir=tmp_path / "runs", results_dir=tmp_path / "res").frame


def test_table7_is_the_shared_reference_and_becomes_labelled_rows() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "reference" / "table7.csv"
    if shared.exists():
        assert TABLE7_PATH.read_bytes() == shared.read_bytes()
    rows = reported_rows()
    assert len(rows) == len(table7()) and set(rows["kind"]) == {"reported"}
    deit = rows.set_index("model").loc["DeiT-S"]
    assert (deit["params_m"], deit["macs_g"], deit["full_top1"], deit["img_size"]) == (22.0, 4.6, 79.9, 224)
    assert deit["source"] == "Refiner paper Table 7 (transformer)" and pd.isna(deit["top1"])


def test_measured_and_reported_rows_share_one_table(stored: pd.DataFrame) -> None:
    table = leaderboard_table(stored)
    assert list(table["kind"].drop_duplicates()) == ["proxy", "reported"]
    proxy = table[table["kind"] == "proxy"]
    assert list(proxy["top1"]) == [75.0, 72.0, 70.0, 60.0]  # default sort: kind, then best proxy top-1 first
    reported = table[table["kind"] == "reported"]
    assert list(reported["full_top1"]) == sorted(reported["full_top1"], reverse=True)
    assert len(reported) == len(table7())

    small = leaderboard_table(stored, where="params_m <= 30")
    assert set(small.loc[small["kind"] == "reported", "model"]) == set(table7().query("params_m <= 30")["model"])
    only_b = leaderboard_table(stored, studies=["b"], reported=False)
    assert list(only_b["study"]) == ["b"]
    top = leaderboard_table(stored, top=2)
    assert top["kind"].value_counts().to_dict() == {"proxy": 2, "reported": 2}
    by_size = leaderboard_table(stored, sort="-params_m", reported=False)
    assert list(by_size["params_m"]) == sorted(stored["params_m"], reverse=True)


def test_bad_selections_give_one_line_errors(stored: pd.DataFrame) -> None:
    with pytest.raises(EmptyResultError, match=r"no leaderboard rows match --where 'params_m < 0'"):
        leaderboard_table(stored, where="params_m < 0")
    with pytest.raises(ValueError, match=r"cannot apply --where 'nosuch > 1'") as error:
        leaderboard_table(stored, where="nosuch > 1")
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="is not a condition"):
        leaderboard_table(stored, where="params_m + 1")
    with pytest.raises(ValueError, match="cannot sort by 'speed'"):
        sort_rows(stored, "-speed")
    with pytest.raises(ValueError, match=r"no collected study 'zzz' \(collected: a, b\)"):
        leaderboard_table(stored, studies=["zzz"])
    with pytest.raises(ValueError, match="unknown column"):
        choose_columns("model,bogus")


def test_every_format_renders_the_rows_and_the_label(stored: pd.DataFrame) -> None:
    table = leaderboard_table(stored, top=3)
    columns = choose_columns(None)
    csv = pd.read_csv(io.StringIO(render(table, "csv", columns=columns)))
    assert list(csv.columns) == columns and len(csv) == len(table)
    assert csv["top1"].tolist()[:3] == [75.0, 72.0, 70.0]
    markdown = render(table, "markdown", columns=columns)
    assert markdown.count("\n|") == len(table) + 1 and "not measured here" in markdown
    html = render(table, "html", columns=columns)
    assert html.count("<tr") == len(table) + 1 and "<caption>" in html and "Table 7" in html
    text = render(table, "table", columns=columns)
    assert "Refined-ViT-L-448" in text and "reported" in text and "not measured here" in text
    with pytest.raises(ValueError, match="unknown --format 'xml'"):
        render(table, "xml")


def test_a_table_fits_80_columns_by_leaving_out_columns_not_by_cutting_values(stored: pd.DataFrame) -> None:
    table = leaderboard_table(stored, top=3)
    columns = choose_columns(None)
    narrow = render(table, "table", columns=columns, width=80)
    assert max(len(line) for line in narrow.splitlines()) <= 80 and "…" not in narrow
    assert "not shown at 80 columns: " in narrow and "config_hash" in narrow.split("not shown at 80 columns: ")[1]
    for model, top1 in table.loc[table["kind"] == "proxy", ["model", "top1"]].itertuples(index=False):
        assert f"{top1:.4g}" in narrow and model in narrow  # numbers and names whole
    whole = render(table, "table", columns=columns)  # a pipe: every column, a row per line
    assert "not shown" not in whole and "config_hash" in whole
    assert sum("Refined-ViT-L-448" in line for line in whole.splitlines()) == 1


def test_full_training_results_are_recorded_once_and_shown_with_table7(
    tmp_path: Path, stored: pd.DataFrame, tiny_config
) -> None:
    results = tmp_path / "res"
    config = tiny_config(num_classes=1000, in_chans=3)
    row = full_training_row(config=config, top1=83.1, dataset="imagenet", epochs=300, recipe="released",
                            name="my-refined-s")
    head = 16 * 1000 + 1000  # the 1000-class head dominates this tiny model
    assert row["params_m"] * 1e6 > head and row["config_hash"] == config.config_hash()
    first = record_full_result(row, results)
    assert (first.added, first.updated) == (1, 0)
    again = record_full_result(full_training_row(config=config, top1=83.1, dataset="imagenet", epochs=300,
                                                 recipe="released", name="my-refined-s"), results)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1)
    changed = full_training_row(config=config, top1=83.4, dataset="imagenet", epochs=300, recipe="released",
                                name="my-refined-s")
    with pytest.raises(DuplicateResultError, match="already recorded with top-1 83.1; pass --force"):
        record_full_result(changed, results)
    assert record_full_result(changed, results, force=True).updated == 1
    table = leaderboard_table(load_leaderboard(results), sort="-full_top1", where="dataset == 'imagenet'")
    ours = table.index[table["model"] == "my-refined-s"][0]
    assert table.loc[ours, "kind"] == "full" and table.loc[ours, "full_top1"] == 83.4
    assert table.loc[ours - 1, "full_top1"] >= 83.4 >= table.loc[ours + 1, "full_top1"]  # among Table 7's rows
    assert len(load_leaderboard(results)) == len(stored) + 1
    with pytest.raises(ValueError, match=r"top-1 130.0 must be a percentage"):
        full_training_row(config=config, top1=130.0, dataset="imagenet", epochs=1, recipe=None)


@pytest.mark.slow
def test_a_released_model_counts_as_spec_says(tmp_path: Path) -> None:
    row = full_training_row(config=named_config("refined_vit_s"), top1=83.6, dataset="imagenet", epochs=300,
                            recipe="released")
    # docs/models.md#the-released-code-variant: 25.02M without the aux head
    assert row["params_m"] == pytest.approx(25.02, abs=0.01)
    assert row["model"] == "refiner_official-16x384h12-r3k3-s2@224"
