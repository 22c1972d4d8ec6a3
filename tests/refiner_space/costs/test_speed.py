"""Speed measurements on tiny models (CPU): settings validation, reference and ratios, folds, fold report."""

from __future__ import annotations

import pytest
import torch

from refiner_nas.benchmarks.fold import measure_fold
from refiner_nas.refiner_space import ModelConfig, named_config
from refiner_nas.refiner_space.costs.speed import SpeedSettings, measure_speed, reference_config, reference_for

TINY = {"depth": 2, "embed_dim": 32, "num_heads": 4, "img_size": 32, "num_classes": 10}
FAST = {"batch_size": 2, "warmup": 1, "threads": 1}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"iters": 9}, "at least 10 timed iterations"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"amp": "fp16"}, "fp16' needs a CUDA device"),
        ({"modes": ("warp",)}, "choose one or more of"),
        ({"device": "meta"}, "only 'cpu' and 'cuda'"),
        ({"device": "nonsense"}, "is not a device"),
        ({"max_batch": True}, "needs --device cuda"),
        ({"threads": 0}, "threads=0"),
    ],
)
def test_impossible_settings_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpeedSettings(**changes)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        SpeedSettings(device="cuda")


def test_the_default_reference_is_the_same_shape_vanilla_vit() -> None:
    assert reference_for(named_config("refined_vit_s")) == ("vit_16b_384", named_config("vit_16b_384"))
    assert reference_for(named_config("vit_16b_384_cb"))[0] == "vit_16b_384"
    reference = reference_config(ModelConfig(**TINY, attention="refiner", share_span=2, aux_head=True))
    assert reference == ModelConfig(**TINY)


def test_every_mode_is_measured_against_the_reference() -> None:
    config = ModelConfig(**TINY, attention="refiner")
    result = measure_speed(("tiny", config), reference_for(config), SpeedSettings(**FAST))
    assert [m.mode for m in result.modes] == ["train", "inference", "latency"]  # training first
    for mode in result.modes:
        assert mode.ratio is not None and mode.ratio.n == 10 and mode.ratio.median > 0
        assert mode.reference_throughput is not None and mode.throughput.median > 0
        assert mode.memory.bytes is not None
    assert result.mode("latency").batch_size == 1
    assert result.environment["torch_threads"] == 1
    assert result.to_dict()["modes"][0]["ratio_to_reference"]["n"] == 10


def test_a_model_that_is_its_own_reference_is_measured_once() -> None:
    config = ModelConfig(**TINY)
    result = measure_speed(("vit", config), ("same", ModelConfig(**TINY)), SpeedSettings(**FAST, modes=("inference",)))
    assert result.reference is None and result.modes[0].ratio is None


@pytest.mark.parametrize(("attention", "folded"), [("refiner", True), ("refiner_official", False)])
def test_fold_option_folds_what_can_be_folded(attention: str, folded: bool) -> None:
    config = ModelConfig(**TINY, attention=attention, share_span=2)
    settings = SpeedSettings(**FAST, fold=True, amp="bf16", channels_last=True, modes=("train", "inference"))
    result = measure_speed(("tiny", config), None, settings)
    assert result.folded is folded and result.reference is None


def test_fold_report_on_a_tiny_refiner() -> None:
    config = ModelConfig(**TINY, attention="refiner")
    report = measure_fold(
        model=config, label="tiny", expansion_ratios=(3, 6), img_size=32, batch_size=2, warmup=1, threads=1
    )
    assert [row.expansion_ratio for row in report.rows] == [3, 6]
    for row in report.rows:
        assert row.max_relative_error < 1e-5
        assert row.fold_speedup.n == 10 and row.refiner_speedup.median > 0
        assert set(row.train_memory) == {"unfolded", "folded", "vanilla"}
    assert report.to_dict()["rows"][1]["expansion_ratio"] == 6
    with pytest.raises(ValueError, match="attention='refiner'"):
        measure_fold(model="vit_16b_384")


def test_search_speed_is_batch_one_latency_and_throughput() -> None:
    from refiner_nas.refiner_space.costs.speed import measure_config_speed

    latency_ms, images_per_s = measure_config_speed(ModelConfig(**TINY), batch_size=2, threads=1)
    assert 0 < latency_ms < 10_000 and images_per_s > 0


def test_triton_kernels_are_switched_for_the_measurement_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import refiner_nas.refiner_space.costs.speed as speed
    from refiner_nas.refiner_space.layers import fused

    seen: list[bool] = []
    measure_mode = speed._measure_mode

    def recording(*args: object) -> object:
        seen.append(fused._enabled)
        return measure_mode(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(speed, "_measure_mode", recording)
    settings = SpeedSettings(**FAST, modes=("latency",), triton_kernels=False)
    result = measure_speed(("tiny", ModelConfig(**TINY)), None, settings)
    assert seen == [False] and fused._enabled is True
    assert result.to_dict()["settings"]["triton_kernels"] is False
