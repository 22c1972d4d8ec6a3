from __future__ import annotations

import numpy as np
import pytest
import torch

from refiner_nas.refiner_space.analysis import CkaError, linear_cka


def cka_by_definition(x: np.ndarray, y: np.ndarray) -> float:
    """HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with K = XXᵀ, L = YYᵀ and the centering matrix H."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.trace(a @ h @ b @ h))

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def cka_feature_space(x: np.ndarray, y: np.ndarray) -> float:
    """‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on column-centered features (Kornblith et al., eq. 5)."""
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


@pytest.fixture
def features() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(12, 7, dtype=torch.float64)
    y = x @ torch.randn(7, 5, dtype=torch.float64) + 0.5 * torch.randn(12, 5, dtype=torch.float64)
    return x, y


def test_matches_the_definition_and_the_feature_space_form(features) -> None:
    x, y = features
    value = linear_cka(x, y)
    assert value == pytest.approx(cka_by_definition(x.numpy(), y.numpy()), rel=1e-10)
    assert value == pytest.approx(cka_feature_space(x.numpy(), y.numpy()), rel=1e-10)
    assert 0.0 < value < 1.0


def test_identical_inputs_give_one(features) -> None:
    x, _ = features
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_invariant_to_orthogonal_transforms(features) -> None:
    x, y = features
    rotation, _ = torch.linalg.qr(torch.randn(7, 7, dtype=torch.float64))
    assert linear_cka(x @ rotation, y) == pytest.approx(linear_cka(x, y), rel=1e-10)
    assert linear_cka(x, x @ rotation) == pytest.approx(1.0, abs=1e-12)


def test_invariant_to_isotropic_scaling_and_translation(features) -> None:
    x, y = features
    assert linear_cka(3.7 * x, 0.02 * y) == pytest.approx(linear_cka(x, y), rel=1e-10)
    assert linear_cka(x + 5.0, y - 2.0) == pytest.approx(linear_cka(x, y), rel=1e-10)


def test_not_invariant_to_anisotropic_scaling(features) -> None:
    x, _ = features
    stretched = x * torch.tensor([10.0, 1, 1, 1, 1, 1, 0.1], dtype=torch.float64)
    assert linear_cka(x, stretched) < 0.9


def test_symmetric_and_flattens_trailing_dims() -> None:
    x, y = torch.randn(6, 3, 4), torch.randn(6, 5)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), rel=1e-12)
    assert linear_cka(x, y) == pytest.approx(cka_by_definition(x.reshape(6, -1).double().numpy(), y.double().numpy()))


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (torch.randn(5, 3), torch.randn(4, 3), "same examples"),
        (torch.randn(2, 3), torch.randn(2, 3), "at least 3 examples"),
        (torch.ones(5, 3), torch.randn(5, 3), "equal for every example"),
    ],
)
def test_undefined_cases_raise(x: torch.Tensor, y: torch.Tensor, message: str) -> None:
    with pytest.raises(CkaError, match=message):
        linear_cka(x, y)
