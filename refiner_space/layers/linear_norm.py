"""BatchNorm of a 1×1 convolution's output, computed without materialising the unnormalised output.

A 1×1 convolution over the head axis is linear, so the per-channel mean and variance of its output
follow from the mean and covariance of its (H-channel) input: mean_c = w_c · μ and var_c = w_c Σ w_cᵀ.
The BatchNorm then folds into the convolution's weight and bias, in training as in eval, and the r·H
expanded maps are written once instead of twice (convolution, then BatchNorm). Gradients flow through
μ and Σ exactly as they flow through BatchNorm's batch statistics.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def normalised_mix(maps: Tensor, conv: nn.Conv2d, norm: nn.BatchNorm2d) -> Tensor:
    """``norm(conv(maps))`` for a bias-free 1×1 ``conv`` on (B, H, N, M) maps, as one batched product.

    In training it uses (and records in ``norm``'s running statistics) the batch statistics, as
    ``nn.BatchNorm2d`` does; in eval the running statistics.
    """
    weight = conv.weight[:, :, 0, 0]
    batch, heads, height, width = maps.shape
    flat = maps.reshape(batch, heads, height * width)
    if norm.training:
        count = batch * height * width
        mean = flat.mean(dim=(0, 2))
        centred = flat - mean[:, None]
        # Batched products over (B, H, N·M) as stored: no transposed copy of the maps.
        covariance = (centred @ centred.transpose(1, 2)).sum(dim=0) / count
        out_mean = weight @ mean
        out_var = ((weight @ covariance) * weight).sum(dim=1)
        _record(norm, out_mean.detach(), out_var.detach() * count / max(count - 1, 1))
    else:
        out_mean, out_var = norm.running_mean, norm.running_var
    gain = norm.weight * torch.rsqrt(out_var + norm.eps)
    bias = (norm.bias - out_mean * gain)[None, :, None].expand(batch, -1, 1)
    mixed = torch.baddbmm(bias, (weight * gain[:, None]).expand(batch, -1, -1), flat)
    return mixed.view(batch, -1, height, width)


@torch.no_grad()
def _record(norm: nn.BatchNorm2d, mean: Tensor, unbiased_var: Tensor) -> None:
    """Update running statistics the way ``nn.BatchNorm2d`` does in training."""
    mean, unbiased_var = mean.to(norm.running_mean.dtype), unbiased_var.to(norm.running_var.dtype)  # autocast
    norm.num_batches_tracked.add_(1)
    momentum = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
    norm.running_mean.lerp_(mean, momentum)
    norm.running_var.lerp_(unbiased_var, momentum)
