"""Tiny configurations for the analysis tests: every model here runs in milliseconds on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from refiner_nas.refiner_space import ModelConfig

TINY: dict[str, Any] = {"img_size": 16, "patch_size": 4, "depth": 3, "embed_dim": 16, "num_heads": 2, "num_classes": 10}


@pytest.fixture
def tiny():
    """Build a 4x4-token configuration (17 tokens with the class token) with some fields changed."""

    def config(**changes: Any) -> ModelConfig:
        return ModelConfig(**{**TINY, **changes})

    return config


@pytest.fixture
def write_yaml(tmp_path: Path):
    """Write a mapping to ``tmp_path/name`` and return the path as a string."""

    def write(name: str, data: dict[str, Any]) -> str:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return str(path)

    return write
