"""Named models, kept as data and registered in timm's registry in one loop.

After ``import refiner_space``, ``timm.create_model(name, **overrides)`` builds any name below; the
overrides are ``ModelConfig`` fields (``img_size=384``, ``num_classes=10``, ``aux_head=True``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from timm.models import register_model

from refiner_nas.refiner_space.config import ModelConfig
from refiner_nas.refiner_space.model import RefinedViT

_RELEASED = {"attention": "refiner_official", "stem": "conv4", "mlp_ratio": 3.0, "share_span": 2}
_PAPER_REFINER = {"attention": "refiner", "expansion_ratio": 3, "kernel_size": 3}
_TABLE2_BASELINE = {"depth": 16, "embed_dim": 384, "num_heads": 12, "mlp_ratio": 3.0}

NAMED_CONFIGS: dict[str, dict[str, Any]] = {
    # Released-code Refined-ViTs (docs/models.md#the-released-code-variant table).
    "refined_vit_s": {**_RELEASED, "depth": 16, "embed_dim": 384, "num_heads": 12},
    "refined_vit_m": {**_RELEASED, "depth": 32, "embed_dim": 420, "num_heads": 12},
    "refined_vit_l": {**_RELEASED, "depth": 32, "embed_dim": 512, "num_heads": 16},
    # Paper-variant refiners: Table 9's shallow-wide model and Table 1/2's 16-block model.
    "refined_vit_base": {**_PAPER_REFINER, "depth": 12, "embed_dim": 768, "num_heads": 12, "mlp_ratio": 4.0},
    "refined_vit_16b_384": {**_PAPER_REFINER, **_TABLE2_BASELINE},
    # Vanilla baselines with the same depth, width and heads (Table 2).
    "vit_16b_384": _TABLE2_BASELINE,
    "vit_24b_384": {"depth": 24, "embed_dim": 384, "num_heads": 12, "mlp_ratio": 3.0},
    "vit_32b_384": {"depth": 32, "embed_dim": 384, "num_heads": 12, "mlp_ratio": 3.0},
    "vit_32b_420": {"depth": 32, "embed_dim": 420, "num_heads": 12, "mlp_ratio": 3.0},
    "vit_32b_512": {"depth": 32, "embed_dim": 512, "num_heads": 16, "mlp_ratio": 3.0},
    "vit_12b_768": {"depth": 12, "embed_dim": 768, "num_heads": 12, "mlp_ratio": 4.0},
    # Context broadcasting on the Table 2 baseline (docs/models.md#context-broadcasting).
    "vit_16b_384_cb": {**_TABLE2_BASELINE, "context_broadcast": "mlp_end"},
}


def named_config(name: str, **overrides: Any) -> ModelConfig:
    """The configuration registered as ``name`` with some fields overridden."""
    if name not in NAMED_CONFIGS:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(NAMED_CONFIGS)}")
    return ModelConfig.from_dict({**NAMED_CONFIGS[name], **overrides})


def _entrypoint(name: str) -> Callable[..., RefinedViT]:
    def create(
        pretrained: bool = False,
        pretrained_cfg: Any = None,
        pretrained_cfg_overlay: Any = None,
        cache_dir: Any = None,
        **overrides: Any,
    ) -> RefinedViT:
        # timm passes its pretrained-weight options to every entrypoint; there are no hosted weights.
        if pretrained:
            raise ValueError(
                f"{name}: no pretrained weights are hosted; create it with pretrained=False and load a "
                "released checkpoint with refiner_space.load_released_checkpoint(model, state_dict)"
            )
        return RefinedViT(named_config(name, **overrides))

    create.__name__ = name
    create.__qualname__ = name
    create.__module__ = __name__
    create.__doc__ = f"Build {name}: {NAMED_CONFIGS[name]} with ModelConfig fields as overrides."
    return create


for _name in NAMED_CONFIGS:
    setattr(sys.modules[__name__], _name, register_model(_entrypoint(_name)))
