from __future__ import annotations

from pathlib import Path

import pytest
import torch

from refiner_nas.refiner_space import CheckpointMismatchError, ConfigError, build_model, named_config
from refiner_nas.refiner_space.analysis import SourceError, load_source, load_sources, resolve_config
from refiner_nas.refiner_space.analysis.images import match_channels
from refiner_nas.refiner_space.analysis.sources import default_img_size, unique_labels

RELEASED_NAMES = {"attn.refine.expand.": "attn.DLA.conv_exp.", "attn.refine.adapt_bn.": "attn.adapt_bn."}


def test_registered_names_build_at_the_untrained_default_size() -> None:
    source = load_source("vit_16b_384")
    assert source.label == "vit_16b_384" and source.weights is None and not source.model.training
    assert source.model.config == named_config("vit_16b_384", img_size=112)


def test_untrained_models_default_to_a_small_size_and_trained_ones_keep_theirs(tiny, write_yaml) -> None:
    assert resolve_config("vit_16b_384") == named_config("vit_16b_384")
    assert default_img_size(named_config("vit_16b_384", patch_size=32), trained=False) == (96, 96)
    assert default_img_size(named_config("vit_16b_384", img_size=(64, 320)), trained=False) == (64, 112)
    assert default_img_size(named_config("vit_16b_384"), trained=True) == (224, 224)
    source = load_source(write_yaml("big.yaml", tiny(img_size=224, patch_size=16).to_dict()))
    assert source.label == "big" and source.weights is None and not source.model.training
    assert source.model.config == tiny(img_size=112, patch_size=16)


def test_untrained_models_are_seeded(tiny, write_yaml) -> None:
    path = write_yaml("m.yaml", tiny().to_dict())
    first, second = load_source(path, seed=3), load_source(path, seed=3)
    torch.testing.assert_close(first.model.pos_embed, second.model.pos_embed)
    assert not torch.equal(first.model.pos_embed, load_source(path, seed=4).model.pos_embed)


def test_configuration_files_in_each_accepted_form(tiny, write_yaml) -> None:
    config = tiny(attention="refiner")
    assert resolve_config(write_yaml("plain.yaml", config.to_dict())) == config
    assert resolve_config(write_yaml("section.yml", {"model": config.to_dict(), "costs": {"params": 1}})) == config
    exported = {"model_name": "vit_16b_384", "model_kwargs": {"img_size": 64, "depth": 2}, "recipe": {"epochs": 300}}
    assert resolve_config(write_yaml("export.yaml", exported)) == named_config("vit_16b_384", img_size=64, depth=2)
    nested = {"model": {"model_name": "refined_vit_s", "model_kwargs": {"num_classes": 10}}}
    assert resolve_config(write_yaml("nested.yaml", nested)) == named_config("refined_vit_s", num_classes=10)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["a", "b"], "expected a mapping"),
        ({"depht": 3}, "unknown field 'depht'"),
        ({"model_name": "resnet_999"}, "model_name 'resnet_999' is not registered in timm"),
        ({"model_name": "resnet18"}, "builds a ResNet, not a refiner_space model"),
        ({"model_name": "vit_16b_384", "model_kwargs": [1]}, "model_kwargs must be a mapping"),
    ],
)
def test_bad_configuration_files_name_the_file_and_problem(write_yaml, data, message: str) -> None:
    path = write_yaml("bad.yaml", data)
    with pytest.raises(ValueError, match=message) as error:
        resolve_config(path)
    assert str(error.value).startswith(path) and "\n" not in str(error.value)


def test_unknown_models_and_missing_files() -> None:
    with pytest.raises(SourceError, match="unknown model 'vit_huge': neither a registered name"):
        load_source("vit_huge")
    with pytest.raises(SourceError, match="configuration file nowhere.yaml does not exist"):
        load_source("nowhere.yaml")
    with pytest.raises(SourceError, match="checkpoint nowhere.pt does not exist"):
        load_source("nowhere.pt", config="vit_16b_384")


def save(tmp_path: Path, name: str, content) -> str:
    path = tmp_path / name
    torch.save(content, path)
    return str(path)


@torch.no_grad()
def test_checkpoints_load_strictly_into_their_configuration(tiny, write_yaml, tmp_path) -> None:
    config = tiny(attention="refiner", img_size=32)
    model = build_model(config).eval()
    config_path = write_yaml("model.yaml", config.to_dict())
    images = torch.randn(2, 3, 32, 32)
    for name, content in [
        ("plain.pt", model.state_dict()),
        ("training.pt", {"version": 1, "model": model.state_dict(), "top1": [50.0]}),
        ("wrapped.pth", {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}),
    ]:
        source = load_source(save(tmp_path, name, content), config=config_path)
        assert source.weights == tmp_path / name and source.label == Path(name).stem
        assert source.model.config.img_hw == (32, 32)  # a trained model keeps its size by default
        torch.testing.assert_close(source.model(images), model(images))


