"""``refiner-nas bench``: cost counts, throughput, the fold measurement and regression checks.

Every command is a thin shell over a library function (``refiner_nas.refiner_space.costs._count``,
``refiner_nas.refiner_space.costs.speed``, ``refiner_nas.benchmarks.fold``,
``refiner_nas.benchmarks.official``, ``refiner_nas.benchmarks.regress``).
Heavy imports happen inside the commands so that ``--help`` answers at once. Tables by default;
``--json`` or ``--csv`` for scripts.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from refiner_nas.cli._errors import one_line_errors
from refiner_nas.cli._tables import print_table

if TYPE_CHECKING:
    from refiner_nas.refiner_space import ModelConfig
    from refiner_nas.refiner_space.costs import Costs
    from refiner_nas.refiner_space.costs.bandwidth import Bandwidth
    from refiner_nas.refiner_space.costs.speed import SpeedResult
    from refiner_nas.refiner_space.costs.timing import Stats

bench_app = typer.Typer(
    name="bench",
    help="Count parameters, MACs and FLOPs, measure speed, and check against the committed baselines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Amp(str, Enum):
    off = "off"
    bf16 = "bf16"
    fp16 = "fp16"


class ModeChoice(str, Enum):
    inference = "inference"
    train = "train"
    latency = "latency"


ItersOption = Annotated[int, typer.Option(help="Timed iterations (at least 10).")]
WarmupOption = Annotated[int, typer.Option(help="Untimed warm-up iterations.")]
ThreadsOption = Annotated[int | None, typer.Option(help="CPU threads (default: every available core).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AsCsv = Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")]


def resolve_model(spec: str, img_size: int | None = None) -> tuple[str, ModelConfig]:
    """A registered name or a configuration YAML (ModelConfig or exported, as every command reads
    them: ``refiner_nas.refiner_space.analysis.sources.resolve_config``), as (label, configuration).

    Raises:
        SourceError / ConfigError (ValueError): an unknown name, an unreadable or invalid file or size.
    """
    from refiner_nas.refiner_space.analysis.sources import resolve_config

    config = resolve_config(spec)
    return spec, config if img_size is None else config.replace(img_size=img_size)


def _check_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise ValueError("choose one of --json and --csv")


def _printed_as_data(report: Any, *, as_json: bool, as_csv: bool) -> bool:
    """Print a report (``to_dict()`` and ``rows``) as JSON or as CSV rows when asked; True when printed."""
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    elif as_csv:
        _print_csv([_flat(row.to_dict()) for row in report.rows])
    return as_json or as_csv


def _print_csv(rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    sys.stdout.write(buffer.getvalue())


def _spread(stats: Stats, spec: str = ".2f") -> str:
    """``median [q1-q3]``."""
    return f"{stats.median:{spec}} [{stats.q1:{spec}}-{stats.q3:{spec}}]"


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one row: ``{"a": {"b": 1}}`` -> ``{"a_b": 1}``."""
    row: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            row.update(_flat(value, f"{prefix}{key}_"))
        else:
            row[f"{prefix}{key}"] = value
    return row


def _giga(value: float) -> str:
    return f"{value / 1e9:.4f}"


def _cost_row(label: str, config: ModelConfig, costs: Costs) -> dict[str, Any]:
    return {
        "model": label,
        "img_size": "x".join(map(str, costs.img_size)),
        "params_m": f"{costs.params / 1e6:.3f}",
        "macs_g": _giga(costs.macs),
        "product_flops_g": _giga(costs.product_flops),
        "elementwise_flops_g": _giga(costs.elementwise_flops),
        "flops_g": _giga(costs.flops),
        "fvcore_flops_g": _giga(costs.fvcore_flops),
        "config_hash": config.config_hash(),
    }


