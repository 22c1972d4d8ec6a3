"""Everything a search launch is told, validated once at the boundary."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from refiner_nas.search.objectives import Objective, format_objectives, parse_objectives

if TYPE_CHECKING:
    from refiner_nas.refiner_space.training import TrainSettings

Sampler = Literal["auto", "tpe", "nsga2", "random", "grid", "gp", "ehvi"]
Pruner = Literal["median", "hyperband", "none"]
Stopper = Literal["dominance", "mo_asha", "promote"]  # how multi-objective trials stop early (search.stoppers)
Proxy = Literal["synflow", "naswot", "grad_norm", "params"]  # what pre-screening ranks candidates by
# The options a proxy result depends on: results are comparable (and reusable) only when they agree.
_PROXY_RECIPE_FIELDS = {"dataset", "epochs", "batch_size", "lr", "warmup_epochs", "label_smoothing", "mixup", "cutmix",
                  "val_fraction", "crop_ratio", "seed"}


def refuse_concurrent_sqlite(storage: str | None, workers: int) -> None:
    """SQLite locks the whole database on each write: several workers fail each other's trials.

    Raises:
        ValueError: ``workers`` > 1 on a SQLite storage.
    """
    if workers > 1 and storage is not None and storage.startswith("sqlite"):
        raise ValueError(
            f"--storage {storage}: SQLite does not take several workers (--workers {workers}); use the default "
            "journal file (leave out --storage) or postgresql://user:password@host/db"
        )


class SearchSettings(BaseModel):
    """A launch's options; the defaults are the quick start's search (tiny space, digits, CPU or GPU)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    space: str = "tiny"
    objectives: str = "top1:max,params:min"
    trials: int = Field(default=16, ge=1)
    epochs: int = Field(default=5, ge=1)
    dataset: str = "digits"
    storage: str | None = None
    study: str | None = None
    run_dir: Path = Path("runs")
    workers: int = Field(default=1, ge=0)  # 0: create (or check) the study and run no trial
    sampler: Sampler = "auto"
    pruner: Pruner = "median"
    # None (auto): on where the sampler resolves to EHVI on several objectives (search.strategy.resolve_early_stop),
    # where pausing and resuming measured its win on the shipped table (docs/benchmarks.md#search-strategies).
    early_stop: bool | None = None
    stopper: Stopper = "promote"
    # Candidates scored by `proxy` before each trial (refiner_nas.search.samplers); 0: the sampler's draw is trained.
    prescreen: int = Field(default=0, ge=0)
    proxy: Proxy = "naswot"
    seed: int = 0
    device: str = "auto"
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=5e-3, gt=0, allow_inf_nan=False)
    warmup_epochs: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    mixup: float = Field(default=0.0, ge=0)
    cutmix: float = Field(default=0.0, ge=0)
    val_fraction: float = Field(default=0.2, gt=0, lt=1)
    crop_ratio: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    heartbeat_s: int = Field(default=20, ge=1)
    table: Path | None = None  # a benchmark table to read curves from instead of training (search.tabular)

    @field_validator("objectives")
    @classmethod
    def _canonical_objectives(cls, text: str) -> str:
        return format_objectives(parse_objectives(text))

    @property
    def objective_list(self) -> list[Objective]:
        return parse_objectives(self.objectives)

    @property
    def study_name(self) -> str:
        return self.study or Path(self.space).stem

    @property
    def study_dir(self) -> Path:
        return self.run_dir / self.study_name

    @model_validator(mode="after")
    def _no_concurrent_sqlite(self) -> SearchSettings:
        refuse_concurrent_sqlite(self.storage, self.workers)
        return self

    @model_validator(mode="after")
    def _prescreen_needs_a_proposing_sampler(self) -> SearchSettings:
        if self.prescreen and self.sampler == "grid":
            raise ValueError(f"prescreen={self.prescreen} cannot pick for the grid sampler, which walks every "
                             "point itself; use --prescreen 0 or another --sampler")
        return self

    @model_validator(mode="after")
    def _warmup_within_epochs(self) -> SearchSettings:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs={self.warmup_epochs} must be below epochs={self.epochs}; "
                "lower --warmup-epochs or train more epochs"
            )
        return self

    def with_absolute_paths(self) -> SearchSettings:
        """A copy whose run folder, space file and dataset folder do not depend on the working directory."""
        from refiner_nas.refiner_space.data import DataSpec

        spec = DataSpec.parse(self.dataset)
        dataset = self.dataset if spec.path is None else f"{spec.kind}:{spec.path.resolve()}"
        space = str(Path(self.space).resolve()) if Path(self.space).exists() else self.space
        table = None if self.table is None else self.table.resolve()
        return self.model_copy(update={"run_dir": self.run_dir.resolve(), "space": space, "dataset": dataset,
                                       "table": table})

    def train_settings(self) -> TrainSettings:
        """The proxy-training recipe of every trial."""
        from refiner_nas.refiner_space.training import TrainSettings

        return TrainSettings(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            warmup_epochs=self.warmup_epochs,
            label_smoothing=self.label_smoothing,
            mixup=self.mixup,
            cutmix=self.cutmix,
            seed=self.seed,
            device=self.device,
        )

    def proxy_recipe(self) -> dict[str, Any]:
        """What a proxy result depends on besides the architecture: data, schedule and recipe (recorded as
        each trial's ``budget`` field, its name in files since 0.1; the cost limits are ``space.Budget``)."""
        return self.model_dump(include=_PROXY_RECIPE_FIELDS)

    def proxy_recipe_key(self) -> str:
        """A short hash of ``proxy_recipe`` (the record field ``budget_key``): equal keys mean
        comparable proxy results."""
        canonical = json.dumps(self.proxy_recipe(), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]
