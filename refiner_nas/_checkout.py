"""A checkout's packages under the one import name, without installing it: a folder of symbolic links
that mirrors ``pyproject.toml``'s package-dir mapping.

The docs build reads the sources there (griffe looks for ``refiner_nas/search/...`` on disk), and
``benchmarks/gpu_check.sh`` imports from there on a machine where the project is not installed:
``python -m refiner_nas._checkout DIR`` builds the folder and prints the path to put on ``PYTHONPATH``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import tomllib

CHECKOUT = Path(__file__).resolve().parents[1]


def package_dirs(checkout: Path = CHECKOUT) -> dict[str, Path]:
    """Each installed package's folder in ``checkout``, from ``pyproject.toml``'s package-dir mapping.

    Raises:
        FileNotFoundError: ``checkout`` has no ``pyproject.toml`` (an installed copy, not a checkout).
    """
    setuptools = tomllib.loads((checkout / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {package: checkout / folder for package, folder in setuptools["package-dir"].items()}


def mirror_layout(into: Path, *, checkout: Path = CHECKOUT) -> Path:
    """Replace ``into`` with links laid out as the installed ``refiner_nas`` is, and return it."""
    folders = package_dirs(checkout)
    shutil.rmtree(into, ignore_errors=True)
    for package, folder in sorted(folders.items()):
        target = into.joinpath(*package.split("."))
        if package == "refiner_nas":  # the front package: its own files, beside the mapped folders
            target.mkdir(parents=True)
            for entry in folder.iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry.resolve())
        else:
            target.symlink_to(folder.resolve())
    return into


if __name__ == "__main__":
    print(mirror_layout(Path(sys.argv[1]).resolve()))
