"""Regression benchmarking against the committed baselines in ``results/baselines/``.

Two files, each with a schema version and the environment that produced it:

``costs.json`` (exact; checked by CI for every registered model)::

    {"schema": "refiner-nas/costs-baseline", "schema_version": 1, "created": ISO time,
     "environment": {...}, "img_size": 224, "convention": "<op_costs summary>",
     "models": {NAME: {"config_hash", "params", "macs", "elementwise_flops", "fvcore_flops"}}}

``speed.json`` (ratios with a tolerance; CPU inference of each model against its vanilla reference)::

    {"schema": "refiner-nas/speed-baseline", "schema_version": 1, "created": ISO time,
     "environment": {...}, "settings": {SpeedSettings fields}, "relative_tolerance": 0.3,
     "models": {NAME: {"config_hash", "reference", "reference_hash",
                       "ratio": {"median", "q1", "q3", "iqr", "p90", "n"}}}}

``gpu.json`` keeps the figures of ``benchmarks/gpu_check.sh`` on a lent GPU (schema
``refiner-nas/gpu-baseline``, each report with the commit whose code ran it); nothing checks it, since CI
has no GPU.

Counts must match exactly. A speed ratio holds when its median is within ``relative_tolerance`` of the
baseline's median (either side: a baseline that is too slow would hide the next regression). Models whose
reference is themselves (the vanilla ViTs) have no speed entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from refiner_nas.refiner_space.files import read_text_file

if TYPE_CHECKING:
    from refiner_nas.refiner_space.costs.speed import SpeedSettings

SCHEMA_VERSION = 1
COSTS_SCHEMA = "refiner-nas/costs-baseline"
SPEED_SCHEMA = "refiner-nas/speed-baseline"
COST_FIELDS = ("params", "macs", "elementwise_flops", "fvcore_flops")
DEFAULT_TOLERANCE = 0.3
CONVENTION = (
    "macs: multiply-accumulates of products and convolutions (incl. fused attention); "
    "elementwise_flops: 1 per output element for arithmetic/activations/bias adds, 1 per input element "
    "for reductions, 5 per element for softmax, fvcore's estimates for norms; "
    "fvcore_flops: plain fvcore FlopCountAnalysis total; see refiner_space/costs/_ops.py"
)


def baseline_dir() -> Path:
    """``results/baselines`` of this checkout (or installation)."""
    import refiner_nas.results as results

    return Path(results.__file__).resolve().parent / "baselines"


@dataclass(frozen=True)
class Check:
    """One compared quantity: ``ok`` is False for a regression."""

    model: str
    quantity: str
    baseline: float | None
    current: float | None
    ok: bool
    note: str = ""


@dataclass(frozen=True)
class RegressReport:
    checks: tuple[Check, ...]
    written: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_baseline(path: Path, schema: str) -> dict[str, Any]:
    """Read and check one baseline file.

    Raises:
        FileNotFoundError: no file (the message says how to create it).
        ValueError: not JSON, another schema, or another schema version.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no baseline yet; create it with `refiner-nas bench regress --update`")
    text = read_text_file(path, "baseline", expected="a JSON baseline (`bench regress --update` writes one)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict) or data.get("schema") != schema:
        raise ValueError(
            f"{path}: expected schema {schema!r}, found {data.get('schema') if isinstance(data, dict) else data!r}"
        )
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema_version {data.get('schema_version')!r}, this version reads {SCHEMA_VERSION}; "
            "regenerate it with `refiner-nas bench regress --update`"
        )
    return data


def write_baseline(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def current_costs(models: Sequence[str], img_size: int = 224) -> dict[str, dict[str, Any]]:
    """Counted costs of registered ``models`` in the baseline's entry format."""
    from refiner_nas.refiner_space import named_config
    from refiner_nas.refiner_space.costs import count_costs

    entries = {}
    for name in models:
        config = named_config(name, img_size=img_size)
        costs = count_costs(config)
        entries[name] = {"config_hash": config.config_hash(), **{f: getattr(costs, f) for f in COST_FIELDS}}
    return entries


def compare_costs(baseline: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]) -> list[Check]:
    """Exact comparison; a model on one side only is a failure."""
    checks = []
    for model in sorted(set(baseline) | set(current)):
        if model not in baseline:
            checks.append(Check(model, "entry", None, None, False, "not in the baseline; run --update"))
            continue
        if model not in current:
            checks.append(Check(model, "entry", None, None, False, "in the baseline but not registered"))
            continue
        before, now = baseline[model], current[model]
        changed = before.get("config_hash") != now["config_hash"]
        note = "configuration changed" if changed else ""
        for quantity in COST_FIELDS:
            checks.append(
                Check(model, quantity, before.get(quantity), now[quantity], before.get(quantity) == now[quantity], note)
            )
    return checks


def compare_speed(
    baseline: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]], tolerance: float
) -> list[Check]:
    """Ratio medians within ``tolerance`` (relative) of the baseline's; a model on one side only fails."""
    checks = []
    for model in sorted(set(baseline) | set(current)):
        if model not in baseline or model not in current:
            where = "not in the baseline; run --update" if model not in baseline else "not measured now"
            checks.append(Check(model, "inference ratio", None, None, False, where))
            continue
        before = baseline[model]["ratio"]["median"]
        now = current[model]["ratio"]["median"]
        ok = abs(now / before - 1.0) <= tolerance
        note = f"tolerance ±{tolerance:.0%}, IQR now {current[model]['ratio']['iqr']:.3f}"
        if baseline[model].get("reference_hash") != current[model].get("reference_hash"):
            ok, note = False, "reference changed"
        checks.append(Check(model, "inference ratio", before, now, ok, note))
    return checks


