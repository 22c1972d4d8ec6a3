"""The released-code refiner's training path (image by image, hand-written backward) against autograd
through its modules."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch

from refiner_nas.refiner_space.layers import OfficialMapRefiner
from refiner_nas.refiner_space.layers.training_chain import refine_with_batch_statistics


def randomised(refiner: OfficialMapRefiner) -> OfficialMapRefiner:
    with torch.no_grad():
        for module in refiner.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return refiner.train()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize(("heads", "kernel", "size", "momentum"), [(3, 3, 9, 0.1), (4, 5, 7, None), (2, 1, 6, 0.3)])
def test_the_training_chain_equals_autograd_through_the_modules(
    heads: int, kernel: int, size: int, momentum: float | None
) -> None:
    torch.manual_seed(heads)
    reference = randomised(OfficialMapRefiner(heads, head_dim=8, kernel_size=kernel).double())
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = momentum
    ours = copy.deepcopy(reference)
    maps = torch.rand(3, heads, size, size, dtype=torch.float64).softmax(-1)
    upstream = torch.randn_like(maps)
    expected_in, ours_in = maps.clone().requires_grad_(), maps.clone().requires_grad_()
    for _ in range(2):  # twice: running statistics follow the same updates
        expected = reference.explicit(expected_in)
        expected.backward(upstream)
        out = refine_with_batch_statistics(ours_in, ours)
        out.backward(upstream)
    assert relative_error(out, expected) < 1e-12
    assert relative_error(ours_in.grad, expected_in.grad) < 1e-12
    for (name, theirs), mine in zip(reference.named_parameters(), ours.parameters(), strict=True):
        if name == "bn3.bias":  # feeds the adapting BatchNorm, which removes it: zero up to rounding
            assert mine.grad.abs().max() < 1e-9 and theirs.grad.abs().max() < 1e-9
        else:
            assert relative_error(mine.grad, theirs.grad) < 1e-12, name
    for (name, theirs), mine in zip(reference.named_buffers(), ours.buffers(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=0, msg=name)


def test_the_training_chain_passes_gradcheck() -> None:
    torch.manual_seed(0)
    refiner = randomised(OfficialMapRefiner(2, head_dim=4).double())
    maps = torch.rand(2, 2, 5, 5, dtype=torch.float64).softmax(-1).requires_grad_()
    weights = tuple(refiner.parameters())

    def chain(maps: torch.Tensor, *_: torch.Tensor) -> torch.Tensor:
        return refine_with_batch_statistics(maps, copy.deepcopy(refiner))

    assert torch.autograd.gradcheck(lambda m: chain(m), (maps,))
    assert torch.autograd.gradcheck(
        lambda *w: refine_with_batch_statistics(maps.detach(), _with_weights(refiner, w)), weights
    )


def _with_weights(refiner: OfficialMapRefiner, weights: tuple[torch.Tensor, ...]) -> OfficialMapRefiner:
    """A copy of ``refiner`` whose parameters are ``weights`` (so gradcheck can vary them)."""
    copied = copy.deepcopy(refiner)
    for (name, _), weight in zip(refiner.named_parameters(), weights, strict=True):
        module_name, attribute = name.rsplit(".", 1)
        module = copied.get_submodule(module_name)
        delattr(module, attribute)
        setattr(module, attribute, weight)
    return copied


def test_training_with_autograd_on_large_maps_takes_the_training_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    import refiner_nas.refiner_space.layers.official as official

    calls = []
    monkeypatch.setattr(official, "refine_with_batch_statistics",
                        lambda maps, refiner: calls.append(maps.shape[0]) or refiner.explicit(maps))  # fmt: skip
    refiner = randomised(OfficialMapRefiner(2, head_dim=4))
    small = torch.rand(2, 2, 5, 5).softmax(-1)
    large = torch.rand(64, 2, 65, 65).softmax(-1)  # 6 expanded maps: 6.5 MB
    refiner(small)  # below one chunk: the modules
    refiner(large)
    with torch.no_grad():
        refiner(large)  # no autograd: the modules, nothing to save
    refiner.eval()(large)  # eval with gradients: the modules with running statistics
    refiner.train().bn2 = torch.nn.SyncBatchNorm(6)
    refiner(large)  # statistics across processes: the modules
    assert calls == [64]


def test_several_chunks_and_a_short_last_one_give_the_same_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    import refiner_nas.refiner_space.layers.chunks as chunks

    torch.manual_seed(1)
    refiner = randomised(OfficialMapRefiner(3, head_dim=8).double())
    maps = torch.rand(5, 3, 8, 8, dtype=torch.float64).softmax(-1)
    upstream = torch.randn_like(maps)
    results = []
    for chunk_bytes in (1 << 30, 2 * 9 * 64 * 8):  # one chunk; chunks of 2, 2 and 1 images
        monkeypatch.setattr(chunks, "CHUNK_BYTES", chunk_bytes)
        inputs = maps.clone().requires_grad_()
        copied = copy.deepcopy(refiner)
        out = refine_with_batch_statistics(inputs, copied)
        out.backward(upstream)
        results.append((out, inputs.grad, copied.dla.weight.grad, copied.bn2.running_var))
    for whole, chunked in zip(*results, strict=True):
        assert relative_error(chunked, whole) < 1e-12


def test_autocast_takes_the_modules_and_a_second_derivative_is_refused() -> None:
    refiner = randomised(OfficialMapRefiner(2, head_dim=4))
    large = torch.rand(64, 2, 65, 65).softmax(-1).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        refiner(large).float().sum().backward()  # the modules: autocast's own dtype rules
    assert large.grad is not None
    (grad,) = torch.autograd.grad(refine_with_batch_statistics(large, refiner).sum(), large, create_graph=True)
    with pytest.raises(RuntimeError, match="does not require grad|once_differentiable"):
        grad.sum().backward()


def test_a_weight_changed_in_place_before_backward_is_an_error() -> None:
    refiner = randomised(OfficialMapRefiner(2, head_dim=4))
    out = refine_with_batch_statistics(torch.rand(2, 2, 5, 5).softmax(-1).requires_grad_(), refiner)
    with torch.no_grad():
        refiner.reduce.weight.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="inductor needs a C++ compiler")
def test_a_compiled_model_trains_through_the_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    import refiner_nas.refiner_space.layers.chunks as chunks
    from refiner_nas.refiner_space import ModelConfig, build_model

    monkeypatch.setattr(chunks, "CHUNK_BYTES", 1 << 10)  # these tiny maps would take the training chain
    config = ModelConfig(depth=2, embed_dim=24, num_heads=3, img_size=32, num_classes=5, attention="refiner_official")
    torch.manual_seed(0)
    model = build_model(config).train()
    images = torch.randn(4, 3, 32, 32)
    eager = model(images)
    compiled = torch.compile(copy.deepcopy(model))(images)
    compiled.sum().backward()
    assert relative_error(compiled, eager) < 1e-5
