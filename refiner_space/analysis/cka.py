"""Linear centered kernel alignment (Kornblith et al., 2019): how alike two representations of the same
examples are, up to rotation and isotropic scaling."""

from __future__ import annotations

import torch
from torch import Tensor


class CkaError(ValueError):
    """Features for which linear CKA is undefined; the message says which and why."""


def centered_gram(features: Tensor) -> Tensor:
    """H X Xᵀ H for features X of shape (examples, dims), in float64: the linear kernel of the examples
    with the mean example removed (H = I - 11ᵀ/n)."""
    features = features.reshape(features.shape[0], -1).double()
    centered = features - features.mean(dim=0, keepdim=True)
    return centered @ centered.T


def linear_cka(x: Tensor, y: Tensor) -> float:
    """CKA(X, Y) = <K, L>_F / (‖K‖_F ‖L‖_F) with K, L the centered Gram matrices of X and Y.

    ``x`` (n, p) and ``y`` (n, q) hold the same n examples in rows; trailing dims are flattened. Equal to
    ‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F) on column-centered features; working on the n×n Gram matrices keeps
    the cost linear in the feature width (a ViT's flattened tokens are N·D wide).

    Raises:
        CkaError: different numbers of examples, fewer than 3 (with 2 every CKA is 1), or features that
            do not vary across the examples.
    """
    if x.shape[0] != y.shape[0]:
        raise CkaError(f"CKA compares the same examples, got {x.shape[0]} and {y.shape[0]} rows")
    if x.shape[0] < 3:
        raise CkaError(f"CKA needs at least 3 examples (with 2 every value is 1), got {x.shape[0]}")
    gram_x, gram_y = centered_gram(x), centered_gram(y)
    norm_x, norm_y = torch.linalg.matrix_norm(gram_x), torch.linalg.matrix_norm(gram_y)
    if norm_x == 0 or norm_y == 0:
        raise CkaError("CKA is undefined for features that are equal for every example; use varied images")
    return float((gram_x * gram_y).sum() / (norm_x * norm_y))
