"""mkdocs hook: before the build, mirror the installed layout in ``build/docs-src/`` (the packages are
folders at the repository's top, mapped under ``refiner_nas`` at install time), where the API reference
reads the sources (``refiner_nas._checkout``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's refiner_nas/, installed or not
from refiner_nas._checkout import mirror_layout  # noqa: E402

mirror_layout(ROOT / "build" / "docs-src")
