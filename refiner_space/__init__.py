"""refiner_space: the Refined-ViT model family (SPEC.md), registered in timm."""

from refiner_space._compat import check_torchvision

check_torchvision()

from refiner_space.checkpoint import (  # noqa: E402
    CheckpointMismatchError,
    convert_released_state_dict,
    load_released_checkpoint,
)
from refiner_space.config import ConfigError, ModelConfig  # noqa: E402
from refiner_space.folding import set_refiner_fold  # noqa: E402
from refiner_space.layers.refiner import FoldError  # noqa: E402
from refiner_space.maps import attention_maps  # noqa: E402
from refiner_space.model import RefinedViT, build_model  # noqa: E402
from refiner_space.registry import NAMED_CONFIGS, named_config  # noqa: E402

__all__ = [
    "CheckpointMismatchError",
    "ConfigError",
    "FoldError",
    "ModelConfig",
    "NAMED_CONFIGS",
    "RefinedViT",
    "attention_maps",
    "build_model",
    "convert_released_state_dict",
    "load_released_checkpoint",
    "named_config",
    "set_refiner_fold",
]
