"""A benchmark table as a launch sees it: the file read once per process, the space it was built from,
and launch settings with the table's training budget, so a launch on ``--backend table:FILE`` compares with
the table. The evaluator that replays its curves is ``refiner_nas.search.evaluation.table_evaluator``.
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.space import SearchSpace
from refiner_nas.search.tabular._schema import BenchmarkTable, read_table

# Budget fields a simulated launch may set freely: the sampler's seed does not change the table.
FREE_BUDGET_FIELDS = {"seed"}


@cache
def cached_table(path: str) -> BenchmarkTable:
    """A table file read once per process."""
    return read_table(path)


def write_space(table: BenchmarkTable, folder: str | Path) -> Path:
    """Write the space the table was built from (its YAML travels in the provenance) to ``folder``."""
    path = Path(folder) / f"{table.provenance['space']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table.provenance["space_yaml"])
    return path


def table_space(table: BenchmarkTable) -> SearchSpace:
    """The space the table was built from, read through the space loader (YAML 1.2, validated)."""
    with tempfile.TemporaryDirectory() as folder:
        return SearchSpace.from_yaml(write_space(table, folder))


def table_settings(table: BenchmarkTable, path: str | Path, **options: Any) -> SearchSettings:
    """Launch settings with the table's budget (data, epochs, recipe) reading curves from ``path``."""
    budget = {key: value for key, value in table.provenance["budget"].items() if key not in FREE_BUDGET_FIELDS}
    return SearchSettings(**{**budget, "device": "cpu", **options, "table": Path(path)})


def simulated_launch_settings(settings: SearchSettings, table_path: Path) -> SearchSettings:
    """A launch's settings turned simulated: the table's space (written to the study folder) and
    budget, the launch's own search options (objectives, trials, sampler, stopping, seed, storage)."""
    table = cached_table(str(table_path))
    budget = set(table.provenance["budget"]) - FREE_BUDGET_FIELDS
    options = {key: value for key, value in settings.model_dump().items() if key not in budget | {"table", "space"}}
    study_dir = settings.run_dir / (settings.study or table.provenance["space"])
    return table_settings(table, table_path, **options, space=str(write_space(table, study_dir)))
