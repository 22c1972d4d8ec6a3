"""The CLI reference page of the docs, generated from the commands themselves.

``python -m refiner_nas.cli._reference > docs/reference/cli.md`` writes it; a test checks that the
committed page is what this gives, so the reference cannot drift from the options.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Iterator
from typing import Any

import typer


def _default(param: Any) -> str:
    if getattr(param, "is_flag", False) and not getattr(param, "secondary_opts", None):
        return ""
    default = param.default
    if default is None or callable(default) or isinstance(default, (list, tuple)) and not default:
        return ""
    if isinstance(default, enum.Enum):
        default = default.value
    if isinstance(default, bool):
        return "--" + param.name.replace("_", "-") if default else "--no-" + param.name.replace("_", "-")
    return f"`{default}`"


def _values(param: Any) -> str:
    if param.is_flag:
        return ""
    annotation = param.type_descriptor.annotation
    choices = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else annotation
    if isinstance(choices, type) and issubclass(choices, enum.Enum):
        return " \\| ".join(f"`{choice.value}`" for choice in choices)
    return param.bare_type().upper()


def _argument(argument: Any) -> str:
    name = (argument.metavar or argument.name).upper()
    return name + "..." if argument.nargs == -1 and not name.endswith("...") else name


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _commands(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    yield path, command
    if hasattr(command, "commands"):  # a group (Typer's own classes are Click-like, not Click's)
        for name in command.commands:
            sub = command.commands[name]
            if not sub.hidden:
                yield from _commands(sub, [*path, name])


def _section(path: list[str], command: Any) -> list[str]:
    lines = [f"## `{' '.join(path)}`", ""]
    help_text = (command.help or "").strip()
    if help_text:
        lines += [help_text.split("\n\n")[0].replace("\n", " "), ""]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option" and not getattr(p, "hidden", False)]
    shown = [_argument(a) for a in arguments]
    usage = " ".join([*path, *shown, "[OPTIONS]" if options else ""]).strip()
    if hasattr(command, "commands"):
        usage += " COMMAND"
    lines += ["```text", usage, "```", ""]
    if options:
        lines += ["| option | values | default | meaning |", "|---|---|---|---|"]
        for option in options:
            names = ", ".join(f"`{name}`" for name in [*option.opts, *option.secondary_opts])
            lines.append(f"| {names} | {_values(option)} | {_default(option)} | {_cell(option.help)} |")
        lines.append("")
    return lines


def cli_reference(app: typer.Typer) -> str:
    """Every command of ``app`` with its usage and options (values, default, help), as Markdown."""
    root: Any = typer.main.get_command(app)
    lines = ["# Command-line reference", "",
             "Generated from the commands (`python -m refiner_nas.cli._reference > docs/reference/cli.md`).", ""]
    for path, command in _commands(root, ["refiner-nas"]):
        lines += _section(path, command)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    from refiner_nas.cli import app

    print(cli_reference(app), end="")
