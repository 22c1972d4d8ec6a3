"""The Refined-ViT model: one class for every configuration of the family, with timm's model interface."""

from __future__ import annotations

from typing import Any

import torch
from timm.layers import PatchEmbed, resample_abs_pos_embed, trunc_normal_
from torch import Tensor, nn

from refiner_nas.refiner_space.builders import build_block
from refiner_nas.refiner_space.config import ModelConfig
from refiner_nas.refiner_space.layers import Conv4Stem


class RefinedViT(nn.Module):
    """A vision transformer built from a ``ModelConfig``.

    Follows timm's interface: ``forward_features`` (embedding, blocks, final norm), ``forward_head`` and
    ``forward``. Loading a state dict whose position embedding was trained at another image size
    resamples it to this model's token grid.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.num_features = self.embed_dim = config.embed_dim
        self.num_prefix_tokens = int(config.class_token)
        if config.stem == "conv4":
            self.patch_embed: nn.Module = Conv4Stem(
                img_size=config.img_hw,
                patch_size=config.patch_size,
                in_chans=config.in_chans,
                embed_dim=config.embed_dim,
            )
        else:
            self.patch_embed = PatchEmbed(
                img_size=config.img_hw,
                patch_size=config.patch_size,
                in_chans=config.in_chans,
                embed_dim=config.embed_dim,
            )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim)) if config.class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_tokens, config.embed_dim))
        self.pos_drop = nn.Dropout(config.drop_rate)
        drop_paths = torch.linspace(0, config.drop_path_rate, config.depth).tolist()
        self.blocks = nn.ModuleList(build_block(config, i, drop_paths[i]) for i in range(config.depth))
        self.norm = nn.LayerNorm(config.embed_dim, eps=1e-6)
        self.head = self._new_head(config.num_classes)
        self.aux_head = self._new_head(config.num_classes) if config.aux_head else None
        self._init_weights()
        self.register_load_state_dict_pre_hook(_resample_pos_embed_on_load)

    def _new_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def _init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = self._new_head(num_classes)
        if self.aux_head is not None:
            self.aux_head = self._new_head(num_classes)

    def forward_features(self, images: Tensor) -> Tensor:
        x = self.patch_embed(images)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(x + self.pos_embed)
        attention_map = None
        for block in self.blocks:
            x, attention_map = block(x, attention_map)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Class-token (or mean-token) logits; with the aux head, plus 0.5 · the max of its token logits."""
        pooled = x[:, 0] if self.cls_token is not None else x.mean(dim=1)
        if pre_logits:
            return pooled
        logits = self.head(pooled)
        if self.aux_head is not None:
            logits = logits + 0.5 * self.aux_head(x[:, self.num_prefix_tokens :]).amax(dim=1)
        return logits

    def forward(self, images: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(images))


def _resample_pos_embed_on_load(
    module: RefinedViT, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
) -> None:
    key = prefix + "pos_embed"
    stored = state_dict.get(key)
    if stored is None or stored.shape == module.pos_embed.shape:
        return
    state_dict[key] = resample_abs_pos_embed(
        stored,
        new_size=list(module.config.token_grid),
        num_prefix_tokens=module.num_prefix_tokens,
    )


def build_model(config: ModelConfig | dict[str, Any]) -> RefinedViT:
    """Build any configuration of the family (a config object or a plain dict of its fields)."""
    if not isinstance(config, ModelConfig):
        config = ModelConfig.from_dict(config)
    return RefinedViT(config)
