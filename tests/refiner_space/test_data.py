"""Datasets: spec parsing and validation, the split, batches, CIFAR and image folders, crop-ratio eval."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

from refiner_nas.refiner_space.data import DatasetError, DataSpec, center_fit, eval_resize, load_data, split_indices

CPU = torch.device("cpu")


def _all_batches(dataset, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(dataset.batches(device=CPU, **kwargs))
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


# ----- the split -------------------------------------------------------------------------------------


def test_split_is_disjoint_covering_stratified_and_seeded() -> None:
    labels = np.repeat(np.arange(4), [10, 20, 30, 41])
    train, val = split_indices(labels, 0.2, seed=3)
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(len(labels)))
    # every class gives round(0.2 * size) samples to validation
    assert np.bincount(labels[val.numpy()]).tolist() == [2, 4, 6, 8]
    again_train, again_val = split_indices(labels, 0.2, seed=3)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    _, other_val = split_indices(labels, 0.2, seed=4)
    assert not torch.equal(val, other_val)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 0.001])
def test_split_rejects_fractions_that_leave_a_part_empty(fraction: float) -> None:
    with pytest.raises(DatasetError, match="val_fraction") as info:
        split_indices(np.arange(20) % 2, fraction, seed=0)
    assert "\n" not in str(info.value)


# ----- the digits default ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", img_size=32, val_fraction=0.1, split_seed=0)


def test_digits_bundle_shapes_split_and_model_fields(digits) -> None:
    assert (digits.name, digits.num_classes, digits.in_chans) == ("digits", 10, 1)
    assert len(digits.train) + len(digits.val) == 1797
    class_sizes = np.bincount(torch.cat([digits.train.labels, digits.val.labels]).numpy())
    assert len(digits.val) == sum(round(0.1 * n) for n in class_sizes)
    assert digits.model_overrides() == {"img_size": 32, "in_chans": 1, "num_classes": 10}
    images, labels = next(digits.train.batches(batch_size=8, device=CPU))
    assert images.shape == (8, 1, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
    # normalised with the statistics of the training split (at native size), shared by validation
    pixels = digits.train.images.float() / 16
    assert digits.train.mean == digits.val.mean == pytest.approx((pixels.mean().item(),))
    assert digits.train.std == digits.val.std == pytest.approx((pixels.std().item(),))
    all_images, _ = _all_batches(digits.train, batch_size=512)
    assert all_images.mean().item() == pytest.approx(0.0, abs=1e-4)  # bilinear resizing keeps the mean


def test_training_order_depends_only_on_seed_and_epoch(digits) -> None:
    def labels(seed: int, epoch: int) -> torch.Tensor:
        return _all_batches(digits.train, batch_size=64, shuffle=True, seed=seed, epoch=epoch, drop_last=True)[1]

    first = labels(0, 0)
    assert len(first) == len(digits.train) // 64 * 64  # drop_last keeps only full batches
    assert torch.equal(first, labels(0, 0))
    assert not torch.equal(first, labels(0, 1)) and not torch.equal(first, labels(1, 0))
    in_order = _all_batches(digits.val, batch_size=50)[1]
    assert torch.equal(in_order, digits.val.labels)  # evaluation keeps the stored order, no drops


# ----- crop ratio -------------------------------------------------------------------------------------


def test_center_fit_matches_torchvision_center_crop_for_crops_and_pads() -> None:
    image = torch.arange(3 * 9 * 12, dtype=torch.float32).reshape(1, 3, 9, 12)
    for size in [(9, 12), (5, 7), (4, 10), (13, 16), (14, 15), (6, 17)]:
        assert torch.equal(center_fit(image, size), TF.center_crop(image, list(size))), size


def test_eval_resize_follows_timms_crop_pct_rule() -> None:
    assert eval_resize((32, 32), 1.0) == (32, 32)
    assert eval_resize((32, 32), 1.25) == (25, 25)
    assert eval_resize((224, 224), 0.875) == (256, 256)


def _normalise(images: torch.Tensor, dataset) -> torch.Tensor:
    mean = torch.tensor(dataset.mean)[:, None, None]
    std = torch.tensor(dataset.std)[:, None, None]
    return (images - mean) / std


def test_crop_ratio_one_is_the_plain_resize(digits) -> None:
    images, _ = next(digits.val.batches(batch_size=16, device=CPU))
    raw = digits.val.images[:16].float() / 16
    plain = F.interpolate(raw, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(images, _normalise(plain, digits.val))


def test_crop_ratio_above_one_pads_and_shrinks_the_content(digits) -> None:
    padded_set = digits.with_crop_ratio(1.25).val
    images, _ = next(padded_set.batches(batch_size=16, device=CPU))
    raw = digits.val.images[:16].float() / 16
    shrunk = F.interpolate(raw, size=(25, 25), mode="bilinear", align_corners=False, antialias=True)
    background = _normalise(torch.zeros(1, 1, 1, 1), digits.val).item()
    assert images.shape == (16, 1, 32, 32)
    # 7 padding pixels: 3 before, 4 after, filled with black (normalised zero)
    frame = torch.ones(32, 32, dtype=torch.bool)
    frame[3:28, 3:28] = False
    assert torch.all(images[:, :, frame] == background)
    torch.testing.assert_close(images[:, :, 3:28, 3:28], _normalise(shrunk, digits.val))
    # the digit's ink now covers fewer pixels of the frame than at crop ratio 1
    plain, _ = next(digits.val.batches(batch_size=16, device=CPU))
    assert (images > background + 0.5).sum() < (plain > background + 0.5).sum()


def test_crop_ratio_below_one_crops_the_centre(digits) -> None:
    images, _ = next(digits.with_crop_ratio(0.8).val.batches(batch_size=4, device=CPU))
    raw = digits.val.images[:4].float() / 16
    enlarged = F.interpolate(raw, size=(40, 40), mode="bilinear", align_corners=False)
    torch.testing.assert_close(images, _normalise(enlarged[:, :, 4:36, 4:36], digits.val))


@pytest.mark.parametrize("ratio", [0.0, -1.0, 5.0])
def test_bad_crop_ratio_is_one_line(ratio: float) -> None:
    with pytest.raises(DatasetError, match="crop_ratio"):
        load_data("digits", crop_ratio=ratio)


# ----- spec parsing and validation ----------------------------------------------------------------------


def test_parse_forms_and_round_trip(tmp_path: Path) -> None:
    tree = _image_tree(tmp_path / "tree", {"a": 1, "b": 1})
    assert DataSpec.parse("digits") == DataSpec("digits")
    assert DataSpec.parse(f"imagefolder:{tree}") == DataSpec.parse(str(tree)) == DataSpec("imagefolder", tree)
    assert str(DataSpec.parse(str(tree))) == f"imagefolder:{tree.resolve()}"
    assert DataSpec.parse(str(DataSpec.parse(str(tree)))) == DataSpec.parse(str(tree))


def _assert_one_line_error(text: str, *needles: str) -> None:
    with pytest.raises(DatasetError) as info:
        DataSpec.parse(text)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_bad_specs_give_one_line_errors_naming_path_and_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    _assert_one_line_error(f"cifar10:{missing}", str(missing), "does not exist")
    _assert_one_line_error(str(missing), str(missing), "does not exist")
    _assert_one_line_error("mnist:/data", "unknown dataset kind 'mnist'", "digits, cifar10")
    _assert_one_line_error("digits:/data", "takes no path")
    _assert_one_line_error("cifar100", "needs a directory", "cifar100:/path")
    _assert_one_line_error("  ", "empty dataset")
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_one_line_error(str(empty), str(empty), "no class sub-folders", "DIR/<class>/")
    _assert_one_line_error(f"cifar10:{empty}", "data_batch_1", "cifar-10-batches-py")
    _assert_one_line_error(f"cifar100:{empty}", "train, test, meta", "cifar-100-python")
    tree = _image_tree(tmp_path / "tree", {"cat": 2})
    (tree / "dog").mkdir()
    (tree / "dog" / "notes.txt").write_text("no images here")
    _assert_one_line_error(str(tree), str(tree / "dog"), "holds no images")


# ----- CIFAR ------------------------------------------------------------------------------------------


def _write_pickle(path: Path, content: object) -> None:
    with path.open("wb") as file:
        pickle.dump(content, file)


def _fake_cifar10(root: Path, per_batch: int = 20) -> np.ndarray:
    """The standard layout with tiny batches; returns all training pixels as (N, 32, 32, 3)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pixels = []
    for i in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [(i + j) % 10 for j in range(per_batch)]
        _write_pickle(folder / f"data_batch_{i}", {"data": data, "labels": labels})
        pixels.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    test = rng.integers(0, 256, (30, 3072), dtype=np.uint8)
    _write_pickle(folder / "test_batch", {"data": test, "labels": [j % 10 for j in range(30)]})
    _write_pickle(folder / "batches.meta", {"label_names": [f"class{k}" for k in range(10)]})
    return np.concatenate(pixels)


