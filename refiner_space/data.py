"""Datasets for search trials and full training: parsing, validation, a deterministic split, batches.

Three sources, named by a ``DataSpec`` string:

- ``digits``: scikit-learn's 1,797 handwritten 8x8 digits (shipped inside the package, nothing to
  download), upsampled to the model's image size. The embedded default: a search runs anywhere.
- ``cifar10:DIR`` / ``cifar100:DIR``: the python pickle batches (``cifar-10-batches-py`` /
  ``cifar-100-python``), DIR being that folder or its parent. Nothing is downloaded.
- ``imagefolder:DIR`` (or a bare ``DIR``): one sub-folder of images per class, or ImageNet's layout
  with ``DIR/train/<class>`` and optionally ``DIR/val/<class>``.

Validation images are held out of the training set by a stratified split seeded by ``split_seed``
(``val_source="split"``, the default: a search never sees the test set). ``val_source="official"``
evaluates on the CIFAR test batch or the ``val/`` folder instead (full training, reported numbers).

Digits and CIFAR live in memory as raw tensors and are transformed a batch at a time (random
translation and flips for training, resizing, normalisation), on the training device; image folders
go through timm's PIL transforms in DataLoader workers. Both evaluate with a crop ratio: resize to
``floor(img_size / crop_ratio)``, then centre-crop to ``img_size``, zero-padding when the resized
image is smaller (``crop_ratio > 1``: the paper's receptive field calibration pads instead of crops).
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

DatasetKind = Literal["digits", "cifar10", "cifar100", "imagefolder"]
ValSource = Literal["split", "official"]
KINDS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "imagefolder")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# ImageNet statistics (timm's defaults) for image folders; in-memory sets use their training split's.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Batch = tuple[Tensor, Tensor]


class DatasetError(ValueError):
    """A dataset path or file that cannot be used; the one-line message names the path and the fix."""


@dataclass(frozen=True)
class _CifarLayout:
    folder: str  # the folder name inside the archive
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str


_CIFAR: dict[str, _CifarLayout] = {
    "cifar10": _CifarLayout(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "batches.meta",
        "labels",
        "label_names",
    ),
    "cifar100": _CifarLayout("cifar-100-python", ("train",), "test", "meta", "fine_labels", "fine_label_names"),
}


@dataclass(frozen=True)
class DataSpec:
    """Which dataset to use; constructing one checks that its files are there.

    Raises:
        DatasetError: the path is missing or does not hold the expected files.
    """

    kind: DatasetKind
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DatasetError(f"unknown dataset kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.kind == "digits":
            if self.path is not None:
                raise DatasetError("the digits dataset ships with scikit-learn and takes no path; use 'digits'")
            return
        if self.path is None:
            raise DatasetError(f"dataset {self.kind!r} needs a directory; write '{self.kind}:/path/to/dir'")
        path = Path(self.path).expanduser().resolve()
        object.__setattr__(self, "path", path)
        if not path.is_dir():
            raise DatasetError(f"{self.kind} directory {path} does not exist; pass an existing directory")
        if self.kind == "imagefolder":
            _check_class_tree(_folder_roots(path)[0])
        else:
            _cifar_dir(self.kind, path)

    @classmethod
    def parse(cls, text: str) -> DataSpec:
        """``digits``, ``cifar10:DIR``, ``cifar100:DIR``, ``imagefolder:DIR`` or a bare ``DIR`` (a tree)."""
        text = text.strip()
        if not text:
            raise DatasetError(f"empty dataset; use one of {', '.join(KINDS)} (with ':DIR' where needed)")
        if text in KINDS:
            return cls(text)  # type: ignore[arg-type]
        kind, sep, rest = text.partition(":")
        if sep and kind in KINDS:
            return cls(kind, Path(rest))  # type: ignore[arg-type]
        if sep and len(kind) > 1 and kind.isidentifier():  # a one-letter prefix is a Windows drive
            raise DatasetError(f"unknown dataset kind {kind!r} in {text!r}; use one of {', '.join(KINDS)}")
        return cls("imagefolder", Path(text))

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def _cifar_dir(kind: str, path: Path) -> Path:
    """The folder that holds the batch files: ``path`` itself or its standard sub-folder."""
    layout = _CIFAR[kind]
    needed = (*layout.train_files, layout.test_file, layout.meta_file)
    for folder in (path, path / layout.folder):
        if all((folder / name).is_file() for name in needed):
            return folder
    missing = [name for name in needed if not (path / name).is_file()]
    raise DatasetError(
        f"{kind} directory {path} lacks {', '.join(missing)}; pass the extracted '{layout.folder}' "
        "folder (the python version of the dataset) or its parent"
    )


def _folder_roots(path: Path) -> tuple[Path, Path | None]:
    """(training root, official validation root or None): ImageNet's ``train/``+``val/`` or one tree."""
    if (path / "train").is_dir():
        val = path / "val"
        return path / "train", val if val.is_dir() else None
    return path, None


