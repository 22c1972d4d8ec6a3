"""The recorded GPU figures (``results/baselines/gpu.json``): schema, device, and the claims
docs/benchmarks.md#on-a-gpu makes from them."""

from __future__ import annotations

import json

from refiner_nas.benchmarks.regress import baseline_dir


def test_gpu_baseline_names_its_device_and_backs_the_docs() -> None:
    baseline = json.loads((baseline_dir() / "gpu.json").read_text())
    assert baseline["schema"] == "refiner-nas/gpu-baseline" and baseline["schema_version"] == 1
    assert "NVIDIA H200" in baseline["device"] and baseline["checked"] is False
    reports = {(entry["commit"], entry["name"]): entry["report"] for entry in baseline["reports"]}
    assert all(report_env(report)["gpu"] == "NVIDIA H200" for report in reports.values())
    final = baseline["final_released_kernel"]["ms"]
    for dtype in ("bf16", "fp32"):  # faster than the PyTorch path, slower than torch.compile
        assert final[dtype]["torch_compile_modules"] < final[dtype]["triton"] < final[dtype]["pytorch_folded"]
    kernels = reports["0487968", "kernels_bf16"]
    paper = {row["implementation"]: row for row in kernels["rows"] if row["chain"] == "paper"}
    assert paper["triton"]["ms"]["median"] < min(paper[name]["ms"]["median"] for name in ("pytorch", "compiled"))
    assert paper["triton"]["error"] < 1e-2 and kernels["copy_gb_per_s"]["median"] > 4000


def report_env(report: dict | list) -> dict:
    """A report's environment (throughput reports are lists of per-model results)."""
    return (report[0] if isinstance(report, list) else report)["environment"]
