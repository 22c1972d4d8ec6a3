"""The ``refiner-nas`` command line, every command a thin shell over a library function.

``_app`` is the root with its sub-apps side by side: ``search`` (launch, status, list, delete, plot,
resume, worker), ``leaderboard`` and the ``pareto``/``export``/``train`` commands (``results``), ``analyze``,
``bench`` (with ``bench table``, ``bench_table``) and ``models``. ``_errors`` turns input errors into one
``error:`` line, ``_interrupt`` an interrupt outside a command's own handling; ``_tables`` prints rows fitted
to the terminal.

This package loads ``_app`` only when asked (``main()`` or ``app``): the entry point imports it, and an
interrupt during the half second its imports take must be one line, not a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from refiner_nas.cli._interrupt import exit_at_once_on_interrupt, exit_interrupted

if TYPE_CHECKING:
    from refiner_nas.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """The ``refiner-nas`` entry point: Ctrl-C at any moment, imports included, is one line and exit 130."""
    try:
        with exit_at_once_on_interrupt():
            from refiner_nas.cli._app import main as run_command_line
        run_command_line()
    except KeyboardInterrupt:
        exit_interrupted()


def __getattr__(name: str) -> Any:
    if name == "app":
        from refiner_nas.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
