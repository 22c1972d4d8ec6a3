"""The Triton kernels of both refiner chains against the PyTorch paths: on CPU through Triton's
interpreter in float32 (it has no working bf16 products), on CUDA compiled, in float32 and bf16 and
through whole models."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from refiner_nas.refiner_space import build_model, named_config, set_refiner_fold, set_triton_kernels
from refiner_nas.refiner_space.layers import OfficialMapRefiner
from refiner_nas.refiner_space.layers.chunks import refine_in_chunks
from refiner_nas.refiner_space.layers.fused import triton_installed, uses_triton
from tests.refiner_space.test_chunks import randomised

needs_triton = pytest.mark.skipif(not triton_installed(), reason="Triton is not installed")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# (heads, expansion ratio, kernel, batch, height, width): padded tiles, a 5×5 kernel, a non-square map
# whose positions do not fill the last tile.
SHAPES = [(3, 3, 3, 2, 10, 10), (12, 3, 3, 1, 17, 17), (5, 2, 5, 2, 9, 13)]


def norm_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return ((ours.double() - reference.double()).norm() / reference.double().norm()).item()


@pytest.fixture
def interpreted(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``refiner_nas.refiner_space.layers.triton_chain`` with its kernels run by Triton's CPU interpreter. The
    interpreter runs only kernels built on Triton's primitives, not on its jit-compiled helpers (``tl.zeros``)."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    module = importlib.reload(importlib.import_module("refiner_nas.refiner_space.layers.triton_chain"))
    yield module
    monkeypatch.delenv("TRITON_INTERPRET")
    importlib.reload(module)


def refiner_and_maps(shape: tuple[int, ...], device: str = "cpu") -> tuple[OfficialMapRefiner, torch.Tensor]:
    heads, ratio, kernel, batch, height, width = shape
    refiner = randomised(OfficialMapRefiner(heads, head_dim=8, expansion_ratio=ratio, kernel_size=kernel))
    maps = torch.rand(batch, heads, height, width).softmax(-1) * width  # values around 1, some clipped at 6
    return refiner.to(device), maps.to(device)


@needs_triton
@pytest.mark.parametrize("shape", SHAPES)
def test_interpreted_released_chain_equals_the_pytorch_path(interpreted: ModuleType, shape: tuple[int, ...]) -> None:
    torch.manual_seed(sum(shape))
    refiner, maps = refiner_and_maps(shape)
    with torch.no_grad():
        chain = refiner.folded_chain()
        out = interpreted.released_chain(maps, chain)
        expected = refine_in_chunks(maps, chain)
        assert norm_error(out, expected) < 1e-6
        assert norm_error(out, refiner.explicit(maps)) < 1e-5


@needs_triton
@pytest.mark.parametrize("shape", SHAPES)
def test_interpreted_dense_conv_equals_conv2d(interpreted: ModuleType, shape: tuple[int, ...]) -> None:
    torch.manual_seed(sum(shape))
    heads, _, kernel_size, batch, height, width = shape
    maps = torch.randn(batch, heads, height, width)
    kernel = torch.randn(heads, heads, kernel_size, kernel_size)
    out = interpreted.dense_conv(maps, kernel)
    assert norm_error(out, F.conv2d(maps, kernel, padding=kernel_size // 2)) < 1e-6


def test_the_kernels_run_only_on_cuda_without_autograd() -> None:
    maps = torch.rand(1, 2, 3, 3)
    with torch.no_grad():
        assert not uses_triton(maps)  # CPU
    previous = set_triton_kernels(False)
    try:
        assert previous is True
        assert set_triton_kernels(False) is False
    finally:
        set_triton_kernels(True)


@pytest.mark.gpu
@needs_cuda
@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES)
def test_compiled_kernels_equal_the_pytorch_paths(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    from refiner_nas.refiner_space.layers.triton_chain import dense_conv, released_chain

    torch.manual_seed(sum(shape))
    refiner, maps = refiner_and_maps(shape, "cuda")
    maps = maps.to(dtype)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-3
    with torch.no_grad():
        chain = refiner.folded_chain()
        out = released_chain(maps, chain)
        assert out.dtype == dtype
        assert norm_error(out, refine_in_chunks(maps, chain)) < tolerance
        kernel = torch.randn(shape[0], shape[0], shape[2], shape[2], device="cuda")
        expected = F.conv2d(maps.float(), kernel, padding=shape[2] // 2).to(dtype)
        assert norm_error(dense_conv(maps, kernel), expected) < tolerance


@pytest.mark.gpu
@needs_cuda
@needs_triton
@pytest.mark.parametrize("name", ["refined_vit_s", "refined_vit_16b_384"])
def test_models_give_the_same_logits_with_and_without_the_kernels(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(named_config(name).replace(img_size=64)).cuda().eval()
    if name == "refined_vit_16b_384":
        set_refiner_fold(model)
    images = torch.randn(4, 3, 64, 64, device="cuda")
    for autocast in (False, True):
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=autocast):
            fused = model(images).float()
            previous = set_triton_kernels(False)
            try:
                plain = model(images).float()
            finally:
                set_triton_kernels(previous)
        assert norm_error(fused, plain) < (1e-5 if not autocast else 2e-2)
