"""``refiner-nas leaderboard|pareto|export|train``: thin shells over the ``results`` library.

Wire them into the root app with::

    app.add_typer(leaderboard_app, name="leaderboard")
    app.command("pareto")(pareto_command)
    app.command("export")(export_command)
    app.command("train")(train_command)

Heavy imports happen inside the commands so that ``--help`` answers at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from refiner_nas.cli._errors import fail, one_line_errors
from refiner_nas.cli._sizes import file_size
from refiner_nas.cli._tables import terminal_width

if TYPE_CHECKING:
    import pandas as pd

leaderboard_app = typer.Typer(
    help="Every collected trial and full training next to the paper's Table 7.", no_args_is_help=False
)

StudyOption = Annotated[
    list[str] | None, typer.Option("--study", help="Study to collect and show (repeatable; default: all).")
]
StorageOption = Annotated[
    list[str] | None,
    typer.Option("--storage", help="Optuna storage URL to collect from (repeatable; default: RUN_DIR/STUDY journals)."),
]
RunDirOption = Annotated[Path, typer.Option(help="Folder of the search run directories.")]
ResultsDirOption = Annotated[Path, typer.Option(help="Folder of the leaderboard (RESULTS_DIR/leaderboard.parquet).")]
CollectOption = Annotated[bool, typer.Option(help="Collect the studies' trials before answering.")]
WhereOption = Annotated[
    str | None, typer.Option(help="Row filter over the columns, e.g. 'params_m <= 30 and dataset == \"digits\"'.")
]
ObjectivesOption = Annotated[
    str, typer.Option(help="column:max|min,... (top1, full_top1, params, macs, flops, latency, throughput, ...).")
]
ForceOption = Annotated[bool, typer.Option(help="Overwrite existing output files.")]


def _collect(studies: list[str], storages: list[str], run_dir: Path, results_dir: Path, collect: bool) -> pd.DataFrame:
    """Collect the named studies (all under RUN_DIR when none is named, if there are any) and return the
    stored leaderboard."""
    from refiner_nas.results.collect import collect as collect_studies
    from refiner_nas.results.store import leaderboard_path, load_leaderboard

    if not collect or (not studies and not storages and not any(Path(run_dir).glob("*/journal.log"))):
        return load_leaderboard(results_dir)
    result = collect_studies(studies=studies, storages=storages, run_dir=run_dir, results_dir=results_dir)
    typer.echo(
        f"collected {len(result.studies)} stud{'y' if len(result.studies) == 1 else 'ies'} "
        f"({', '.join(result.studies)}): {result.report} -> {leaderboard_path(results_dir)}",
        err=True,
    )
    return result.frame


@contextmanager
def _widen_when_empty(options: str) -> Iterator[None]:
    """Name the options of this command that widen an empty selection."""
    from refiner_nas.results.leaderboard import EmptyResultError

    try:
        yield
    except EmptyResultError as error:
        raise EmptyResultError(f"{error}; widen {options}, or collect a study first") from None


def _budget_filter(where: str | None, dataset: str | None, epochs: int | None) -> str | None:
    clauses = [f"({where})"] if where else []
    if dataset:
        clauses.append(f"dataset == {dataset!r}")
    if epochs is not None:
        clauses.append(f"epochs == {epochs}")
    return " and ".join(clauses) or None


def _check_writable(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise ValueError(f"{path} exists; pass --force to overwrite it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create {path.parent}: {error.strerror or error}; choose another path") from None
    if not os.access(path.parent, os.W_OK):
        raise ValueError(f"cannot write to {path.parent}: permission denied; choose another path")


@leaderboard_app.callback(invoke_without_command=True)
@one_line_errors
def leaderboard(
    ctx: typer.Context,
    study: StudyOption = None,
    storage: StorageOption = None,
    run_dir: RunDirOption = Path("runs"),
    results_dir: ResultsDirOption = Path("runs"),
    collect: CollectOption = True,
    where: WhereOption = None,
    sort: Annotated[str, typer.Option(help="Columns to sort by, '-' for descending, e.g. '-top1,params_m'.")] = (
        "kind,-top1,-full_top1"
    ),
    top: Annotated[int | None, typer.Option(help="Show the first K rows of each kind.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, markdown, csv or html.")] = "table",
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns, or 'all'.")] = None,
    reported: Annotated[bool, typer.Option(help="Show the paper's Table 7 alongside.")] = True,
    output: Annotated[Path | None, typer.Option(help="Write the table to this file instead of printing it.")] = None,
    force: ForceOption = False,
    all_rows: Annotated[bool, typer.Option("--all", help="Also show over-budget (never trained), duplicate and "
                                                         "resumed paused trials.")] = False,
) -> None:
    """Collect studies into the leaderboard and show it with the paper's Table 7 (labelled 'reported')."""
    if ctx.invoked_subcommand is not None:
        return
    from refiner_nas.results.leaderboard import check_query, leaderboard_table, render, result_rows

    chosen = check_query(where=where, sort=sort, top=top, fmt=output_format, columns=columns)
    if output is not None:
        _check_writable(output, force)
    stored = _collect(study or [], storage or [], run_dir, results_dir, collect)
    shown = stored if all_rows else result_rows(stored)
    if len(shown) < len(stored):
        typer.echo(f"{len(stored) - len(shown)} over-budget, duplicate or resumed trials not shown (--all shows them)",
                   err=True)
    table = leaderboard_table(shown, studies=study or [], where=where, sort=sort, top=top, reported=reported)
    text = render(table, output_format, columns=chosen, title="refiner-nas leaderboard",
                  width=terminal_width() if output is None else None)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)  # checked before collecting
        typer.echo(f"wrote {len(table)} rows to {output}", err=True)


