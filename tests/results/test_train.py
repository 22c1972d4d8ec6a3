"""Full training: recipes as loop settings, the run folder, resume equals uninterrupted, and DDP on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from refiner_nas.refiner_space.data import load_data
from refiner_nas.results.distributed import ShardedImageSet
from refiner_nas.results.export import load_export, timm_spec
from refiner_nas.results.recipes import MIN_UPDATES_PER_EPOCH, RECIPES, DataScaling, Recipe, RecipeError, get_recipe
from refiner_nas.results.store import load_leaderboard
from refiner_nas.results.train import RunFolderError, run_full_training


class Interrupted(Exception):
    """Stands for a killed run."""


def write_export(path: Path, config, recipe: Recipe | None = None) -> Path:
    model, kwargs = timm_spec(config)
    document = {"export_version": 1, "name": "tiny", "timm": {"model": model, "kwargs": kwargs}}
    if recipe is not None:
        document |= {"default_recipe": recipe.name, "recipes": {recipe.name: recipe.model_dump(mode="json")}}
    path.write_text(yaml.safe_dump(document))
    return path


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "last.pt", weights_only=True)["model"]


def test_recipes_become_the_loops_settings() -> None:
    standard, advanced, released = RECIPES["standard"], RECIPES["advanced"], RECIPES["released"]
    settings = standard.train_settings()
    assert (settings.epochs, settings.batch_size, settings.lr, settings.weight_decay) == (300, 1024, 1e-3, 0.05)
    assert (settings.warmup_epochs, settings.mixup, settings.cutmix, settings.label_smoothing) == (5, 0.8, 1.0, 0.1)
    assert settings.ema_decay == 0.99996 and settings.optimizer == "adamw" and standard.drop_path == 0.1
    short = standard.train_settings(epochs=30, batch_size=256)
    assert short.lr == pytest.approx(2.5e-4) and short.warmup_epochs == pytest.approx(0.5)
    assert standard.train_settings(batch_size=256, lr=1e-3).lr == 1e-3
    assert advanced.lr_for(1024) == pytest.approx(1.6e-3) and advanced.token_labeling.dense_weight == 0.5
    assert released.drop_path_for("refined_vit_s") == 0.1 and released.drop_path_for("refined_vit_l") == 0.2
    assert released.drop_path_for(None) == 0.1 and released.lr_for(512) == 5e-4
    assert standard.unsupported() == ["RandAugment rand-m9-mstd0.5-inc1", "random erasing 0.25"]
    assert "token labelling (needs dense label maps)" in advanced.unsupported()
    with pytest.raises(RecipeError, match="unknown recipe 'fancy'; choose from standard, advanced, released"):
        get_recipe("fancy")
    with pytest.raises(RecipeError, match=r"recipe 'mine': label_smoothing: Input should be less than 1"):
        Recipe.from_dict({**standard.model_dump(), "name": "mine", "label_smoothing": 1.5})
    with pytest.raises(ValueError, match="batch_size=63 must be even with mixup"):
        standard.train_settings(batch_size=63)


@pytest.mark.usefixtures("one_thread")
def test_a_recipe_is_fitted_to_a_small_dataset() -> None:
    standard = RECIPES["standard"]
    digits = standard.scale_to_data(1617)
    assert (digits.batch_size, digits.lr) == (16, 1e-3) and 1617 // digits.batch_size >= MIN_UPDATES_PER_EPOCH
    assert "batch 1024 -> 16: 1617 training images make 1 update(s) per epoch" in digits.changes[0]
    assert "peak lr kept at the recipe's 0.001 (scaled with the batch it would be 1.6e-05" in digits.changes[0]
    assert standard.scale_to_data(1_281_167) == DataScaling(1_281_167, 1024, 1e-3, ())  # ImageNet: as written
    assert standard.scale_to_data(1617, batch_size=256) == DataScaling(1617, 256, 2.5e-4, ())  # the user's batch
    assert standard.scale_to_data(1617, lr=0.01).lr == 0.01 and standard.scale_to_data(30).batch_size == 2


def test_numbers_that_cannot_train_are_refused_before_anything_loads(tmp_path: Path) -> None:
    missing = tmp_path / "none.yaml"  # never read: the numbers are checked first
    refused = (r"--epochs 0 must be at least 1 \(or left out: the recipe's\); --batch-size -4 must be at least 1; "
               r"--lr 0.0 must be a positive number; --drop-path 1.0 must be in \[0, 1\); --seed -1 must be at least 0")
    with pytest.raises(ValueError, match=refused):
        run_full_training(missing, data="digits", output=tmp_path / "run", epochs=0, batch_size=-4, lr=0.0,
                          drop_path=1.0, seed=-1)
    with pytest.raises(ValueError, match=r"^--img-size 0 must be at least 1 pixel; --workers -1 must be at least 0$"):
        run_full_training(missing, data="digits", output=tmp_path / "run", img_size=0, num_workers=-1)
    assert not (tmp_path / "run").exists()


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path: Path, tiny_config) -> None:
    config_file = write_export(tmp_path / "tiny.yaml", tiny_config(attention="refiner", expansion_ratio=2))
    options = {"data": "digits", "recipe": "standard", "epochs": 3, "batch_size": 128, "lr": 5e-3, "device": "cpu",
               "results_dir": tmp_path / "res"}
    whole = run_full_training(config_file, output=tmp_path / "whole", **options)

    def stop_after_two_epochs(epoch: int, top1: float) -> None:
        if epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_full_training(config_file, output=tmp_path / "cut", report=stop_after_two_epochs, **options)
    resumed = run_full_training(config_file, output=tmp_path / "cut", **options)

    assert whole.train.start_epoch == 0 and resumed.train.start_epoch == 2
    assert resumed.train.top1_curve == whole.train.top1_curve
    assert resumed.train.ema_top1_curve == whole.train.ema_top1_curve and len(whole.train.ema_top1_curve) == 3
    assert resumed.train.train_loss_curve == whole.train.train_loss_curve
    cut, uninterrupted = weights(tmp_path / "cut"), weights(tmp_path / "whole")
    assert all(torch.equal(cut[name], uninterrupted[name]) for name in uninterrupted)
    assert whole.config.drop_path_rate == 0.1 and whole.settings.mixup == 0.8  # the recipe's, on model and loop
    assert whole.not_applied == ("RandAugment rand-m9-mstd0.5-inc1", "random erasing 0.25")

    result = yaml.safe_load((tmp_path / "cut" / "result.yaml").read_text())
    assert result["final_top1"] == whole.final_top1 and result["resumed_at_epoch"] == 2
    rows = load_leaderboard(tmp_path / "res")
    assert len(rows) == 2 and set(rows["kind"]) == {"full"} and set(rows["full_top1"]) == {whole.final_top1}
    assert set(rows["recipe"]) == {"standard"} and set(rows["dataset"]) == {"digits"} and set(rows["epochs"]) == {3}

    again = run_full_training(config_file, output=tmp_path / "cut", **options)  # finished: nothing to train
    assert again.train.start_epoch == 3 and again.final_top1 == whole.final_top1
    assert again.leaderboard is not None and again.leaderboard.unchanged == 1
    assert len(load_leaderboard(tmp_path / "res")) == 2


@pytest.mark.usefixtures("one_thread")
def test_the_run_folder_is_never_overwritten_without_force(tmp_path: Path, tiny_config) -> None:
    plain = RECIPES["standard"].model_copy(update={"name": "plain", "mixup": 0.0, "cutmix": 0.0})
    config_file = write_export(tmp_path / "tiny.yaml", tiny_config(), plain)
    options = {"data": "digits", "epochs": 1, "batch_size": 256, "device": "cpu", "results_dir": None}
    first = run_full_training(config_file, output=tmp_path / "run", **options)
    assert first.recipe == "plain" and first.leaderboard is None and first.settings.mixup == 0.0
    assert set(load_export(config_file).recipes) == {"plain", *RECIPES}
    with pytest.raises(RunFolderError, match=r"holds another run \(different epochs\); use another --output, or"):
        run_full_training(config_file, output=tmp_path / "run", **{**options, "epochs": 2})
    restarted = run_full_training(config_file, output=tmp_path / "run", force=True, **{**options, "epochs": 2})
    assert restarted.train.start_epoch == 0 and restarted.train.epochs_run == 2
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="is not empty and holds no run"):
        run_full_training(config_file, output=other, **options)
    assert (other / "notes.txt").read_text() == "mine"
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(RunFolderError, match="cannot write .*file.txt/run/run.yaml"):
        run_full_training(config_file, output=blocker / "run", **options)


def test_process_shards_make_up_every_global_batch() -> None:
    train = load_data("digits", img_size=8).train
    options = {"batch_size": 64, "device": torch.device("cpu"), "shuffle": True, "seed": 3, "epoch": 1,
               "drop_last": True}
    whole = list(train.batches(**options))
    shards = [list(ShardedImageSet(train, rank=rank, world_size=4).batches(**options)) for rank in range(4)]
    assert all(len(shard) == len(whole) for shard in shards)
    assert len(ShardedImageSet(train, rank=0, world_size=4)) == len(train)
    for step, (images, labels) in enumerate(whole):
        assert torch.equal(torch.cat([shard[step][0] for shard in shards]), images)
        assert torch.equal(torch.cat([shard[step][1] for shard in shards]), labels)
    with pytest.raises(ValueError, match="batch_size=62 does not split across 4 processes"):
        next(ShardedImageSet(train, rank=0, world_size=4).batches(**{**options, "batch_size": 62}))


@pytest.mark.slow
def test_two_processes_with_torchrun_train_as_one(tmp_path: Path, tiny_config) -> None:
    """DDP on CPU (gloo): each process trains on half of every batch; with a model without BatchNorm and
    without mixup or drop path, the result equals one process's up to float rounding."""
    plain = RECIPES["standard"].model_copy(update={"name": "plain", "mixup": 0.0, "cutmix": 0.0, "drop_path": 0.0,
                                                   "ema_decay": 0.9})
    config = tiny_config(attention="refiner", expansion_ratio=2, depth=2)
    config_file = write_export(tmp_path / "tiny.yaml", config, plain)
    script = tmp_path / "train.py"
    script.write_text(
        "import sys\nfrom pathlib import Path\nfrom refiner_nas.results.train import run_full_training\n"
        f"run_full_training(Path({str(config_file)!r}), data='digits', output=Path(sys.argv[1]), epochs=2,"
        " batch_size=64, lr=5e-3, device='cpu', results_dir=None, amp=False)\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    for output, launcher in ((tmp_path / "one", [sys.executable]),
                             (tmp_path / "two", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                 "--nproc-per-node", "2"])):
        done = subprocess.run([*launcher, str(script), str(output)], env=environment, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert all(torch.allclose(one[name], two[name], atol=1e-4) for name in one)
    curves = [yaml.safe_load((tmp_path / name / "result.yaml").read_text())["top1_curve"] for name in ("one", "two")]
    assert curves[0] == pytest.approx(curves[1], abs=100 / 180)  # at most one of ~180 validation images