@torch.no_grad()
def test_checkpoint_at_another_image_size_resamples_the_position_embedding(tiny, write_yaml, tmp_path) -> None:
    config = tiny(img_size=32)
    checkpoint = save(tmp_path, "m.pt", build_model(config).state_dict())
    source = load_source(checkpoint, config=write_yaml("m.yaml", config.to_dict()), img_size=16)
    assert source.model.pos_embed.shape == (1, 17, 16)
    assert source.model(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_mismatched_checkpoints_give_one_line_naming_the_keys(tiny, write_yaml, tmp_path) -> None:
    checkpoint = save(tmp_path, "m.pt", build_model(tiny(depth=3)).state_dict())
    with pytest.raises(CheckpointMismatchError) as error:
        load_source(checkpoint, config=write_yaml("deeper.yaml", tiny(depth=4).to_dict()))
    message = str(error.value)
    assert "\n" not in message
    assert "missing: blocks.3.attn.proj.bias, blocks.3.attn.proj.weight" in message and "more)" in message
    with pytest.raises(CheckpointMismatchError, match=r"unexpected: blocks\.2\.attn\.proj\.bias"):
        load_source(checkpoint, config=write_yaml("shallower.yaml", tiny(depth=2).to_dict()))
    with pytest.raises(CheckpointMismatchError, match=r"shapes differ: blocks\.0\.attn\.proj\.bias \(16,\) vs \(32,\)"):
        load_source(checkpoint, config=write_yaml("wider.yaml", tiny(embed_dim=32).to_dict()))


@torch.no_grad()
def test_released_code_key_names_load_into_the_official_variant(tiny, write_yaml, tmp_path) -> None:
    config = tiny(attention="refiner_official", stem="conv4", depth=2)
    model = build_model(config).eval()
    released = {}
    for key, value in model.state_dict().items():
        for ours, theirs in RELEASED_NAMES.items():
            key = key.replace(ours, theirs)
        released[key] = value
    assert any(".attn.DLA." in key for key in released)
    source = load_source(save(tmp_path, "released.pth", released), config=write_yaml("c.yaml", config.to_dict()))
    images = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(source.model(images), model(images))


def test_checkpoint_and_config_arguments_must_fit(tiny, write_yaml, tmp_path) -> None:
    checkpoint = save(tmp_path, "m.pt", build_model(tiny()).state_dict())
    with pytest.raises(SourceError, match="needs its configuration: pass --config"):
        load_source(checkpoint)
    with pytest.raises(SourceError, match="--config applies to checkpoints"):
        load_source("vit_16b_384", config="vit_16b_384")
    with pytest.raises(SourceError, match="holds no state dict"):
        load_source(save(tmp_path, "list.pt", [1, 2]), config="vit_16b_384")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(SourceError, match="cannot read checkpoint"):
        load_source(str(tmp_path / "junk.pt"), config="vit_16b_384")
    with pytest.raises(ConfigError, match="img_size=18 is not a multiple of patch_size=16"):
        load_source("vit_16b_384", img_size=18)


def test_several_sources_share_or_pair_configurations(tiny, write_yaml, tmp_path) -> None:
    config_path = write_yaml("m.yaml", tiny().to_dict())
    first = save(tmp_path, "m.pt", build_model(tiny()).state_dict())
    second = save(tmp_path, "n.pt", build_model(tiny()).state_dict())
    sources = load_sources([first, config_path, second, first], configs=[config_path])
    assert [s.label for s in sources] == ["m", "m#2", "n", "m#3"]
    assert [s.weights is not None for s in sources] == [True, False, True, True]
    assert len(load_sources([first, second], configs=[config_path, config_path])) == 2
    with pytest.raises(SourceError, match="2 --config options for 3 checkpoints"):
        load_sources([first, second, first], configs=[config_path, config_path])
    with pytest.raises(SourceError, match="--config applies to checkpoints"):
        load_sources([config_path], configs=[config_path])
    with pytest.raises(SourceError, match="at least one model"):
        load_sources([])


def test_images_get_the_model_channel_count() -> None:
    grey, colour = torch.randn(2, 1, 4, 4), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(match_channels(grey, 3), grey.expand(-1, 3, -1, -1))
    torch.testing.assert_close(match_channels(colour, 1), colour.mean(1, keepdim=True))
    assert match_channels(colour, 3) is colour
    with pytest.raises(ValueError, match="images have 3 channels but the model takes 4"):
        match_channels(colour, 4)


def test_labels_are_short_and_distinct() -> None:
    texts = ["runs/a/last.pt", "runs/b/last.pt", "vit_16b_384", "c/m.yaml", "n.yaml", "c/m.yaml"]
    assert unique_labels(texts) == ["a/last", "b/last", "vit_16b_384", "m", "n", "m#2"]
    assert unique_labels(["x/a/last.pt", "y/a/last.pt"]) == ["x/a/last", "y/a/last"]