def current_speed(
    models: Sequence[str], settings: SpeedSettings, progress: Callable[[str], None] | None = None
) -> dict[str, dict[str, Any]]:
    """Inference throughput ratio of each registered model to its vanilla reference (models that are
    their own reference are skipped)."""
    from refiner_nas.refiner_space import named_config
    from refiner_nas.refiner_space.costs.speed import measure_speed, reference_for

    entries = {}
    for name in models:
        config = named_config(name, img_size=settings.img_size or 224)
        reference = reference_for(config)
        if reference[1].config_hash() == config.config_hash():
            continue
        if progress is not None:
            progress(name)
        result = measure_speed((name, config), reference, settings)
        ratio = result.mode("inference").ratio
        assert ratio is not None  # the reference differs from the model
        entries[name] = {
            "config_hash": result.config_hash,
            "reference": result.reference,
            "reference_hash": result.reference_hash,
            "ratio": ratio.to_dict(),
        }
    return entries


def regress(
    *,
    directory: Path | None = None,
    models: Sequence[str] | None = None,
    update: bool = False,
    speed: bool = True,
    tolerance: float | None = None,
    speed_settings: SpeedSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> RegressReport:
    """Recompute costs (and speed ratios) and compare them with the baselines, or rewrite them.

    Args:
        directory: where the baselines live; default ``results/baselines``.
        models: registered names; default all.
        update: write the baselines from the current measurements instead of comparing (with
            ``models``, only those entries are replaced).
        speed: also measure and compare speed ratios (slow: minutes on 2 CPU cores).
        tolerance: relative tolerance of speed ratios; default the baseline's (0.3 for a new one).
        speed_settings: how to measure for ``update``; comparisons reuse the baseline's settings.
        progress: called with each model's name before its speed is measured.

    Raises:
        KeyError: an unknown model name.
        FileNotFoundError, ValueError: a missing or unreadable baseline (when comparing).
    """
    from refiner_nas.refiner_space import NAMED_CONFIGS

    directory = directory or baseline_dir()
    selected = list(models) if models else list(NAMED_CONFIGS)
    for name in selected:
        if name not in NAMED_CONFIGS:
            raise KeyError(f"unknown model {name!r}; registered models: {', '.join(NAMED_CONFIGS)}")
    costs = _regress_costs(directory / "costs.json", selected, partial=bool(models), update=update)
    if not speed:
        return costs
    speed_report = _regress_speed(
        directory / "speed.json",
        selected,
        partial=bool(models),
        update=update,
        tolerance=tolerance,
        settings=speed_settings,
        progress=progress,
    )
    return RegressReport(
        costs.checks + speed_report.checks, costs.written + speed_report.written, costs.notes + speed_report.notes
    )


def _registered_order(entries: dict[str, Any]) -> dict[str, Any]:
    from refiner_nas.refiner_space import NAMED_CONFIGS

    return {name: entries[name] for name in NAMED_CONFIGS if name in entries}


def _selected(entries: dict[str, Any], selected: Sequence[str], partial: bool) -> dict[str, Any]:
    return {name: entry for name, entry in entries.items() if name in selected} if partial else entries


def _regress_costs(path: Path, selected: Sequence[str], *, partial: bool, update: bool) -> RegressReport:
    from refiner_nas.refiner_space.costs.environment import environment

    old = read_baseline(path, COSTS_SCHEMA) if (path.exists() or not update) else None
    img_size = old["img_size"] if old else 224
    now = current_costs(selected, img_size)
    if not update:
        assert old is not None
        return RegressReport(tuple(compare_costs(_selected(old["models"], selected, partial), now)))
    entries = {**(old["models"] if old and partial else {}), **now}
    data = {
        "schema": COSTS_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": _now(),
        "environment": environment("cpu"),
        "img_size": img_size,
        "convention": CONVENTION,
        "models": _registered_order(entries),
    }
    return RegressReport((), (write_baseline(path, data),))


def _regress_speed(
    path: Path,
    selected: Sequence[str],
    *,
    partial: bool,
    update: bool,
    tolerance: float | None,
    settings: SpeedSettings | None,
    progress: Callable[[str], None] | None,
) -> RegressReport:
    from refiner_nas.refiner_space.costs.environment import environment
    from refiner_nas.refiner_space.costs.speed import SpeedSettings, default_threads

    old = read_baseline(path, SPEED_SCHEMA) if (path.exists() or not update) else None
    notes = []
    if update:
        settings = settings or SpeedSettings(batch_size=4, img_size=224, warmup=2, modes=("inference",))
        settings = replace(settings, threads=settings.threads or default_threads())
        tolerance = tolerance if tolerance is not None else (old or {}).get("relative_tolerance", DEFAULT_TOLERANCE)
    else:
        assert old is not None
        settings = SpeedSettings(**{**old["settings"], "modes": tuple(old["settings"]["modes"])})
        tolerance = tolerance if tolerance is not None else old["relative_tolerance"]
        now_env = environment(settings.device)
        for item in ("cpu", "cpu_count"):
            if now_env.get(item) != old["environment"].get(item):
                notes.append(f"speed baseline's {item} was {old['environment'].get(item)!r}, now {now_env.get(item)!r}")
    now = current_speed(selected, settings, progress)
    if not update:
        assert old is not None and tolerance is not None
        checks = compare_speed(_selected(old["models"], selected, partial), now, tolerance)
        return RegressReport(tuple(checks), (), tuple(notes))
    entries = {**(old["models"] if old and partial else {}), **now}
    data = {
        "schema": SPEED_SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": _now(),
        "environment": environment(settings.device),
        "settings": settings.to_dict(),
        "relative_tolerance": tolerance,
        "models": _registered_order(entries),
    }
    return RegressReport((), (write_baseline(path, data),))
