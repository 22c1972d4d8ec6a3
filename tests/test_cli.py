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


def test_debug_shows_the_traceback_behind_the_one_line_error(tmp_path, monkeypatch) -> None:
    """A real process each time: without ``--debug`` one ``error:`` line and exit 2; with it (or
    ``REFINER_NAS_DEBUG=1``) the exception's traceback, naming the library function that raised."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "refiner_nas", "search", "status", "--study", "nope", "--run-dir", str(tmp_path)]
    monkeypatch.delenv("REFINER_NAS_DEBUG", raising=False)
    plain = subprocess.run(command, capture_output=True, text=True)
    assert plain.returncode == 2
    assert plain.stderr.strip().splitlines() == [
        f"error: --study 'nope': no such study under {tmp_path} (studies there: none); "
        "check --study, --storage and --run-dir"]
    debug = subprocess.run([*command[:3], "--debug", *command[3:]], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "require_study_storage" in debug.stderr and debug.stderr.strip().splitlines()[-1].startswith("KeyError")
    monkeypatch.setenv("REFINER_NAS_DEBUG", "1")
    assert "Traceback" in subprocess.run(command, capture_output=True, text=True).stderr
