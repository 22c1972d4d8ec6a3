"""``refiner-nas bench table build``: a thin shell over :func:`search.tabular.build_table`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from search.cli_errors import one_line_errors

table_app = typer.Typer(help="Build and inspect tabular benchmarks of a search space.", no_args_is_help=True)


@table_app.command("build")
@one_line_errors
def build(
    out: Annotated[Path, typer.Option(help="Parquet file to write (resumes from OUT.partial.jsonl).")],
    space: Annotated[str, typer.Option(help="A finite space: shipped name or YAML file.")] = "tabular",
    dataset: Annotated[str, typer.Option(help="digits, cifar10:DIR, cifar100:DIR, imagefolder:DIR.")] = "digits",
    epochs: Annotated[int, typer.Option(help="Full proxy budget, in epochs.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 64,
    seeds: Annotated[str, typer.Option(help="Training seeds, comma-separated.")] = "0,1",
    workers: Annotated[int, typer.Option(help="Processes training rows in parallel.")] = 1,
    threads: Annotated[int, typer.Option(help="CPU threads per process.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
) -> None:
    """Train every architecture of a finite space with each seed and write its benchmark table."""
    from search.settings import SearchSettings
    from search.tabular import build_table

    settings = SearchSettings(space=space, dataset=dataset, epochs=epochs, batch_size=batch_size,
                              device=device)
    seed_list = [int(seed) for seed in seeds.split(",") if seed.strip()]

    def show(done: int, total: int) -> None:
        typer.echo(f"{done}/{total} rows", err=True)

    command = shlex.join(["refiner-nas", "bench", "table", "build", "--out", str(out), "--space", space,
                          "--dataset", dataset, "--epochs", str(epochs), "--batch-size", str(batch_size),
                          "--seeds", seeds, "--workers", str(workers)])
    table = build_table(settings, seeds=seed_list, out=out, workers=workers, threads_per_worker=threads,
                        command=command, progress=show)
    if table is not None:
        typer.echo(f"{out}: {len(table.architectures)} architectures x {len(seed_list)} seeds, "
                   f"{table.provenance['build_seconds']:.0f} s of training")
