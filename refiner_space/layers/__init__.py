"""Building blocks of the Refined-ViT family; each module holds one kind of layer."""

from refiner_nas.refiner_space.layers.attention import Attention, AttentionMaps, HeadMixing, MapAttention
from refiner_nas.refiner_space.layers.block import Block, ScaledMlp
from refiner_nas.refiner_space.layers.broadcast import ContextBroadcast
from refiner_nas.refiner_space.layers.official import (
    OfficialComputeAttention,
    OfficialMapRefiner,
    OfficialShareAttention,
)
from refiner_nas.refiner_space.layers.refiner import AttentionRefiner
from refiner_nas.refiner_space.layers.stem import Conv4Stem

__all__ = [
    "Attention",
    "AttentionMaps",
    "AttentionRefiner",
    "Block",
    "Conv4Stem",
    "ContextBroadcast",
    "HeadMixing",
    "MapAttention",
    "OfficialComputeAttention",
    "OfficialMapRefiner",
    "OfficialShareAttention",
    "ScaledMlp",
]
