"""Full-training recipes, kept as data: the paper's Table 8 "standard" and "advanced" ones and the
released code's (docs/models.md#the-released-code-variant), and how a recipe becomes the training loop's settings.

Where each number comes from is written next to it. The learning rate scales linearly with a batch
size the user gives (``base_lr`` at ``reference_batch``), as DeiT does.

The recipes were written for ImageNet's 1.28 M images. On a small dataset their batch would leave an
epoch a handful of updates (digits: 1 update of 1,024 images), and the run would end at chance; so
``scale_to_data`` caps the batch to keep ``MIN_UPDATES_PER_EPOCH``, and keeps the recipe's peak
learning rate, since scaling it down with the batch measured at chance as well (docs/results.md#full-training).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from refiner_nas.refiner_space.training import TrainSettings

# Fewest optimiser updates per epoch a recipe's batch may leave (digits: a batch of 16 of 1,618 images).
MIN_UPDATES_PER_EPOCH = 100


@dataclass(frozen=True)
class DataScaling:
    """How a recipe was fitted to a dataset of ``train_images``: the batch and learning rate used, and
    a sentence per change (empty when the recipe fits as it is)."""

    train_images: int
    batch_size: int
    lr: float
    changes: tuple[str, ...]


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the recipe, the field and the fix."""