@leaderboard_app.command("add")
@one_line_errors
def add(
    top1: Annotated[float, typer.Option(help="Top-1 accuracy (%) of the full training.")],
    config: Annotated[Path | None, typer.Option(help="Exported configuration (or ModelConfig YAML).")] = None,
    model: Annotated[str | None, typer.Option(help="A registered model name instead of --config.")] = None,
    dataset: Annotated[str, typer.Option(help="Dataset the accuracy was measured on.")] = "imagenet",
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    recipe: Annotated[str | None, typer.Option(help="Recipe used (standard, advanced, released, ...).")] = None,
    name: Annotated[str | None, typer.Option(help="Name shown in the leaderboard (default: the config's).")] = None,
    img_size: Annotated[int | None, typer.Option(help="Image size trained at, if not the configuration's.")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Classes, if not the config's (1000: ImageNet).")] = None,
    in_chans: Annotated[int | None, typer.Option(help="Input channels, if not the configuration's.")] = None,
    seed: Annotated[int | None, typer.Option(help="Training seed.")] = None,
    results_dir: ResultsDirOption = Path("runs"),
    force: Annotated[bool, typer.Option(help="Replace the same training recorded with another top-1.")] = False,
) -> None:
    """Record the result of a full training (e.g. ImageNet top-1 of an exported configuration)."""
    from refiner_nas.refiner_space import named_config
    from refiner_nas.results.entries import full_training_row, record_full_result
    from refiner_nas.results.export import load_export

    if (config is None) == (model is None):
        raise fail("give exactly one of --config FILE or --model NAME")
    if config is not None:
        exported = load_export(config)
        source, default_name, proxy = exported.config, exported.name, exported.proxy
    else:
        source, default_name, proxy = named_config(model), model, {}  # type: ignore[arg-type]
    overrides = {"img_size": img_size, "num_classes": num_classes, "in_chans": in_chans}
    architecture = source.replace(**{k: v for k, v in overrides.items() if v is not None})
    row = full_training_row(
        config=architecture, exported=source if config is not None else None, top1=top1, dataset=dataset,
        epochs=epochs, recipe=recipe, name=name or default_name,
        seed=seed, study=proxy.get("study"), trial=proxy.get("trial"),
    )
    report = record_full_result(row, results_dir, force=force)
    typer.echo(f"recorded {row['model']}: top-1 {top1:.4g} on {dataset} ({report})")


@one_line_errors
def pareto_command(
    objectives: ObjectivesOption = "top1:max,params:min",
    where: WhereOption = None,
    study: StudyOption = None,
    dataset: Annotated[str | None, typer.Option(help="Budget filter: only results on this dataset.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Budget filter: only results after this many epochs.")] = None,
    reference: Annotated[
        str | None, typer.Option(help="Hypervolume reference, e.g. 'top1=0,params=50' (default: 0 for accuracy "
                                      "and throughput, 110% of the worst candidate for costs).")
    ] = None,
    include_reported: Annotated[bool, typer.Option(help="Let Table 7's published models compete.")] = False,
    png: Annotated[Path | None, typer.Option(help="Write the front plot as a PNG here.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the interactive front plot here: one self-contained HTML "
                                                   "file (about 5 MB, plotly embedded, opens offline).")] = None,
    x: Annotated[str | None, typer.Option(help="Plot x column (default: the first size objective).")] = None,
    y: Annotated[str | None, typer.Option(help="Plot y column (default: the first accuracy objective).")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, markdown, csv or html.")] = "table",
    storage: StorageOption = None,
    run_dir: RunDirOption = Path("runs"),
    results_dir: ResultsDirOption = Path("runs"),
    collect: CollectOption = True,
    force: ForceOption = False,
) -> None:
    """The Pareto front over any objectives across studies, its hypervolume, and plots."""
    from refiner_nas.results.leaderboard import check_format, check_where, render, select_rows, with_reported
    from refiner_nas.results.pareto import leaderboard_front, parse_front_objectives, parse_reference
    from refiner_nas.results.plots import draw_html, draw_png, front_plot_data

    chosen = parse_front_objectives(objectives)
    point = parse_reference(reference, chosen) if reference else None
    check_format(output_format)
    if epochs is not None and epochs < 1:
        raise fail(f"--epochs {epochs} must be at least 1 (the budget's epochs), or left out")
    check_where(_budget_filter(where, dataset, epochs))
    for path in (png, html):
        if path is not None:
            _check_writable(path, force)
    names = study or []
    stored = _collect(names, storage or [], run_dir, results_dir, collect)
    frame = with_reported(stored) if include_reported else stored
    kinds = ("proxy", "full", "reported") if include_reported else ("proxy", "full")
    selected = select_rows(frame, studies=names, kinds=kinds, where=_budget_filter(where, dataset, epochs))
    with _widen_when_empty("--where, --study, --dataset or --epochs"):
        result = leaderboard_front(selected, chosen, reference=point)
    shown = ["kind", "model", *[o.column for o in chosen], "config_hash", "study", "trial", "dataset", "epochs"]
    shown = list(dict.fromkeys(shown))
    typer.echo(render(result.front, output_format, columns=shown, title="Pareto front", width=terminal_width()),
               nl=False)
    reference_text = ", ".join(f"{column}={value:.4g}" for column, value in result.reference.items())
    typer.echo(
        f"front: {len(result.front)} of {len(result.candidates)} candidates ({result.left_out} selected rows left out: "
        f"an objective missing, not complete, infeasible or a duplicate); hypervolume {result.hypervolume:.6g} "
        f"(reference {reference_text})"
    )
    if result.budgets > 1 and "top1" in [o.column for o in chosen]:
        typer.echo(
            f"note: the proxy top-1 values come from {result.budgets} different budgets; compare like with like "
            "with --dataset/--epochs or --where \"budget_key == '...'\"",
            err=True,
        )
    if png is None and html is None:
        typer.echo("plots: add --png FILE and/or --html FILE", err=True)
    else:
        data = front_plot_data(result, x=x, y=y)
        for path, draw, what in ((png, draw_png, "PNG"), (html, draw_html, "one self-contained page, plotly "
                                                                             "embedded: opens offline")):
            if path is not None:
                draw(data, path)
                typer.echo(f"wrote {path} ({file_size(path)}, {what})")


@one_line_errors
def export_command(
    out: Annotated[Path, typer.Option(help="Folder for one YAML file per configuration.")],
    top_k: Annotated[int, typer.Option(help="How many configurations (front first, then the next fronts).")] = 5,
    objectives: ObjectivesOption = "top1:max,params:min",
    where: WhereOption = None,
    study: StudyOption = None,
    storage: StorageOption = None,
    run_dir: RunDirOption = Path("runs"),
    results_dir: ResultsDirOption = Path("runs"),
    collect: CollectOption = True,
    force: Annotated[bool, typer.Option(help="Write into a folder that is not empty.")] = False,
) -> None:
    """Export the best configurations for full training (timm name and arguments, costs, recipes)."""
    from refiner_nas.results.export import check_top_k, export_top_k
    from refiner_nas.results.leaderboard import check_where, select_rows
    from refiner_nas.results.pareto import parse_front_objectives

    chosen = parse_front_objectives(objectives)
    check_top_k(top_k)
    check_where(where)
    names = study or []
    stored = _collect(names, storage or [], run_dir, results_dir, collect)
    selected = select_rows(stored, studies=names, kinds=("proxy", "full"), where=where)
    with _widen_when_empty("--where or --study"):
        paths = export_top_k(selected, chosen, k=top_k, out_dir=out, force=force)
    for path in paths:
        typer.echo(str(path))
    typer.echo(f"exported {len(paths)} configuration(s); train one with refiner-nas train --config FILE --data-dir DIR")


@one_line_errors
def train_command(
    config: Annotated[Path, typer.Option(help="Exported configuration (or ModelConfig YAML).")],
    data_dir: Annotated[str, typer.Option(help="Dataset: DIR (image folders), cifar10:DIR, cifar100:DIR or digits.")],
    recipe: Annotated[str | None, typer.Option(help="standard, advanced, released (default: the file's).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the recipe's).")] = None,
    output: Annotated[Path | None, typer.Option(help="Run folder (default: runs/train/NAME-RECIPE).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Global batch size (lr scales linearly).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (default: the recipe's, scaled).")] = None,
    img_size: Annotated[int | None, typer.Option(help="Train at this image size (default: the config's).")] = None,
    drop_path: Annotated[float | None, typer.Option(help="Stochastic depth (default: the recipe's).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, data order and augmentation.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N (torchrun: one GPU per process).")] = "auto",
    val_source: Annotated[str, typer.Option(help="auto, split or official validation set.")] = "auto",
    workers: Annotated[int | None, typer.Option(help="DataLoader workers for image folders.")] = None,
    amp: Annotated[bool, typer.Option(help="Mixed precision on CUDA.")] = True,
    record: Annotated[bool, typer.Option(help="Add the final top-1 to the leaderboard.")] = True,
    results_dir: ResultsDirOption = Path("runs"),
    force: Annotated[bool, typer.Option(help="Discard the run folder's checkpoint and start again.")] = False,
) -> None:
    """Train a configuration fully with a recipe; resumes from the run folder's last checkpoint.
    Several GPUs: torchrun --nproc-per-node N --no-python refiner-nas train ..."""
    from refiner_nas.results.export import load_export
    from refiner_nas.results.train import run_full_training

    main = int(os.environ.get("RANK", "0")) == 0
    if val_source not in ("auto", "split", "official"):
        raise fail(f"--val-source {val_source!r} must be auto, split or official")
    if output is None:
        exported = load_export(config)
        label = re.sub(r"[^A-Za-z0-9._-]+", "_", exported.name)
        output = Path("runs") / "train" / f"{label}-{recipe or exported.default_recipe}"

    def report(epoch: int, top1: float) -> None:
        if main:
            typer.echo(f"epoch {epoch + 1}: top-1 {top1:.2f}%")

    result = run_full_training(
        config, data=data_dir, output=output, recipe=recipe, epochs=epochs, batch_size=batch_size, lr=lr,
        img_size=img_size, drop_path=drop_path, seed=seed, device=device, amp=amp,
        val_source=val_source,  # type: ignore[arg-type]
        num_workers=workers, results_dir=results_dir if record else None, force=force, report=report,
        note=lambda text: typer.echo(f"note: recipe fitted to the data: {text}", err=True),
    )
    if not main:
        return
    if result.not_applied:
        typer.echo(f"note: not applied by the training loop: {'; '.join(result.not_applied)}", err=True)
    if result.train.start_epoch >= result.settings.epochs:
        typer.echo(f"{result.output} already holds all {result.settings.epochs} epochs; nothing to train", err=True)
    elif result.train.start_epoch:
        typer.echo(f"resumed after epoch {result.train.start_epoch}", err=True)
    typer.echo(
        f"{result.name} ({result.recipe}, {result.settings.epochs} epochs): final top-1 {result.final_top1:.2f}%, "
        f"best {result.train.best_top1:.2f}% -> {result.output}"
    )
