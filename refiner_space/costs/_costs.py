"""What a count returns: parameters, MACs and FLOPs of a model and of its parts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class UncountedOperatorError(ValueError):
    """The model runs an operator that computes but has no counting rule; a count would be too low."""


@dataclass(frozen=True)
class PartCosts:
    """Costs of one part of the model (stem, attention products, refiner, MLP, ...)."""

    part: str
    params: int
    macs: int
    elementwise_flops: int

    @property
    def flops(self) -> int:
        return 2 * self.macs + self.elementwise_flops


@dataclass(frozen=True)
class Costs:
    """Costs of one forward pass of one image (see ``refiner_nas.refiner_space.costs._ops`` for the convention).

    Attributes:
        params: parameters.
        macs: multiply-accumulates of products and convolutions.
        elementwise_flops: FLOPs of everything else (norms, softmax, activations, adds, means, ...).
        fvcore_flops: what plain ``fvcore.nn.FlopCountAnalysis(model, image).total()`` returns: one
            multiply-add as one "flop", plus its norm estimates; fused attention and element-wise
            operators count zero. Kept for comparison with published figures (docs/models.md#the-released-code-variant).
        img_size: input (height, width).
        parts: the breakdown by part; sums to the totals.
        zero_cost_ops: data-movement operators seen (counted as zero), with their number of calls.
    """

    params: int
    macs: int
    elementwise_flops: int
    fvcore_flops: int
    img_size: tuple[int, int]
    parts: tuple[PartCosts, ...] = ()
    zero_cost_ops: dict[str, int] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        """All FLOPs: two per multiply-accumulate plus the element-wise FLOPs."""
        return 2 * self.macs + self.elementwise_flops

    @property
    def product_flops(self) -> int:
        """FLOPs of products and convolutions only: two per multiply-accumulate."""
        return 2 * self.macs

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["img_size"] = list(self.img_size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Costs:
        return cls(
            params=data["params"],
            macs=data["macs"],
            elementwise_flops=data["elementwise_flops"],
            fvcore_flops=data["fvcore_flops"],
            img_size=tuple(data["img_size"]),  # type: ignore[arg-type]
            parts=tuple(PartCosts(**part) for part in data.get("parts", ())),
            zero_cost_ops=dict(data.get("zero_cost_ops", {})),
        )