class TokenLabeling(BaseModel):
    """LV-ViT's token labelling: dense per-token targets from a machine annotator, mixed by MixToken."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dense_weight: float = Field(ge=0)
    label_size: int = Field(ge=1)
    mix_token: bool = True


class Recipe(BaseModel):
    """One full-training recipe. Augmentations the training loop cannot apply are listed by
    ``unsupported`` and reported by ``refiner-nas train``; they stay here so a recipe is complete."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    optimizer: str = "adamw"
    base_lr: float = Field(gt=0)
    reference_batch: int = Field(default=512, ge=1)
    batch_size: int = Field(ge=1)
    weight_decay: float = Field(ge=0)
    epochs: int = Field(ge=1)
    schedule: str = "cosine"
    warmup_epochs: float = Field(ge=0)
    warmup_lr: float = Field(ge=0)
    min_lr: float = Field(ge=0)
    mixup: float = Field(ge=0)
    cutmix: float = Field(ge=0)
    label_smoothing: float = Field(ge=0, lt=1)
    rand_augment: str | None = None
    random_erasing: float = Field(default=0.0, ge=0, le=1)
    drop_path: float = Field(ge=0, lt=1)
    drop_path_by_model: dict[str, float] = {}
    ema_decay: float | None = Field(default=None, gt=0, lt=1)
    clip_grad: float | None = Field(default=None, gt=0)
    token_labeling: TokenLabeling | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """Validate a recipe read from a file.

        Raises:
            RecipeError: naming the recipe, the first bad field and what is wrong with it.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "recipe"
            raise RecipeError(
                f"recipe {data.get('name', '?')!r}: {field}: {first['msg']}; fix it in the configuration file"
            ) from None

    def lr_for(self, batch_size: int) -> float:
        """The peak learning rate at ``batch_size`` (linear scaling)."""
        return self.base_lr * batch_size / self.reference_batch

    def drop_path_for(self, model_name: str | None) -> float:
        return self.drop_path_by_model.get(model_name or "", self.drop_path)

    def unsupported(self) -> list[str]:
        """What this recipe asks for that ``refiner_nas.refiner_space.training.train_model`` and
        ``refiner_nas.refiner_space.data.load_data``
        do not apply (reported to the user instead of silently dropped)."""
        missing = []
        if self.rand_augment:
            missing.append(f"RandAugment {self.rand_augment}")
        if self.random_erasing:
            missing.append(f"random erasing {self.random_erasing}")
        if self.token_labeling is not None:
            missing.append("token labelling (needs dense label maps)")
        if self.schedule != "cosine":
            missing.append(f"schedule {self.schedule} (the loop is cosine only)")
        return missing

    def scale_to_data(
        self, train_images: int, *, batch_size: int | None = None, lr: float | None = None
    ) -> DataScaling:
        """The batch and peak learning rate for ``train_images``: a given ``batch_size`` is kept (the lr
        scales linearly with it); else the recipe's batch, capped (even, for mixup) so that an epoch holds
        ``MIN_UPDATES_PER_EPOCH`` updates, at the recipe's own peak lr. A given ``lr`` always wins."""
        if batch_size is not None:
            return DataScaling(train_images, batch_size, lr or self.lr_for(batch_size), ())
        fitting = max(2, train_images // MIN_UPDATES_PER_EPOCH // 2 * 2)
        peak = lr or self.lr_for(self.batch_size)
        if fitting >= self.batch_size:
            return DataScaling(train_images, self.batch_size, peak, ())
        change = (
            f"batch {self.batch_size} -> {fitting}: {train_images} training images make "
            f"{train_images // self.batch_size} update(s) per epoch at {self.batch_size}, "
            f"{train_images // fitting} at {fitting} (at least {MIN_UPDATES_PER_EPOCH} wanted)"
        )
        if lr is None:
            change += (f"; peak lr kept at the recipe's {peak:.3g} (scaled with the batch it would be "
                       f"{self.lr_for(fitting):.2g}, too small to learn in a short run)")
        return DataScaling(train_images, fitting, peak, (change,))

    def train_settings(
        self,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        seed: int = 0,
        device: str = "auto",
        checkpoint_dir: Path | None = None,
        resume: bool = False,
        amp: bool = True,
    ) -> TrainSettings:
        """The loop's settings for this recipe. A shorter ``epochs`` keeps the warm-up's share of the
        schedule; another ``batch_size`` rescales the learning rate, unless ``lr`` sets the peak itself.

        Raises:
            ValueError: settings the loop rejects (e.g. an odd batch with mixup), naming the field.
        """
        epochs = epochs or self.epochs
        batch_size = batch_size or self.batch_size
        return TrainSettings(
            epochs=epochs,
            batch_size=batch_size,
            optimizer=self.optimizer,
            lr=lr or self.lr_for(batch_size),
            weight_decay=self.weight_decay,
            warmup_epochs=self.warmup_epochs * epochs / self.epochs,
            warmup_lr=self.warmup_lr,
            min_lr=self.min_lr,
            label_smoothing=self.label_smoothing,
            mixup=self.mixup,
            cutmix=self.cutmix,
            clip_grad=self.clip_grad,
            ema_decay=self.ema_decay,
            amp=amp,
            seed=seed,
            device=device,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
        )


RECIPES: dict[str, Recipe] = {
    # The paper's Table 8 "standard" recipe, which is DeiT's (Touvron et al. 2021, Table 9 and the
    # defaults of facebookresearch/deit main.py): the values named in the project issue, plus batch
    # 1024, warm-up from 1e-6, floor 1e-5 and EMA 0.99996 (DeiT main.py defaults).
    "standard": Recipe(
        name="standard",
        description="Refiner paper Table 8 'standard' (DeiT): AdamW, cosine, mixup/cutmix, RandAugment, erasing",
        base_lr=5e-4, reference_batch=512, batch_size=1024,  # lr 5e-4 x batch/512 (DeiT)
        weight_decay=0.05, epochs=300, warmup_epochs=5,
        warmup_lr=1e-6, min_lr=1e-5,  # DeiT main.py --warmup-lr, --min-lr
        mixup=0.8, cutmix=1.0, label_smoothing=0.1,
        rand_augment="rand-m9-mstd0.5-inc1",  # RandAugment magnitude 9 (DeiT main.py --aa)
        random_erasing=0.25, drop_path=0.1,
        ema_decay=0.99996,  # DeiT main.py --model-ema-decay
    ),
    # Table 8 "advanced": LV-ViT's token-labelling recipe (Jiang et al. 2021, "All Tokens Matter"), as the
    # Refiner authors ran it. From zihangJiang/TokenLabeling main.py defaults: lr 1.6e-3, weight decay
    # 0.05, cosine, 5 warm-up epochs from 1e-6, floor 1e-5, RandAugment rand-m9-mstd0.5-inc1, erasing
    # 0.25, smoothing 0.1; its README trains on 8 GPUs x batch 128 = 1024 with that lr (no scaling in
    # the code), hence base_lr 1.6e-3 at reference batch 1024. From the released Refiner code's
    # scripts/refiner_s_relabel.yaml (zhoudaquan/Refiner_ViT): mixup 0.8, cutmix 1.0, MixToken, dense
    # (token) loss weight 0.5 on a 14x14 label map, drop path 0.2 (S) / 0.25 (M), EMA 0.99996.
    "advanced": Recipe(
        name="advanced",
        description="Refiner paper Table 8 'advanced' (LV-ViT token labelling with MixToken)",
        base_lr=1.6e-3, reference_batch=1024, batch_size=1024,
        weight_decay=0.05, epochs=300, warmup_epochs=5, warmup_lr=1e-6, min_lr=1e-5,
        mixup=0.8, cutmix=1.0, label_smoothing=0.1,
        rand_augment="rand-m9-mstd0.5-inc1", random_erasing=0.25,
        drop_path=0.2, drop_path_by_model={"refined_vit_m": 0.25},
        ema_decay=0.99996,
        token_labeling=TokenLabeling(dense_weight=0.5, label_size=14, mix_token=True),
    ),
    # docs/models.md#the-released-code-variant's released recipe (lr 5e-4 at batch 512, drop path 0.1 for S, 0.2 for M
    # and L); warm-up
    # from 1e-6, floor 1e-5 and EMA 0.99996 from the released scripts/refiner_{s,l}.yaml.
    "released": Recipe(
        name="released",
        description="the released Refiner code's recipe (docs/models.md#the-released-code-variant)",
        base_lr=5e-4, reference_batch=512, batch_size=512,
        weight_decay=0.05, epochs=300, warmup_epochs=5, warmup_lr=1e-6, min_lr=1e-5,
        mixup=0.8, cutmix=1.0, label_smoothing=0.1,
        rand_augment="rand-m9-mstd0.5-inc1", random_erasing=0.25,
        drop_path=0.1, drop_path_by_model={"refined_vit_m": 0.2, "refined_vit_l": 0.2},
        ema_decay=0.99996,
    ),
}


def get_recipe(name: str, recipes: dict[str, Recipe] | None = None) -> Recipe:
    """The recipe called ``name`` from ``recipes`` (default: the built-in ones).

    Raises:
        RecipeError: no such recipe, listing those there are.
    """
    available = RECIPES if recipes is None else recipes
    if name not in available:
        raise RecipeError(f"unknown recipe {name!r}; choose from {', '.join(available)}")
    return available[name]