def test_cifar10_reads_batches_from_the_folder_or_its_parent(tmp_path: Path) -> None:
    pixels = _fake_cifar10(tmp_path)
    for text in (f"cifar10:{tmp_path}", f"cifar10:{tmp_path / 'cifar-10-batches-py'}"):
        data = load_data(text, img_size=32, val_fraction=0.2, split_seed=1, augment=False)
        assert (data.num_classes, data.in_chans, data.class_names[3]) == (10, 3, "class3")
        assert (len(data.train), len(data.val)) == (80, 20)
    # pixels arrive channel-first as stored (R plane, G plane, B plane), in the training split's order
    stored = data.train.images.permute(0, 2, 3, 1).numpy()
    train_index, _ = split_indices(
        np.concatenate([[(i + j) % 10 for j in range(20)] for i in range(1, 6)]), 0.2, seed=1
    )
    assert np.array_equal(stored, pixels[train_index.numpy()])
    official = load_data(f"cifar10:{tmp_path}", val_source="official")
    assert (len(official.train), len(official.val)) == (100, 30)


def test_cifar_training_augmentation_shifts_and_mirrors(tmp_path: Path) -> None:
    _fake_cifar10(tmp_path)
    data = load_data(f"cifar10:{tmp_path}", img_size=32)
    plain = replace(data.train, train=False)
    augmented, _ = _all_batches(data.train, batch_size=100, shuffle=False, seed=0)
    reference, _ = _all_batches(plain, batch_size=100)
    changed = (augmented - reference).abs().flatten(1).amax(dim=1) > 0
    assert changed.float().mean() > 0.8  # most images moved or mirrored (1 in 162 stays put)
    again, _ = _all_batches(data.train, batch_size=100, shuffle=False, seed=0)
    assert torch.equal(augmented, again)


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = np.zeros((40, 3072), dtype=np.uint8)
    _write_pickle(folder / "train", {"data": data, "fine_labels": list(range(40)), "coarse_labels": [0] * 40})
    _write_pickle(folder / "test", {"data": data[:10], "fine_labels": list(range(10)), "coarse_labels": [0] * 10})
    _write_pickle(folder / "meta", {"fine_label_names": [f"f{k}" for k in range(100)]})
    bundle = load_data(f"cifar100:{tmp_path}", val_source="official")
    assert bundle.num_classes == 100
    assert bundle.train.labels.tolist() == list(range(40))


