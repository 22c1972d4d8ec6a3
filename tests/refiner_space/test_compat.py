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
    repository = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repository)])}
    result = subprocess.run(
        [sys.executable, "-c", "import refiner_space"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("refiner_nas.refiner_space._compat.BrokenTorchvisionError: torchvision's compiled operators")
    assert "operator torchvision::nms does not exist" in last_line
    assert "pip install --force-reinstall torch torchvision" in last_line
