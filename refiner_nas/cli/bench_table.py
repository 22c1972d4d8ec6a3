"""Tabular-benchmark commands: `bench table build`, `bench search`, `bench proxies` (thin shells)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from refiner_nas.benchmarks.strategy_names import DEFAULT_STRATEGIES
from refiner_nas.cli._errors import one_line_errors

table_app = typer.Typer(help="Build and inspect tabular benchmarks of a search space.", no_args_is_help=True)


@table_app.command("build")
@one_line_errors
def build(
    out: Annotated[Path, typer.Option(help="Parquet file to write (resumes from OUT.partial.jsonl).")],
    space: Annotated[str, typer.Option(help="A finite space: shipped name or YAML file.")] = "tabular",
    dataset: Annotated[str, typer.Option(help="digits, cifar10:DIR, cifar100:DIR, imagefolder:DIR.")] = "digits",
    epochs: Annotated[int, typer.Option(help="Full proxy budget, in epochs.")] = 20,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, cosine schedule).")] = 2e-3,
    warmup_epochs: Annotated[float, typer.Option(help="Linear warm-up, in epochs.")] = 1.0,
    seeds: Annotated[str, typer.Option(help="Training seeds, comma-separated.")] = "0,1",
    workers: Annotated[int, typer.Option(help="Processes training rows in parallel.")] = 1,
    threads: Annotated[int, typer.Option(help="CPU threads per process.")] = 1,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
) -> None:
    """Train every architecture of a finite space with each seed and write its benchmark table."""
    from refiner_nas.benchmarks.table_build import build_table
    from refiner_nas.search.settings import SearchSettings

    settings = SearchSettings(space=space, dataset=dataset, epochs=epochs, batch_size=batch_size,
                              lr=lr, warmup_epochs=warmup_epochs, device=device)
    seed_list = [int(seed) for seed in seeds.split(",") if seed.strip()]

    def show(done: int, total: int) -> None:
        typer.echo(f"{done}/{total} rows", err=True)

    command = shlex.join(["refiner-nas", "bench", "table", "build", "--out", str(out), "--space", space,
                          "--dataset", dataset, "--epochs", str(epochs), "--batch-size", str(batch_size),
                          "--lr", str(lr), "--warmup-epochs", str(warmup_epochs), "--seeds", seeds,
                          "--workers", str(workers)])
    table = build_table(settings, seeds=seed_list, out=out, workers=workers, threads_per_worker=threads,
                        command=command, progress=show)
    if table is not None:
        typer.echo(f"{out}: {len(table.architectures)} architectures x {len(seed_list)} seeds, "
                   f"{table.provenance['build_seconds']:.0f} s of training")


TableOption = Annotated[Path | None, typer.Option(help="Benchmark table (default: the shipped digits table).")]


def _table_path(table: Path | None) -> Path:
    from refiner_nas.search.tabular import SHIPPED_TABLE

    return table or SHIPPED_TABLE


def search_command(
    table: TableOption = None,
    strategies: Annotated[str, typer.Option(help="SAMPLER+STOPPER[+PROXY:K],... (samplers random, tpe, nsga2, "
                                                 "gp, ehvi; stoppers none, dominance, mo_asha, promote; optional "
                                                 "pre-screening of K candidates by synflow, naswot, grad_norm "
                                                 "or params).")] = ",".join(DEFAULT_STRATEGIES),
    seeds: Annotated[int, typer.Option(help="Repetitions (seeds 0..N-1) per strategy.")] = 30,
    costs: Annotated[str, typer.Option(help="Cost planes, each searched and measured: params, macs.")] = "params",
    workers: Annotated[int, typer.Option(help="Processes running searches in parallel.")] = 1,
    out: Annotated[Path, typer.Option(help="Folder for traces.parquet, summary.csv and hypervolume.png.")] = Path(
        "bench_search"),
    max_params: Annotated[str | None, typer.Option(
        help="Impose a parameter limit (e.g. 13.5K) on the table's space: architectures over it are never "
             "trained, and the true front is that of the others.")] = None,
) -> None:
    """Compare search strategies on a table: epochs to reach 90/95/99 % of the true front's hypervolume."""
    import numpy as np

    from refiner_nas.benchmarks.search_strategies import (
        epochs_to_reach,
        hv_curves,
        plot_hv_curves,
        run_comparison,
        summarise,
    )
    from refiner_nas.search.space import Budget

    def show(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            typer.echo(f"{done}/{total} searches", err=True)

    traces = run_comparison(_table_path(table), [s.strip() for s in strategies.split(",") if s.strip()],
                            seeds=range(seeds), costs=[c.strip() for c in costs.split(",")], workers=workers,
                            progress=show, budget=None if max_params is None else Budget(max_params=max_params))
    summary = summarise(epochs_to_reach(traces))
    out.mkdir(parents=True, exist_ok=True)
    traces.to_parquet(out / "traces.parquet")
    summary.to_csv(out / "summary.csv", index=False)
    grid = np.arange(0, int(traces["epochs"].max()) + 1)
    plot_hv_curves(hv_curves(traces, grid), out / "hypervolume.png")
    typer.echo(summary.to_markdown(index=False, floatfmt=".3g"))


def proxies_command(
    table: TableOption = None,
    out: Annotated[Path | None, typer.Option(help="Also write the correlations to this CSV file.")] = None,
) -> None:
    """Rank correlation with final top-1 of zero-cost proxies, params, MACs and partial training."""
    from refiner_nas.benchmarks.proxy_correlations import proxy_scores, rank_correlations, seed_agreement
    from refiner_nas.search.tabular import read_table

    loaded = read_table(_table_path(table))
    correlations = rank_correlations(loaded, proxy_scores(loaded))
    if out is not None:
        correlations.to_csv(out, index=False)
    typer.echo(correlations.to_markdown(index=False, floatfmt=".3f"))
    typer.echo(f"\nseed 0 vs seed 1 final top-1: Kendall τ {seed_agreement(loaded):.3f}")