def test_malformed_cifar_batch_is_a_one_line_error(tmp_path: Path) -> None:
    _fake_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_3.*re-extract") as info:
        load_data(f"cifar10:{tmp_path}")
    assert "\n" not in str(info.value)
    _write_pickle(tmp_path / "cifar-10-batches-py" / "data_batch_3", {"data": np.zeros((2, 3072)), "labels": [1]})
    with pytest.raises(DatasetError, match="2 images but 1 labels"):
        load_data(f"cifar10:{tmp_path}")


def test_digits_have_no_official_validation_set() -> None:
    with pytest.raises(DatasetError, match="val_source='split'"):
        load_data("digits", val_source="official")


# ----- image folders ------------------------------------------------------------------------------------


def _image_tree(root: Path, counts: dict[str, int], size: int = 40) -> Path:
    """Solid-colour PNGs: class k's images have grey level 60 * (k + 1)."""
    for k, (name, count) in enumerate(sorted(counts.items())):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (size, size), (60 * (k + 1),) * 3).save(root / name / f"{i}.png")
    return root


def test_image_folder_split_labels_and_padding_crop_ratio(tmp_path: Path) -> None:
    root = _image_tree(tmp_path / "tree", {"a": 5, "b": 5, "c": 10})
    data = load_data(str(root), img_size=32, val_fraction=0.2, split_seed=0, crop_ratio=1.25, num_workers=0)
    assert (data.num_classes, data.class_names, len(data.train), len(data.val)) == (3, ("a", "b", "c"), 16, 4)
    images, labels = _all_batches(data.val, batch_size=3)
    assert images.shape == (4, 3, 32, 32) and sorted(labels.tolist()) == [0, 1, 2, 2]
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None]
    black = (-mean / std).squeeze(1)
    # resized to 25 px and padded with black: 3 pixels before, 4 after
    assert torch.allclose(images[:, :, :3, :].permute(1, 0, 2, 3).flatten(1), black[:, None], atol=1e-5)
    assert torch.allclose(images[:, :, 28:, :].permute(1, 0, 2, 3).flatten(1), black[:, None], atol=1e-5)
    centre = images[:, :, 3:28, 3:28].flatten(2)  # the solid colour of each image's class
    expected = ((60 * (labels + 1) / 255)[:, None, None] - mean) / std
    torch.testing.assert_close(centre, expected.expand_as(centre), atol=0.02, rtol=0)
    plain, _ = _all_batches(data.with_crop_ratio(1.0).val, batch_size=4)
    assert not torch.isclose(plain[:, :, 0, 0], black).any()  # no padding at ratio 1


