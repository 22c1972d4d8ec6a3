"""``bench kernels``: both refiner chains alone, every implementation on the same maps, on CPU with tiny
maps (the Triton rows need CUDA)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from refiner_nas.benchmarks.kernels import measure_kernels
from refiner_nas.cli.bench import bench_app

TINY = {"batch_size": 2, "img_size": 32, "iters": 10, "warmup": 1}


@pytest.mark.parametrize(("dtype", "tolerance"), [("fp32", 1e-5), ("bf16", 2e-2)])
def test_every_implementation_is_timed_against_the_modules(dtype: str, tolerance: float) -> None:
    report = measure_kernels(dtype=dtype, **TINY)  # type: ignore[arg-type]
    rows = {(row.chain, row.implementation): row for row in report.rows}
    assert set(rows) == {(chain, name) for chain in ("released", "paper") for name in ("modules", "pytorch")}
    for (_, name), row in rows.items():
        assert row.ms.n == 10 and row.gb_per_s.median > 0 and row.error < tolerance
        if name == "modules":
            assert row.ratio.median == 1.0  # the reference against itself
    # Refined-ViT-S at 32 px: 12 maps of 5 tokens a side per image, read and written once.
    element = 4 if dtype == "fp32" else 2
    moved = 2 * 2 * 12 * 5 * 5 * element
    row = rows["released", "pytorch"]
    assert row.gb_per_s.median == pytest.approx(moved / (row.ms.median / 1000) / 1e9, rel=0.3)
    assert report.copy_gb_per_s.median > 0 and report.to_dict()["schema_version"] == 1


def test_compile_adds_a_row_per_chain() -> None:
    report = measure_kernels(dtype="fp32", compile_modules=True, **TINY)
    compiled = [row for row in report.rows if row.implementation == "compiled"]
    assert [row.chain for row in compiled] == ["released", "paper"]
    assert all(row.error < 1e-4 for row in compiled)


def test_cli_json_table_and_bad_input() -> None:
    runner = CliRunner()
    args = ["kernels", "--batch-size", "1", "--img-size", "32", "--iters", "10", "--warmup", "0", "--dtype", "fp32"]
    result = runner.invoke(bench_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["dtype"] == "fp32"
    result = runner.invoke(bench_app, args)
    assert result.exit_code == 0 and "released" in result.output and "paper" in result.output
    result = runner.invoke(bench_app, [*args, "--iters", "3"])
    assert result.exit_code == 2 and result.output.strip() == "error: iters=3: at least 10 timed iterations are needed"
    if not torch.cuda.is_available():
        result = runner.invoke(bench_app, ["kernels", "--device", "cuda"])
        assert result.exit_code == 2 and "CUDA is not available here; use --device cpu" in result.output
