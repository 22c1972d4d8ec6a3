"""YAML reading that remembers where every key and item stands, so errors can name the line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from refiner_nas.refiner_space.files import read_text_file

KeyPath = tuple[str | int, ...]


class SpaceError(ValueError):
    """A search space that cannot be used: one line per problem (``problems``), each naming the file, the
    line or key and the fix; the message holds them all, a line each."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars: only true/false are booleans (``off`` stays the string a model field expects) and
    ``30e6`` is a float, not a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# Added after the int resolver, so it only catches what the YAML 1.1 float pattern misses.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class Locator:
    """Turns a key path such as ``("dimensions", "depth", "int")`` into ``file:line (dimensions.depth.int)``."""

    def __init__(
        self, source: str, lines: dict[KeyPath, int] | None = None, unlocated: tuple[KeyPath, ...] = ()
    ) -> None:
        self.source = source
        self.lines = dict(lines or {})
        self.unlocated = unlocated

    def error(self, path: KeyPath, message: str) -> SpaceError:
        return SpaceError(self.line(path, message))

    def line(self, path: KeyPath, message: str) -> str:
        """``message`` prefixed with where ``path`` stands: ``file:line (key.path): message``."""
        where = self.source
        replaced = any(path[: len(prefix)] == prefix for prefix in self.unlocated)
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines and not replaced:
                where = f"{where}:{self.lines[path[:end]]}"
                break
        key = format_path(path)
        return f"{where} ({key}): {message}" if key else f"{where}: {message}"

    def without(self, prefixes: list[KeyPath]) -> Locator:
        """A locator that names no line for the given subtrees (they were replaced in memory)."""
        return Locator(self.source, self.lines, (*self.unlocated, *prefixes))


def format_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_yaml(path: Path) -> tuple[Any, Locator]:
    """Parse a YAML file; return its data and a locator of every key and list item in it.

    Raises:
        SpaceError: unreadable file, invalid YAML or a key given twice in one mapping.
    """
    text = read_text_file(path, "search space", error=SpaceError)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpaceError(f"{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _record_lines(node, (), lines, str(path))
    return data, Locator(str(path), lines)


def _record_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], source: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            child = (*path, key)
            if key in seen:
                where = Locator(source, {child: key_node.start_mark.line + 1})
                raise where.error(child, f"key {key!r} is given twice; keep one")
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _record_lines(value_node, child, lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, index), lines, source)
