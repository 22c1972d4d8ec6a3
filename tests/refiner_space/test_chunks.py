"""The released-code refiner's eval path (BatchNorms folded, a few images at a time, channels last)
against its explicit chain."""

from __future__ import annotations

import pytest
import torch

import refiner_nas.refiner_space.layers.chunks as chunks
from refiner_nas.refiner_space.layers import OfficialMapRefiner
from refiner_nas.refiner_space.layers.chunks import as_images, as_maps, as_rows, refine_in_chunks


def randomised(refiner: OfficialMapRefiner) -> OfficialMapRefiner:
    with torch.no_grad():
        for parameter in refiner.parameters():
            parameter.normal_(0.0, 0.5)
        for module in refiner.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return refiner.eval()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def test_rows_and_images_are_the_same_maps() -> None:
    maps = torch.randn(3, 5, 4, 6)
    rows = as_rows(maps)
    assert rows.shape == (3 * 4 * 6, 5)
    assert torch.equal(rows[(1 * 4 + 2) * 6 + 3], maps[1, :, 2, 3])  # image 1, row 2, column 3
    assert torch.equal(as_images(rows, 4, 6), maps)
    assert as_images(rows, 4, 6).is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(as_maps(rows, 3, 4, 6), maps) and as_maps(rows, 3, 4, 6).is_contiguous()


@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("images_per_chunk", [1, 2, 3])
def test_chunks_equal_the_explicit_chain(
    kernel: int, images_per_chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    refiner = randomised(OfficialMapRefiner(4, head_dim=8, expansion_ratio=3, kernel_size=kernel))
    maps = torch.rand(3, 4, 23, 23).softmax(-1)
    # 12 expanded maps of 23×23 floats per image; 3 per chunk is the whole batch in one.
    monkeypatch.setattr(chunks, "CHUNK_BYTES", images_per_chunk * 12 * 23 * 23 * 4)
    assert chunks.chunk_rows(23 * 23, 12, 4) == images_per_chunk * 23 * 23
    explicit = refiner.explicit(maps)
    with torch.no_grad():
        chunked = refine_in_chunks(maps, refiner.folded_chain())
    assert relative_error(chunked, explicit) < 1e-5


def test_eval_without_autograd_takes_the_chunks_and_training_the_batch_statistics() -> None:
    refiner = randomised(OfficialMapRefiner(3, head_dim=8))
    maps = torch.rand(2, 3, 17, 17).softmax(-1)
    with torch.inference_mode():
        fast = refiner(maps)
    assert relative_error(fast, refiner.explicit(maps)) < 1e-5
    assert refiner(maps).requires_grad  # autograd on: the explicit chain, gradients reach every weight
    refiner.train()
    trained = refiner(maps)
    trained.sum().backward()
    assert all(p.grad is not None for p in refiner.parameters())
    with torch.no_grad():
        assert relative_error(refiner(maps), fast) > 1e-3  # batch statistics, not the running ones


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_under_autocast_the_chunks_compute_in_float32_and_return_the_maps_dtype(dtype: torch.dtype) -> None:
    refiner = randomised(OfficialMapRefiner(2, head_dim=4))
    maps = torch.rand(3, 2, 9, 9).softmax(-1).to(dtype)
    with torch.inference_mode():
        expected = refiner(maps.float())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = refiner(maps)
    assert out.dtype == dtype and relative_error(out.float(), expected) < (1e-6 if dtype == torch.float32 else 1e-2)
