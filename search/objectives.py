"""Objectives a search can optimise, declared as data, and the ``name:direction,...`` syntax."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Objective:
    """One objective: its record field, its direction, and whether it is known before training."""

    name: str
    direction: Direction
    before_training: bool
    description: str


# name -> (default direction, known before training, description)
_KNOWN: dict[str, tuple[Direction, bool, str]] = {
    "top1": ("maximize", False, "proxy top-1 accuracy (%) on the validation split after the last epoch"),
    "params": ("minimize", True, "parameters (millions)"),
    "macs": ("minimize", True, "multiply-accumulates of one image (billions)"),
    "latency": ("minimize", True, "batch-1 inference latency on the search device (ms, median)"),
    "throughput": ("maximize", True, "inference throughput on the search device (images/s, median)"),
}
# The unit of each objective's recorded value, for column headers ("params (M)").
OBJECTIVE_UNITS: dict[str, str] = {"top1": "%", "params": "M", "macs": "G", "latency": "ms", "throughput": "img/s"}
_DIRECTIONS: dict[str, Direction] = {
    "max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize",
}


class ObjectiveError(ValueError):
    """An objective specification that cannot be parsed, of a study or over leaderboard columns (with its
    reference point)."""


def parse_objectives(text: str) -> list[Objective]:
    """Parse ``"top1:max,params:min"`` (a direction may be left out to take the objective's default)."""
    objectives: list[Objective] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, direction_text = item.partition(":")
        if name not in _KNOWN:
            raise ObjectiveError(f"unknown objective {name!r}; choose from {', '.join(_KNOWN)}")
        default_direction, before_training, description = _KNOWN[name]
        direction = _DIRECTIONS.get(direction_text or default_direction)
        if direction is None:
            raise ObjectiveError(f"objective {name!r}: direction {direction_text!r} is not one of max, min")
        if any(existing.name == name for existing in objectives):
            raise ObjectiveError(f"objective {name!r} is given twice in {text!r}")
        objectives.append(Objective(name, direction, before_training, description))
    if not objectives:
        raise ObjectiveError(f"no objective in {text!r}; e.g. --objectives top1:max,params:min")
    return objectives


def format_objectives(objectives: list[Objective]) -> str:
    """The canonical text form, which ``parse_objectives`` reads back."""
    return ",".join(f"{o.name}:{o.direction[:3]}" for o in objectives)
