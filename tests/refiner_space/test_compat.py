from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BROKEN_TORCHVISION = 'raise RuntimeError("operator torchvision::nms does not exist")\n'


def test_broken_torchvision_gives_one_clear_error_with_the_fix(tmp_path: Path) -> None:
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text(BROKEN_TORCHVISION)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", "import refiner_nas.refiner_space"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    error = "refiner_nas.refiner_space._compat.BrokenTorchvisionError"
    assert last_line.startswith(f"{error}: torchvision's compiled operators")
    assert "operator torchvision::nms does not exist" in last_line
    assert "pip install --force-reinstall torch torchvision" in last_line