def test_image_folder_train_val_layout(tmp_path: Path) -> None:
    _image_tree(tmp_path / "train", {"a": 3, "b": 3})
    _image_tree(tmp_path / "val", {"a": 1, "b": 2})
    official = load_data(str(tmp_path), val_source="official", num_workers=0)
    assert (len(official.train), len(official.val)) == (6, 3)
    split = load_data(str(tmp_path), val_fraction=0.34, num_workers=0)
    assert (len(split.train), len(split.val)) == (4, 2)  # the split comes from train/ only
    images, labels = next(split.train.batches(batch_size=4, device=CPU, shuffle=True, seed=0))
    assert images.shape == (4, 3, 32, 32) and set(labels.tolist()) <= {0, 1}


def test_image_folder_val_with_unknown_class_is_an_error(tmp_path: Path) -> None:
    _image_tree(tmp_path / "train", {"a": 2, "b": 2})
    _image_tree(tmp_path / "val", {"a": 1, "z": 1})
    with pytest.raises(DatasetError, match="class folders that .* lacks \\(z\\)"):
        load_data(str(tmp_path), val_source="official", num_workers=0)
    with pytest.raises(DatasetError, match="no val/ folder"):
        load_data(str(_image_tree(tmp_path / "solo" / "train", {"a": 2, "b": 2}).parent), val_source="official")


def test_image_folder_augmentation_in_workers_is_a_function_of_seed_and_epoch(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for k in range(2):
        (root / f"c{k}").mkdir(parents=True)
        for i in range(8):  # images with structure, so random crops and flips change them
            Image.linear_gradient("L").resize((48, 40)).rotate(45 * i + 90 * k).convert("RGB").save(
                root / f"c{k}" / f"{i}.png"
            )
    data = load_data(str(root), img_size=24, val_fraction=0.25, num_workers=2)

    def epoch_images(epoch: int) -> torch.Tensor:
        return _all_batches(data.train, batch_size=4, shuffle=True, seed=0, epoch=epoch, drop_last=True)[0]

    first = epoch_images(0)
    assert first.shape == (12, 3, 24, 24)
    assert torch.equal(first, epoch_images(0)) and not torch.equal(first, epoch_images(1))
