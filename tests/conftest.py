"""Shared test settings: deterministic seeds and one torch thread (small models; CI has 2 cores and some
tests run worker processes beside the test process, where more threads oversubscribe the cores)."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

# Commands keep counted costs on disk; tests must not read or fill the user's cache.
os.environ["REFINER_NAS_CACHE_DIR"] = tempfile.mkdtemp(prefix="refiner-nas-test-cache-")


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


torch.set_num_threads(1)


@pytest.fixture
def small_space(tmp_path):
    """Writes a search space of one- or two-block ViTs on 16 px digits and returns its path: the
    smallest real searches (vanilla or paper refiner, a few widths)."""

    def write(*, widths=(8, 16), depths=(1,), max_params: str | None = None, name: str = "small"):
        depth = depths[0] if len(depths) == 1 else {"choices": list(depths)}
        lines = [
            "dimensions:",
            "  img_size: 16",
            "  in_chans: 1",
            "  num_classes: 10",
            "  patch_size: 4",
            "  mlp_ratio: 1.0",
            f"  depth: {depth}",
            f"  embed_dim: {{choices: {list(widths)}}}",
            "  num_heads: 2",
            "  attention: {choices: [vanilla, refiner]}",
            "  expansion_ratio: {value: 2, when: {attention: refiner}}",
        ]
        if max_params is not None:
            lines += ["constraints:", f"  max_params: {max_params}"]
        path = tmp_path / f"{name}.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write
