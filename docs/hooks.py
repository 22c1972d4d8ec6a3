"""mkdocs hook: the API reference reads the sources as installed. The packages are folders at the
repository's top, mapped under ``refiner_nas`` by ``pyproject.toml``; griffe (mkdocstrings) looks for
``refiner_nas/search/...`` on disk, so this mirrors the mapping with symbolic links in
``build/docs-src/`` before the build starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT / "build" / "docs-src"


def mirror_installed_layout() -> None:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(MIRROR, ignore_errors=True)
    for package, folder in sorted(mapping.items()):
        target = MIRROR.joinpath(*package.split("."))
        if package == "refiner_nas":
            target.mkdir(parents=True)
            for entry in (ROOT / folder).iterdir():
                (target / entry.name).symlink_to(entry)
        else:
            target.symlink_to(ROOT / folder)


mirror_installed_layout()
