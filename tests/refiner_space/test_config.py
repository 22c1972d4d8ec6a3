from __future__ import annotations

import pytest
from pydantic import ValidationError

from refiner_nas.refiner_space import ConfigError, ModelConfig

ROUND_TRIP_CONFIGS = [
    {},
    {"attention": "refiner", "expansion_ratio": 6, "kernel_size": 5, "dla_constraint": "rowcol"},
    {"attention": "refiner", "attention_reduction": False, "share_span": 3, "img_size": [32, 48], "patch_size": 8},
    {"attention": "refiner_official", "stem": "conv4", "aux_head": True, "mlp_ratio": 3.0},
    {"attention": "talking_heads", "context_broadcast": "mlp_end", "broadcast_dim_scaled": True},
    {"class_token": False, "num_classes": 10, "in_chans": 1, "drop_path_rate": 0.1},
]


@pytest.mark.parametrize("fields", ROUND_TRIP_CONFIGS)
def test_dict_and_yaml_round_trip_is_lossless(fields: dict, tmp_path) -> None:
    config = ModelConfig(**fields)
    assert ModelConfig(**config.to_dict()) == config
    path = tmp_path / "model.yaml"
    path.write_text(config.to_yaml())
    assert ModelConfig.from_yaml(path) == config
    assert ModelConfig.from_yaml(path).config_hash() == config.config_hash()


def test_variant_defaults_are_filled_and_only_applicable_fields_serialised() -> None:
    refiner = ModelConfig(attention="refiner")
    assert (refiner.expansion_ratio, refiner.kernel_size, refiner.dla_constraint) == (3, 3, "none")
    assert refiner.attention_reduction is True
    assert "expansion_ratio" not in ModelConfig().to_dict()
    assert ModelConfig(attention="refiner_official").share_span == 2


def test_hash_tells_architectures_apart() -> None:
    base = ModelConfig(attention="refiner")
    assert base.config_hash() == ModelConfig(attention="refiner", expansion_ratio=3).config_hash()
    assert base.config_hash() != base.replace(expansion_ratio=4).config_hash()
    assert len(base.config_hash()) == 16


def test_replace_switching_variant_drops_fields_that_no_longer_apply() -> None:
    refiner = ModelConfig(attention="refiner", expansion_ratio=6)
    vanilla = refiner.replace(attention="vanilla")
    assert vanilla.expansion_ratio is None
    assert vanilla.replace(attention="refiner").expansion_ratio == 3


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"embed_dim": 384, "num_heads": 7}, r"num_heads=7 does not divide embed_dim=384"),
        ({"attention": "refiner", "kernel_size": 4}, r"kernel_size=4 must be a positive odd integer"),
        ({"attention": "refiner", "kernel_size": 0}, r"kernel_size=0 must be a positive odd integer"),
        ({"attention": "refiner", "expansion_ratio": 0}, r"expansion_ratio=0 must be an integer >= 1"),
        (
            {"attention": "refiner", "dla_constraint": "spatial", "img_size": [224, 160]},
            r"dla_constraint='spatial' needs a square token grid, got 14x10",
        ),
        ({"expansion_ratio": 3}, r"expansion_ratio=3 does not apply to attention='vanilla'"),
        (
            {"attention": "refiner_official", "dla_constraint": "rowcol"},
            r"dla_constraint='rowcol' does not apply to attention='refiner_official'",
        ),
        ({"attention": "refiner_official", "share_span": 1}, r"share_span=1: .* needs share_span >= 2"),
        ({"broadcast_dim_scaled": True}, r"broadcast_dim_scaled=True does not apply"),
        ({"heads": 12}, r"unknown field 'heads'"),
        ({"attention": "linear"}, r"attention='linear': Input should be 'vanilla', 'talking_heads'"),
        ({"img_size": 100, "patch_size": 16}, r"img_size=100 is not a multiple of patch_size=16"),
        ({"depth": 0}, r"depth=0 must be a positive integer"),
        ({"class_token": False, "aux_head": True}, r"aux_head=True needs class_token=True"),
        ({"stem": "conv4", "patch_size": 5, "img_size": 20}, r"patch_size=5 must be even for stem='conv4'"),
    ],
)
def test_invalid_values_raise_one_line_errors_naming_field_and_value(fields: dict, expected: str) -> None:
    field = expected.split("=")[0].removeprefix("unknown field '").rstrip("'")
    with pytest.raises(ValidationError, match=field):
        ModelConfig(**fields)
    with pytest.raises(ConfigError, match=expected) as error:
        ModelConfig.from_dict(fields)
    assert isinstance(error.value, ValueError)
    assert "\n" not in str(error.value)


def test_yaml_errors_name_the_file(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("embed_dim: 100\nnum_heads: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: num_heads=3 does not divide embed_dim=100"):
        ModelConfig.from_yaml(path)
    path.write_text("- not a mapping\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        ModelConfig.from_yaml(path)
    with pytest.raises(ConfigError, match="cannot read"):
        ModelConfig.from_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize(("changes", "message"), [
    ({"img_size": 100000}, r"^img_size=100000 is above 4096 px a side: one image alone would take 37.3 GiB per "
                           r"channel as float32; the family is trained at 224 to 512 px: lower img_size$"),
    ({"img_size": (64, 5000)}, r"^img_size=\(64, 5000\) is above 4096 px a side"),
    ({"img_size": 4096, "patch_size": 16},
     r"^img_size=4096 with patch_size=16 makes 65536 patch tokens; each attention map would take 16 GiB per head "
     r"and image \(float32\): at most 16384 tokens"),
])
def test_sizes_beyond_memory_are_refused_with_the_reason(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict(changes)


def test_the_largest_sizes_allowed_still_validate() -> None:
    assert ModelConfig(img_size=2048, patch_size=16).num_tokens == 16384 + 1
    assert ModelConfig(img_size=4096, patch_size=32).token_grid == (128, 128)
