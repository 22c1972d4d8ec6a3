"""``python -m refiner_nas``: the ``refiner-nas`` command line."""

from refiner_nas.cli import main

main()
