"""How every ``refiner-nas`` command reports bad input: one ``error:`` line and a non-zero exit."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

Command = TypeVar("Command", bound=Callable[..., Any])

# Set by ``refiner-nas --debug`` (and inherited by worker processes): errors keep their traceback.
DEBUG_VARIABLE = "REFINER_NAS_DEBUG"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one ``error:`` line and return the exit to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


# Settings fields whose option is not the field name with dashes.
_OPTION_OF_FIELD = {"heartbeat_s": "--heartbeat"}


def describe_option_errors(error: ValidationError) -> str:
    """Pydantic's report on options as ``--option: value: what is allowed``, every problem on one line."""
    parts = []
    for problem in error.errors():
        message = problem["msg"].removeprefix("Value error, ").removeprefix("Input ")
        if not problem["loc"]:  # a check across options names them itself
            parts.append(message)
            continue
        field = str(problem["loc"][0])
        option = _OPTION_OF_FIELD.get(field, "--" + field.replace("_", "-"))
        parts.append(f"{option}: {problem['input']}: {message}")
    return "; ".join(parts)


def one_line_errors(command: Command) -> Command:
    """Turn the library's input errors, and the system's (a full disk, an unreachable storage, a worker
    process that failed), into one ``error:`` line and exit code 2; with ``--debug`` (or
    ``REFINER_NAS_DEBUG=1``) they propagate with their traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ValidationError, ValueError, KeyError, OSError, ImportError) as error:
            if debug_enabled():
                raise
            raise fail(one_line(error)) from None

    return wrapper  # type: ignore[return-value]


def one_line(error: Exception) -> str:
    """The first line of what ``error`` says (pydantic's problems with the options they concern)."""
    if isinstance(error, ValidationError):
        return describe_option_errors(error)
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    return str(message).splitlines()[0] if str(message) else type(error).__name__
