"""The released-code variant against its plain reference, and the refiner bandwidth, on tiny models."""

from __future__ import annotations

import pytest
import torch

from refiner_nas.benchmarks.official import PlainOfficialRefiner, measure_official, plain_reference
from refiner_nas.refiner_space import ModelConfig, build_model
from refiner_nas.refiner_space.costs.bandwidth import refiner_bandwidth

TINY = ModelConfig(depth=4, embed_dim=24, num_heads=3, img_size=32, num_classes=5, attention="refiner_official")


def test_the_plain_reference_has_the_same_weights_and_outputs() -> None:
    model = build_model(TINY).eval()
    reference = plain_reference(model)
    assert sum(isinstance(m, PlainOfficialRefiner) for m in reference.modules()) == 2
    assert reference.state_dict().keys() == model.state_dict().keys()
    images = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(model(images), reference(images), rtol=1e-5, atol=1e-6)


def test_report_measures_inference_and_the_training_chain_at_equal_outputs() -> None:
    report = measure_official(models=[("tiny", TINY)], batch_size=2, img_size=32, warmup=1, threads=1)
    (row,) = report.rows
    assert row.inference_ratio.n == 10 and row.inference_ratio.median > 0
    assert row.train_chain_ratio.n == 10 and row.train_chain_ms.median > 0
    assert row.inference_error < 1e-5 and row.train_error < 1e-5 and row.reference_train_error < 1e-5
    assert report.to_dict()["rows"][0]["train_chain_ratio"]["n"] == 10
    assert "glibc_tunables" in report.environment  # the allocator's settings change these ratios


def test_bf16_autocast_is_measured_and_bad_settings_are_refused() -> None:
    report = measure_official(models=[("tiny", TINY)], batch_size=2, img_size=32, warmup=1, threads=1, amp="bf16")
    (row,) = report.rows
    assert report.amp == "bf16" and report.to_dict()["amp"] == "bf16" and report.device == "cpu"
    assert 1e-5 < row.inference_error < 5e-2  # bf16 arithmetic, not float32: autocast was on
    with pytest.raises(ValueError, match="amp='fp16': choose 'off' or 'bf16'"):
        measure_official(models=[("tiny", TINY)], amp="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here"):
            measure_official(models=[("tiny", TINY)], device="cuda")


def test_only_released_code_models_are_compared() -> None:
    with pytest.raises(ValueError, match="this compares 'refiner_official'"):
        measure_official(models=[("vit", TINY.replace(attention="vanilla"))])


def test_bandwidth_counts_one_read_and_one_write_of_the_maps() -> None:
    model = build_model(TINY)
    bandwidth = refiner_bandwidth(model, TINY, batch_size=2, warmup=0, iters=2)
    assert bandwidth is not None and model.training  # measured in eval, mode restored
    assert bandwidth.refiner_bytes == 2 * (2 * 3 * 5 * 5) * 4
    assert bandwidth.copy_gb_per_s.median > 0 and 0 < bandwidth.fraction_of_copy
    assert refiner_bandwidth(build_model(TINY.replace(attention="vanilla")), TINY, batch_size=2,
                             warmup=0, iters=2) is None
