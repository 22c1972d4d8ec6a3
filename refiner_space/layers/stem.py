"""The released code's four-convolution stem (docs/models.md#the-released-code-variant), in place of one
P×P patch projection."""

from __future__ import annotations

from torch import Tensor, nn


class Conv4Stem(nn.Module):
    """7×7/2 conv (32), 3×3 conv (64), 3×3 conv (128), each with BN and ReLU, then a (P/2)×(P/2)
    projection with stride P/2, giving the same token grid as a P×P patch embedding."""

    def __init__(self, *, img_size: tuple[int, int], patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.grid_size = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.conv1 = nn.Conv2d(in_chans, 32, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.act = nn.ReLU(inplace=True)
        half = patch_size // 2
        self.proj = nn.Conv2d(128, embed_dim, half, stride=half)

    def forward(self, images: Tensor) -> Tensor:
        x = self.act(self.bn1(self.conv1(images)))
        x = self.act(self.bn2(self.conv2(x)))
        x = self.act(self.bn3(self.conv3(x)))
        return self.proj(x).flatten(2).transpose(1, 2)
