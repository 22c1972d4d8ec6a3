"""The released-code models against docs/models.md#the-released-code-variant's table (full-size models: slow)."""

from __future__ import annotations

import warnings

import pytest
import timm
import torch
from fvcore.nn import FlopCountAnalysis

import refiner_nas.refiner_space  # noqa: F401  (registers the models)

SPEC_TABLE = {  # model: (params without aux head, params with aux head, fvcore count at 224 px)
    "refined_vit_s": (25.02e6, 25.41e6, 6.82e9),
    "refined_vit_m": (55.03e6, 55.45e6, 13.57e9),
    "refined_vit_l": (80.64e6, 81.15e6, 19.28e9),
}


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name", SPEC_TABLE)
def test_released_models_match_the_spec_table(name: str) -> None:
    plain_params, aux_params, fvcore_count = SPEC_TABLE[name]
    model = timm.create_model(name).eval()
    assert params(model) == pytest.approx(plain_params, rel=1e-3)
    assert params(timm.create_model(name, aux_head=True)) == pytest.approx(aux_params, rel=1e-3)
    analysis = FlopCountAnalysis(model, torch.zeros(1, 3, 224, 224))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        assert analysis.total() == pytest.approx(fvcore_count, rel=1e-2)
