"""The command lines and Python examples the README and the docs show, read once for the tests that run
them (``test_documented_commands.py``, ``benchmarks/test_scale.py``)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The generated CLI reference holds usage lines, not examples (its own test keeps it current).
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "cli.md")]


def bash_lines(page: Path) -> list[str]:
    """The lines of ``page``'s bash blocks, continuation lines joined and comments dropped."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S):
        for raw in block.splitlines():
            line = raw.split("  #")[0].rstrip()
            if raw.startswith(" ") and lines:
                lines[-1] += " " + line.strip()
            elif line and not line.startswith("#"):
                lines.append(line)
    return lines


def documented_lines() -> list[tuple[str, str]]:
    """(page, line) for every bash line of the README and the docs."""
    return [(page.relative_to(ROOT).as_posix(), line) for page in PAGES for line in bash_lines(page)]


def python_examples() -> list[tuple[str, str]]:
    """(page, code) for every Python block of the README and the docs."""
    return [(page.relative_to(ROOT).as_posix(), code) for page in PAGES
            for code in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)]
