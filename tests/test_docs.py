"""The docs site builds with warnings as errors, its CLI reference is what the commands say, and code
comments cite pages that exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from refiner_nas.cli import app
from refiner_nas.cli._reference import cli_reference

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_docs_build_strictly(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "reference" / "search" / "index.html").is_file()


def test_the_cli_reference_is_current() -> None:
    committed = (ROOT / "docs" / "reference" / "cli.md").read_text()
    assert committed == cli_reference(app), "run: python -m refiner_nas.cli._reference > docs/reference/cli.md"


def test_the_cli_reference_lists_every_command() -> None:
    reference = cli_reference(app)
    for command in ("refiner-nas search launch", "refiner-nas leaderboard add", "refiner-nas bench table build",
                    "refiner-nas analyze cka", "refiner-nas models"):
        assert f"## `{command}`" in reference
    assert "| `--trials` | INT | `16` |" in reference


def test_code_cites_docs_pages_and_anchors_that_exist() -> None:
    """Comments and docstrings cite ``docs/page.md#anchor``: each page exists and has that heading."""
    cited = set()
    for folder in ("refiner_nas", "search", "results", "benchmarks", "refiner_space"):
        for file in (ROOT / folder).rglob("*.py"):
            cited |= set(re.findall(r"docs/([\w/-]+\.md)(?:#([\w-]+))?", file.read_text()))
    assert cited
    for page, anchor in cited:
        text = (ROOT / "docs" / page).read_text()
        headings = {re.sub(r"[^\w\s-]", "", h).strip().lower().replace(" ", "-")
                    for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
        assert not anchor or anchor in headings, f"docs/{page} has no heading #{anchor}"
