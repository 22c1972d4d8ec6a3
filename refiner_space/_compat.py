"""Fail early, with the fix, when torchvision's compiled operators do not load.

timm imports torchvision; a torchvision built for another torch (for example next to the local CPU-only
wheel ``torch==2.13.0+cpu``) fails deep inside timm with ``operator torchvision::nms does not exist``.
"""

from __future__ import annotations

import importlib

FIX = (
    "reinstall a matching pair from the package registry: "
    "pip install --force-reinstall torch torchvision (do not use the local torch==2.13.0+cpu wheel)"
)


class BrokenTorchvisionError(ImportError):
    """torchvision is missing or its compiled operators do not match the installed torch."""


def check_torchvision() -> None:
    """Import torchvision and raise ``BrokenTorchvisionError`` naming the cause and the fix."""
    try:
        importlib.import_module("torchvision")
    except ModuleNotFoundError:
        raise BrokenTorchvisionError(f"torchvision is not installed (timm needs it); {FIX}") from None
    except (RuntimeError, ImportError, OSError) as error:
        torch_version = _installed_version("torch")
        raise BrokenTorchvisionError(
            f"torchvision's compiled operators do not load with torch {torch_version} ({error}); {FIX}"
        ) from None


def _installed_version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(not installed)"
