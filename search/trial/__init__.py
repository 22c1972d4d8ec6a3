"""One search trial, from the sampled architecture to its record (``_runner``).
"""

from refiner_nas.search.trial._runner import (
    INTERRUPTED,
    DuplicateOfFailedTrial,
    DuplicateOfRunningTrial,
    OptunaSink,
    OverBudgetTrial,
    TrialRunner,
)

__all__ = [
    "DuplicateOfFailedTrial",
    "DuplicateOfRunningTrial",
    "INTERRUPTED",
    "OptunaSink",
    "OverBudgetTrial",
    "TrialRunner",
]
