"""Loading state dicts saved by the released Refiner code into the ``refiner_official`` variant.

The conversion is a pure function ``(state_dict, model) -> state_dict``; loading is strict and reports
every missing key, unexpected key and shape mismatch by name before anything is copied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from refiner_nas.refiner_space.model import RefinedViT

# Released name of each refiner sub-module -> ours (docs/models.md#the-released-code-variant key layout); everything
# else is shared.
_RELEASED_TO_OURS = {
    "attn.DLA.conv_exp.": "attn.refine.expand.",
    "attn.DLA.bn1.": "attn.refine.bn1.",
    "attn.DLA.depth_sep_conv.": "attn.refine.dla.",
    "attn.DLA.bn2.": "attn.refine.bn2.",
    "attn.DLA.conv_pro.": "attn.refine.reduce.",
    "attn.DLA.bn3.": "attn.refine.bn3.",
    "attn.adapt_bn.": "attn.refine.adapt_bn.",
}
_BLOCK_KEY = re.compile(r"^(blocks\.\d+\.)(.*)$")


class CheckpointMismatchError(ValueError):
    """A state dict that does not fit the model; the message lists every offending key."""


def convert_released_state_dict(state_dict: Mapping[str, Tensor], model: RefinedViT) -> dict[str, Tensor]:
    """Rename the released code's keys to this package's; keys it does not know are kept as they are,
    so that a strict load reports them."""
    if model.config.attention != "refiner_official":
        raise CheckpointMismatchError(
            f"released Refiner checkpoints load into attention='refiner_official' models, "
            f"not {model.config.attention!r}; build e.g. refined_vit_s"
        )
    converted = {}
    for key, value in state_dict.items():
        match = _BLOCK_KEY.match(key)
        if match:
            prefix, rest = match.groups()
            for released, ours in _RELEASED_TO_OURS.items():
                if rest.startswith(released):
                    rest = ours + rest[len(released) :]
                    break
            key = prefix + rest
        converted[key] = value
    return converted


def state_dict_mismatches(
    model: RefinedViT, state_dict: Mapping[str, Tensor]
) -> tuple[list[str], list[str], list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """Keys a strict load would miss, keys it would not expect, and (key, checkpoint shape, model shape)
    of the keys whose shapes differ; each sorted. A position embedding of another size is not a
    mismatch: loading resamples it."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        (key, tuple(state_dict[key].shape), tuple(expected[key].shape))
        for key in set(expected) & set(state_dict)
        if key != "pos_embed" and state_dict[key].shape != expected[key].shape
    )
    return missing, unexpected, mismatched


def load_released_checkpoint(model: RefinedViT, state_dict: Mapping[str, Tensor]) -> RefinedViT:
    """Load a released-code state dict strictly (a position embedding of another size is resampled).

    Raises:
        CheckpointMismatchError: listing missing keys, unexpected keys and shape mismatches by name.
    """
    if "state_dict" in state_dict or "model" in state_dict:
        state_dict = state_dict.get("model", state_dict.get("state_dict"))
    converted = convert_released_state_dict(state_dict, model)
    missing, unexpected, mismatched = state_dict_mismatches(model, converted)
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    if mismatched:
        shapes = (f"{key} (checkpoint {ours}, model {theirs})" for key, ours, theirs in mismatched)
        problems.append(f"shape mismatches: {', '.join(shapes)}")
    if problems:
        raise CheckpointMismatchError(
            f"checkpoint does not fit {type(model).__name__}({model.config.to_dict()}): " + "; ".join(problems)
        )
    model.load_state_dict(converted, strict=True)
    return model
