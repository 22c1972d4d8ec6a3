"""The released-code refiner chain in training (batch statistics), with a hand-written backward.

Autograd runs the chain on whole (B, 3H, N, N) tensors in PyTorch's default layout. There every step
allocates a fresh tensor of tens of MB, which glibc serves by mmap (above its 32 MiB threshold) and the
kernel by a page fault per 4 KiB, and oneDNN's depthwise and 1×1 convolutions run several times slower
than on channels-last data. Here each image's maps are one (N·N, C) matrix, channels last: the 1×1
convolutions are matrix products, the depthwise convolution runs channels-last, tensors are a few MB
(cache-sized, from the heap), BatchNorm statistics are summed image by image, and every BatchNorm input is
kept centred on its batch mean, so the backward pass needs no ``Σ dy·x − μ·Σ dy`` that would cancel on
attention maps (values near 1/N, tiny variances).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _BatchStats(NamedTuple):
    mean: Tensor
    inv_std: Tensor


def _column_sums(rows: Tensor, width: int) -> Tensor:
    """Σ over the rows of an image's (h·w, C) matrix, taken as an (h, w·C) matrix: a reduction over the
    outer dimension of a narrow matrix is several times slower."""
    return rows.view(-1, width * rows.shape[1]).sum(0).view(width, -1).sum(0)


def _column_dots(a: Sequence[Tensor], b: Sequence[Tensor], width: int) -> Tensor:
    """Σ over every image's rows of a ⊙ b, per column."""
    scratch = torch.empty_like(a[0])
    return sum((_column_sums(torch.mul(x, y, out=scratch), width) for x, y in zip(a, b, strict=True)),
               torch.zeros_like(a[0][0]))  # fmt: skip


def _centre(images: Sequence[Tensor], width: int, norm: nn.BatchNorm2d, known_mean: Tensor | None = None) -> _BatchStats:
    """Subtract the batch mean from every image's rows in place; update ``norm``'s running statistics as
    ``nn.BatchNorm2d`` does in training. ``known_mean``: a mean already taken off the rows."""
    count = sum(image.shape[0] for image in images)
    mean = sum((_column_sums(image, width) for image in images), torch.zeros_like(images[0][0])) / count
    for image in images:
        image.sub_(mean)
    variance = _column_dots(images, images, width) / count
    if known_mean is not None:
        mean = mean + known_mean
    if norm.track_running_stats and norm.running_mean is not None and norm.running_var is not None:
        assert norm.num_batches_tracked is not None  # tracked whenever running statistics are
        norm.num_batches_tracked.add_(1)
        momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
        norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
        unbiased = variance * (count / max(count - 1, 1))
        norm.running_var.lerp_(unbiased.to(norm.running_var.dtype), momentum)
    return _BatchStats(mean, torch.rsqrt(variance + norm.eps))


def _affine(centred: Tensor, stats: _BatchStats, norm: nn.BatchNorm2d, scale: float = 1.0) -> Tensor:
    """``scale · (γ·x̂ + β)`` from a centred input."""
    return torch.addcmul(scale * norm.bias, centred, scale * norm.weight * stats.inv_std)


def _norm_backward(
    grads: Sequence[Tensor], centred: Sequence[Tensor], stats: _BatchStats, weight: Tensor, width: int
) -> tuple[Tensor, Tensor]:
    """Turn the gradients of γ·x̂ + β into the input's, in place; return the gradients of γ and β."""
    count = sum(grad.shape[0] for grad in grads)
    grad_bias = sum((_column_sums(grad, width) for grad in grads), torch.zeros_like(grads[0][0]))
    grad_weight = _column_dots(grads, centred, width) * stats.inv_std
    gain = weight * stats.inv_std
    shift, slope = -gain * grad_bias / count, -gain * stats.inv_std * grad_weight / count
    for grad, image in zip(grads, centred, strict=True):
        grad.mul_(gain).add_(shift).addcmul_(image, slope)
    return grad_weight, grad_bias


def _as_image(rows: Tensor, height: int, width: int) -> Tensor:
    """An image's (h·w, C) matrix as a channels-last (1, C, h, w) tensor (a view)."""
    return rows.view(1, height, width, rows.shape[1]).permute(0, 3, 1, 2)


def _as_rows(tensor: Tensor) -> Tensor:
    """(B, C, h, w) as a (B·h·w, C) matrix (a view when ``tensor`` is channels-last)."""
    return tensor.permute(0, 2, 3, 1).reshape(-1, tensor.shape[1])


