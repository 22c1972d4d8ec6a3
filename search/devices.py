"""Which device each local worker trains on: ``--device`` and ``--workers`` against the GPUs this machine sees."""

from __future__ import annotations

import re
from dataclasses import dataclass

_GPU_LIST = re.compile(r"cuda:(\d+(,\d+)*)")


@dataclass(frozen=True)
class DeviceAssignment:
    """``pool``: the devices the option names, in order (``("cpu",)`` or ``("cuda:0", "cuda:2")``);
    ``devices``: worker i's device, the pool taken round-robin."""

    pool: tuple[str, ...]
    devices: tuple[str, ...]

    @property
    def shared(self) -> bool:
        """More workers than GPUs: some GPUs train several workers' trials at once."""
        return len(self.devices) > len(self.pool) and self.pool[0] != "cpu"

    def describe(self) -> str:
        """``worker 0 -> cuda:0, worker 1 -> cuda:1, ...``"""
        return ", ".join(f"worker {index} -> {device}" for index, device in enumerate(self.devices))

    def warning(self) -> str | None:
        """What the plan warns of when GPUs are shared, else None."""
        if not self.shared:
            return None
        return (f"{len(self.devices)} workers share {len(self.pool)} GPUs round-robin, so some GPUs train several "
                f"trials at once; use --workers {len(self.pool)} for one worker per GPU")


def check_device_syntax(device: str) -> str:
    """``device`` if it is ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``cuda:N,M,...`` (distinct indices).

    Raises:
        ValueError: anything else, in one line naming the accepted forms (the settings' error names the
            option and the value).
    """
    if device in ("auto", "cpu", "cuda"):
        return device
    if _GPU_LIST.fullmatch(device) is None:
        raise ValueError("not a device; use auto, cpu, cuda, cuda:N or cuda:N,M,... (GPU indices)")
    indices = _gpu_indices(device)
    if len(set(indices)) != len(indices):
        raise ValueError("names a GPU twice; name each GPU once (--workers more than GPUs share them)")
    return device


def assign_devices(device: str, workers: int | None, visible_gpus: int) -> DeviceAssignment:
    """Worker i's device for a launch of ``workers`` local workers (None: one per GPU the device names,
    else 1) with ``--device device`` on a machine that sees ``visible_gpus`` GPUs. ``auto`` is ``cuda``
    where a GPU is visible, else ``cpu``; ``cuda`` names every visible GPU.

    Raises:
        ValueError: a GPU device with no GPU visible, or an index that is not visible, in one line naming
            it and the visible ones.
    """
    device = check_device_syntax(device)
    if device == "auto":
        device = "cuda" if visible_gpus else "cpu"
    if device == "cpu":
        pool = ("cpu",)
    else:
        indices = tuple(range(visible_gpus)) if device == "cuda" else _gpu_indices(device)
        if not visible_gpus:
            raise ValueError(f"--device {device}: no GPU is visible on this machine; use --device cpu or auto")
        missing = [index for index in indices if index >= visible_gpus]
        if missing:
            visible = ", ".join(f"cuda:{index}" for index in range(visible_gpus))
            raise ValueError(f"--device {device}: GPU cuda:{missing[0]} is not visible on this machine (visible: "
                             f"{visible}); name visible GPUs or use --device cuda for all of them")
        pool = tuple(f"cuda:{index}" for index in indices)
    count = (len(pool) if pool[0] != "cpu" else 1) if workers is None else workers
    return DeviceAssignment(pool=pool, devices=tuple(pool[index % len(pool)] for index in range(count)))


def visible_gpu_count() -> int:
    """The GPUs torch sees on this machine (0 without CUDA)."""
    import torch  # lazily: the settings that validate --device are imported by the CLI before torch is needed

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _gpu_indices(device: str) -> tuple[int, ...]:
    return tuple(int(index) for index in device.removeprefix("cuda:").split(","))
