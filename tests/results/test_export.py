"""Export for full training: timm names that rebuild the architecture exactly, costs, recipes, errors."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest
import timm
import yaml

from refiner_nas.refiner_space import NAMED_CONFIGS, ModelConfig, named_config
from refiner_nas.refiner_space.costs import count_costs
from refiner_nas.results.collect import collect
from refiner_nas.results.export import ExportError, export_top_k, load_export, rank_rows, timm_spec
from refiner_nas.results.leaderboard import EmptyResultError, select_rows
from refiner_nas.results.pareto import parse_front_objectives
from refiner_nas.results.recipes import RECIPES


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def stored(tmp_path: Path, make_study, tiny_config) -> pd.DataFrame:
    make_study("a", [
        (tiny_config(embed_dim=8), 60.0, {}),
        (tiny_config(attention="refiner", expansion_ratio=2, kernel_size=3), 85.0, {}),
        (tiny_config(depth=2, context_broadcast="mlp_end"), 70.0, {}),  # dominated: second front
        (tiny_config(attention="refiner_official", stem="conv4", depth=2, mlp_ratio=3.0), 90.0, {}),
        (tiny_config(embed_dim=8), 60.0, {"status": "duplicate", "duplicate_of": 0}),
    ])
    return collect(run_dir=tmp_path / "runs", results_dir=tmp_path / "res").frame


@pytest.mark.parametrize("config", [
    ModelConfig(depth=1, img_size=32),
    named_config("refined_vit_s", img_size=32, num_classes=10, depth=2),
    named_config("refined_vit_base", depth=1, kernel_size=5, dla_constraint="rowcol", img_size=64),
    ModelConfig(attention="refiner", attention_reduction=False, share_span=3, img_size=(32, 48), depth=3),
    ModelConfig(attention="talking_heads", context_broadcast="attn_end", broadcast_dim_scaled=True,
                class_token=False, depth=1, img_size=32),
    named_config("vit_16b_384_cb", aux_head=True, depth=1, img_size=32),
], ids=["default", "released-s", "paper-refiner", "rectangular", "talking-heads", "broadcast"])
def test_timm_name_and_arguments_rebuild_the_configuration(config: ModelConfig) -> None:
    name, kwargs = timm_spec(config)
    assert name in NAMED_CONFIGS and None not in kwargs.values()  # timm drops None-valued arguments
    assert timm.create_model(name, **kwargs).config == config


def test_named_models_export_as_themselves() -> None:
    for name in ("refined_vit_s", "vit_16b_384", "refined_vit_16b_384"):
        assert timm_spec(named_config(name)) == (name, {})
    assert timm_spec(named_config("refined_vit_s", num_classes=10)) == ("refined_vit_s", {"num_classes": 10})


def test_top_k_follows_the_fronts_and_rebuilds_params_and_macs_exactly(tmp_path: Path, stored: pd.DataFrame) -> None:
    objectives = parse_front_objectives("top1:max,params:min")
    ranked = rank_rows(select_rows(stored), objectives)
    assert ranked["config_hash"].is_unique and list(ranked["pareto_rank"]) == sorted(ranked["pareto_rank"])
    paths = export_top_k(select_rows(stored), objectives, k=3, out_dir=tmp_path / "out")
    assert [p.name[:3] for p in paths] == ["01-", "02-", "03-"]
    documents = [yaml.safe_load(path.read_text()) for path in paths]
    assert [d["proxy"]["top1"] for d in documents] == list(ranked["top1"].head(3))
    for path, document in zip(paths, documents, strict=True):
        assert path.read_text().startswith("# refiner-nas export")
        model = timm.create_model(document["timm"]["model"], **document["timm"]["kwargs"])
        assert model.config.config_hash() == document["config_hash"] == path.stem[3:]
        costs = count_costs(model)
        written = document["costs"]
        assert (costs.params, costs.macs, costs.flops) == (written["params"], written["macs"], written["flops"])
        row = stored[stored["config_hash"] == document["config_hash"]].iloc[0]
        assert document["costs"]["params"] == round(row["params_m"] * 1e6)
        assert document["proxy"]["study"] == "a" and document["proxy"]["objectives"] == "top1:max,params_m:min"
        assert set(document["recipes"]) == set(RECIPES) and document["default_recipe"] == "standard"
        assert document["provenance"]["measured"] == {"torch": "test", "device": "cpu"}
        assert {"git_commit", "torch", "at"} <= set(document["provenance"]["exported"])
        exported = load_export(path)
        assert exported.config == model.config and exported.recipes == RECIPES
        assert exported.recipe(None) == RECIPES["standard"] and exported.recipe("advanced") == RECIPES["advanced"]


def test_export_refuses_to_overwrite_and_names_bad_outputs(tmp_path: Path, stored: pd.DataFrame) -> None:
    objectives = parse_front_objectives("top1,params")
    out = tmp_path / "out"
    first = export_top_k(select_rows(stored), objectives, k=1, out_dir=out)
    before = first[0].read_text()
    with pytest.raises(ExportError, match=r"--out .*out is not empty; pass --force"):
        export_top_k(select_rows(stored), objectives, k=2, out_dir=out)
    assert first[0].read_text() == before and len(list(out.iterdir())) == 1
    assert len(export_top_k(select_rows(stored), objectives, k=2, out_dir=out, force=True)) == 2
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        export_top_k(select_rows(stored), objectives, k=1, out_dir=blocker)
    with pytest.raises(ExportError, match=r"cannot write to --out .*file.txt/sub"):
        export_top_k(select_rows(stored), objectives, k=1, out_dir=blocker / "sub")
    with pytest.raises(ExportError, match="--top-k 0 must be at least 1"):
        export_top_k(select_rows(stored), objectives, k=0, out_dir=tmp_path / "o2")
    with pytest.raises(EmptyResultError):
        export_top_k(select_rows(stored, where="top1 > 99"), objectives, k=1, out_dir=tmp_path / "o3")


def test_export_files_are_checked_when_read_back(tmp_path: Path, stored: pd.DataFrame, tiny_config) -> None:
    path = export_top_k(select_rows(stored), parse_front_objectives("top1,params"), k=1, out_dir=tmp_path / "out")[0]
    document = yaml.safe_load(path.read_text())
    document["timm"]["kwargs"]["depth"] = 5
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ExportError, match="config and timm.kwargs disagree on depth"):
        load_export(path)
    del document["config"]
    path.write_text(yaml.safe_dump(document))
    assert load_export(path).config.depth == 5  # timm arguments are authoritative
    document["export_version"] = 99
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ExportError, match="export_version 99"):
        load_export(path)
    plain = tmp_path / "plain.yaml"
    plain.write_text(tiny_config().to_yaml())
    assert load_export(plain).config == tiny_config() and load_export(plain).name == "plain"
    with pytest.raises(ExportError, match="cannot read --config"):
        load_export(tmp_path / "missing.yaml")
