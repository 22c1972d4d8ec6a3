from __future__ import annotations

import itertools

import pytest
import torch

from refiner_nas.refiner_space import (
    FoldError,
    ModelConfig,
    attention_maps,
    build_model,
    set_refiner_fold,
)
from refiner_nas.refiner_space.layers import AttentionRefiner

FOLD_CASES = list(itertools.product([1, 3, 5], [1, 2, 3, 6], ["none", "spatial", "rowcol"]))


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def randomised(refiner: AttentionRefiner) -> AttentionRefiner:
    with torch.no_grad():
        for parameter in refiner.parameters():
            parameter.normal_()
    return refiner


@pytest.mark.parametrize(("kernel", "ratio", "constraint"), FOLD_CASES)
def test_folded_refiner_equals_the_three_steps(kernel: int, ratio: int, constraint: str) -> None:
    refiner = randomised(
        AttentionRefiner(4, expansion_ratio=ratio, kernel_size=kernel, constraint=constraint, token_grid=(5, 5))
    )
    maps = torch.rand(2, 4, 26, 26).softmax(-1)
    unfolded = refiner(maps)
    refiner.set_folded(True)
    assert relative_error(refiner(maps), unfolded) < 1e-5


def test_folded_kernel_is_the_documented_composition() -> None:
    refiner = randomised(AttentionRefiner(3, expansion_ratio=2, kernel_size=3))
    E, K, R = refiner.expand.weight[:, :, 0, 0], refiner.dla.weight[:, 0], refiner.reduce.weight[:, :, 0, 0]
    kernel = refiner.folded_kernel()
    assert kernel.shape == (3, 3, 3, 3)
    o, i, a, b = 2, 1, 0, 2
    expected = sum(R[o, h] * K[h, a, b] * E[h, i] for h in range(6))
    torch.testing.assert_close(kernel[o, i, a, b], expected)


@pytest.mark.parametrize("constraint", ["none", "spatial", "rowcol"])
def test_folded_model_matches_unfolded_model_and_trains_the_original_weights(constraint: str) -> None:
    config = ModelConfig(img_size=32, patch_size=8, depth=3, embed_dim=24, num_heads=3, num_classes=4,
                         attention="refiner", expansion_ratio=3, dla_constraint=constraint, share_span=2)
    model = build_model(config)
    images = torch.randn(2, 3, 32, 32)
    unfolded_out = model(images)
    unfolded_out.square().sum().backward()
    unfolded_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    assert set_refiner_fold(model, True) == 2
    folded_out = model(images)
    folded_out.square().sum().backward()
    assert relative_error(folded_out, unfolded_out) < 1e-5
    for name in ("expand.weight", "reduce.weight", "dla.weight" if constraint != "rowcol" else "dla.0.weight"):
        full = f"blocks.0.attn.map_refiner.{name}"
        assert relative_error(model.get_parameter(full).grad, unfolded_grads[full]) < 1e-4


def test_fold_is_refused_where_it_is_not_defined() -> None:
    no_reduction = build_model(ModelConfig(img_size=32, patch_size=8, depth=1, embed_dim=24, num_heads=3,
                                           attention="refiner", attention_reduction=False))
    with pytest.raises(FoldError, match="without attention reduction"):
        set_refiner_fold(no_reduction)
    vanilla = build_model(ModelConfig(img_size=32, patch_size=8, depth=1, embed_dim=24, num_heads=3))
    with pytest.raises(FoldError, match="only attention='refiner' models"):
        set_refiner_fold(vanilla)
    official = build_model(ModelConfig(img_size=32, patch_size=8, depth=2, embed_dim=24, num_heads=3,
                                       attention="refiner_official"))
    with pytest.raises(FoldError, match="not linear"):
        set_refiner_fold(official)


def test_official_refiner_folds_its_batchnorms_in_eval_and_only_there() -> None:
    config = ModelConfig(img_size=32, patch_size=8, depth=4, embed_dim=24, num_heads=3, num_classes=4,
                         attention="refiner_official", stem="conv4")
    model = build_model(config)
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine terms, and a visible MLP branch
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(2, 3, 32, 32)
    explicit, maps_explicit = attention_maps(model, images)  # autograd on: the explicit chain
    with torch.no_grad():
        folded, maps_folded = attention_maps(model, images)
    assert relative_error(folded, explicit) < 1e-5
    for share_block in (1, 3):
        assert relative_error(maps_folded[share_block].refined, maps_explicit[share_block].refined) < 1e-5
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())

    model.train()  # batch statistics again: the running statistics move, the eval output changes with them
    with torch.no_grad():
        model(images)
    refiner = model.blocks[1].attn.refine
    assert not torch.equal(refiner.bn1.running_mean, state["blocks.1.attn.refine.bn1.running_mean"])
    model.eval()
    with torch.no_grad():
        after_training = model(images)
    assert relative_error(after_training, model(images)) < 1e-5
    assert relative_error(after_training, folded) > 1e-3
