"""The Refined-ViT model family (docs/models.md), registered in timm, and what sits beside it as timm's data
and training do: ``costs`` (counted and measured), ``data`` (datasets and splits), ``training`` (the one
training loop) and ``analysis`` (CKA, attention maps, density). It imports nothing of the search above it."""

import warnings

from refiner_nas.refiner_space._compat import check_torchvision

check_torchvision()

with warnings.catch_warnings():
    # timm 1.0.12 calls torch.jit.interface at import, which torch 2.14 reports as deprecated: every
    # search worker would print it through the progress display.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
    import timm  # noqa: E402, F401

from refiner_nas.refiner_space.checkpoint import (  # noqa: E402
    CheckpointMismatchError,
    convert_released_state_dict,
    load_released_checkpoint,
)
from refiner_nas.refiner_space.config import ConfigError, ModelConfig  # noqa: E402
from refiner_nas.refiner_space.folding import set_refiner_fold  # noqa: E402
from refiner_nas.refiner_space.layers.fused import set_triton_kernels, triton_kernels  # noqa: E402
from refiner_nas.refiner_space.layers.refiner import FoldError  # noqa: E402
from refiner_nas.refiner_space.maps import attention_maps  # noqa: E402
from refiner_nas.refiner_space.model import RefinedViT, build_model  # noqa: E402
from refiner_nas.refiner_space.registry import NAMED_CONFIGS, named_config  # noqa: E402

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
    "set_triton_kernels",
    "triton_kernels",
]
