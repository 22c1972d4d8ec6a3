"""Model-wide switches for the two folds: the paper refiner's dense kernel and the released code's
BatchNorms."""

from __future__ import annotations

from torch import nn

from refiner_space.layers import AttentionRefiner, OfficialMapRefiner
from refiner_space.layers.refiner import FoldError


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
            "fold its BatchNorms with fold_batchnorms(model) instead"
            if released
            else "only attention='refiner' models have a foldable refiner"
        )
        raise FoldError(f"nothing to fold: {hint}")
    for refiner in refiners:
        refiner.set_folded(folded)
    return len(refiners)


def fold_batchnorms(model: nn.Module) -> int:
    """Fold the BatchNorms of every released-code refiner into its convolutions (eval only, in place).

    Returns the number of refiners folded.
    """
    if model.training:
        raise RuntimeError("BatchNorm folding is for inference: call model.eval() first")
    refiners = [m for m in model.modules() if isinstance(m, OfficialMapRefiner)]
    if not refiners:
        raise FoldError("nothing to fold: only attention='refiner_official' models have refiner BatchNorms")
    for refiner in refiners:
        refiner.fold_batchnorm()
    return len(refiners)
