"""The released-code refiner chain in training (batch statistics), with a hand-written backward.

Autograd through the modules runs on whole (B, 3H, N, N) tensors in PyTorch's default layout and saves
every intermediate. Here the chain runs on the row matrices of ``refiner_nas.refiner_space.layers.chunks``, a few
images at a time; BatchNorm statistics are summed chunk by chunk, and every BatchNorm input is kept
centred on its batch mean, so the backward pass needs no ``Σ dy·x − μ·Σ dy`` that would cancel on
attention maps (values near 1/N, tiny variances).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from refiner_nas.refiner_space.layers.chunks import as_images, as_maps, as_rows, chunk_rows


def _chunk_sums(rows: Tensor, width: int) -> Tensor:
    """Σ over the rows of images' (k·h·w, C) matrix, taken as an (h, w·C) matrix: a reduction over the
    outer dimension of a narrow matrix is several times slower."""
    return rows.view(-1, width * rows.shape[1]).sum(0).view(width, -1).sum(0)


def _column_sums(chunks: Sequence[Tensor], width: int) -> Tensor:
    """Σ over every chunk's rows, per column."""
    return sum((_chunk_sums(chunk, width) for chunk in chunks), torch.zeros_like(chunks[0][0]))


def _column_dots(a: Sequence[Tensor], b: Sequence[Tensor], width: int) -> Tensor:
    """Σ over every chunk's rows of a ⊙ b, per column."""
    scratch = torch.empty_like(a[0])  # the first chunk is the longest
    products = (torch.mul(x, y, out=scratch[: len(x)]) for x, y in zip(a, b, strict=True))
    return sum((_chunk_sums(product, width) for product in products), torch.zeros_like(a[0][0]))


def _centre(chunks: Sequence[Tensor], width: int, norm: nn.BatchNorm2d, known_mean: Tensor | None = None) -> Tensor:
    """Subtract the batch mean from every chunk's rows in place, update ``norm``'s running statistics as
    ``nn.BatchNorm2d`` does in training, and return 1/σ. ``known_mean``: the rows are a linear map of
    centred inputs, centred already (up to rounding), and this is the mean that was taken off."""
    count = sum(chunk.shape[0] for chunk in chunks)
    if known_mean is None:
        mean = _column_sums(chunks, width) / count
        for chunk in chunks:
            chunk.sub_(mean)
    else:
        mean = known_mean
    variance = _column_dots(chunks, chunks, width) / count
    tracked = (norm.running_mean, norm.running_var, norm.num_batches_tracked)
    if norm.track_running_stats and all(buffer is not None for buffer in tracked):
        running_mean, running_var, batches = tracked
        batches.add_(1)
        momentum = norm.momentum if norm.momentum is not None else 1.0 / float(batches)
        running_mean.lerp_(mean.to(running_mean.dtype), momentum)
        unbiased = variance * (count / max(count - 1, 1))
        running_var.lerp_(unbiased.to(running_var.dtype), momentum)
    return torch.rsqrt(variance + norm.eps)


def _affine(centred: Tensor, inv_std: Tensor, norm: nn.BatchNorm2d, scale: float = 1.0) -> Tensor:
    """``scale · (γ·x̂ + β)`` from a centred input."""
    return torch.addcmul(scale * norm.bias, centred, scale * norm.weight * inv_std)


def _norm_backward(
    grads: Sequence[Tensor], centred: Sequence[Tensor], inv_std: Tensor, weight: Tensor, width: int
) -> tuple[Tensor, Tensor]:
    """Turn the gradients of γ·x̂ + β into the input's, in place; return the gradients of γ and β."""
    count = sum(grad.shape[0] for grad in grads)
    grad_bias = _column_sums(grads, width)
    grad_weight = _column_dots(grads, centred, width) * inv_std
    gain = weight * inv_std
    shift, slope = -gain * grad_bias / count, -gain * inv_std * grad_weight / count
    for grad, image in zip(grads, centred, strict=True):
        torch.addcmul(shift, grad, gain, out=grad).addcmul_(image, slope)
    return grad_weight, grad_bias


def _relu6_backward(grad: Tensor, output: Tensor) -> Tensor:
    """Zero ``grad`` (a fresh tensor, overwritten) where ReLU6 clipped: ``output`` is 0 or 6 there."""
    return torch.ops.aten.hardtanh_backward.grad_input(grad, output, 0.0, 6.0, grad_input=grad)


