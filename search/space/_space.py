"""A search space over ``ModelConfig``: read and validated from YAML, drawn from by Optuna trials."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import cache
from math import prod
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from refiner_nas.refiner_space import ConfigError, ModelConfig
from refiner_nas.search.space._budget import Budget, cheapest_values
from refiner_nas.search.space._domains import Choices, Domain, Fixed, FloatRange, Group, IntRange
from refiner_nas.search.space._yaml import KeyPath, Locator, SpaceError, load_yaml

if TYPE_CHECKING:
    import optuna

_FIELDS = ModelConfig.model_fields
_SPACES_DIR = Path(__file__).resolve().parent.parent / "spaces"
# Every combination is tried on ModelConfig (about 10 µs each) up to this many, else a covering sample.
_COMBINATION_LIMIT = 4096
# Each cheapest-corner candidate costs a model build and an fvcore trace.
_CHEAPEST_LIMIT = 32
_KINDS = ("value", "choices", "int", "float")

Settings = dict[str, Any]
Parsed = TypeVar("Parsed")


class _SpaceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    dimensions: dict[str, Any]
    constraints: dict[str, Any] = Field(default_factory=dict)


class _DimensionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Any = None
    choices: Any = None
    int_range: Any = Field(None, alias="int")
    float_range: Any = Field(None, alias="float")
    when: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Dimension:
    """One named dimension: its values and the condition (other dimensions' values) under which it is set."""

    name: str
    domain: Domain
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def active(self, settings: Mapping[str, Any]) -> bool:
        return all(key in settings and settings[key] in values for key, values in self.when.items())


class SearchSpace:
    """A validated search space; build it with ``from_yaml``, ``from_name``, ``load`` or
    ``from_dict`` (the constructor takes parsed dimensions and checks how they combine).

    Raises:
        SpaceError: a condition on an undeclared dimension or an impossible value, a cycle of conditions,
            a combination the model family rejects, or a budget no configuration meets.
    """

    def __init__(
        self,
        *,
        dimensions: Sequence[Dimension],
        budget: Budget | None = None,
        name: str = "",
        description: str = "",
        locator: Locator | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.budget = budget or Budget()
        self._locator = locator or Locator("<space>")
        self._dims = {dim.name: dim for dim in dimensions}
        self._check_fields_set_once()
        self._check_conditions()
        self.dimensions: tuple[Dimension, ...] = self._ordered()
        self._check_combinations()
        self._check_budget()

    def __repr__(self) -> str:
        return f"SearchSpace({self.name or self._locator.source!r}, dimensions={list(self._dims)})"

    @property
    def source(self) -> str:
        """The file the space was read from (or ``<dict>``)."""
        return self._locator.source

    @property
    def fixed(self) -> dict[str, Any]:
        """Model fields every configuration of the space shares (fixed and unconditional)."""
        return {dim.name: dim.domain.value for dim in self.dimensions if isinstance(dim.domain, Fixed) and not dim.when}

    # Construction.

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        """Read a space file; every error names the file, the line and the key."""
        path = Path(path)
        data, locator = load_yaml(path)
        return cls._parse(data, locator, name=path.stem)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str = "", source: str = "<dict>") -> SearchSpace:
        """Build from the data a space file holds; errors name ``source`` and the key."""
        return cls._parse(data, Locator(source), name=name)

    @classmethod
    def from_name(cls, name: str) -> SearchSpace:
        """A space shipped with the package (see ``shipped_spaces``)."""
        spaces = shipped_spaces()
        if name not in spaces:
            raise SpaceError(
                f"unknown search space {name!r}; shipped spaces: {', '.join(spaces)}; or give a YAML file path"
            )
        return cls.from_yaml(spaces[name])

    @classmethod
    def load(cls, spec: str | Path) -> SearchSpace:
        """A shipped space by name, or a space file by path (anything ending in .yaml/.yml or existing)."""
        path = Path(spec)
        if path.suffix in (".yaml", ".yml") or path.exists():
            return cls.from_yaml(path)
        return cls.from_name(str(spec))

    def with_fixed(self, **values: Any) -> SearchSpace:
        """A copy with some model fields fixed (e.g. the dataset's ``in_chans`` and ``num_classes``),
        replacing their dimensions; validated again, budget included.

        Raises:
            SpaceError: an unknown field, a value the field rejects, or a space that no longer validates.
        """
        locator = self._locator.without([("dimensions", name) for name in values])
        dimensions = dict(self._dims)
        for name, value in values.items():
            path = ("dimensions", name)
            if name not in _FIELDS:
                raise locator.error(path, _unknown_field(name))
            dimensions[name] = Dimension(name, Fixed(value=_field_value(name, value, path, locator)))
        return SearchSpace(
            dimensions=list(dimensions.values()),
            budget=self.budget,
            name=self.name,
            description=self.description,
            locator=locator,
        )

    def with_budget(self, budget: Budget) -> SearchSpace:
        """A copy whose cost limits are ``budget`` instead of the file's (e.g. to compare searches under a
        budget on a table built without one); validated again.

        Raises:
            SpaceError: no configuration of the space meets ``budget``.
        """
        return SearchSpace(dimensions=self.dimensions, budget=budget, name=self.name,
                           description=self.description, locator=self._locator)

    @classmethod
    def _parse(cls, data: Any, locator: Locator, *, name: str) -> SearchSpace:
        """Every problem of the file's keys and dimensions in one ``SpaceError``, a line each; how the
        dimensions combine is checked once they all parse."""
        if not isinstance(data, Mapping):
            raise locator.error((), "a search space is a mapping with keys description, dimensions, constraints")
        problems: list[str] = []
        spec = _gather(problems, _validate, _SpaceFile, data, (), locator)
        raw_dimensions = data.get("dimensions")
        dimensions = [
            _gather(problems, _parse_dimension, dim_name, raw, locator)
            for dim_name, raw in (raw_dimensions.items() if isinstance(raw_dimensions, Mapping) else ())
        ]
        constraints = data.get("constraints") or {}
        budget = _gather(problems, _validate, Budget, constraints, ("constraints",), locator) if isinstance(
            constraints, Mapping) else None
        if problems:
            raise SpaceError(*problems)
        return cls(
            dimensions=dimensions,
            budget=budget,
            name=name,
            description=spec.description,
            locator=locator,
        )

    # Drawing configurations.

    def suggest(self, trial: optuna.Trial) -> ModelConfig:
        """Draw a configuration through ``trial`` (parameter names are dimension names; a conditional
        dimension is drawn only when its condition holds).

        Raises:
            ConfigError: a combination the model family rejects; only possible when the space has more
                combinations than the up-front check tries (4096), which then sampled them.
        """
        _, fields = self._assemble(lambda dim: dim.domain.suggest(trial, dim.name))
        return ModelConfig.from_dict(fields)

    def config_from_params(self, params: Mapping[str, Any]) -> ModelConfig:
        """Rebuild the configuration of a trial of this space from its ``params``.

        Raises:
            SpaceError: a drawn dimension missing from ``params``, a value outside the space, or a key
                that is no drawn dimension of this configuration.
        """

        def choose(dim: Dimension) -> Any:
            if isinstance(dim.domain, Fixed):
                return dim.domain.value
            if dim.name not in params:
                raise SpaceError(f"params lack {dim.name!r} ({dim.domain.describe()}); pass a trial's params")
            value = params[dim.name]
            if not dim.domain.contains(value):
                raise SpaceError(
                    f"params: {dim.name}={value!r} is outside the space ({dim.domain.describe()}); "
                    "was the trial drawn from another space?"
                )
            return value

        settings, fields = self._assemble(choose)
        for key in params:
            if key not in settings or not self._dims[key].domain.sampled:
                raise SpaceError(f"params: {key!r} {self._why_not_drawn(key, settings)}; remove it")
        return ModelConfig.from_dict(fields)

    def grid(self) -> dict[str, list[Any]]:
        """Values of every drawn dimension, for ``optuna.samplers.GridSampler``.

        The sampler takes the full product: where a dimension is conditional, grid points that differ
        only in an inactive dimension give the same configuration (Optuna's BruteForceSampler walks a
        conditional space without repeats).

        Raises:
            SpaceError: a continuous float range (no step).
        """
        grid = {}
        for dim in self.dimensions:
            if not dim.domain.sampled:
                continue
            values = dim.domain.values()
            if values is None:
                raise self._locator.error(
                    ("dimensions", dim.name, "float"),
                    "a continuous range cannot be grid-searched; give it a step or use choices",
                )
            grid[dim.name] = values
        return grid

    def _assemble(self, choose: Callable[[Dimension], Any]) -> tuple[Settings, dict[str, Any]]:
        """Walk the dimensions in order, choosing a value for each active one: (settings, model fields)."""
        settings: Settings = {}
        fields: dict[str, Any] = {}
        for dim in self.dimensions:
            if dim.active(settings):
                settings[dim.name] = value = choose(dim)
                fields.update(dim.domain.fields(dim.name, value))
        return settings, fields

    def _assignments(self, values_of: Callable[[Dimension], list[Any]], limit: int) -> Iterator[Settings]:
        """Every combination of ``values_of`` each dimension (conditions respected) if there are at most
        ``limit``; else ``limit`` of them: the first half cycles through each dimension's values (every
        value appears when the limit allows), the second half is drawn at random (seeded)."""
        options = {dim.name: values_of(dim) for dim in self.dimensions}
        if prod(len(values) for values in options.values()) <= limit:
            yield from self._every_assignment(0, {}, options)
            return
        rng = random.Random(0)
        turns = dict.fromkeys(options, 0)

        def cycle(dim: Dimension) -> Any:
            values = options[dim.name]
            turns[dim.name] += 1
            return values[(turns[dim.name] - 1) % len(values)]

        for index in range(limit):
            yield self._assemble(cycle if index < limit // 2 else lambda dim: rng.choice(options[dim.name]))[0]

    def _every_assignment(self, index: int, settings: Settings, options: dict[str, list[Any]]) -> Iterator[Settings]:
        if index == len(self.dimensions):
            yield dict(settings)
            return
        dim = self.dimensions[index]
        if not dim.active(settings):
            yield from self._every_assignment(index + 1, settings, options)
            return
        for value in options[dim.name]:
            settings[dim.name] = value
            yield from self._every_assignment(index + 1, settings, options)
        del settings[dim.name]

    def _fields_of(self, settings: Settings) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name, value in settings.items():
            fields.update(self._dims[name].domain.fields(name, value))
        return fields

    def _describe(self, settings: Settings) -> str:
        drawn = [f"{name}={value!r}" for name, value in settings.items() if self._dims[name].domain.sampled]
        return ", ".join(drawn) or "the fixed values"

    def _why_not_drawn(self, key: str, settings: Settings) -> str:
        if key not in self._dims:
            return f"is not a dimension of this space (dimensions: {', '.join(self._dims)})"
        dim = self._dims[key]
        if not dim.domain.sampled:
            return f"is fixed in this space ({dim.domain.describe()})"
        unmet = ", ".join(f"{k} in {list(v)}" for k, v in dim.when.items())
        return f"is not drawn for this configuration (it needs {unmet})"

    # Validation of how the dimensions combine.

    def _check_fields_set_once(self) -> None:
        setters: dict[str, str] = {}
        for dim in self._dims.values():
            for model_field in dim.domain.set_fields(dim.name):
                if setters.setdefault(model_field, dim.name) != dim.name:
                    raise self._locator.error(
                        ("dimensions", dim.name),
                        f"field {model_field!r} is set by both {setters[model_field]!r} and {dim.name!r}; keep one",
                    )

    def _check_conditions(self) -> None:
        for dim in self._dims.values():
            for key, values in dim.when.items():
                path = ("dimensions", dim.name, "when", key)
                if key == dim.name:
                    raise self._locator.error(path, "a dimension cannot depend on itself; remove this condition")
                if key not in self._dims:
                    raise self._locator.error(
                        path,
                        f"condition on {key!r}, which is not a dimension of this space; declare it "
                        f"(dimensions: {', '.join(self._dims)})",
                    )
                possible = self._dims[key].domain.values()
                if possible is None:
                    raise self._locator.error(
                        path, f"{key!r} is a continuous range; condition on a dimension with listed values"
                    )
                for value in values:
                    if value not in possible:
                        raise self._locator.error(
                            path, f"{key} is never {value!r} (its values: {possible}); fix the condition"
                        )

    def _ordered(self) -> tuple[Dimension, ...]:
        """The dimensions in file order, each after the dimensions its condition reads."""
        ordered: list[Dimension] = []
        placed: set[str] = set()
        pending = list(self._dims.values())
        while pending:
            ready = [dim for dim in pending if all(key in placed for key in dim.when)]
            if not ready:
                names = ", ".join(dim.name for dim in pending)
                raise self._locator.error(
                    ("dimensions", pending[0].name, "when"),
                    f"the conditions of {names} depend on each other in a cycle; remove one",
                )
            ordered.extend(ready)
            placed |= {dim.name for dim in ready}
            pending = [dim for dim in pending if dim.name not in placed]
        return tuple(ordered)

    def _check_combinations(self) -> None:
        def values_of(dim: Dimension) -> list[Any]:
            return dim.domain.values() or dim.domain.bounds(lambda value: value)

        for settings in self._assignments(values_of, _COMBINATION_LIMIT):
            try:
                ModelConfig.from_dict(self._fields_of(settings))
            except ConfigError as error:
                inapplicable = re.search(r"does not apply to (\w+)=", str(error))
                hint = f"; or make it conditional: when: {{{inapplicable[1]}: [...]}}" if inapplicable else ""
                raise self._locator.error(
                    self._blame(str(error)),
                    f"the model family rejects {self._describe(settings)}: {error}{hint}",
                ) from None

    def _blame(self, message: str) -> KeyPath:
        """The dimension that sets the field a ModelConfig error names first (``field=value ...``)."""
        match = re.match(r"(\w+)=", message)
        for dim in self._dims.values():
            if match and match[1] in dim.domain.set_fields(dim.name):
                return ("dimensions", dim.name)
        return ("dimensions",)

    def _check_budget(self) -> None:
        candidates = []
        for settings in self._assignments(lambda dim: cheapest_values(dim.name, dim.domain), _CHEAPEST_LIMIT):
            try:
                config = ModelConfig.from_dict(self._fields_of(settings))
            except ConfigError:
                continue  # only reachable when the combination check sampled
            candidates.append((self._describe(settings), config))
        unmet = self.budget.unmet(candidates)
        if unmet is not None:
            key, message = unmet
            raise self._locator.error(("constraints", key) if key else ("constraints",), message)


def shipped_spaces() -> dict[str, Path]:
    """Names and files of the spaces that ship with the package: ``default``, ``table1``, ..., ``tiny``."""
    paths = sorted(_SPACES_DIR.glob("*.yaml"), key=lambda path: re.sub(r"\d+", lambda m: m[0].zfill(4), path.stem))
    return {path.stem: path for path in paths}


# Parsing one dimension.


def _validate(model: type[BaseModel], data: Any, path: KeyPath, locator: Locator) -> Any:
    """``model.model_validate(data)``; every problem as one located line of a ``SpaceError``. An unknown key
    close to a missing one is one problem (``hi`` for ``high``): named with the guess, not twice."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = error.errors()
    keys = [info.alias or key for key, info in model.model_fields.items()]
    missing = [str(problem["loc"][-1]) for problem in problems if problem["type"] == "missing"]
    guessed: set[str] = set()
    lines = []
    for problem in problems:
        where = (*path, *problem["loc"])
        if problem["type"] == "missing":
            continue
        if problem["type"] == "extra_forbidden":
            key = str(where[-1])
            guess = get_close_matches(key, missing, n=1) or get_close_matches(key, keys, n=1)
            guessed.update(guess)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            lines.append(locator.line(where, f"unknown key {key!r}{hint}; allowed keys: {', '.join(keys)}"))
        else:
            lines.append(locator.line(where, problem["msg"].removeprefix("Value error, ")))
    lines += [locator.line((*path, key), f"missing key {key!r}") for key in missing if key not in guessed]
    raise SpaceError(*lines)


def _gather(problems: list[str], parse: Callable[..., Parsed], *args: Any) -> Parsed:
    """``parse(*args)``, with the problems of a ``SpaceError`` it raises added to ``problems`` (then ``None``:
    the caller raises them all before using any result)."""
    try:
        return parse(*args)
    except SpaceError as error:
        problems.extend(error.problems)
        return None  # type: ignore[return-value]


@cache
def _adapter(name: str) -> TypeAdapter[Any]:
    return TypeAdapter(_FIELDS[name].annotation)


def _field_value(name: str, value: Any, path: KeyPath, locator: Locator) -> Any:
    """A value of model field ``name``, coerced to the field's type."""
    try:
        return _adapter(name).validate_python(value)
    except ValidationError as error:
        message = error.errors()[0]["msg"]
        raise locator.error(path, f"{name}={value!r} is not a valid value: {message}") from None


def _takes_fractions(name: str) -> bool:
    try:
        _adapter(name).validate_python(0.5)
    except ValidationError:
        return False
    return True


def _unknown_field(name: str) -> str:
    guess = get_close_matches(name, list(_FIELDS), n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    return (
        f"unknown field {name!r}{hint}; allowed fields: {', '.join(_FIELDS)} "
        "(or a group: choices mapping labels to fields)"
    )


def _parse_dimension(name: str, raw: Any, locator: Locator) -> Dimension:
    path: KeyPath = ("dimensions", name)
    is_field = name in _FIELDS
    if not isinstance(raw, Mapping):
        if not is_field:
            raise locator.error(path, _unknown_field(name))
        return Dimension(name, Fixed(value=_field_value(name, raw, path, locator)))
    spec = _validate(_DimensionSpec, raw, path, locator)
    kinds = [kind for kind in _KINDS if kind in raw]
    if len(kinds) != 1:
        given = f"got {', '.join(kinds)}" if kinds else "got none"
        raise locator.error(path, f"give exactly one of value, choices, int, float ({given})")
    kind = kinds[0]
    is_group = kind == "choices" and isinstance(raw["choices"], Mapping)
    if not is_field and not is_group:
        raise locator.error(path, _unknown_field(name))
    if is_field and is_group:
        raise locator.error(
            (*path, "choices"),
            f"choices of field {name!r} are a list; a mapping of labels to fields declares a group, "
            "whose name must not be a model field",
        )
    at = (*path, kind)
    if kind == "value":
        domain: Domain = Fixed(value=_field_value(name, spec.value, at, locator))
    elif is_group:
        domain = _parse_group(spec.choices, at, locator)
    elif kind == "choices":
        domain = _parse_choices(name, spec.choices, at, locator)
    else:
        domain = _parse_range(name, kind, raw[kind], at, locator)
    return Dimension(name, domain, _parse_when(spec.when, (*path, "when"), locator))


def _parse_choices(name: str, raw: Any, path: KeyPath, locator: Locator) -> Choices:
    if not isinstance(raw, list):
        raise locator.error(path, f"choices must be a list of values, got {raw!r}")
    if not raw:
        raise locator.error(path, "choices is empty; list at least one value")
    options: list[Any] = []
    for index, item in enumerate(raw):
        if item is not None and not isinstance(item, str | int | float | bool):
            raise locator.error((*path, index), f"choice {item!r} is not a single value (number, string, true/false)")
        value = _field_value(name, item, (*path, index), locator)
        if value in options:
            raise locator.error((*path, index), f"choice {item!r} is listed twice; remove one")
        options.append(value)
    return Choices(options=tuple(options))


def _parse_group(raw: Mapping[Any, Any], path: KeyPath, locator: Locator) -> Group:
    if not raw:
        raise locator.error(path, "choices is empty; map at least one label to fields")
    options: dict[str, dict[str, Any]] = {}
    for label, fields in raw.items():
        at = (*path, str(label))
        if not isinstance(label, str):
            raise locator.error(at, f"group label {label!r} must be a string; quote it")
        if not isinstance(fields, Mapping):
            raise locator.error(at, f"group choice {label!r} must map model fields to values, got {fields!r}")
        for key in fields:
            if key not in _FIELDS:
                raise locator.error((*at, key), _unknown_field(key))
        options[label] = {key: _field_value(key, value, (*at, key), locator) for key, value in fields.items()}
    return Group(options=options)


def _parse_range(name: str, kind: str, raw: Any, path: KeyPath, locator: Locator) -> IntRange | FloatRange:
    if kind == "float" and not _takes_fractions(name):
        raise locator.error(path, f"{name} takes whole numbers; use an int range")
    if not isinstance(raw, Mapping):
        raise locator.error(path, f"a range is a mapping such as {{low: 1, high: 6}}, got {raw!r}")
    domain = _validate(IntRange if kind == "int" else FloatRange, raw, path, locator)
    for end in ("low", "high"):
        _field_value(name, getattr(domain, end), (*path, end), locator)
    return domain


def _parse_when(raw: Mapping[str, Any], path: KeyPath, locator: Locator) -> dict[str, tuple[Any, ...]]:
    when = {}
    for key, values in raw.items():
        listed = tuple(values) if isinstance(values, list) else (values,)
        if not listed:
            raise locator.error((*path, key), f"condition on {key!r} lists no values; list at least one")
        when[key] = listed
    return when
