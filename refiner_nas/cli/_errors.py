"""How every ``refiner-nas`` command reports bad input: one ``error:`` line and a non-zero exit."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from functools import wraps
from itertools import takewhile
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

# The exceptions of the Click that Typer runs on: its own copy (``typer._click``, Typer 0.2x) or ``click``.
click_errors = importlib.import_module(typer.BadParameter.__module__)

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
    process that failed), into one ``error:`` line (one per problem where an error lists several) and exit
    code 2; with ``--debug`` (or
    ``REFINER_NAS_DEBUG=1``) they propagate with their traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ValidationError, ValueError, KeyError, OSError, ImportError) as error:
            if debug_enabled():
                raise
            *earlier, last = problem_lines(error)
            for line in earlier:
                typer.secho(f"error: {line}", err=True, fg=typer.colors.RED)
            raise fail(last) from None

    return wrapper  # type: ignore[return-value]


def problem_lines(error: Exception) -> list[str]:
    """An ``error:`` line per problem: the ``problems`` an error lists (a search space's), else ``one_line``."""
    problems = getattr(error, "problems", None)
    if isinstance(problems, tuple) and problems and all(isinstance(line, str) for line in problems):
        return list(problems)
    return [one_line(error)]


def one_line(error: Exception) -> str:
    """The first line of what ``error`` says (pydantic's problems with the options they concern)."""
    if isinstance(error, ValidationError):
        return describe_option_errors(error)
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    return str(message).splitlines()[0] if str(message) else type(error).__name__


def describe_usage_error(error: Any, given: Sequence[str]) -> str:
    """Click's ``UsageError`` (a bad value, an unknown option or command, a missing or empty option, an
    extra argument) as one line naming the option, the value given and the fix."""
    command = error.ctx.command_path if error.ctx else " ".join(["refiner-nas", *takewhile(_is_word, given)])
    see = f"see '{command} --help'"
    if isinstance(error, click_errors.NoSuchOption):
        guess = f" (did you mean {' or '.join(error.possibilities)}?)" if error.possibilities else ""
        return f"{command}: unknown option {error.option_name}{guess}; {see}"
    if isinstance(error, click_errors.BadOptionUsage):
        return f"{error.option_name}: {error.message.rstrip('.')}; {see}"
    missing = isinstance(error, click_errors.MissingParameter)
    if isinstance(error, click_errors.BadParameter) and not missing and error.param:
        option = (error.param.opts or [error.param.human_readable_name])[-1]
        value = _value_given(given, error.param.opts)
        shown = f" {value!r}" if value is not None else ""
        return f"{option}{shown}: {error.message.removeprefix('Value error, ').rstrip('.')}; {see}"
    return f"{command}: {error.format_message().rstrip('.')}; {see}"


def _is_word(word: str) -> bool:
    return not word.startswith("-")


def _value_given(given: Sequence[str], options: Sequence[str]) -> str | None:
    """The last value given to one of ``options`` (``--opt value`` or ``--opt=value``), if any."""
    value = None
    for index, word in enumerate(given):
        name, equals, attached = word.partition("=")
        if name in options:
            value = attached if equals else (given[index + 1] if index + 1 < len(given) else None)
    return value