class _TrainingChain(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, maps: Tensor, refiner: nn.Module, *params: Tensor) -> Tensor:
        batch, _, height, width = maps.shape
        expand, reduce = refiner.expand.weight[:, :, 0, 0], refiner.reduce.weight[:, :, 0, 0]
        depthwise = refiner.dla.weight
        pad, channels = depthwise.shape[-1] // 2, depthwise.shape[0]
        step = chunk_rows(height * width, channels, maps.element_size())
        rows = as_rows(maps)
        chunks = rows.split(step)
        # BN1 of E·A: E·(A − mean A) is already centred, so nothing cancels.
        input_mean = _column_sums(chunks, width) / len(rows)
        expanded = [(chunk - input_mean) @ expand.t() for chunk in chunks]
        expanded_inv_std = _centre(expanded, width, refiner.bn1, known_mean=expand @ input_mean)
        act1 = [_affine(chunk, expanded_inv_std, refiner.bn1).clamp_(0.0, 6.0) for chunk in expanded]
        local = [
            as_rows(F.conv2d(as_images(chunk, height, width), depthwise, padding=pad, groups=channels))
            for chunk in act1
        ]
        local_inv_std = _centre(local, width, refiner.bn2)
        act2 = [_affine(chunk, local_inv_std, refiner.bn2).clamp_(0.0, 6.0) for chunk in local]
        reduced = rows.new_empty(rows.shape)
        for chunk, out_chunk in zip(act2, reduced.split(step), strict=True):
            torch.mm(chunk, reduce.t(), out=out_chunk)
        reduced_inv_std = _centre(reduced.split(step), width, refiner.bn3)
        summed = _affine(reduced, reduced_inv_std, refiner.bn3).add_(rows)
        summed_inv_std = _centre(summed.split(step), width, refiner.adapt_bn)
        out = _affine(summed, summed_inv_std, refiner.adapt_bn, refiner.scale)
        ctx.scale, ctx.size, ctx.step = refiner.scale, (height, width), step
        ctx.inv_stds = (expanded_inv_std, local_inv_std, reduced_inv_std, summed_inv_std)
        ctx.chunks = (expanded, act1, local, act2)
        ctx.save_for_backward(rows, reduced, summed, *params)  # weights changed in place before backward: an error
        return as_maps(out, batch, height, width)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        (height, width), step = ctx.size, ctx.step
        rows, reduced, summed, expand, bn1, _, depthwise, bn2, _, reduce, bn3, _, adapt, _ = ctx.saved_tensors
        expanded_inv_std, local_inv_std, reduced_inv_std, summed_inv_std = ctx.inv_stds
        expanded, act1, local, act2 = ctx.chunks
        expand, reduce = expand[:, :, 0, 0], reduce[:, :, 0, 0]
        pad, channels = depthwise.shape[-1] // 2, depthwise.shape[0]

        grad_summed = rows.new_empty(rows.shape)  # the upstream gradient as rows, scaled, in one pass
        torch.mul(grad_out.permute(0, 2, 3, 1), ctx.scale, out=grad_summed.view(-1, height, width, rows.shape[1]))
        g_adapt = _norm_backward(grad_summed.split(step), summed.split(step), summed_inv_std, adapt, width)
        grad_reduced = grad_summed.clone()
        g_bn3 = _norm_backward(grad_reduced.split(step), reduced.split(step), reduced_inv_std, bn3, width)
        grad_reduced_chunks = grad_reduced.split(step)
        g_reduce = sum(grad.t() @ chunk for grad, chunk in zip(grad_reduced_chunks, act2, strict=True))
        grad_local = [
            _relu6_backward(grad @ reduce, chunk) for grad, chunk in zip(grad_reduced_chunks, act2, strict=True)
        ]
        g_bn2 = _norm_backward(grad_local, local, local_inv_std, bn2, width)
        g_depthwise = torch.zeros_like(depthwise)
        grad_expanded = []
        for grad, chunk in zip(grad_local, act1, strict=True):
            grad_act1, grad_weight, _ = torch.ops.aten.convolution_backward(
                as_images(grad, height, width), as_images(chunk, height, width), depthwise, None,
                [1, 1], [pad, pad], [1, 1], False, [0, 0], channels, [True, True, False],
            )  # fmt: skip
            g_depthwise += grad_weight
            grad_expanded.append(_relu6_backward(as_rows(grad_act1), chunk))
        g_bn1 = _norm_backward(grad_expanded, expanded, expanded_inv_std, bn1, width)
        g_expand = sum(grad.t() @ chunk for grad, chunk in zip(grad_expanded, rows.split(step), strict=True))
        for grad_rows, grad in zip(grad_summed.split(step), grad_expanded, strict=True):
            grad_rows.addmm_(grad, expand)
        return (
            as_maps(grad_summed, grad_out.shape[0], height, width), None,
            g_expand[:, :, None, None], *g_bn1, g_depthwise, *g_bn2, g_reduce[:, :, None, None], *g_bn3, *g_adapt,
        )  # fmt: skip


def pays_off(maps: Tensor, refiner: nn.Module) -> bool:
    """Whether ``refine_with_batch_statistics`` should run ``refiner`` on ``maps``.

    Only on CPU (what it saves is oneDNN's layouts and glibc's page faults), outside autocast and
    ``torch.compile`` (which fuses the modules' chain itself and cannot trace this one), for affine
    ``nn.BatchNorm2d`` norms (a ``SyncBatchNorm``'s statistics span processes), and when the batch spans
    several chunks: measured 1.4× the modules' speed on a batch of 64 maps of
    65 tokens (13 MB expanded), 0.7× on 17 tokens (0.9 MB, one chunk).
    """
    if maps.device.type != "cpu" or torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling():
        return False
    norms = (refiner.bn1, refiner.bn2, refiner.bn3, refiner.adapt_bn)
    if not all(type(norm) is nn.BatchNorm2d and norm.affine for norm in norms):
        return False
    batch, _, height, width = maps.shape
    return chunk_rows(height * width, refiner.expand.out_channels, maps.element_size()) < batch * height * width


def refine_with_batch_statistics(maps: Tensor, refiner: nn.Module) -> Tensor:
    """The released-code refiner chain of ``refiner`` in training mode: equal to running its modules one
    after another (BatchNorms with batch statistics, running statistics updated), faster and smaller."""
    params = (
        refiner.expand.weight, refiner.bn1.weight, refiner.bn1.bias, refiner.dla.weight,
        refiner.bn2.weight, refiner.bn2.bias, refiner.reduce.weight, refiner.bn3.weight, refiner.bn3.bias,
        refiner.adapt_bn.weight, refiner.adapt_bn.bias,
    )  # fmt: skip
    return _TrainingChain.apply(maps, refiner, *params)
