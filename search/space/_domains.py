"""The values one dimension of a search space may take, and how Optuna samples them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

if TYPE_CHECKING:
    import optuna

Scalar = str | int | float | bool | None


def _number(value: float) -> float:
    # low + i * step accumulates binary noise (0.30000000000000004); 12 digits keep grid values clean.
    return float(f"{value:.12g}")


class Domain(BaseModel, ABC):
    """Values of one dimension. ``values()`` lists them when finite (None for a continuous range)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    sampled: ClassVar[bool] = True

    @abstractmethod
    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        """Draw a value through the trial, under ``name`` as the Optuna parameter name."""

    @abstractmethod
    def values(self) -> list[Any] | None: ...

    @abstractmethod
    def contains(self, value: Any) -> bool: ...

    @abstractmethod
    def describe(self) -> str: ...

    def bounds(self, key: Callable[[Any], Any]) -> list[Any]:
        """The smallest and largest value by ``key`` (used to find the cheapest configurations)."""
        values = self.values() or []
        return [min(values, key=key), max(values, key=key)]

    def fields(self, name: str, value: Any) -> dict[str, Any]:
        """The model fields a drawn value sets."""
        return {name: value}

    def set_fields(self, name: str) -> set[str]:
        """Every model field some value of the dimension sets."""
        return {name}


class Fixed(Domain):
    """One value, never sampled."""

    sampled: ClassVar[bool] = False
    value: Any

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return self.value

    def values(self) -> list[Any]:
        return [self.value]

    def contains(self, value: Any) -> bool:
        return value == self.value

    def describe(self) -> str:
        return f"fixed {self.value!r}"


class Choices(Domain):
    """A categorical dimension over model-field values."""

    options: tuple[Scalar, ...]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.options))

    def values(self) -> list[Any]:
        return list(self.options)

    def contains(self, value: Any) -> bool:
        return value in self.options

    def describe(self) -> str:
        return f"choices {list(self.options)}"


class Group(Domain):
    """A categorical dimension whose labelled choices each set several model fields together."""

    options: dict[str, dict[str, Any]]

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.options))

    def values(self) -> list[str]:
        return list(self.options)

    def contains(self, value: Any) -> bool:
        return value in self.options

    def describe(self) -> str:
        return f"group of {list(self.options)}"

    def fields(self, name: str, value: Any) -> dict[str, Any]:
        return dict(self.options[value])

    def set_fields(self, name: str) -> set[str]:
        return {key for fields in self.options.values() for key in fields}


class _Range(Domain):
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> _Range:
        if self.low > self.high:
            raise ValueError(f"range low {self.low} exceeds high {self.high}; swap them")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}; raise low or drop log")
        return self

    def bounds(self, key: Callable[[Any], Any]) -> list[Any]:
        return [self.low, self.high]

    def _describe(self, kind: str, step: float | None) -> str:
        text = f"{kind} {self.low}..{self.high}"
        return text + (f" step {step}" if step is not None else "") + (" log" if self.log else "")


class IntRange(_Range):
    """Integers low, low + step, ..., high (``log``: sampled on a log scale, step 1)."""

    low: int
    high: int
    step: int = 1

    @model_validator(mode="after")
    def _check_step(self) -> IntRange:
        if self.step < 1:
            raise ValueError(f"step {self.step} must be >= 1")
        if self.log and self.step != 1:
            raise ValueError(f"a log range takes step 1 (Optuna's rule), got {self.step}; drop step or log")
        if (self.high - self.low) % self.step:
            below = self.high - (self.high - self.low) % self.step
            raise ValueError(
                f"high {self.high} is not low {self.low} plus a multiple of step {self.step}; "
                f"use high {below} or {below + self.step}"
            )
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high and (value - self.low) % self.step == 0

    def describe(self) -> str:
        return self._describe("int", self.step if self.step != 1 else None)


class FloatRange(_Range):
    """Reals in [low, high], continuous, or on a grid of ``step`` (``log``: log scale, no step)."""

    step: float | None = None

    @model_validator(mode="after")
    def _check_step(self) -> FloatRange:
        if self.step is None:
            return self
        if self.step <= 0:
            raise ValueError(f"step {self.step} must be > 0")
        if self.log:
            raise ValueError("a float range takes step or log, not both (Optuna's rule); drop one")
        count = (self.high - self.low) / self.step
        if abs(count - round(count)) > 1e-9 * max(1.0, count):
            below = _number(self.low + int(count) * self.step)
            raise ValueError(
                f"high {self.high} is not low {self.low} plus a multiple of step {self.step}; "
                f"use high {below} or {_number(below + self.step)}"
            )
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def values(self) -> list[float] | None:
        if self.step is None:
            return None
        count = round((self.high - self.low) / self.step)
        return [_number(self.low + index * self.step) for index in range(count + 1)]

    def contains(self, value: Any) -> bool:
        if not isinstance(value, int | float) or not self.low <= value <= self.high:
            return False
        if self.step is None:
            return True
        offset = (value - self.low) / self.step
        return abs(offset - round(offset)) <= 1e-9 * max(1.0, offset)

    def describe(self) -> str:
        return self._describe("float", self.step)
