"""``refiner-nas analyze cka|attention|density``: thin commands over ``refiner_nas.refiner_space.analysis.runs``.

Heavy imports (torch, timm, matplotlib) happen inside the commands so that ``--help`` answers at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from refiner_nas.cli._errors import one_line_errors

if TYPE_CHECKING:
    from refiner_nas.refiner_space.analysis.runs import AnalysisInputs, AnalysisReport

analyze_app = typer.Typer(
    help="Analyse models and checkpoints as the papers do: feature evolution (CKA), attention maps, density.",
    no_args_is_help=True,
)

Models = Annotated[
    list[str],
    typer.Argument(
        help="Registered model names, configuration YAMLs (ModelConfig or exported) or .pt/.pth checkpoints.",
        metavar="MODEL|CHECKPOINT|CONFIG...",
        show_default=False,
    ),
]
Configs = Annotated[
    list[str] | None,
    typer.Option("--config", help="Configuration of each checkpoint in order (or one for all): a name or YAML."),
]
Data = Annotated[str, typer.Option(help="digits, imagefolder:DIR (or DIR), cifar10:DIR, cifar100:DIR.")]
ImgSize = Annotated[
    int | None,
    typer.Option(help="Input size; default: a checkpoint's own, at most 112 for untrained models.", show_default=False),
]
ValFraction = Annotated[float, typer.Option(help="Held-out share of the data the images come from (as in training).")]
SplitSeed = Annotated[int, typer.Option(help="Seed of the held-out split (as in training).")]
Seed = Annotated[int, typer.Option(help="Seed of the image order and of untrained models' weights.")]
Device = Annotated[str, typer.Option(help="auto (CUDA when available), cpu, cuda or cuda:N.")]
Out = Annotated[Path, typer.Option(help="Folder for the CSV and figures.")]
Force = Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")]
BatchSize = Annotated[int, typer.Option(help="Images per batch.")]
Batches = Annotated[int, typer.Option(help="Random batches to average over.")]


def _inputs(
    models: list[str],
    configs: list[str] | None,
    data: str,
    img_size: int | None,
    val_fraction: float,
    split_seed: int,
    seed: int,
    device: str,
) -> AnalysisInputs:
    from refiner_nas.refiner_space.analysis.runs import AnalysisInputs

    return AnalysisInputs(
        models=models,
        configs=configs or (),
        data=data,
        img_size=img_size,
        val_fraction=val_fraction,
        split_seed=split_seed,
        seed=seed,
        device=device,
    )


def _print(report: AnalysisReport) -> None:
    for row in report.models().itertuples():
        typer.echo(f"{row.model}: weights {row.weights}, images {row.img_size}")
    for path in report.paths:
        typer.echo(f"wrote {path}")


@analyze_app.command()
@one_line_errors
def cka(
    models: Models,
    config: Configs = None,
    data: Data = "digits",
    img_size: ImgSize = None,
    val_fraction: ValFraction = 0.1,
    split_seed: SplitSeed = 0,
    seed: Seed = 0,
    device: Device = "auto",
    out: Out = Path("analysis"),
    force: Force = False,
    batch_size: BatchSize = 16,
    batches: Batches = 4,
    tokens: Annotated[
        str, typer.Option(help="flatten: all tokens of an image are one example; mean: their mean.")
    ] = "flatten",
) -> None:
    """Feature evolution: F_k = CKA(f_k, f_out) / CKA(f_in, f_out) per block, several models on one plot."""
    from refiner_nas.refiner_space.analysis.runs import analyze_cka

    inputs = _inputs(models, config, data, img_size, val_fraction, split_seed, seed, device)
    _print(analyze_cka(inputs, out=out, batch_size=batch_size, batches=batches, tokens=tokens, force=force))  # type: ignore[arg-type]


@analyze_app.command()
@one_line_errors
def attention(
    models: Models,
    config: Configs = None,
    data: Data = "digits",
    img_size: ImgSize = None,
    val_fraction: ValFraction = 0.1,
    split_seed: SplitSeed = 0,
    seed: Seed = 0,
    device: Device = "auto",
    out: Out = Path("analysis"),
    force: Force = False,
    image: Annotated[list[int] | None, typer.Option(help="Validation image index (repeatable).")] = None,
    query: Annotated[
        list[str] | None,
        typer.Option(help="Query token: cls, ROW,COL or a token index (repeatable)."),
    ] = None,
    block: Annotated[list[int] | None, typer.Option(help="Block index (repeatable; default all).")] = None,
    head: Annotated[list[int] | None, typer.Option(help="Head index (repeatable; default all).")] = None,
) -> None:
    """Attention maps of chosen query tokens before and after refinement, per block and head (PNG grids)."""
    from refiner_nas.refiner_space.analysis.runs import analyze_attention

    inputs = _inputs(models, config, data, img_size, val_fraction, split_seed, seed, device)
    report = analyze_attention(
        inputs, out=out, images=image or [0], queries=query or ["cls"], blocks=block, heads=head, force=force
    )
    _print(report)


@analyze_app.command()
@one_line_errors
def density(
    models: Models,
    config: Configs = None,
    data: Data = "digits",
    img_size: ImgSize = None,
    val_fraction: ValFraction = 0.1,
    split_seed: SplitSeed = 0,
    seed: Seed = 0,
    device: Device = "auto",
    out: Out = Path("analysis"),
    force: Force = False,
    batch_size: BatchSize = 8,
    batches: Batches = 2,
) -> None:
    """Attention density: entropy of each block's raw (softmax) maps and its share of log(tokens)."""
    from refiner_nas.refiner_space.analysis.runs import analyze_density

    inputs = _inputs(models, config, data, img_size, val_fraction, split_seed, seed, device)
    _print(analyze_density(inputs, out=out, batch_size=batch_size, batches=batches, force=force))
