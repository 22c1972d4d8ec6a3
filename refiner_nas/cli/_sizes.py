"""File sizes as the commands announce them."""

from __future__ import annotations

from pathlib import Path


def file_size(path: Path) -> str:
    """``4.8 MB``, ``88 kB``, ``512 bytes``: a file's size as people read it (decimal units)."""
    size = path.stat().st_size
    if size >= 1e6:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e3:.0f} kB" if size >= 1e3 else f"{size} bytes"