@bench_app.command()
@one_line_errors
def flops(
    models: Annotated[
        list[str], typer.Argument(metavar="MODEL|CONFIG.yaml...", help="Registered names or config files.")
    ],
    img_size: Annotated[int | None, typer.Option(help="Input size in pixels (default: the model's).")] = None,
    breakdown: Annotated[bool, typer.Option("--breakdown", help="Also show costs per part of the model.")] = False,
    fold: Annotated[bool, typer.Option("--fold", help="Count paper-variant refiners folded.")] = False,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Parameters, MACs and FLOPs of one image's forward pass (convention: refiner_space/costs/_ops.py).

    MACs count products and convolutions; FLOPs are 2 per MAC plus element-wise FLOPs (norms, softmax,
    activations, adds, means); fvcore_flops is plain fvcore's total, for comparison with papers.
    """
    from refiner_nas.refiner_space.costs import count_costs

    _check_format(as_json, as_csv)
    resolved = [resolve_model(spec, img_size) for spec in models]
    counted = [(label, config, count_costs(config, refiner_fold=fold)) for label, config in resolved]
    if as_json:
        payload = [
            {"model": label, "config_hash": config.config_hash(), "refiner_fold": fold, **costs.to_dict()}
            for label, config, costs in counted
        ]
        typer.echo(json.dumps(payload, indent=2))
        return
    if breakdown:
        rows = []
        for label, _, costs in counted:
            for part in costs.parts:
                rows.append({
                    "model": label,
                    "part": part.part,
                    "params_m": f"{part.params / 1e6:.3f}",
                    "macs_g": _giga(part.macs),
                    "elementwise_flops_g": _giga(part.elementwise_flops),
                    "flops_g": _giga(part.flops),
                    "share_of_flops": f"{part.flops / costs.flops:.1%}" if costs.flops else "",
                })  # fmt: skip
            rows.append({
                "model": label, "part": "total", "params_m": f"{costs.params / 1e6:.3f}", "macs_g": _giga(costs.macs),
                "elementwise_flops_g": _giga(costs.elementwise_flops), "flops_g": _giga(costs.flops),
                "share_of_flops": "100.0%",
            })  # fmt: skip
        if as_csv:
            _print_csv(rows)
        else:
            print_table("Costs per part (one image)", rows, ("model", "part"))
        return
    rows = [_cost_row(label, config, costs) for label, config, costs in counted]
    if as_csv:
        _print_csv(rows)
    else:
        print_table("Costs of one image's forward pass (G = 1e9)", rows, ("model", "config_hash"))


def _speed_rows(results: Sequence[SpeedResult]) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        for mode in result.modes:
            ratio = mode.ratio
            rows.append({
                "model": result.model,
                "mode": mode.mode,
                "batch": mode.batch_size,
                "img_per_s": f"{mode.throughput.median:.2f}",
                "img_per_s_iqr": f"{mode.throughput.iqr:.2f}",
                "step_ms_p50": f"{mode.step_ms.median:.1f}",
                "step_ms_p90": f"{mode.step_ms.p90:.1f}",
                "peak_mem_mib": "" if mode.memory.bytes is None else f"{mode.memory.bytes / 2**20:.1f}",
                "reference": result.reference or "(itself)",
                "ref_img_per_s": "" if mode.reference_throughput is None else f"{mode.reference_throughput.median:.2f}",
                "ratio [q1-q3]": "" if ratio is None else _spread(ratio, ".3f"),
                "max_batch": mode.max_batch,
            })  # fmt: skip
    return rows


def _bandwidth_line(model: str, bandwidth: Bandwidth) -> str:
    return (
        f"{model}: refiner alone {_spread(bandwidth.refiner_ms, '.1f')} ms per batch, "
        f"{_spread(bandwidth.refiner_gb_per_s)} GB/s moving {bandwidth.refiner_bytes / 1e6:.1f} MB "
        f"(maps read + written once); copy {_spread(bandwidth.copy_gb_per_s)} GB/s "
        f"({bandwidth.fraction_of_copy:.0%} of copy)"
    )


@bench_app.command()
@one_line_errors
def throughput(
    models: Annotated[
        list[str], typer.Argument(metavar="MODEL|CONFIG.yaml...", help="Registered names or config files.")
    ],
    batch_size: Annotated[int, typer.Option(help="Images per inference or training step.")] = 8,
    img_size: Annotated[int | None, typer.Option(help="Input size in pixels (default: the model's).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda[:i].")] = "cpu",
    amp: Annotated[Amp, typer.Option(help="Autocast dtype: off, bf16, fp16 (CUDA only).")] = Amp.off,
    compile_model: Annotated[bool, typer.Option("--compile", help="Wrap the models in torch.compile.")] = False,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Channels-last memory format.")] = False,
    fold: Annotated[
        bool, typer.Option("--fold", help="Fold refiners (and released-code BatchNorms for inference).")
    ] = False,
    reference: Annotated[
        str, typer.Option(help="'auto' (same-shape vanilla ViT), 'none', or a MODEL|CONFIG.yaml.")
    ] = "auto",
    mode: Annotated[
        list[ModeChoice] | None, typer.Option(help="inference, train, latency (repeat; default all).")
    ] = None,
    iters: ItersOption = 10,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up iterations.")] = 3,
    threads: ThreadsOption = None,
    max_batch: Annotated[bool, typer.Option("--max-batch", help="CUDA: find the largest batch that fits.")] = False,
    bandwidth: Annotated[
        bool, typer.Option("--bandwidth/--no-bandwidth", help="Refiner alone: GB/s next to a large copy's.")
    ] = True,
    triton: Annotated[
        bool, typer.Option("--triton/--no-triton", help="CUDA: refiner chains at inference in Triton kernels.")
    ] = True,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Images/s for inference and training steps, batch-1 latency and peak memory, each against a
    reference model measured in the same process (ratio > 1: faster than the reference), and the
    refiner's achieved memory bandwidth next to the machine's copy bandwidth."""
    from refiner_nas.refiner_space.costs.speed import SpeedSettings, measure_speed, reference_for

    _check_format(as_json, as_csv)
    settings = SpeedSettings(
        batch_size=batch_size,
        img_size=img_size,
        device=device,
        amp=amp.value,  # type: ignore[arg-type]
        channels_last=channels_last,
        compile=compile_model,
        warmup=warmup,
        iters=iters,
        threads=threads,
        modes=tuple(m.value for m in mode) if mode else ("inference", "train", "latency"),  # type: ignore[arg-type]
        fold=fold,
        max_batch=max_batch,
        bandwidth=bandwidth,
        triton_kernels=triton,
    )
    resolved = [resolve_model(spec, img_size) for spec in models]
    progress = None if as_json or as_csv else lambda text: typer.echo(text, err=True)
    fixed_reference = None if reference in ("auto", "none") else resolve_model(reference, img_size)
    results = []
    for label, config in resolved:
        if reference == "none":
            chosen = None
        else:
            chosen = fixed_reference or reference_for(config)
        results.append(measure_speed((label, config), chosen, settings, progress=progress))
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
    elif as_csv:
        _print_csv(_speed_rows(results))
    else:
        threads_used = results[0].environment.get("torch_threads") if results else None
        title = f"Speed on {device} ({threads_used} threads), median of {iters} runs; ratio = images/s ÷ reference's"
        print_table(title, _speed_rows(results), ("model", "mode", "reference"))
        for result in results:
            if result.bandwidth is not None:
                typer.echo(_bandwidth_line(result.model, result.bandwidth))


@bench_app.command("fold")
@one_line_errors
def fold_command(
    model: Annotated[
        str, typer.Option(help="A registered paper-variant refiner or a config file.")
    ] = "refined_vit_16b_384",
    ratio: Annotated[list[int] | None, typer.Option(help="Expansion ratios (repeat; default 3 and 6).")] = None,
    kernel_size: Annotated[int, typer.Option(help="DLA kernel size.")] = 3,
    img_size: Annotated[int, typer.Option(help="Input size in pixels.")] = 224,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 4,
    iters: ItersOption = 10,
    warmup: WarmupOption = 2,
    threads: ThreadsOption = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Paper refiner folded (one dense k×k conv) against unfolded and against the same-shape vanilla ViT,
    on CPU in one process: time per batch, ratios, peak memory (inference and a training step)."""
    from refiner_nas.benchmarks.fold import measure_fold

    _check_format(as_json, as_csv)
    label, config = resolve_model(model)
    report = measure_fold(
        model=config,
        label=label,
        expansion_ratios=tuple(ratio or (3, 6)),
        kernel_size=kernel_size,
        img_size=img_size,
        batch_size=batch_size,
        iters=iters,
        warmup=warmup,
        threads=threads,
    )
    if _printed_as_data(report, as_json=as_json, as_csv=as_csv):
        return

    def mib(peak: Any) -> str:
        return "n/a" if peak.bytes is None else f"{peak.bytes / 2**20:.0f}"

    rows = []
    for row in report.rows:
        rows.append({
            "r": row.expansion_ratio,
            "unfolded_ms": f"{row.unfolded_ms.median:.0f} ({row.unfolded_ms.iqr:.0f})",
            "folded_ms": f"{row.folded_ms.median:.0f} ({row.folded_ms.iqr:.0f})",
            "vanilla_ms": f"{row.vanilla_ms.median:.0f} ({row.vanilla_ms.iqr:.0f})",
            "fold_speedup": _spread(row.fold_speedup),
            "folded/vanilla": _spread(row.folded_vs_vanilla),
            "unfolded/vanilla": _spread(row.unfolded_vs_vanilla),
            "refiner_only_speedup": _spread(row.refiner_speedup, ".1f"),
            "infer_MiB u/f/v": "/".join(mib(row.inference_memory[k]) for k in ("unfolded", "folded", "vanilla")),
            "train_MiB u/f/v": "/".join(mib(row.train_memory[k]) for k in ("unfolded", "folded", "vanilla")),
            "rel_err": f"{row.max_relative_error:.1e}",
        })  # fmt: skip
    title = (
        f"Fold on CPU: {report.model}, k={report.kernel_size}, {report.img_size} px, batch {report.batch_size}, "
        f"{report.environment.get('torch_threads')} threads; median (IQR) of {report.iters} runs; "
        "ratios = throughput ÷ other's [q1-q3]; memory: peak RSS increase"
    )
    print_table(title, rows)


@bench_app.command("official")
@one_line_errors
def official_command(
    model: Annotated[
        list[str] | None, typer.Option(help="Released-code models (repeat; default refined_vit_s and _m).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass (and maps per chain step).")] = 8,
    img_size: Annotated[int, typer.Option(help="Input size in pixels.")] = 224,
    iters: ItersOption = 10,
    warmup: WarmupOption = 2,
    threads: ThreadsOption = None,
    device: Annotated[str, typer.Option(help="cpu or cuda[:i].")] = "cpu",
    amp: Annotated[Amp, typer.Option(help="Autocast dtype: off or bf16.")] = Amp.off,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Released-code models against a plain reference built as the released code is (same weights), in
    one process: inference of the whole model and the refiner chain alone in training."""
    from refiner_nas.benchmarks.official import DEFAULT_MODELS, measure_official

    _check_format(as_json, as_csv)
    report = measure_official(
        models=[resolve_model(spec) for spec in model or DEFAULT_MODELS],
        batch_size=batch_size,
        img_size=img_size,
        iters=iters,
        warmup=warmup,
        threads=threads,
        device=device,
        amp=amp.value,
    )
    if _printed_as_data(report, as_json=as_json, as_csv=as_csv):
        return
    rows = [
        {
            "model": row.model,
            "infer_ms ours/ref": f"{row.inference_ms.median:.3g}/{row.reference_inference_ms.median:.3g}",
            "infer_ratio [q1-q3]": _spread(row.inference_ratio, ".3f"),
            "train_chain_ms ours/ref": f"{row.train_chain_ms.median:.3g}/{row.reference_train_chain_ms.median:.3g}",
            "train_chain_ratio [q1-q3]": _spread(row.train_chain_ratio, ".3f"),
            "infer_err": f"{row.inference_error:.1e}",
            "train_err ours/ref vs fp64": f"{row.train_error:.1e}/{row.reference_train_error:.1e}",
        }
        for row in report.rows
    ]
    title = (
        f"Released-code variant vs plain reference on {report.environment.get('gpu', 'CPU')}, amp {amp.value}, "
        f"{report.img_size} px, batch {report.batch_size}, {report.environment.get('torch_threads')} threads; "
        f"median of {report.iters} runs; "
        "ratio = reference time ÷ ours"
    )
    print_table(title, rows, ("model",))


class ChainDtype(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


@bench_app.command("kernels")
@one_line_errors
def kernels_command(
    device: Annotated[str, typer.Option(help="cpu or cuda[:i].")] = "cpu",
    dtype: Annotated[ChainDtype, typer.Option(help="The maps' dtype: fp32 or bf16 (autocast for modules).")] = (
        ChainDtype.bf16
    ),
    batch_size: Annotated[int, typer.Option(help="Images whose maps are refined at once.")] = 8,
    img_size: Annotated[int, typer.Option(help="Input size in pixels (sets the maps' N).")] = 224,
    compile_modules: Annotated[
        bool, typer.Option("--compile", help="Also time the modules through torch.compile.")
    ] = False,
    iters: Annotated[int, typer.Option(help="Timed iterations (at least 10).")] = 20,
    warmup: WarmupOption = 3,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Both refiner chains alone at inference: the modules (reference), the PyTorch fast path, the Triton
    kernel (CUDA) and optionally torch.compile; time, GB/s next to a copy's, and error against float64."""
    from refiner_nas.benchmarks.kernels import chain_rows, measure_kernels

    _check_format(as_json, as_csv)
    report = measure_kernels(
        device=device,
        dtype=dtype.value,  # type: ignore[arg-type]
        batch_size=batch_size,
        img_size=img_size,
        iters=iters,
        warmup=warmup,
        compile_modules=compile_modules,
    )
    if _printed_as_data(report, as_json=as_json, as_csv=as_csv):
        return
    title = (
        f"Refiner chains at inference on {report.environment.get('gpu', device)}, {dtype.value}, "
        f"batch {batch_size}, {img_size} px; median of {iters} runs; copy {report.copy_gb_per_s.median:.0f} GB/s; "
        "ratio = modules' time ÷ this one's"
    )
    print_table(title, chain_rows(report), ("chain", "implementation"))


@bench_app.command()
@one_line_errors
def regress(
    update: Annotated[bool, typer.Option("--update", help="Rewrite the baselines from this run.")] = False,
    speed: Annotated[bool, typer.Option("--speed/--no-speed", help="Also check speed ratios (slow).")] = True,
    model: Annotated[list[str] | None, typer.Option(help="Only these registered models (repeat).")] = None,
    tolerance: Annotated[float | None, typer.Option(help="Relative tolerance of speed ratios.")] = None,
    baseline_dir: Annotated[Path | None, typer.Option(help="Default: results/baselines.")] = None,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Recompute params/MACs/FLOPs (exact) and speed ratios (within a tolerance) of every registered model
    and compare them with the committed baselines; exit 1 with a table of what regressed."""
    from refiner_nas.benchmarks.regress import regress as run_regress

    _check_format(as_json, as_csv)
    if tolerance is not None and tolerance <= 0:
        raise ValueError(f"tolerance={tolerance} must be positive")
    report = run_regress(
        directory=baseline_dir,
        models=model,
        update=update,
        speed=speed,
        tolerance=tolerance,
        progress=None if as_json or as_csv else lambda name: typer.echo(f"measuring speed of {name} ...", err=True),
    )
    if as_json:
        typer.echo(json.dumps({
            "ok": report.ok,
            "written": [str(p) for p in report.written],
            "notes": list(report.notes),
            "checks": [asdict(check) for check in report.checks],
        }, indent=2))  # fmt: skip
    elif as_csv:
        _print_csv([asdict(check) for check in report.checks])
    else:
        for note in report.notes:
            typer.echo(f"note: {note}", err=True)
        for path in report.written:
            typer.echo(f"wrote {path}")
        if report.checks:
            typer.echo(f"{len(report.checks) - len(report.failures)} of {len(report.checks)} checks hold")
        if report.failures:
            rows = [
                {"model": c.model, "quantity": c.quantity, "baseline": c.baseline, "current": c.current, "note": c.note}
                for c in report.failures
            ]
            print_table("Regressions", rows, ("model", "quantity", "note"))
    if not report.ok:
        raise typer.Exit(1)


def _add_subcommands() -> None:
    from refiner_nas.cli.bench_table import proxies_command, search_command, table_app

    bench_app.add_typer(table_app, name="table")
    bench_app.command("search")(one_line_errors(search_command))
    bench_app.command("proxies")(one_line_errors(proxies_command))


_add_subcommands()
