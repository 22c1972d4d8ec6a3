"""Model-wide switch for the paper refiner's fold into one dense kernel (the released code's refiner
folds its BatchNorms by itself in eval mode)."""

from __future__ import annotations

from torch import nn

from refiner_nas.refiner_space.layers import AttentionRefiner, OfficialMapRefiner
from refiner_nas.refiner_space.layers.refiner import FoldError


def set_refiner_fold(model: nn.Module, folded: bool = True) -> int:
    """Compute every paper-variant refiner of ``model`` as one dense k×k convolution (or not).

    Works in training: gradients still reach the expansion, depthwise and reduction weights.
    Returns the number of refiners switched.

    Raises:
        FoldError: the model has no foldable refiner (vanilla, released-code variant) or a refiner
            without attention reduction.
    """
    refiners = [m for m in model.modules() if isinstance(m, AttentionRefiner)]
    if not refiners:
        released = any(isinstance(m, OfficialMapRefiner) for m in model.modules())
        hint = (
            "the released-code refiner is not linear (ReLU6 between its convolutions); "
            "its BatchNorms fold by themselves in eval mode"
            if released
            else "only attention='refiner' models have a foldable refiner"
        )
        raise FoldError(f"nothing to fold: {hint}")
    for refiner in refiners:
        refiner.set_folded(folded)
    return len(refiners)