class _TrainingChain(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, maps: Tensor, refiner: nn.Module, *params: Tensor) -> Tensor:
        batch, heads, height, width = maps.shape
        expand, reduce = refiner.expand.weight[:, :, 0, 0], refiner.reduce.weight[:, :, 0, 0]
        depthwise = refiner.dla.weight
        pad, channels = depthwise.shape[-1] // 2, depthwise.shape[0]
        rows = _as_rows(maps)
        images = rows.split(height * width)
        # BN1 of E·A: E·(A − mean A) is already centred, so nothing cancels.
        input_mean = sum((_column_sums(image, width) for image in images), torch.zeros_like(rows[0])) / len(rows)
        expanded = [(image - input_mean) @ expand.t() for image in images]
        expanded_stats = _centre(expanded, width, refiner.bn1, known_mean=expand @ input_mean)
        act1 = [_affine(image, expanded_stats, refiner.bn1).clamp_(0.0, 6.0) for image in expanded]
        local = [
            _as_rows(F.conv2d(_as_image(image, height, width), depthwise, padding=pad, groups=channels))
            for image in act1
        ]
        local_stats = _centre(local, width, refiner.bn2)
        act2 = [_affine(image, local_stats, refiner.bn2).clamp_(0.0, 6.0) for image in local]
        reduced = torch.cat([image @ reduce.t() for image in act2])
        reduced_stats = _centre(reduced.split(height * width), width, refiner.bn3)
        summed = _affine(reduced, reduced_stats, refiner.bn3).add_(rows)
        summed_stats = _centre(summed.split(height * width), width, refiner.adapt_bn)
        out = _affine(summed, summed_stats, refiner.adapt_bn, refiner.scale)
        ctx.refiner, ctx.size = refiner, (height, width)
        ctx.stats = (expanded_stats, local_stats, reduced_stats, summed_stats)
        ctx.images = (expanded, act1, local, act2)
        ctx.save_for_backward(rows, reduced, summed)
        return out.view(batch, height, width, heads).permute(0, 3, 1, 2).contiguous()

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        refiner, (height, width) = ctx.refiner, ctx.size
        rows, reduced, summed = ctx.saved_tensors
        expanded_stats, local_stats, reduced_stats, summed_stats = ctx.stats
        expanded, act1, local, act2 = ctx.images
        expand, reduce = refiner.expand.weight[:, :, 0, 0], refiner.reduce.weight[:, :, 0, 0]
        depthwise = refiner.dla.weight
        pad, channels = depthwise.shape[-1] // 2, depthwise.shape[0]
        pixels = height * width

        grad_summed = _as_rows(grad_out).mul(refiner.scale)
        g_adapt = _norm_backward(grad_summed.split(pixels), summed.split(pixels), summed_stats,
                                 refiner.adapt_bn.weight, width)  # fmt: skip
        grad_reduced = grad_summed.clone()
        g_bn3 = _norm_backward(grad_reduced.split(pixels), reduced.split(pixels), reduced_stats,
                               refiner.bn3.weight, width)  # fmt: skip
        grad_reduced_images = grad_reduced.split(pixels)
        g_reduce = sum(grad.t() @ image for grad, image in zip(grad_reduced_images, act2, strict=True))
        grad_local = [
            torch.ops.aten.hardtanh_backward(grad @ reduce, image, 0.0, 6.0)
            for grad, image in zip(grad_reduced_images, act2, strict=True)
        ]
        g_bn2 = _norm_backward(grad_local, local, local_stats, refiner.bn2.weight, width)
        g_depthwise = torch.zeros_like(depthwise)
        grad_expanded = []
        for grad, image in zip(grad_local, act1, strict=True):
            grad_act1, grad_weight, _ = torch.ops.aten.convolution_backward(
                _as_image(grad, height, width), _as_image(image, height, width), depthwise, None,
                [1, 1], [pad, pad], [1, 1], False, [0, 0], channels, [True, True, False],
            )  # fmt: skip
            g_depthwise += grad_weight
            grad_expanded.append(torch.ops.aten.hardtanh_backward(_as_rows(grad_act1), image, 0.0, 6.0))
        g_bn1 = _norm_backward(grad_expanded, expanded, expanded_stats, refiner.bn1.weight, width)
        g_expand = sum(grad.t() @ image for grad, image in zip(grad_expanded, rows.split(pixels), strict=True))
        for grad_rows, grad in zip(grad_summed.split(pixels), grad_expanded, strict=True):
            grad_rows.addmm_(grad, expand)
        batch, heads = grad_out.shape[:2]
        grad_maps = grad_summed.view(batch, height, width, heads).permute(0, 3, 1, 2).contiguous()
        return (
            grad_maps, None, g_expand[:, :, None, None], *g_bn1, g_depthwise, *g_bn2,
            g_reduce[:, :, None, None], *g_bn3, *g_adapt,
        )  # fmt: skip


def refine_with_batch_statistics(maps: Tensor, refiner: nn.Module) -> Tensor:
    """The released-code refiner chain of ``refiner`` in training mode: equal to running its modules one
    after another (BatchNorms with batch statistics, running statistics updated), faster and smaller."""
    params = (
        refiner.expand.weight, refiner.bn1.weight, refiner.bn1.bias, refiner.dla.weight,
        refiner.bn2.weight, refiner.bn2.bias, refiner.reduce.weight, refiner.bn3.weight, refiner.bn3.bias,
        refiner.adapt_bn.weight, refiner.adapt_bn.bias,
    )  # fmt: skip
    return _TrainingChain.apply(maps, refiner, *params)
