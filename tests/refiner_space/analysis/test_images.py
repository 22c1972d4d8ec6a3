from __future__ import annotations

import pytest
import torch

from refiner_nas.refiner_space.analysis.images import chosen_images, load_images, random_batches

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_images("digits", img_size=(16, 16))


def test_random_batches_are_full_seeded_and_shared_by_image_sizes(digits) -> None:
    batches = list(random_batches(digits, batch_size=7, batches=3, seed=1, in_chans=3, device=CPU))
    assert [b.shape for b in batches] == [(7, 3, 16, 16)] * 3
    again = list(random_batches(digits, batch_size=7, batches=3, seed=1, in_chans=3, device=CPU))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    other_seed = next(random_batches(digits, batch_size=7, batches=1, seed=2, in_chans=3, device=CPU))
    assert not torch.equal(other_seed, batches[0])
    # the same images at another size: downsampling the 16 px batch approximates the 8 px one
    small = next(
        random_batches(load_images("digits", img_size=(8, 8)), batch_size=7, batches=1, seed=1, in_chans=3, device=CPU)
    )
    assert torch.nn.functional.avg_pool2d(batches[0], 2).sub(small).abs().mean() < 0.3 * small.abs().mean()


def test_batch_count_is_capped_by_the_data(digits) -> None:
    count = len(list(random_batches(digits, batch_size=50, batches=100, seed=0, in_chans=1, device=CPU)))
    assert count == len(digits.val) // 50
    with pytest.raises(ValueError, match=f"has {len(digits.val)} validation images, fewer than batch_size=500"):
        next(random_batches(digits, batch_size=500, batches=1, seed=0, in_chans=1, device=CPU))
    with pytest.raises(ValueError, match="must be at least 1"):
        next(random_batches(digits, batch_size=0, batches=1, seed=0, in_chans=1, device=CPU))


def test_chosen_images_are_the_validation_images_at_those_positions(digits) -> None:
    everything = torch.cat([images for images, _ in digits.val.batches(batch_size=1000, device=CPU)])
    picked = chosen_images(digits, [70, 3, 130], in_chans=1, device=CPU)
    torch.testing.assert_close(picked, everything[[70, 3, 130]])
    with pytest.raises(ValueError, match=f"image index {len(digits.val)} is out of range"):
        chosen_images(digits, [0, len(digits.val)], in_chans=1, device=CPU)
