"""``refiner-nas search launch|status|list|delete|plot|resume|worker``: thin shells over
``refiner_nas.search.runner`` and ``refiner_nas.search.study``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from refiner_nas.cli._errors import fail, one_line_errors
from refiner_nas.cli._sizes import file_size
from refiner_nas.cli._tables import print_table
from refiner_nas.search.settings import SearchSettings

if TYPE_CHECKING:
    import pandas as pd

    from refiner_nas.search.study import StudyStatus

DEFAULTS = SearchSettings()  # the CLI's defaults are the library's

search_app = typer.Typer(help="Run and inspect architecture searches.", no_args_is_help=True)

SpaceOption = Annotated[str, typer.Option(help="Shipped space name (tiny, default, table1, ...) or a YAML file.")]
StudyOption = Annotated[str | None, typer.Option(help="Study name (default: the space's name).")]
StorageOption = Annotated[
    str | None,
    typer.Option(
        help="Optuna storage URL (sqlite:///..., postgresql://...) (default: a journal file in RUN_DIR/STUDY/)."
    ),
]
RunDirOption = Annotated[Path, typer.Option(help="Folder of the run directories.")]


@search_app.command()
@one_line_errors
def launch(
    space: SpaceOption = DEFAULTS.space,
    objectives: Annotated[
        str, typer.Option(help="name:direction,... from top1, params, macs, latency, throughput.")
    ] = DEFAULTS.objectives,
    trials: Annotated[int, typer.Option(help="Architectures the study should evaluate: trained, stopped early or found "
                                             "over budget; repeats of an evaluated one and failures do not count.")] = (
        DEFAULTS.trials
    ),
    epochs: Annotated[int, typer.Option(help="Proxy-training epochs per trial.")] = DEFAULTS.epochs,
    dataset: Annotated[
        str, typer.Option(help="digits (built in), cifar10:DIR, cifar100:DIR, imagefolder:DIR.")
    ] = DEFAULTS.dataset,
    storage: StorageOption = None,
    study: StudyOption = None,
    run_dir: RunDirOption = Path("runs"),
    workers: Annotated[int, typer.Option(help="Local worker processes sharing the study (0: create it only).")] = 1,
    sampler: Annotated[str, typer.Option(
        help="auto (ehvi on a space of at most 512 points, else tpe), ehvi (known-cost expected hypervolume "
             "improvement), tpe, nsga2, random, gp or grid.")] = DEFAULTS.sampler,
    pruner: Annotated[str, typer.Option(help="median, hyperband or none (single-objective studies).")] = (
        DEFAULTS.pruner
    ),
    early_stop: Annotated[bool | None, typer.Option(
        "--early-stop/--no-early-stop", show_default=False,
        help="Stop trials early with --stopper (multi-objective studies). Default: on where the sampler "
             "resolves to ehvi, off otherwise.")] = DEFAULTS.early_stop,
    stopper: Annotated[str, typer.Option(help="promote (pause at 40 % of the epochs, resume when promoted), "
                                              "dominance or mo_asha (successive halving): how multi-objective "
                                              "trials stop early.")] = DEFAULTS.stopper,
    prescreen: Annotated[int, typer.Option(help="Before each trial, score this many candidates proposed by the "
                                                "sampler with --proxy at initialisation and train the best "
                                                "(0: off).")] = DEFAULTS.prescreen,
    proxy: Annotated[str, typer.Option(help="synflow, naswot, grad_norm or params: what --prescreen ranks "
                                            "candidates by.")] = DEFAULTS.proxy,
    seed: Annotated[int, typer.Option(help="Seed of the sampler, the data split and training.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = DEFAULTS.batch_size,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, cosine schedule).")] = DEFAULTS.lr,
    warmup_epochs: Annotated[float, typer.Option(help="Linear warm-up, in epochs (may be fractional).")] = (
        DEFAULTS.warmup_epochs
    ),
    crop_ratio: Annotated[float, typer.Option(help="Evaluation crop ratio; above 1 pads.")] = 1.0,
    progress: Annotated[bool, typer.Option(help="Show the live progress display.")] = True,
    heartbeat: Annotated[int, typer.Option(help="Heartbeat of trials in database storages, in seconds; a trial "
                                                "silent for 3 beats is retried by another worker.")] = 20,
    backend: Annotated[str, typer.Option(help="optuna (this machine's processes), ray (Ray Tune) or table:FILE "
                                              "(simulated: curves read from a benchmark table).")] = "optuna",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to join (or RAY_ADDRESS); default: "
                                                         "start Ray here.")] = None,
    max_concurrent: Annotated[int, typer.Option(help="Ray: trials running at once.")] = 2,
    cpus_per_trial: Annotated[float, typer.Option(help="Ray: CPUs per trial.")] = 1.0,
    gpus_per_trial: Annotated[float, typer.Option(help="Ray: GPUs per trial (fractions share a GPU).")] = 0.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate everything, measure a few training steps "
                                                           "and print the plan with its time estimate; train "
                                                           "nothing.")] = False,
) -> None:
    """Run a search (or resume it: the same command continues the same study) and print its Pareto front.
    The plan (trials, epochs, images) and its warnings are printed first; --dry-run stops there."""
    import optuna

    from refiner_nas.search.runner import interrupt_on_signals
    from refiner_nas.search.runner import launch as run_search
    from refiner_nas.search.study import study_front, study_status

    interrupt_on_signals()

    # The progress display and the summary say it all; failures keep their reasons in the records.
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    settings = SearchSettings(
        space=space,
        objectives=objectives,
        trials=trials,
        epochs=epochs,
        dataset=dataset,
        storage=storage,
        study=study,
        run_dir=run_dir,
        workers=workers,
        sampler=sampler,
        pruner=pruner,
        early_stop=early_stop,
        stopper=stopper,
        prescreen=prescreen,
        proxy=proxy,
        seed=seed,
        device=device,
        batch_size=batch_size,
        lr=lr,
        warmup_epochs=warmup_epochs,
        crop_ratio=crop_ratio,
        heartbeat_s=heartbeat,
    )
    if backend.startswith("table:"):
        from refiner_nas.search.tabular import simulated_launch_settings

        settings, backend = simulated_launch_settings(settings, Path(backend.removeprefix("table:"))), "optuna"
    if backend not in ("optuna", "ray"):
        raise fail(f"--backend {backend!r} is not one of optuna, ray, table:FILE")
    if backend == "ray":
        from refiner_nas.search.runner import ray_settings

        settings = ray_settings(settings)
    _print_plan(settings, dry_run=dry_run)
    if dry_run:
        return
    try:
        if backend == "ray":
            from refiner_nas.search.runner import RayOptions, launch_ray

            options = RayOptions(address=ray_address, max_concurrent=max_concurrent, cpus_per_trial=cpus_per_trial,
                                 gpus_per_trial=gpus_per_trial)
            finished = launch_ray(settings, options, show_progress=progress)
        else:
            finished = run_search(settings, show_progress=progress)
    except KeyboardInterrupt as stop:
        if backend == "ray":
            from refiner_nas.search.storages import redact

            where = f" --run-dir {run_dir}" + (f" --storage {redact(storage)}" if storage else "")
            raise _interrupted(stop, "the running trials are recorded as failed (interrupted), completed trials are "
                               "kept and Ray saved the run; continue it with: refiner-nas search resume --study "
                               f"{settings.study_name}{where}") from None
        raise _interrupted(stop, _requeued_outcome(settings)) from None
    _print_status(study_status(finished))
    _print_front(study_front(finished))


@search_app.command()
@one_line_errors
def status(
    study: Annotated[str, typer.Option(help="Study name.")] = "tiny",
    storage: StorageOption = None,
    run_dir: RunDirOption = Path("runs"),
) -> None:
    """Trials by state, the best so far and the Pareto front of a study (reads only: writes nothing)."""
    from refiner_nas.search.study import load_study, study_front, study_status

    existing = load_study(study, run_dir=run_dir, storage=storage)
    _print_status(study_status(existing))
    _print_front(study_front(existing))


@search_app.command("list")
@one_line_errors
def list_command(storage: StorageOption = None, run_dir: RunDirOption = Path("runs")) -> None:
    """The studies under RUN_DIR (or in --storage): trials by state and objectives."""
    from refiner_nas.search.study import list_studies

    entries = list_studies(run_dir, storage)
    if not entries:
        typer.echo(f"no study in {storage or run_dir}; start one with refiner-nas search launch")
        return
    rows = [{"study": e.name, "trials": str(sum(e.trials.values())),
             "states": ", ".join(f"{count} {state}" for state, count in e.trials.items()),
             "objectives": e.objectives.replace(",", ", "), "storage": e.location} for e in entries]
    print_table("Studies", rows, ("study", "states", "objectives", "storage"))


@search_app.command()
@one_line_errors
def delete(
    study: Annotated[str, typer.Option(help="Name of the study to delete.")],
    storage: StorageOption = None,
    run_dir: RunDirOption = Path("runs"),
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking.")] = False,
) -> None:
    """Delete a study and its trials (the default journal: its whole run folder). Asks first unless --yes."""
    from refiner_nas.search.study import delete_study, require_study_storage

    require_study_storage(study, run_dir=run_dir, storage=storage, readable=False)
    if not yes and not typer.confirm(f"delete study {study!r} and all its trials?", default=False):
        raise fail("nothing deleted", code=1)
    typer.echo(f"deleted {delete_study(study, run_dir=run_dir, storage=storage)}")


@search_app.command()
@one_line_errors
def plot(
    study: Annotated[str, typer.Option(help="Study name.")],
    out: Annotated[Path, typer.Option(
        help="Folder for the HTML pages; the plotly.min.js they share (4.8 MB) is written beside them.")],
    storage: StorageOption = None,
    run_dir: RunDirOption = Path("runs"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing pages.")] = False,
) -> None:
    """Optimisation history and parameter importance of every objective (Optuna's visualization)."""
    from refiner_nas.search.study import load_study, write_study_plots

    plots = write_study_plots(load_study(study, run_dir=run_dir, storage=storage), out, force=force)
    for note in plots.skipped:
        typer.echo(f"note: no plot of {note}", err=True)
    for path in plots.written:
        typer.echo(f"wrote {path} ({file_size(path)})")


@search_app.command()
@one_line_errors
def resume(
    study: Annotated[str, typer.Option(help="Name of the interrupted Ray study.")],
    storage: StorageOption = None,
    run_dir: RunDirOption = Path("runs"),
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to join (or RAY_ADDRESS).")] = None,
    max_concurrent: Annotated[int, typer.Option(help="Trials running at once.")] = 2,
    cpus_per_trial: Annotated[float, typer.Option(help="CPUs per trial.")] = 1.0,
    gpus_per_trial: Annotated[float, typer.Option(help="GPUs per trial.")] = 0.0,
) -> None:
    """Restore an interrupted Ray Tune run (finished trials are not run again) and print its front."""
    from refiner_nas.search.runner import RayOptions, resume_ray
    from refiner_nas.search.study import study_front, study_status

    options = RayOptions(address=ray_address, max_concurrent=max_concurrent, cpus_per_trial=cpus_per_trial,
                         gpus_per_trial=gpus_per_trial)
    finished = resume_ray(study=study, storage=storage, run_dir=run_dir, options=options)
    _print_status(study_status(finished))
    _print_front(study_front(finished))


@search_app.command()
@one_line_errors
def worker(
    study: Annotated[str, typer.Option(help="Name of the study to join.")],
    storage: Annotated[str | None, typer.Option(help="The study's storage URL (the same for every worker).")] = None,
    run_dir: RunDirOption = Path("runs"),
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Join an existing study (from this or any machine) and run its trials until it is done."""
    from refiner_nas.search.runner import interrupt_on_signals, run_worker, worker_settings
    from refiner_nas.search.study import load_existing_study, study_status

    interrupt_on_signals()
    settings = worker_settings(study=study, storage=storage, run_dir=run_dir, device=device)
    try:
        run_worker(settings)
    except KeyboardInterrupt as stop:
        raise _interrupted(stop, "the trial in flight is recorded as failed and re-queued; completed trials are kept") \
            from None
    _print_status(study_status(load_existing_study(settings)))


def _interrupted(stop: KeyboardInterrupt, outcome: str) -> typer.Exit:
    """The one line and exit code of a command stopped by Ctrl-C (130) or SIGTERM (143): 128 + the signal's
    number, what a shell or a scheduler reports for a process the signal ended."""
    from refiner_nas.search.runner import stop_signal

    signal = stop_signal(stop)
    return fail(f"interrupted ({signal.name}): {outcome}", code=128 + signal)


def _requeued_outcome(settings: SearchSettings) -> str:
    """What an interrupted launch left: how many trials in flight were re-queued (read from the study, which every
    worker has updated by then)."""
    from refiner_nas.search.study import load_existing_study, requeued_waiting

    try:
        requeued = requeued_waiting(load_existing_study(settings))
    except (KeyError, OSError, ValueError):  # interrupted before the study was opened
        requeued = 0
    if requeued == 0:
        flight = "no trial was in flight"
    elif requeued == 1:
        flight = ("the trial in flight was recorded as failed (interrupted) and re-queued "
                  "(the next run trains that architecture first)")
    else:
        flight = (f"{requeued} trials in flight were recorded as failed (interrupted) and "
                  "re-queued (the next run trains those architectures first)")
    return f"{flight}; completed trials are kept; run the same command again to continue"


def _print_plan(settings: SearchSettings, *, dry_run: bool) -> None:
    from refiner_nas.search.runner import plan_launch

    plan = plan_launch(settings, measure=dry_run)
    for line in plan.lines():
        typer.echo(line, err=not dry_run)
    for warning in plan.warnings(settings):
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    if dry_run:
        typer.echo("dry run: nothing was trained or recorded")


def _print_status(status: StudyStatus) -> None:
    typer.echo(f"study {status.name} ({status.objectives})")
    typer.echo("  trials: " + ", ".join(f"{count} {state}" for state, count in sorted(status.states.items())))
    typer.echo("  records: " + ", ".join(f"{count} {kind}" for kind, count in sorted(status.statuses.items())))
    typer.echo(f"  best: {status.best}; Pareto front: {status.pareto_size} trials")


# The architecture's fields in a front table, by their short names (unset ones left out).
_ARCHITECTURE_FIELDS = {"depth": "depth", "embed_dim": "dim", "num_heads": "heads", "expansion_ratio": "r",
                        "kernel_size": "k", "share_span": "share", "context_broadcast": "cb"}


def _print_front(front: pd.DataFrame) -> None:
    """The front as a table that fits 80 columns: objectives with units in their headers, the architecture in
    one column of ``name=value`` words that wraps."""
    from refiner_nas.search.objectives import OBJECTIVE_UNITS

    if front.empty:
        typer.echo("no completed feasible trial yet")
        return
    fields = {"attention", *_ARCHITECTURE_FIELDS, "trial", "status", "config_hash"}
    objectives = [column for column in front.columns if column not in fields]
    rows = [{"trial": row["trial"],
             **{f"{o} ({OBJECTIVE_UNITS[o]})" if o in OBJECTIVE_UNITS else o: f"{row[o]:.4g}" for o in objectives},
             "status": row["status"], "architecture": _architecture(row)} for _, row in front.iterrows()]
    print_table("Pareto front (config_hash and full records: refiner-nas leaderboard)", rows,
                ("status", "architecture"))


def _architecture(row: pd.Series) -> str:
    """``refiner depth=4 dim=48 heads=2 r=4 k=3 share=2 cb=off``: the fields the architecture sets."""
    words = [f"{short}={row[field]}" for field, short in _ARCHITECTURE_FIELDS.items() if row[field] not in ("", None)]
    return " ".join([str(row["attention"]), *words])
