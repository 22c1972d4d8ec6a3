"""How every ``refiner-nas`` command reports bad input: one ``error:`` line and a non-zero exit."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer

Command = TypeVar("Command", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one ``error:`` line and return the exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def one_line_errors(command: Command) -> Command:
    """Turn the library's input errors, and the system's (a full disk, an unreachable storage, a worker
    process that failed), into one ``error:`` line and exit code 2."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ValueError, KeyError, OSError, ImportError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            raise fail(str(message).splitlines()[0] if str(message) else type(error).__name__) from None

    return wrapper  # type: ignore[return-value]
