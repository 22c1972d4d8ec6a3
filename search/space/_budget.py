"""Budget constraints of a search space, and the up-front check that some configuration can meet them."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, field_validator

from refiner_nas.refiner_space import ModelConfig

if TYPE_CHECKING:
    from refiner_nas.refiner_space.costs import Costs
    from refiner_nas.search.space._domains import Domain

_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_UNITS = {"params": "params", "macs": "MACs"}
_COUNT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:[eE]([-+]?\d+))?\s*([KkMGT]?)\s*$")


def _count(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a count; write a number such as 30000000 or 30M")
    if isinstance(value, str):
        match = _COUNT.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a count; write a number with an optional K, M, G or T suffix, e.g. 30M")
        mantissa, exponent, suffix = match.groups()
        value = float(mantissa) * 10 ** int(exponent or 0) * _SUFFIXES[suffix.upper()]
    if not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"{value!r} must be a positive, finite count such as 30M")
    return round(value)


def human(count: float) -> str:
    """``25020000`` -> ``25.02M``."""
    for suffix in ("T", "G", "M", "K"):
        if abs(count) >= _SUFFIXES[suffix]:
            return f"{count / _SUFFIXES[suffix]:.4g}{suffix}"
    return f"{count:.4g}"


class Budget(BaseModel):
    """Upper limits on a configuration's cost; a limit left out does not constrain.

    ``max_params`` and ``max_macs`` take numbers or strings with a K/M/G/T suffix ("30M", "8G", 30e6);
    MACs are multiply-accumulates of one forward pass of one image
    (``refiner_nas.refiner_space.costs._count.count_costs``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_params: int | None = None
    max_macs: int | None = None
    max_latency_ms: float | None = None

    @field_validator("max_params", "max_macs", mode="before")
    @classmethod
    def _parse_count(cls, value: Any) -> int | None:
        return None if value is None else _count(value)

    @field_validator("max_latency_ms")
    @classmethod
    def _positive_latency(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(f"max_latency_ms {value} must be positive")
        return value

    def constraint_values(self, *, params: int, macs: int, latency_ms: float | None = None) -> dict[str, float]:
        """Relative excess over each set limit, ``value / limit - 1``: <= 0 within budget (Optuna's
        constraints convention), keyed by limit name.

        Raises:
            ValueError: ``max_latency_ms`` is set and no latency was given.
        """
        if self.max_latency_ms is not None and latency_ms is None:
            raise ValueError("max_latency_ms is set: measure the latency and pass latency_ms")
        excess = self.static_excess(params=params, macs=macs)
        if self.max_latency_ms is not None:
            excess["max_latency_ms"] = latency_ms / self.max_latency_ms - 1.0  # type: ignore[operator]
        return excess

    def static_excess(self, *, params: float, macs: float) -> dict[str, float]:
        """``constraint_values`` of the limits known before training (params and MACs)."""
        limits = {"max_params": (params, self.max_params), "max_macs": (macs, self.max_macs)}
        return {name: value / limit - 1.0 for name, (value, limit) in limits.items() if limit is not None}

    def unmet(self, candidates: Sequence[tuple[str, ModelConfig]]) -> tuple[str, str] | None:
        """Check the static limits (params, MACs) against the cheapest configurations of a space.

        ``candidates`` are (description, configuration) pairs that between them hold the cheapest
        configuration. Returns (limit name or "", problem) when none of them meets the limits, else None.
        Latency depends on the machine and is not checked here.
        """
        limits = {
            quantity: limit
            for quantity, limit in (("params", self.max_params), ("macs", self.max_macs))
            if limit is not None
        }
        if not limits or not candidates:
            return None
        from refiner_nas.refiner_space.costs import (
            count_costs,  # torch and fvcore: only when there are limits to check
        )

        measured = [(label, count_costs(config)) for label, config in candidates]
        for quantity, limit in limits.items():
            label, cheapest = min(measured, key=lambda pair: getattr(pair[1], quantity))
            if getattr(cheapest, quantity) > limit:
                return f"max_{quantity}", (
                    f"no configuration meets max_{quantity} {human(limit)}: the cheapest ({label}) has "
                    f"{human(getattr(cheapest, quantity))} {_UNITS[quantity]}; raise the limit or allow smaller models"
                )

        def worst_ratio(costs: Costs) -> float:
            return max(getattr(costs, quantity) / limit for quantity, limit in limits.items())

        label, closest = min(measured, key=lambda pair: worst_ratio(pair[1]))
        if worst_ratio(closest) > 1:
            return "", (
                f"no configuration meets max_params and max_macs together: the closest ({label}) has "
                f"{human(closest.params)} params and {human(closest.macs)} MACs; raise one limit"
            )
        return None


# How each model field moves cost (params and MACs) when the rest stays fixed. Fields not listed
# (drop rates) do not change cost; fields listed as None are tried at every value.
_CHEAPER_LOW = {
    "img_size",
    "in_chans",
    "num_classes",
    "depth",
    "embed_dim",
    "num_heads",
    "mlp_ratio",
    "expansion_ratio",
    "kernel_size",
}
_CHEAPER_HIGH = {"share_span"}
_CHEAPEST_VALUE: dict[str, Any] = {
    "stem": "patch",
    "qkv_bias": False,
    "attention": "vanilla",
    "context_broadcast": "off",
    "broadcast_dim_scaled": False,
    "aux_head": False,
    "attention_reduction": True,
}
_COSTLESS = {"drop_rate", "drop_path_rate"}


def _size(value: Any) -> Any:
    return value[0] * value[1] if isinstance(value, tuple | list) else value


def cheapest_values(name: str, domain: Domain) -> list[Any]:
    """The values of dimension ``name`` among which the cheapest configuration's value lies.

    Groups and fields not known here are tried at every value (both ends of a continuous range):
    patch size, for one, cuts MACs but grows the patch projection's parameters.
    """
    values = domain.values()
    if name in _CHEAPER_LOW:
        return domain.bounds(_size)[:1]
    if name in _CHEAPER_HIGH:
        return domain.bounds(_size)[1:]
    if name in _CHEAPEST_VALUE and values and _CHEAPEST_VALUE[name] in values:
        return [_CHEAPEST_VALUE[name]]
    if name in _COSTLESS:
        return domain.bounds(_size)[:1]
    return values if values is not None else domain.bounds(_size)
