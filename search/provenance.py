"""Where a result came from: package and library versions, git commit, device."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def device_name(device: str) -> str:
    """A readable name of the device a trial ran on."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@cache
def provenance(device: str = "cpu") -> dict[str, str]:
    """Versions, commit and device, computed once per process."""
    return {
        "refiner_nas": _version("refiner-nas"),
        "git_commit": _git_commit(),
        "torch": _version("torch"),
        "timm": _version("timm"),
        "optuna": _version("optuna"),
        "python": platform.python_version(),
        "device": device_name(device),
    }
