"""The validated configuration of one Refined-ViT architecture.

Every model in the family is built from a ``ModelConfig``; the named models are nothing more than
configurations registered under a name. A configuration serialises losslessly to a plain dict (and so to
YAML), and its ``ModelConfig.config_hash`` identifies an architecture for caches and de-duplication.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from refiner_nas.refiner_space.files import read_text_file

AttentionVariant = Literal["vanilla", "talking_heads", "refiner", "refiner_official"]
Stem = Literal["patch", "conv4"]
DlaConstraint = Literal["none", "spatial", "rowcol"]
BroadcastPlacement = Literal["off", "attn_end", "mlp_end", "block_end"]

# Fields that only mean something for some attention variants, with the default they take there.
# On any other variant they must stay unset (None): a value there would be silently ignored.
_VARIANT_ONLY_FIELDS: dict[str, dict[str, Any]] = {
    "expansion_ratio": {"refiner": 3, "refiner_official": 3},
    "kernel_size": {"refiner": 3, "refiner_official": 3},
    "dla_constraint": {"refiner": "none"},
    "attention_reduction": {"refiner": True},
}


# Bounds that keep one image within memory: a side of MAX_IMG_SIZE px is 64 MiB per channel as float32,
# and MAX_TOKENS tokens make each attention map (tokens x tokens) 1 GiB per head and image. The family is
# trained at 224 to 512 px (at most 1024 tokens).
MAX_IMG_SIZE = 4096
MAX_TOKENS = 16384


class ConfigError(ValueError):
    """A configuration value that is not allowed; the message names the field, the value and the fix."""


class ModelConfig(BaseModel):
    """One architecture of the Refined-ViT family (docs/models.md).

    Raises:
        pydantic.ValidationError: a ValueError naming the field, the value and what is allowed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    img_size: int | tuple[int, int] = 224
    in_chans: int = 3
    num_classes: int = 1000
    stem: Stem = "patch"
    patch_size: int = 16
    depth: int = 12
    embed_dim: int = 384
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    attention: AttentionVariant = "vanilla"
    expansion_ratio: int | None = None
    kernel_size: int | None = None
    dla_constraint: DlaConstraint | None = None
    attention_reduction: bool | None = None
    share_span: int = 1
    context_broadcast: BroadcastPlacement = "off"
    broadcast_dim_scaled: bool = False
    class_token: bool = True
    aux_head: bool = False

    @field_validator("img_size")
    @classmethod
    def _positive_size(cls, value: int | tuple[int, int]) -> int | tuple[int, int]:
        sizes = (value, value) if isinstance(value, int) else value
        if min(sizes) <= 0:
            raise ValueError(f"img_size={value!r} must be positive")
        if max(sizes) > MAX_IMG_SIZE:
            per_channel = sizes[0] * sizes[1] * 4 / 2**30
            raise ValueError(
                f"img_size={value!r} is above {MAX_IMG_SIZE} px a side: one image alone would take "
                f"{per_channel:,.1f} GiB per channel as float32; the family is trained at 224 to 512 px: lower img_size"
            )
        return value

    @field_validator("in_chans", "num_classes", "patch_size", "depth", "embed_dim", "num_heads")
    @classmethod
    def _positive_int(cls, value: int, info: Any) -> int:
        if value <= 0:
            raise ValueError(f"{info.field_name}={value} must be a positive integer")
        return value

    @field_validator("mlp_ratio")
    @classmethod
    def _positive_ratio(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"mlp_ratio={value} must be positive")
        return value

    @field_validator("drop_rate", "drop_path_rate")
    @classmethod
    def _probability(cls, value: float, info: Any) -> float:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{info.field_name}={value} must be in [0, 1)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _fill_variant_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        variant = data.get("attention", "vanilla")
        filled = dict(data)
        for name, defaults in _VARIANT_ONLY_FIELDS.items():
            if filled.get(name) is None and variant in defaults:
                filled[name] = defaults[variant]
        if variant == "refiner_official" and "share_span" not in filled:
            filled["share_span"] = 2
        return filled

    @model_validator(mode="after")
    def _check_combinations(self) -> ModelConfig:
        for name, defaults in _VARIANT_ONLY_FIELDS.items():
            value = getattr(self, name)
            if value is not None and self.attention not in defaults:
                allowed = " or ".join(repr(v) for v in defaults)
                raise ValueError(
                    f"{name}={value!r} does not apply to attention={self.attention!r} "
                    f"(only to {allowed}); remove it"
                )
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"num_heads={self.num_heads} does not divide embed_dim={self.embed_dim}; "
                f"choose heads among the divisors of {self.embed_dim}"
            )
        grid = self.token_grid
        if grid[0] * grid[1] > MAX_TOKENS:
            tokens = grid[0] * grid[1]
            raise ValueError(
                f"img_size={self.img_size!r} with patch_size={self.patch_size} makes {tokens} patch tokens; each "
                f"attention map would take {tokens**2 * 4 / 2**30:,.0f} GiB per head and image (float32): at most "
                f"{MAX_TOKENS} tokens (2048 px at patch 16): raise patch_size or lower img_size"
            )
        if self.expansion_ratio is not None and self.expansion_ratio < 1:
            raise ValueError(f"expansion_ratio={self.expansion_ratio} must be an integer >= 1")
        if self.kernel_size is not None and (self.kernel_size <= 0 or self.kernel_size % 2 == 0):
            raise ValueError(
                f"kernel_size={self.kernel_size} must be a positive odd integer (1, 3, 5, 7, ...)"
            )
        if self.dla_constraint == "spatial" and grid[0] != grid[1]:
            raise ValueError(
                f"dla_constraint='spatial' needs a square token grid, got {grid[0]}x{grid[1]} "
                f"from img_size={self.img_size!r}; use a square img_size or dla_constraint='none'"
            )
        if self.share_span < 1:
            raise ValueError(f"share_span={self.share_span} must be >= 1")
        if self.attention == "refiner_official" and self.share_span < 2:
            raise ValueError(
                f"share_span={self.share_span}: attention='refiner_official' refines maps only in "
                "sharing blocks, so it needs share_span >= 2 (the released models use 2)"
            )
        if self.broadcast_dim_scaled and self.context_broadcast == "off":
            raise ValueError(
                "broadcast_dim_scaled=True does not apply when context_broadcast='off'; "
                "choose a placement such as 'mlp_end' or remove it"
            )
        if self.aux_head and not self.class_token:
            raise ValueError("aux_head=True needs class_token=True (the aux head scores patch tokens)")
        if self.stem == "conv4" and self.patch_size % 2:
            raise ValueError(
                f"patch_size={self.patch_size} must be even for stem='conv4' (a stride-2 conv "
                "followed by a stride patch_size/2 projection)"
            )
        return self

    @property
    def img_hw(self) -> tuple[int, int]:
        """Input height and width."""
        return (self.img_size, self.img_size) if isinstance(self.img_size, int) else self.img_size

    @property
    def token_grid(self) -> tuple[int, int]:
        """Patch-token grid (rows, columns); raises if the image does not tile into patches."""
        height, width = self.img_hw
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"img_size={self.img_size!r} is not a multiple of patch_size={self.patch_size}; "
                "choose an image size divisible by the patch size"
            )
        return height // self.patch_size, width // self.patch_size

    @property
    def num_tokens(self) -> int:
        """Tokens per image seen by attention (patches plus the class token)."""
        rows, cols = self.token_grid
        return rows * cols + int(self.class_token)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        """Plain dict holding only the fields that apply; ``ModelConfig(**d)`` rebuilds it exactly."""
        data = self.model_dump(exclude_none=True)
        if isinstance(data["img_size"], tuple):
            data["img_size"] = list(data["img_size"])
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **changes: Any) -> ModelConfig:
        """A validated copy with some fields changed (variant-only fields reset when the variant changes)."""
        data = self.to_dict()
        if "attention" in changes and changes["attention"] != self.attention:
            for name in _VARIANT_ONLY_FIELDS:
                data.pop(name, None)
            if self.attention == "refiner_official" and "share_span" not in changes:
                data.pop("share_span", None)
        data.update(changes)
        return ModelConfig.from_dict(data)

    def config_hash(self) -> str:
        """Stable 16-hex-digit id of the architecture: a hash of its canonical JSON."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a plain dict, turning validation failures into one-line ``ConfigError``."""
        try:
            return cls(**data)
        except ValidationError as error:
            raise ConfigError(describe_validation_error(error)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelConfig:
        """Read a configuration file; errors name the file and the offending field."""
        path = Path(path)
        text = read_text_file(path, "model configuration", error=ConfigError)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: invalid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of configuration fields, got {data!r}")
        try:
            return cls.from_dict(data)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each naming the field: pydantic's report without its boilerplate."""
    parts, unknown = [], []
    for problem in error.errors():
        field = ".".join(str(p) for p in problem["loc"]) or "config"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            unknown.append(repr(field))
            continue
        if problem["loc"] and not message.startswith(field):
            message = f"{field}={problem.get('input')!r}: {message}"
        parts.append(message)
    if unknown:  # one list of the allowed fields, however many unknown ones
        plural = "s" if len(unknown) > 1 else ""
        allowed = ", ".join(ModelConfig.model_fields)
        parts.append(f"unknown field{plural} {', '.join(unknown)}; allowed fields: {allowed}")
    return "; ".join(parts)
