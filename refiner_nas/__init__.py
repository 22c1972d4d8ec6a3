"""refiner-nas: architecture search and benchmarking for vision transformers with refined self-attention.

The distribution installs this one import name. Its packages are the repository's top-level folders,
mapped under it by ``pyproject.toml`` (``[tool.setuptools] package-dir``):

- ``refiner_nas.refiner_space``: the Refined-ViT model family, its cost counter, data and training loop;
- ``refiner_nas.search``: searches over that family (samplers, stoppers, storages, studies, runners);
- ``refiner_nas.results``: leaderboards, Pareto fronts, export and full training;
- ``refiner_nas.benchmarks``: speed, cost and search-strategy benchmarks;
- ``refiner_nas.cli``: the ``refiner-nas`` command line; ``refiner_nas.api``: the same as functions.
"""

from __future__ import annotations

from pkgutil import extend_path

# A ``refiner_nas`` folder that shadows the installed one (a checkout's, on ``sys.path`` first) still finds
# the mapped packages of the installation.
__path__ = extend_path(__path__, __name__)


def __getattr__(name: str) -> str:
    # ``__version__`` on demand: importing importlib.metadata takes tens of milliseconds, before the command
    # line's entry point can catch Ctrl-C.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("refiner-nas")
    except PackageNotFoundError:  # imported from a checkout that was never installed
        return "0+unknown"
