"""Token features entering, leaving each block of, and leaving a ViT, and the Refiner paper's
feature-evolution curve (its appendix A.4) computed from them with linear CKA."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

import pandas as pd
import torch
from torch import Tensor, nn

from refiner_nas.refiner_space.analysis.cka import CkaError, linear_cka

TokenReduction = Literal["flatten", "mean"]
TOKEN_REDUCTIONS: tuple[str, ...] = ("flatten", "mean")


@dataclass(frozen=True)
class BlockFeatures:
    """Token features of one batch, each (B, N, D): ``inputs`` enter ``blocks[0]`` (patch embedding,
    class token and position embedding), ``blocks[k]`` leave block k, ``output`` is ``forward_features``
    (the last block's output after the final norm: what the classifier reads)."""

    inputs: Tensor
    blocks: list[Tensor]
    output: Tensor


@torch.no_grad()
def block_features(model: nn.Module, images: Tensor) -> BlockFeatures:
    """Run ``model.forward_features`` on ``images`` and capture the features with hooks on ``model.blocks``
    (blocks may return ``(x, attention_map)``; x is kept)."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or not len(blocks):
        raise ValueError(f"{type(model).__name__} has no `blocks` list; analyse a ViT with transformer blocks")
    captured: dict[str, Any] = {"blocks": []}

    def keep_input(module: nn.Module, args: tuple[Any, ...]) -> None:
        captured["inputs"] = args[0]

    def keep_output(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        captured["blocks"].append(output[0] if isinstance(output, tuple) else output)

    handles = [blocks[0].register_forward_pre_hook(keep_input)]
    handles += [block.register_forward_hook(keep_output) for block in blocks]
    try:
        output = cast(Callable[[Tensor], Tensor], model.forward_features)(images)
    finally:
        for handle in handles:
            handle.remove()
    return BlockFeatures(inputs=captured["inputs"], blocks=captured["blocks"], output=output)


def reduce_tokens(features: Tensor, tokens: TokenReduction) -> Tensor:
    """(B, N, D) -> one row per image: all tokens concatenated (B, N·D) or their mean (B, D)."""
    if tokens == "flatten":
        return features.flatten(1)
    if tokens == "mean":
        return features.mean(dim=1)
    raise ValueError(f"tokens={tokens!r}: use one of {', '.join(TOKEN_REDUCTIONS)}")


@dataclass(frozen=True)
class FeatureEvolution:
    """Per batch (rows) and block (columns): ``to_output`` CKA(f_k, f_out) and ``normalised``
    F_k = CKA(f_k, f_out) / CKA(f_in, f_out); ``input_to_output`` CKA(f_in, f_out) per batch."""

    to_output: Tensor
    normalised: Tensor
    input_to_output: Tensor
    tokens: TokenReduction
    images_per_batch: int

    def to_frame(self) -> pd.DataFrame:
        """One row per block: means and standard deviations over the batches."""
        batches = self.normalised.shape[0]
        spread = self.normalised.std(dim=0) if batches > 1 else torch.zeros(self.normalised.shape[1])
        return pd.DataFrame(
            {
                "block": range(self.normalised.shape[1]),
                "f_norm": self.normalised.mean(dim=0).tolist(),
                "f_norm_std": spread.tolist(),
                "cka_to_output": self.to_output.mean(dim=0).tolist(),
                "cka_input_to_output": float(self.input_to_output.mean()),
                "tokens": self.tokens,
                "batches": batches,
                "images_per_batch": self.images_per_batch,
            }
        )


def feature_evolution(
    model: nn.Module, batches: Iterable[Tensor], *, tokens: TokenReduction = "flatten"
) -> FeatureEvolution:
    """The Refiner paper's normalised feature-evolution curve, one CKA per batch of images.

    Each image is one example of the CKA; by default its features are all its tokens concatenated
    (class token included), so token positions count, as in the paper's comparison of whole token
    representations; ``tokens="mean"`` averages them instead. f_out is the output of the final norm
    (``BlockFeatures``), so F at the last block is close to, not exactly, 1/CKA(f_in, f_out).

    Raises:
        ValueError: no batches, or a batch whose CKA is undefined (fewer than 3 images, constant features).
    """
    to_output, input_to_output, sizes = [], [], set()
    for images in batches:
        features = block_features(model, images)
        out = reduce_tokens(features.output, tokens)
        try:
            to_output.append([linear_cka(reduce_tokens(f, tokens), out) for f in features.blocks])
            input_to_output.append(linear_cka(reduce_tokens(features.inputs, tokens), out))
        except CkaError as error:
            raise CkaError(f"batch {len(input_to_output)}: {error}") from None
        sizes.add(len(images))
    if not to_output:
        raise ValueError("no batches of images to compute CKA on; use more images or a smaller batch size")
    similarity = torch.tensor(to_output, dtype=torch.float64)
    baseline = torch.tensor(input_to_output, dtype=torch.float64)
    return FeatureEvolution(
        to_output=similarity,
        normalised=similarity / baseline[:, None],
        input_to_output=baseline,
        tokens=tokens,
        images_per_batch=min(sizes),
    )
