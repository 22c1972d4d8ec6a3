"""The ``refiner-nas`` command line: a thin shell over library functions.

Heavy imports (torch, timm) happen inside commands so that ``--help`` answers at once.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from refiner_nas.cli._errors import DEBUG_VARIABLE, click_errors, describe_usage_error, fail, one_line_errors
from refiner_nas.cli._interrupt import exit_at_once_on_interrupt, exit_interrupted
from refiner_nas.cli._tables import print_table
from refiner_nas.cli.analyze import analyze_app
from refiner_nas.cli.bench import bench_app
from refiner_nas.cli.results import export_command, leaderboard_app, pareto_command, train_command
from refiner_nas.cli.search import search_app

# Where the root context keeps the words it was given (``meta`` is shared with every subcommand's context).
_GIVEN = "refiner_nas.given"
# Click >= 8.2 raises it where a group is called without arguments; Typer prints the help.
_HELP_ASKED = getattr(click_errors, "NoArgsIsHelpError", ())


@contextmanager
def _one_line_usage_errors(given: list[str]) -> Iterator[None]:
    """Usage errors as one ``error:`` line and exit 2, an interrupt as one line and exit 130, instead of
    Typer's boxed panel and a silent 130."""
    try:
        yield
    except _HELP_ASKED:
        raise  # no arguments: the command's help
    except click_errors.UsageError as error:
        raise fail(describe_usage_error(error, given), code=2) from None
    except KeyboardInterrupt:
        exit_interrupted()


class _CommandLine(TyperGroup):
    """The root command: every subcommand's parsing and run pass through it."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        given = list(args)
        with _one_line_usage_errors(given):
            context = super().make_context(info_name, args, parent, **extra)
        context.meta[_GIVEN] = given
        return context

    def invoke(self, ctx: Any) -> Any:
        with _one_line_usage_errors(ctx.meta[_GIVEN]):
            return super().invoke(ctx)


app = typer.Typer(
    name="refiner-nas",
    cls=_CommandLine,
    help="Search, benchmark and analyse vision transformers with refined self-attention.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(wanted: bool) -> None:
    # Eager: answers before Click asks for a command.
    if wanted:
        from importlib.metadata import version as installed_version

        typer.echo(f"refiner-nas {installed_version('refiner-nas')}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version)
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help=f"Show the traceback behind an error line (or set {DEBUG_VARIABLE}=1).")
    ] = False,
) -> None:
    """Search, benchmark and analyse vision transformers with refined self-attention."""
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"  # worker processes inherit it
    with exit_at_once_on_interrupt():  # the first import of torch, timm and torchvision
        from refiner_nas.refiner_space.costs._cache import DEFAULT_CACHE, counter_version, user_cache_file

    # Counts survive the process: `models` and `bench regress` do not recount unchanged architectures.
    DEFAULT_CACHE.persist(user_cache_file(), counter_version())


@app.command()
@one_line_errors
def models(
    img_size: Annotated[int, typer.Option(help="Input image size in pixels.")] = 224,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the registered models with their parameters and MACs."""
    from refiner_nas.refiner_space import NAMED_CONFIGS, named_config
    from refiner_nas.refiner_space.costs import count_costs

    rows = []
    for name in NAMED_CONFIGS:
        config = named_config(name, img_size=img_size)
        costs = count_costs(config)
        rows.append(
            {
                "model": name,
                "attention": config.attention,
                "depth": config.depth,
                "embed_dim": config.embed_dim,
                "heads": config.num_heads,
                "params_m": round(costs.params / 1e6, 2),
                "macs_g": round(costs.macs / 1e9, 2),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    title = f"Registered models at {img_size} px (MACs: multiply-accumulates, one image)"
    print_table(title, rows, ("model", "attention"))


app.add_typer(search_app, name="search")
app.add_typer(leaderboard_app, name="leaderboard")
app.add_typer(analyze_app, name="analyze")
app.add_typer(bench_app, name="bench")
app.command("pareto")(pareto_command)
app.command("export")(export_command)
app.command("train")(train_command)


def main() -> None:
    # fvcore traces models with torch.jit, which warns about its own deprecation on every count.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
    warnings.formatwarning = lambda message, *_, **__: f"warning: {message}\n"  # one line, like errors
    app()
