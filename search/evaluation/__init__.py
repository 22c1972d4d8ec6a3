"""Evaluating one architecture: counted costs, the budget, proxy training (``_evaluator``), or a
benchmark table's replay (``_table``); ``_factory`` picks the launch's.
"""

from refiner_nas.search.evaluation._evaluator import ArchitectureEvaluator, RecordSink, TrainingState
from refiner_nas.search.evaluation._factory import data_loader, make_evaluator
from refiner_nas.search.evaluation._table import TableCosts, TableLookupError, TableTrainer, table_evaluator

__all__ = [
    "ArchitectureEvaluator",
    "RecordSink",
    "TableCosts",
    "TableLookupError",
    "TableTrainer",
    "TrainingState",
    "data_loader",
    "make_evaluator",
    "table_evaluator",
]
