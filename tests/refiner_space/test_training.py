"""The training loop: learning, determinism, the report callback, failures, checkpoints and resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from refiner_nas.refiner_space import build_model
from refiner_nas.refiner_space.data import DataBundle, load_data
from refiner_nas.refiner_space.training import (
    NonFiniteLossError,
    TrainingOutOfMemoryError,
    TrainSettings,
    evaluate_top1,
    seed_everything,
    train_model,
)


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models run fastest on one thread, and far faster than on two busy-waiting ones on a shared CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits16() -> DataBundle:
    return load_data("digits", img_size=16)


@pytest.fixture(scope="module")
def tiny(digits16: DataBundle) -> DataBundle:
    """256 training and 90 validation digits: a few milliseconds per epoch."""
    train, val = digits16.train, digits16.val
    return replace(
        digits16,
        train=replace(train, images=train.images[:256], labels=train.labels[:256]),
        val=replace(val, images=val.images[:90], labels=val.labels[:90]),
    )


def tiny_model(seed: int = 0, **overrides) -> nn.Module:
    seed_everything(seed)
    fields = dict(depth=1, embed_dim=16, num_heads=2, patch_size=4, mlp_ratio=2.0)
    fields.update(img_size=16, in_chans=1, num_classes=10)
    return build_model({**fields, **overrides})


def test_tiny_vit_learns_digits_well_above_chance(digits16: DataBundle) -> None:
    seed_everything(0)
    config = dict(depth=1, embed_dim=32, num_heads=2, patch_size=4, mlp_ratio=2.0, **digits16.model_overrides())
    result = train_model(build_model(config), digits16, TrainSettings(epochs=3))
    assert result.epochs_run == 3 and len(result.top1_curve) == 3
    assert result.final_top1 > 40.0  # chance is 10%
    assert result.top1_curve[-1] > result.top1_curve[0]
    assert result.train_loss_curve[-1] < result.train_loss_curve[0]
    assert result.steps_per_epoch == len(digits16.train) // 32


def test_same_seed_gives_the_same_curve_and_weights(tiny: DataBundle) -> None:
    settings = TrainSettings(epochs=2, batch_size=32, mixup=0.8, cutmix=1.0)
    first_model, second_model = tiny_model(drop_path_rate=0.1), tiny_model(drop_path_rate=0.1)
    first = train_model(first_model, tiny, settings)
    second = train_model(second_model, tiny, settings)
    assert first.train_loss_curve == second.train_loss_curve and first.top1_curve == second.top1_curve
    for a, b in zip(first_model.state_dict().values(), second_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = train_model(tiny_model(drop_path_rate=0.1), tiny, replace(settings, seed=1))
    assert other.train_loss_curve != first.train_loss_curve


def test_report_sees_every_epoch_and_gets_the_ema_accuracy_when_on(tiny: DataBundle) -> None:
    calls: list[tuple[int, float]] = []
    result = train_model(tiny_model(), tiny, TrainSettings(epochs=3), report=lambda e, a: calls.append((e, a)))
    assert calls == list(enumerate(result.top1_curve)) and result.ema_top1_curve == ()
    calls.clear()
    result = train_model(
        tiny_model(), tiny, TrainSettings(epochs=3, ema_decay=0.9), report=lambda e, a: calls.append((e, a))
    )
    assert calls == list(enumerate(result.ema_top1_curve)) and len(result.top1_curve) == 3
    assert result.final_top1 == result.ema_top1_curve[-1] and result.best_top1 == max(result.ema_top1_curve)


class Stop(Exception):
    pass


class StopWithRuntimeError(RuntimeError):
    pass


@pytest.mark.parametrize("kind", [Stop, StopWithRuntimeError])
def test_an_exception_from_report_propagates_unchanged(tiny: DataBundle, kind: type[Exception]) -> None:
    raised = kind("stop here")
    epochs: list[int] = []

    def report(epoch: int, top1: float) -> None:
        epochs.append(epoch)
        if epoch == 1:
            raise raised

    with pytest.raises(kind) as info:
        train_model(tiny_model(), tiny, TrainSettings(epochs=4), report=report)
    assert info.value is raised and epochs == [0, 1]


class FailingModel(nn.Module):
    """A tiny model whose forward misbehaves from its ``after``-th training call on."""

    def __init__(self, failure: str, after: int = 0) -> None:
        super().__init__()
        self.inner, self.failure, self.after, self.calls = tiny_model(), failure, after, 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.inner(images)
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                if self.failure == "nan":
                    return logits * float("nan")
                if self.failure == "alloc":
                    torch.empty(2**50, dtype=torch.uint8)  # a petabyte: the CPU allocator refuses
                if self.failure == "memory":
                    raise MemoryError()
                if self.failure == "other":
                    raise RuntimeError("shape mismatch in the user's model")
        return logits


def test_nan_loss_raises_naming_epoch_step_and_value(tiny: DataBundle) -> None:
    steps = len(tiny.train) // 32
    with pytest.raises(NonFiniteLossError) as info:
        train_model(FailingModel("nan", after=steps + 2), tiny, TrainSettings(epochs=3))
    error = info.value
    assert (error.epoch, error.step) == (1, 2) and error.loss != error.loss  # NaN
    assert str(error).startswith("training loss became nan at epoch 1, step 2;")


@pytest.mark.parametrize("failure", ["alloc", "memory"])
def test_out_of_memory_raises_with_the_hint(tiny: DataBundle, failure: str) -> None:
    with pytest.raises(TrainingOutOfMemoryError) as info:
        train_model(FailingModel(failure), tiny, TrainSettings(epochs=1, batch_size=16))
    message = str(info.value)
    assert message.startswith("out of memory on cpu with batch_size=16")
    assert message.endswith("use a smaller batch size or a smaller model") and "\n" not in message
    assert info.value.__context__ is None and info.value.__cause__ is None  # no frames kept alive


def test_other_runtime_errors_propagate_unchanged(tiny: DataBundle) -> None:
    with pytest.raises(RuntimeError, match="shape mismatch in the user's model") as info:
        train_model(FailingModel("other"), tiny, TrainSettings(epochs=1))
    assert type(info.value) is RuntimeError


def test_resumed_run_matches_an_uninterrupted_one(tiny: DataBundle, tmp_path: Path) -> None:
    recipe = dict(epochs=3, batch_size=32, mixup=0.8, cutmix=1.0, ema_decay=0.9, clip_grad=1.0)
    whole_model = tiny_model(drop_path_rate=0.1)
    whole = train_model(whole_model, tiny, TrainSettings(**recipe, checkpoint_dir=tmp_path / "whole"))

    def interrupt(epoch: int, top1: float) -> None:
        raise Stop()

    with pytest.raises(Stop):
        train_model(
            tiny_model(drop_path_rate=0.1),
            tiny,
            TrainSettings(**recipe, checkpoint_dir=tmp_path / "cut"),
            report=interrupt,
        )
    # a differently initialised model: everything must come from the checkpoint
    resumed_model = tiny_model(seed=123, drop_path_rate=0.1)
    resumed = train_model(resumed_model, tiny, TrainSettings(**recipe, checkpoint_dir=tmp_path / "cut", resume=True))
    assert resumed.start_epoch == 1 and len(resumed.epoch_times_s) == 2 and resumed.epochs_run == 3
    assert resumed.top1_curve == whole.top1_curve and resumed.ema_top1_curve == whole.ema_top1_curve
    assert resumed.train_loss_curve == whole.train_loss_curve
    for name, tensor in whole_model.state_dict().items():
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name
    saved = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    expected_ema = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["ema"]
    for name, tensor in expected_ema.items():
        assert torch.equal(tensor, saved["ema"][name]), name
    # resuming a finished run trains nothing and returns the stored curves
    again = train_model(
        tiny_model(drop_path_rate=0.1), tiny, TrainSettings(**recipe, checkpoint_dir=tmp_path / "cut", resume=True)
    )
    assert again.start_epoch == 3 and again.epoch_times_s == () and again.top1_curve == whole.top1_curve


def test_checkpoint_guards_against_overwriting_and_mismatched_runs(tiny: DataBundle, tmp_path: Path) -> None:
    settings = TrainSettings(epochs=1, checkpoint_dir=tmp_path)
    train_model(tiny_model(), tiny, settings)
    with pytest.raises(ValueError, match="last.pt exists from an earlier run; pass resume=True"):
        train_model(tiny_model(), tiny, settings)
    with pytest.raises(ValueError, match="different run \\(lr: 0.005 -> 0.002\\)"):
        train_model(tiny_model(), tiny, replace(settings, resume=True, lr=2e-3))
    with pytest.raises(ValueError, match="config_hash"):
        train_model(tiny_model(embed_dim=32), tiny, replace(settings, resume=True))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "epochs=0 must be positive"),
        ({"batch_size": -1}, "batch_size=-1 must be positive"),
        ({"warmup_epochs": 5}, "warmup_epochs=5 must be in \\[0, epochs=5\\)"),
        ({"label_smoothing": 1.0}, "label_smoothing=1.0 must be in"),
        ({"mixup": 0.8, "batch_size": 33}, "batch_size=33 must be even with mixup"),
        ({"ema_decay": 1.5}, "ema_decay=1.5 must be in \\(0, 1\\)"),
        ({"clip_grad": 0.0}, "clip_grad=0.0 must be positive"),
        ({"weight_decay": -0.1}, "weight_decay=-0.1 must be >= 0"),
        ({"device": "tpu"}, "device='tpu' is not a device"),
        ({"amp_dtype": "float8"}, "amp_dtype='float8'"),
        ({"optimizer": "adamx"}, "optimizer='adamx' is not a timm optimizer"),
    ],
)
def test_bad_settings_are_one_line_errors(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        TrainSettings(**changes)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_without_a_gpu_is_an_error() -> None:
    with pytest.raises(ValueError, match="no CUDA device is available; use device='cpu'"):
        TrainSettings(device="cuda")


def test_batch_larger_than_the_training_set_is_an_error(tiny: DataBundle) -> None:
    with pytest.raises(ValueError, match="batch_size=512 exceeds the 256 training images"):
        train_model(tiny_model(), tiny, TrainSettings(batch_size=512))


class ConstantPredictor(nn.Module):
    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((len(images),), self.label), 10).float()


def test_evaluate_top1_is_the_percentage_of_correct_predictions(tiny: DataBundle) -> None:
    for label in (0, 3):
        expected = 100.0 * (tiny.val.labels == label).sum().item() / len(tiny.val)
        assert evaluate_top1(ConstantPredictor(label), tiny.val, batch_size=7, device="cpu") == expected
