"""Images to analyse: a dataset's held-out split, loaded at a model's input size and channel count."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from refiner_nas.refiner_space.data import DataBundle, load_data


def load_images(data: str, *, img_size: tuple[int, int], val_fraction: float = 0.1, split_seed: int = 0) -> DataBundle:
    """``data`` (``digits``, ``imagefolder:DIR``, ``cifar10:DIR``, ...) at ``img_size``, without
    augmentation; analyses read its held-out validation split, never the training images."""
    return load_data(
        data, img_size=img_size, val_fraction=val_fraction, split_seed=split_seed, augment=False, num_workers=0
    )


def match_channels(images: Tensor, in_chans: int) -> Tensor:
    """Give images the model's channel count: grey images are repeated, colour ones averaged to grey.

    Raises:
        ValueError: any other pair of channel counts.
    """
    have = images.shape[1]
    if have == in_chans:
        return images
    if have == 1:
        return images.expand(-1, in_chans, -1, -1)
    if in_chans == 1:
        return images.mean(dim=1, keepdim=True)
    raise ValueError(
        f"images have {have} channels but the model takes {in_chans}; use data with {in_chans} or 1 channel(s)"
    )


def random_batches(
    bundle: DataBundle, *, batch_size: int, batches: int, seed: int, in_chans: int, device: torch.device
) -> Iterator[Tensor]:
    """``batches`` full batches of validation images in an order fixed by ``seed`` (the same images for
    every model analysed with the same seed and data).

    Raises:
        ValueError: a batch size or count below 1, or fewer validation images than one batch.
    """
    if batch_size < 1 or batches < 1:
        raise ValueError(f"batch_size={batch_size} and batches={batches} must be at least 1")
    available = len(bundle.val)
    if available < batch_size:
        raise ValueError(
            f"{bundle.name} has {available} validation images, fewer than batch_size={batch_size}; "
            "use a smaller batch size or a larger --val-fraction"
        )
    stream = bundle.val.batches(batch_size=batch_size, device=device, shuffle=True, seed=seed, drop_last=True)
    for count, (images, _) in enumerate(stream):
        if count == batches:
            return
        yield match_channels(images, in_chans)


def chosen_images(bundle: DataBundle, indices: Sequence[int], *, in_chans: int, device: torch.device) -> Tensor:
    """The validation images at ``indices`` (positions in the unshuffled validation split), stacked.

    Raises:
        ValueError: an index outside the validation split.
    """
    available = len(bundle.val)
    wrong = [index for index in indices if not 0 <= index < available]
    if wrong:
        raise ValueError(
            f"image index {wrong[0]} is out of range: {bundle.name} has {available} validation images "
            f"(indices 0 to {available - 1})"
        )
    wanted, found = set(indices), {}
    seen = 0
    for images, _ in bundle.val.batches(batch_size=64, device=device):
        for offset in range(len(images)):
            if seen + offset in wanted:
                found[seen + offset] = images[offset]
        seen += len(images)
        if len(found) == len(wanted):
            break
    return match_channels(torch.stack([found[index] for index in indices]), in_chans)
