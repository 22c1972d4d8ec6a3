"""Which code computes a refiner chain at inference: Triton's kernels on CUDA
(``refiner_nas.refiner_space.layers.triton_chain``), PyTorch everywhere else.

The kernels are optional: without Triton, on CPU, with autograd recording, or inside ``torch.compile``
(Inductor fuses the PyTorch path itself) the PyTorch path runs. ``set_triton_kernels`` turns them off
for the whole process and ``triton_kernels`` within a block, to compare or to rule them out.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor

from refiner_nas.refiner_space.layers.chunks import FoldedChain, refine_in_chunks

_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_MAX_BATCH = 65535  # images run on the kernels' second grid axis, which CUDA limits to 65,535 programs
_enabled = True


def set_triton_kernels(enabled: bool) -> bool:
    """Use the Triton kernels where they apply (True, the default) or never; returns the previous setting."""
    global _enabled
    previous, _enabled = _enabled, enabled
    return previous


@contextmanager
def triton_kernels(enabled: bool) -> Iterator[None]:
    """Within the block, use the Triton kernels where they apply (True) or never; then as before."""
    previous = set_triton_kernels(enabled)
    try:
        yield
    finally:
        set_triton_kernels(previous)


@cache
def triton_installed() -> bool:
    """Whether Triton can be imported (it comes with PyTorch's CUDA wheels on Linux)."""
    return importlib.util.find_spec("triton") is not None


def uses_triton(maps: Tensor) -> bool:
    """Whether a refiner chain on ``maps`` runs in a Triton kernel."""
    return (
        _enabled
        and maps.is_cuda
        and maps.dtype in _KERNEL_DTYPES
        and maps.shape[0] <= _MAX_BATCH
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and triton_installed()
        and _has_tensor_core_floats(maps.device.index)
    )


@cache
def _has_tensor_core_floats(device_index: int | None) -> bool:
    """TF32 and bf16 products, which the kernels use, need an Ampere or newer GPU (compute capability 8)."""
    return torch.cuda.get_device_capability(device_index) >= (8, 0)


def refine_released(maps: Tensor, chain: FoldedChain) -> Tensor:
    """The released-code chain with its BatchNorms folded, on (B, H, N, M) maps, without autograd."""
    if uses_triton(maps):
        from refiner_nas.refiner_space.layers.triton_chain import released_chain

        return released_chain(maps, chain)
    return refine_in_chunks(maps, chain)


def convolve_maps(maps: Tensor, kernel: Tensor) -> Tensor:
    """``F.conv2d(maps, kernel, padding=k // 2)`` for the paper chain's folded (H, H, k, k) kernel."""
    if uses_triton(maps):
        from refiner_nas.refiner_space.layers.triton_chain import dense_conv

        return dense_conv(maps, kernel)
    return F.conv2d(maps, kernel, padding=kernel.shape[-1] // 2)
