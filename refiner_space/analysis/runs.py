"""The three analyses end to end: resolve the models, load the images, compute, write a CSV and figures.

Each function returns what it wrote and the table in its CSV; the CLI (``refiner_nas.cli.analyze``)
is a thin shell over them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from refiner_nas.refiner_space.analysis.density import attention_density
from refiner_nas.refiner_space.analysis.features import TokenReduction, feature_evolution
from refiner_nas.refiner_space.analysis.images import chosen_images, load_images, random_batches
from refiner_nas.refiner_space.analysis.maps import maps_frame, parse_query, query_attention
from refiner_nas.refiner_space.analysis.plots import plot_density, plot_feature_evolution, plot_query_attention
from refiner_nas.refiner_space.analysis.sources import ModelSource, load_sources
from refiner_nas.refiner_space.data import DataBundle
from refiner_nas.refiner_space.training import resolve_device


@dataclass(frozen=True, kw_only=True)
class AnalysisInputs:
    """What every analysis reads: models (names, configuration files or checkpoints, with one
    ``configs`` entry per checkpoint or one for all), the dataset, the image size (None: see
    ``refiner_nas.refiner_space.analysis.sources.default_img_size``), the seed of random initialisation and of
    the image order, and the device (``auto``: CUDA when available).

    Images come from the held-out split given by ``val_fraction`` and ``split_seed``: keep the training
    run's values (the search's defaults are 0.1 and 0) so a checkpoint is analysed on images it never saw.

    Raises:
        ValueError: an unknown or unavailable device.
    """

    models: Sequence[str]
    configs: Sequence[str] = ()
    data: str = "digits"
    img_size: int | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    seed: int = 0
    device: str = "auto"
    _bundles: dict[tuple[int, int], DataBundle] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.torch_device()

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def sources(self) -> list[ModelSource]:
        sources = load_sources(self.models, configs=self.configs, img_size=self.img_size, seed=self.seed)
        for source in sources:
            source.model.to(self.torch_device())
        return sources

    def images_for(self, source: ModelSource) -> DataBundle:
        """The dataset at the model's input size (loaded once per size)."""
        size = source.model.config.img_hw
        if size not in self._bundles:
            self._bundles[size] = load_images(
                self.data, img_size=size, val_fraction=self.val_fraction, split_seed=self.split_seed
            )
        return self._bundles[size]

    def random_batches_for(self, source: ModelSource, *, batch_size: int, batches: int) -> Iterator[torch.Tensor]:
        """The same seeded random validation batches for every model, at its size and channels."""
        return random_batches(
            self.images_for(source),
            batch_size=batch_size,
            batches=batches,
            seed=self.seed,
            in_chans=source.model.config.in_chans,
            device=self.torch_device(),
        )


@dataclass(frozen=True)
class AnalysisReport:
    """The files an analysis wrote (the CSV first) and the table the CSV holds."""

    paths: list[Path]
    table: pd.DataFrame

    def models(self) -> pd.DataFrame:
        """One row per analysed model: its label, weights and image size."""
        return self.table[["model", "weights", "img_size"]].drop_duplicates(ignore_index=True)


def _outputs(out: Path, names: Sequence[str], force: bool) -> list[Path]:
    """Paths in ``out``, refusing to overwrite existing files unless ``force``; creates nothing yet."""
    paths = [out / name for name in names]
    existing = [str(path) for path in paths if path.exists()]
    if existing and not force:
        raise ValueError(f"{existing[0]} exists; pass --force to overwrite or choose another --out")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; choose a directory")
    return paths


def _make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create output directory {out} ({error.strerror}); choose another --out") from None


def _describe(source: ModelSource) -> dict[str, object]:
    config = source.model.config
    return {
        "model": source.label,
        "weights": "random" if source.weights is None else str(source.weights),
        "attention": config.attention,
        "context_broadcast": config.context_broadcast,
        "img_size": "x".join(map(str, config.img_hw)),
    }


def _with_source(table: pd.DataFrame, source: ModelSource) -> pd.DataFrame:
    described = pd.DataFrame([_describe(source)] * len(table), index=table.index)
    return pd.concat([described, table], axis=1)


def analyze_cka(
    inputs: AnalysisInputs,
    *,
    out: Path,
    batch_size: int = 16,
    batches: int = 4,
    tokens: TokenReduction = "flatten",
    force: bool = False,
) -> AnalysisReport:
    """Feature evolution of every model on the same random batches: ``cka.csv`` and ``cka.png``."""
    csv_path, png_path = _outputs(out, ["cka.csv", "cka.png"], force)
    sources = inputs.sources()
    curves: dict[str, pd.DataFrame] = {}
    for source in sources:
        images = inputs.random_batches_for(source, batch_size=batch_size, batches=batches)
        curves[source.label] = feature_evolution(source.model, images, tokens=tokens).to_frame()
    table = pd.concat([_with_source(curves[s.label], s) for s in sources], ignore_index=True)
    _make_dir(out)
    table.to_csv(csv_path, index=False)
    plot_feature_evolution(curves, png_path)
    return AnalysisReport([csv_path, png_path], table)


def analyze_density(
    inputs: AnalysisInputs, *, out: Path, batch_size: int = 8, batches: int = 2, force: bool = False
) -> AnalysisReport:
    """Attention density per block of every model on the same random batches: ``density.csv`` and
    ``density.png``."""
    csv_path, png_path = _outputs(out, ["density.csv", "density.png"], force)
    sources = inputs.sources()
    tables: dict[str, pd.DataFrame] = {}
    for source in sources:
        images = inputs.random_batches_for(source, batch_size=batch_size, batches=batches)
        tables[source.label] = attention_density(source.model, images).to_frame()
    table = pd.concat([_with_source(tables[s.label], s) for s in sources], ignore_index=True)
    _make_dir(out)
    table.to_csv(csv_path, index=False)
    plot_density(tables, png_path)
    return AnalysisReport([csv_path, png_path], table)


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def analyze_attention(
    inputs: AnalysisInputs,
    *,
    out: Path,
    images: Sequence[int] = (0,),
    queries: Sequence[str] = ("cls",),
    blocks: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    force: bool = False,
) -> AnalysisReport:
    """Query attention maps before and after refinement: one PNG per model, image and query, and
    ``attention.csv`` with every plotted weight. Everything is computed before any file is written."""
    images = list(dict.fromkeys(images))
    device = inputs.torch_device()
    computed = []
    for source in inputs.sources():
        model = source.model
        tokens = list(dict.fromkeys(parse_query(text, model) for text in queries))
        batch = chosen_images(inputs.images_for(source), images, in_chans=model.config.in_chans, device=device)
        results = query_attention(model, batch, image_ids=images, queries=tokens, blocks=blocks, heads=heads)
        computed.append((source, batch, results))
    names = [
        f"attention_{_file_part(source.label)}_img{result.image}_q{result.query}.png"
        for source, _, results in computed
        for result in results
    ]
    csv_path, *png_paths = _outputs(out, ["attention.csv", *names], force)
    _make_dir(out)
    pictures, tables = iter(png_paths), []
    for source, batch, results in computed:
        for result in results:
            plot_query_attention(
                result,
                batch[images.index(result.image)],
                patch_size=source.model.config.patch_size,
                title=f"{source.label}: image {result.image}, query token {result.query}",
                path=next(pictures),
            )
        tables.append(_with_source(maps_frame(results), source))
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(csv_path, index=False)
    return AnalysisReport([csv_path, *png_paths], table)
