"""Zero-cost proxies: training-free scores of an architecture at initialisation, from one batch.

- ``synflow`` (Tanaka et al., 2020; Abdelfattah et al., 2021): with every weight replaced by its absolute
  value and an all-ones input, the sum over parameters of |θ · ∂R/∂θ|, R the sum of the outputs.
- ``naswot`` (Mellor et al., 2021): log-determinant of the kernel of binary activation codes of a batch
  (K[i, j] = number of units where images i and j are on the same side of 0), taken at the input of every
  GELU; architectures that separate images better score higher.
- ``grad_norm``: the norm of the loss gradient over all parameters on one labelled batch.

Higher is meant to predict better accuracy. Each score is computed in float32 on the CPU, with the
model built from a fixed seed, so scores are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from refiner_nas.refiner_space import ModelConfig, build_model
from refiner_nas.refiner_space.training import seed_everything

ZeroCostProxy = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]


def synflow(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Synaptic flow of the linearised network (absolute weights, ones as input)."""
    model.eval()
    with torch.no_grad():
        signs = {name: p.sign() for name, p in model.state_dict().items()}
        for p in model.state_dict().values():
            p.abs_()
    model.zero_grad()
    output = model(torch.ones_like(images[:1]))
    output.sum().backward()
    score = sum(float((p.detach() * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            p.mul_(signs[name])
    return score


def naswot(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Log-determinant of the Hamming-similarity kernel of the GELU input signs over the batch."""
    codes: list[torch.Tensor] = []

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        codes.append((inputs[0] > 0).flatten(1).float())

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, nn.GELU)]
    model.eval()
    try:
        with torch.no_grad():
            model(images)
    finally:
        for hook in hooks:
            hook.remove()
    if not codes:
        raise ValueError(f"{type(model).__name__} has no GELU to take activation codes from")
    code = torch.cat(codes, dim=1).double()
    kernel = code @ code.T + (1 - code) @ (1 - code).T
    return float(torch.linalg.slogdet(kernel)[1])


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Euclidean norm of the cross-entropy gradient over all parameters, one batch."""
    model.train()
    model.zero_grad()
    nn.functional.cross_entropy(model(images), labels).backward()
    squares = [p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None]
    return float(torch.stack(squares).sum().sqrt())


PROXIES: dict[str, ZeroCostProxy] = {"synflow": synflow, "naswot": naswot, "grad_norm": grad_norm}


def score(config: ModelConfig, images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0,
          proxies: Iterable[str] = tuple(PROXIES)) -> dict[str, float]:
    """The named proxies of ``PROXIES`` (default all) for ``config`` at initialisation, each on a
    fresh model built with the same seed.

    Raises:
        KeyError: a name not in ``PROXIES``.
    """
    scores = {}
    for name in proxies:
        seed_everything(seed)
        scores[name] = PROXIES[name](build_model(config), images, labels)
    return scores
