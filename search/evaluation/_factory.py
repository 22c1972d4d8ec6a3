"""The evaluator a launch's trials use: real training, or a benchmark table's replay."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from refiner_nas.refiner_space import ModelConfig
from refiner_nas.refiner_space.data import DataBundle, load_data
from refiner_nas.refiner_space.training import resolve_device
from refiner_nas.search.evaluation._evaluator import ArchitectureEvaluator
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace


def data_loader(settings: SearchSettings) -> Callable[[int | tuple[int, int]], DataBundle]:
    """Loads the dataset once per image size for this process."""

    @cache
    def load(img_size: int | tuple[int, int]) -> DataBundle:
        return load_data(
            settings.dataset,
            img_size=img_size,
            val_fraction=settings.val_fraction,
            split_seed=settings.seed,
            crop_ratio=settings.crop_ratio,
        )

    # YAML gives sizes as lists; the cache needs them hashable.
    return lambda img_size: load(tuple(img_size) if isinstance(img_size, list) else img_size)


def make_evaluator(settings: SearchSettings, space: SearchSpace) -> ArchitectureEvaluator:
    if settings.table is not None:  # the simulated backend: curves come from a benchmark table
        from refiner_nas.search.evaluation._table import table_evaluator

        return table_evaluator(settings, space)
    from refiner_nas.refiner_space.costs import count_costs

    device = str(resolve_device(settings.device))  # 'auto' becomes the device trials train on

    def measure_speed(config: ModelConfig) -> tuple[float, float]:
        from refiner_nas.refiner_space.costs.speed import measure_config_speed

        return measure_config_speed(config, device=device)

    return ArchitectureEvaluator(
        settings=settings,
        space=space,
        load_data=data_loader(settings),
        count_costs=count_costs,
        measure_speed=measure_speed,
    )