def _check_class_tree(root: Path) -> None:
    """Every class folder holds at least one image (stops at the first image of each class)."""
    classes = _class_folders(root)
    if not classes:
        raise DatasetError(
            f"image folder {root} has no class sub-folders; put each class's images in DIR/<class>/ "
            "(for CIFAR batches use cifar10:DIR or cifar100:DIR)"
        )
    for name in classes:
        if not any(_is_image(file) for file in _walk_files(root / name)):
            raise DatasetError(
                f"class folder {root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "add images or remove the folder"
            )


def _class_folders(root: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(root) if entry.is_dir())


def _walk_files(root: Path) -> Iterator[str]:
    for _, _, files in os.walk(root, followlinks=True):
        yield from files


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def split_indices(labels: Sequence[int] | np.ndarray, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Stratified, seeded train/validation split: disjoint sorted index tensors covering every sample.

    Each class gives ``round(val_fraction * class_size)`` samples to validation, so the class balance of
    the two parts matches the data's.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction={val_fraction} must be between 0 and 1 (exclusive), e.g. 0.1")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held_out = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        held_out.append(rng.permutation(members)[: round(val_fraction * len(members))])
    val = np.sort(np.concatenate(held_out))
    train = np.setdiff1d(np.arange(len(labels)), val)
    if not len(val) or not len(train):
        raise DatasetError(
            f"val_fraction={val_fraction} leaves an empty {'validation' if not len(val) else 'training'} "
            f"set out of {len(labels)} images; choose a fraction between them"
        )
    return torch.from_numpy(train), torch.from_numpy(val)


def eval_resize(img_size: tuple[int, int], crop_ratio: float) -> tuple[int, int]:
    """Size images are resized to before the centre crop (timm's ``crop_pct`` rule)."""
    return math.floor(img_size[0] / crop_ratio), math.floor(img_size[1] / crop_ratio)


def center_fit(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Centre-crop the last two dims to ``size``, zero-padding where the image is smaller (as
    torchvision's ``CenterCrop``)."""
    pads: list[int] = []
    for have, want in ((images.shape[-1], size[1]), (images.shape[-2], size[0])):
        before = (want - have) // 2 if want >= have else -round((have - want) / 2)
        pads += [before, want - have - before]
    return F.pad(images, pads) if any(pads) else images


def _resize(images: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def _random_translate(images: Tensor, pad: int, generator: torch.Generator) -> Tensor:
    """Shift each image by up to ``pad`` pixels each way, zero-filling (pad-and-random-crop)."""
    count, _, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (count, 1), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad + 1, (count, 1), generator=generator).to(images.device)
    rows = dy + torch.arange(height, device=images.device)
    cols = dx + torch.arange(width, device=images.device)
    batch = torch.arange(count, device=images.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """Randomness of one epoch's data order and augmentation, a function of (seed, epoch) only, so a
    resumed run sees the same batches as an uninterrupted one."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _batch_ranges(order: Tensor, batch_size: int, drop_last: bool) -> Iterator[Tensor]:
    stop = len(order) - batch_size + 1 if drop_last else len(order)
    for start in range(0, max(stop, 0), batch_size):
        yield order[start : start + batch_size]


class ImageSet(Protocol):
    """What training and evaluation need from a dataset."""

    def __len__(self) -> int: ...

    def batches(
        self,
        *,
        batch_size: int,
        device: torch.device,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        """(images, labels) on ``device``; with ``shuffle``, the order is a function of (seed, epoch)."""
        ...

    def with_crop_ratio(self, crop_ratio: float) -> ImageSet: ...


@dataclass(frozen=True, kw_only=True)
class TensorImageSet:
    """Images held in memory at their native size, transformed a batch at a time on the device.

    ``images`` is (N, C, h, w) uint8 with values ``0..value_max``; ``labels`` (N,) int64. Training sets
    (``train=True``) shift images by up to ``translate`` native pixels and, with ``flip``, mirror half
    of them; every set is then resized to ``img_size`` (evaluation: with ``crop_ratio``) and normalised.
    """

    images: Tensor
    labels: Tensor
    value_max: float
    img_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: bool = False
    translate: int = 0
    flip: bool = False
    crop_ratio: float = 1.0

    def __len__(self) -> int:
        return len(self.labels)

    def with_crop_ratio(self, crop_ratio: float) -> TensorImageSet:
        return replace(self, crop_ratio=_checked_crop_ratio(crop_ratio))

    def batches(
        self,
        *,
        batch_size: int,
        device: torch.device,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        generator = _epoch_generator(seed, epoch)
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for index in _batch_ranges(order, batch_size, drop_last):
            images = self.images[index].to(device, non_blocking=True)
            labels = self.labels[index].to(device, non_blocking=True)
            yield self.transform(images, generator), labels

    def transform(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """Raw uint8 batch -> normalised float batch at ``img_size`` (augmented when training)."""
        images = images.float() / self.value_max
        if self.train:
            if self.translate:
                images = _random_translate(images, self.translate, generator)
            if self.flip:
                mirror = (torch.rand(len(images), generator=generator) < 0.5).to(images.device)
                images = torch.where(mirror[:, None, None, None], images.flip(-1), images)
            images = _resize(images, self.img_size)
        else:
            images = center_fit(_resize(images, eval_resize(self.img_size, self.crop_ratio)), self.img_size)
        mean = torch.tensor(self.mean, device=images.device)[:, None, None]
        std = torch.tensor(self.std, device=images.device)[:, None, None]
        return (images - mean) / std


class FolderImageSet(torch.utils.data.Dataset):
    """Image files decoded by PIL and transformed by timm in DataLoader workers.

    The workers' augmentation is seeded from (seed, epoch); with ``num_workers=0`` it draws from the
    global generators, which ``refiner_nas.refiner_space.training.train_model`` reseeds every epoch.
    """

    def __init__(
        self,
        *,
        samples: Sequence[tuple[str, int]],
        img_size: tuple[int, int],
        train: bool,
        augment: bool = True,
        crop_ratio: float = 1.0,
        num_workers: int = 0,
    ) -> None:
        from timm.data import create_transform

        self.samples = list(samples)
        self.img_size, self.train, self.augment = img_size, train, augment
        self.crop_ratio, self.num_workers = crop_ratio, num_workers
        self.transform = create_transform(
            img_size,
            is_training=train,
            no_aug=not augment,
            crop_pct=crop_ratio,
            interpolation="bicubic",
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        from PIL import Image

        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except OSError as error:
            raise DatasetError(f"cannot read image {path} ({error}); remove or replace the file") from None
        return self.transform(rgb), label

    def with_crop_ratio(self, crop_ratio: float) -> FolderImageSet:
        return FolderImageSet(
            samples=self.samples,
            img_size=self.img_size,
            train=self.train,
            augment=self.augment,
            crop_ratio=_checked_crop_ratio(crop_ratio),
            num_workers=self.num_workers,
        )

    def batches(
        self,
        *,
        batch_size: int,
        device: torch.device,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        generator = _epoch_generator(seed, epoch)
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        loader = torch.utils.data.DataLoader(
            self,
            batch_size=batch_size,
            sampler=order.tolist(),
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=device.type == "cuda",
            generator=generator,  # seeds the workers' augmentation
        )
        for images, labels in loader:
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


@dataclass(frozen=True, kw_only=True)
class DataBundle:
    """A loaded dataset: training and validation sets and what a model needs to know about them."""

    name: str
    train: ImageSet
    val: ImageSet
    num_classes: int
    in_chans: int
    img_size: tuple[int, int]
    class_names: tuple[str, ...] = field(repr=False)

    def model_overrides(self) -> dict[str, Any]:
        """The ``refiner_space.ModelConfig`` fields this data fixes."""
        size = self.img_size[0] if self.img_size[0] == self.img_size[1] else self.img_size
        return {"img_size": size, "in_chans": self.in_chans, "num_classes": self.num_classes}

    def with_crop_ratio(self, crop_ratio: float) -> DataBundle:
        """The same data evaluated at another crop ratio (receptive field calibration)."""
        return replace(self, val=self.val.with_crop_ratio(crop_ratio))


def _checked_crop_ratio(crop_ratio: float) -> float:
    if not 0.0 < crop_ratio <= 4.0:
        raise DatasetError(f"crop_ratio={crop_ratio} must be in (0, 4]; 1 resizes, > 1 pads, < 1 crops")
    return crop_ratio


def load_data(
    spec: DataSpec | str,
    *,
    img_size: int | tuple[int, int] = 32,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    val_source: ValSource = "split",
    crop_ratio: float = 1.0,
    augment: bool = True,
    num_workers: int | None = None,
) -> DataBundle:
    """Load a dataset and split it into training and validation sets.

    Args:
        spec: a ``DataSpec`` or its string form (``digits``, ``cifar10:DIR``, ...).
        img_size: the size every image is resized to (the model's input size).
        val_fraction: the held-out share of each class (``val_source="split"``).
        split_seed: the seed of that split.
        val_source: ``split`` holds out part of the training data; ``official`` uses the CIFAR test
            batch or the ``val/`` folder (digits has none).
        crop_ratio: evaluation crop ratio; > 1 pads (receptive field calibration).
        augment: random translation and flips (CIFAR) or timm's training transform (folders);
            digits are never augmented.
        num_workers: DataLoader workers for image folders (default: up to 8 CPU cores).

    Raises:
        DatasetError: unusable files, an empty split or an unknown option, before any training.
    """
    spec = spec if isinstance(spec, DataSpec) else DataSpec.parse(spec)
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if len(size) != 2 or min(size) <= 0:
        raise DatasetError(f"img_size={img_size!r} must be a positive int or (height, width)")
    if val_source not in ("split", "official"):
        raise DatasetError(f"val_source={val_source!r} must be 'split' or 'official'")
    crop_ratio = _checked_crop_ratio(crop_ratio)
    if spec.kind == "imagefolder":
        workers = min(8, os.cpu_count() or 1) if num_workers is None else num_workers
        return _load_folder(spec, size, val_fraction, split_seed, val_source, crop_ratio, augment, workers)
    if spec.kind == "digits":
        if val_source == "official":
            raise DatasetError("digits has no official validation set; use val_source='split'")
        images, labels, names = _read_digits()
        test = None
        # No augmentation: the digits fill their 8x8 frame, so shifts cut strokes, and mirroring changes
        # the class; both slowed short proxy runs down (measured).
        value_max, translate, flip = 16.0, 0, False
    else:
        images, labels, test, names = _read_cifar(spec.kind, spec.path)  # type: ignore[arg-type]
        value_max, translate, flip = 255.0, 4, True
    if val_source == "official":
        train_images, train_labels = images, labels
        val_images, val_labels = test  # type: ignore[misc]
    else:
        train_index, val_index = split_indices(labels.numpy(), val_fraction, split_seed)
        train_images, train_labels = images[train_index], labels[train_index]
        val_images, val_labels = images[val_index], labels[val_index]
    pixels = train_images.float().div_(value_max)
    common: dict[str, Any] = {
        "value_max": value_max,
        "img_size": size,
        "mean": tuple(pixels.mean(dim=(0, 2, 3)).tolist()),
        "std": tuple(pixels.std(dim=(0, 2, 3)).tolist()),
    }
    train = TensorImageSet(
        images=train_images,
        labels=train_labels,
        train=True,
        translate=translate if augment else 0,
        flip=flip and augment,
        **common,
    )
    val = TensorImageSet(images=val_images, labels=val_labels, crop_ratio=crop_ratio, **common)
    return DataBundle(
        name=str(spec),
        train=train,
        val=val,
        num_classes=len(names),
        in_chans=images.shape[1],
        img_size=size,
        class_names=names,
    )


def _read_digits() -> tuple[Tensor, Tensor, tuple[str, ...]]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetError(
            "the digits dataset needs scikit-learn; pip install scikit-learn or pass another dataset"
        ) from None
    digits = load_digits()
    images = torch.from_numpy(digits.images).to(torch.uint8)[:, None]  # values 0..16
    labels = torch.from_numpy(digits.target).long()
    return images, labels, tuple(str(name) for name in digits.target_names)


def _read_cifar(kind: str, path: Path) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor], tuple[str, ...]]:
    """(train images, train labels, (test images, test labels), class names) from the pickle batches."""
    layout = _CIFAR[kind]
    folder = _cifar_dir(kind, path)
    parts = [_read_cifar_batch(folder / name, layout.label_key) for name in layout.train_files]
    test = _read_cifar_batch(folder / layout.test_file, layout.label_key)
    names = tuple(_unpickle(folder / layout.meta_file)[layout.names_key])
    images = torch.cat([images for images, _ in parts])
    labels = torch.cat([labels for _, labels in parts])
    return images, labels, test, names


def _read_cifar_batch(path: Path, label_key: str) -> tuple[Tensor, Tensor]:
    batch = _unpickle(path)
    try:
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (KeyError, ValueError, TypeError) as error:
        raise DatasetError(
            f"CIFAR batch {path} is malformed ({type(error).__name__}: {error}); re-extract the archive"
        ) from None
    if len(data) != len(labels):
        raise DatasetError(f"CIFAR batch {path} has {len(data)} images but {len(labels)} labels; re-extract it")
    return torch.from_numpy(data), torch.from_numpy(labels)


def _unpickle(path: Path) -> dict[str, Any]:
    # The CIFAR archives are pickles (as distributed): only load files from a source you trust.
    try:
        with path.open("rb") as file:
            content = pickle.load(file, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise DatasetError(f"cannot read CIFAR file {path} ({error}); re-extract the archive") from None
    if not isinstance(content, dict):
        raise DatasetError(f"CIFAR file {path} does not hold a dict; re-extract the archive")
    return content


def _load_folder(
    spec: DataSpec,
    size: tuple[int, int],
    val_fraction: float,
    split_seed: int,
    val_source: ValSource,
    crop_ratio: float,
    augment: bool,
    num_workers: int,
) -> DataBundle:
    train_root, val_root = _folder_roots(spec.path)  # type: ignore[arg-type]
    classes, samples = _scan_tree(train_root)
    if val_source == "official":
        if val_root is None:
            raise DatasetError(f"{spec.path} has no val/ folder next to train/; use val_source='split' or add one")
        extra = sorted(set(_class_folders(val_root)) - set(classes))
        if extra:
            raise DatasetError(
                f"{val_root} has class folders that {train_root} lacks ({', '.join(extra[:5])}); "
                "use the same class folders in both"
            )
        _, val_samples = _scan_tree(val_root, classes)
        train_samples = samples
    else:
        train_index, val_index = split_indices([label for _, label in samples], val_fraction, split_seed)
        train_samples = [samples[i] for i in train_index.tolist()]
        val_samples = [samples[i] for i in val_index.tolist()]
    common: dict[str, Any] = {"img_size": size, "augment": augment, "num_workers": num_workers}
    return DataBundle(
        name=str(spec),
        train=FolderImageSet(samples=train_samples, train=True, **common),
        val=FolderImageSet(samples=val_samples, train=False, crop_ratio=crop_ratio, **common),
        num_classes=len(classes),
        in_chans=3,
        img_size=size,
        class_names=tuple(classes),
    )


def _scan_tree(root: Path, classes: Sequence[str] | None = None) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted folder names, or the given ones) and (path, label) for every image."""
    classes = _class_folders(root) if classes is None else classes
    samples = []
    for label, name in enumerate(classes):
        for folder, _, files in sorted(os.walk(root / name, followlinks=True)):
            samples += [(os.path.join(folder, file), label) for file in sorted(files) if _is_image(file)]
    if not samples:
        raise DatasetError(f"image folder {root} holds no images; add images under {root}/<class>/")
    if len(classes) < 2:
        raise DatasetError(
            f"image folder {root} has {len(classes)} class folder ({', '.join(classes)}); a classifier needs at "
            f"least 2: add one folder of images per class under {root}/"
        )
    _check_decodable(samples, len(classes))
    return list(classes), samples


def _check_decodable(samples: Sequence[tuple[str, int]], num_classes: int, per_class: int = 2) -> None:
    """Decode the first ``per_class`` images of every class, so a folder of broken files fails before any
    trial rather than inside one."""
    from PIL import Image, UnidentifiedImageError

    seen = [0] * num_classes
    for path, label in samples:
        if seen[label] >= per_class:
            continue
        seen[label] += 1
        try:
            with Image.open(path) as image:
                image.convert("RGB")
        except (OSError, UnidentifiedImageError, SyntaxError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DatasetError(f"cannot decode image {path} ({reason}); remove or replace it") from None
