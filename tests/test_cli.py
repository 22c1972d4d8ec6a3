from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from refiner_nas.cli import app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "models" in result.output


@pytest.mark.slow
def test_models_lists_every_registered_model_with_params_and_macs() -> None:
    from refiner_nas.refiner_space import NAMED_CONFIGS, named_config
    from refiner_nas.refiner_space.costs import count_costs

    result = runner.invoke(app, ["models", "--json", "--img-size", "64"])
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json.loads(result.output)}
    assert set(rows) == set(NAMED_CONFIGS)
    costs = count_costs(named_config("refined_vit_s", img_size=64))
    assert rows["refined_vit_s"]["params_m"] == round(costs.params / 1e6, 2)
    assert rows["refined_vit_s"]["macs_g"] == round(costs.macs / 1e9, 2)
    # Counted once, on disk: a second command reads them; its table is complete although not on a terminal.
    from refiner_nas.refiner_space.costs import user_cache_file

    cached = user_cache_file().read_text().splitlines()
    assert sum(":64x64:" in line for line in cached) >= len(NAMED_CONFIGS)
    table = runner.invoke(app, ["models", "--img-size", "64"])
    assert table.exit_code == 0 and "…" not in table.output
    for row in rows.values():
        assert any(row["model"] in line and f"{row['params_m']}" in line for line in table.output.splitlines())


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"refiner-nas {version('refiner-nas')}\n"


def test_bad_option_gives_one_error_line() -> None:
    result = runner.invoke(app, ["models", "--img-size", "100"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: img_size=100 is not a multiple of patch_size=16; choose an image size divisible by the patch size"
    ]
