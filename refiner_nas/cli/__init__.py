"""The ``refiner-nas`` command line, every command a thin shell over a library function.

``_app`` is the root with its sub-apps side by side: ``search`` (launch, status, list, delete, plot,
resume, worker), ``leaderboard`` and the ``pareto``/``export``/``train`` commands (``results``), ``analyze``,
``bench`` (with ``bench table``, ``bench_table``) and ``models``. ``_errors`` turns input errors into one
``error:`` line; ``_tables`` prints rows fitted to the terminal.
"""

from refiner_nas.cli._app import app, main

__all__ = ["app", "main"]
