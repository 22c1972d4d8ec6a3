"""The distribution installs one import name, ``refiner_nas``, built or editable, and folders named like
the repository's in a user's working directory change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DECOYS = ("search", "results", "benchmarks", "refiner_space", "cli")
# Imports every package's public surface and loads data files that travel in the package.
PROBE = """
import json, refiner_nas, refiner_nas.api, refiner_nas.cli
import refiner_nas.search.runner, refiner_nas.search.samplers, refiner_nas.search.storages
import refiner_nas.results.leaderboard, refiner_nas.benchmarks.regress, refiner_nas.refiner_space.costs
from refiner_nas.search.space import SearchSpace
from refiner_nas.search.tabular import SHIPPED_TABLE, read_table
from refiner_nas.benchmarks.regress import baseline_dir
print(json.dumps({
    "files": [m.__file__ for m in (refiner_nas.search.runner, refiner_nas.results.leaderboard,
                                   refiner_nas.benchmarks.regress, refiner_nas.cli, refiner_nas.api)],
    "space": str(SearchSpace.load("tiny").source),
    "table_rows": len(read_table(SHIPPED_TABLE).rows),
    "baselines": sorted(p.name for p in baseline_dir().glob("*.json")),
}))
"""


def _decoy_folder(tmp_path: Path) -> Path:
    """A working directory holding packages named like the repository's folders, each of which fails
    loudly if anything imports it."""
    cwd = tmp_path / "user"
    for name in DECOYS:
        (cwd / name).mkdir(parents=True)
        (cwd / name / "__init__.py").write_text(f"raise ImportError('the decoy {name}/ was imported')\n")
    return cwd


def _probe(cwd: Path, *, pythonpath: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(ROOT)], check=True, capture_output=True)
    (built,) = out.glob("refiner_nas-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_one_top_level_name_and_its_data_files(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"refiner_nas", f"{wheel.name.split('-py3')[0]}.dist-info"}
    for data in ("refiner_nas/py.typed", "refiner_nas/search/spaces/tiny.yaml",
                 "refiner_nas/search/tabular/tabular_digits.parquet", "refiner_nas/results/baselines/costs.json",
                 "refiner_nas/results/reference/table7.csv"):
        assert data in names
    license_files = [name for name in names if name.endswith("/licenses/LICENSE")]
    assert license_files


@pytest.mark.slow
def test_the_installed_wheel_ignores_folders_named_like_its_packages(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    found = _probe(_decoy_folder(tmp_path), pythonpath=str(site))
    assert all(Path(file).is_relative_to(site) for file in found["files"])
    assert Path(found["space"]).is_relative_to(site)
    assert found["table_rows"] == 96  # 48 architectures x 2 seeds
    assert found["baselines"] == ["costs.json", "gpu.json", "speed.json"]


def test_the_editable_install_maps_the_repository_folders(tmp_path: Path) -> None:
    found = _probe(_decoy_folder(tmp_path))
    folders = [Path(file).relative_to(ROOT).parts[0] for file in found["files"]]
    assert folders == ["search", "results", "benchmarks", "refiner_nas", "refiner_nas"]
    assert Path(found["space"]) == ROOT / "search" / "spaces" / "tiny.yaml"


def test_a_checkout_on_the_path_first_still_finds_the_mapped_packages(tmp_path: Path) -> None:
    """Run from the repository root (its ``refiner_nas/`` folder first on ``sys.path``), the mapped
    packages still come from the installation (``pkgutil.extend_path`` in ``refiner_nas/__init__.py``)."""
    found = _probe(ROOT)
    assert [Path(file).relative_to(ROOT).parts[0] for file in found["files"]][:3] == ["search", "results",
                                                                                      "benchmarks"]


def test_a_mirror_of_the_checkout_imports_without_an_install(tmp_path: Path) -> None:
    """``python -m refiner_nas._checkout DIR`` (gpu_check.sh, the docs build): with DIR on the path and no
    site-packages at all, every package is found in the checkout's folders."""
    made = subprocess.run([sys.executable, "-S", "-m", "refiner_nas._checkout", str(tmp_path / "mirror")],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    mirror = Path(made.stdout.strip())
    probe = ("import importlib.util as u; print(*[u.find_spec(n).origin for n in ('refiner_nas.cli', "
             "'refiner_nas.search.space', 'refiner_nas.results.store', 'refiner_nas.benchmarks.regress', "
             "'refiner_nas.refiner_space')])")
    found = subprocess.run([sys.executable, "-S", "-c", probe], cwd=_decoy_folder(tmp_path),
                           env={"PYTHONPATH": str(mirror)}, capture_output=True, text=True, check=True)
    origins = [Path(origin).resolve().relative_to(ROOT).as_posix() for origin in found.stdout.split()]
    assert origins == ["refiner_nas/cli/__init__.py", "search/space/__init__.py", "results/store.py",
                       "benchmarks/regress.py", "refiner_space/__init__.py"]


def test_the_optional_dependencies_are_optional(tmp_path: Path) -> None:
    """Without Ray and psycopg (the ``ray`` and ``postgres`` extras), the commands a newcomer runs first
    work: every module is made unimportable in the process (``sys.modules[name] = None``)."""
    blocked = "import sys\nfor name in ('ray', 'psycopg', 'psycopg2'):\n    sys.modules[name] = None\n"
    run = blocked + ("from refiner_nas.cli import main\nsys.argv = ['refiner-nas', *sys.argv[1:]]\nmain()\n")
    env = {k: v for k, v in os.environ.items() if k != "REFINER_NAS_DEBUG"}
    for command in (["--help"], ["search", "launch", "--dry-run", "--trials", "2", "--epochs", "1",
                                 "--run-dir", str(tmp_path / "runs")], ["search", "list", "--run-dir", str(tmp_path)]):
        result = subprocess.run([sys.executable, "-c", run, *command], capture_output=True, text=True, cwd=tmp_path,
                                env=env)
        assert result.returncode == 0, f"{command}: {result.stderr[-800:]}"
    refused = subprocess.run([sys.executable, "-c", run, "search", "launch", "--backend", "ray", "--trials", "1",
                              "--run-dir", str(tmp_path / "runs")], capture_output=True, text=True, cwd=tmp_path,
                             env=env)
    last = refused.stderr.strip().splitlines()[-1]
    assert refused.returncode == 2 and last == "error: the Ray backend needs Ray Tune: pip install 'refiner-nas[ray]'"
