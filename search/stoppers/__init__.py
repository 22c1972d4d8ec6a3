"""Early stopping of multi-objective trials (dominance, MO-ASHA, pause and resume) and Optuna's
pruners for single-objective ones.

``_dominance`` and ``_rules`` hold the rules, ``_factory`` picks the launch's.
"""

from refiner_nas.search.stoppers._dominance import DominanceEarlyStop
from refiner_nas.search.stoppers._factory import launch_stopper, make_pruner, make_stopper, promotion_rule
from refiner_nas.search.stoppers._rules import (
    RESUME_OF,
    DominanceStopper,
    EarlyStoppedTrial,
    EarlyStopper,
    MultiObjectiveASHA,
    PausedTrial,
    RungPromotion,
    crowding_distance,
    is_promoted,
    promotion_order,
)

__all__ = [
    "DominanceEarlyStop",
    "DominanceStopper",
    "EarlyStoppedTrial",
    "EarlyStopper",
    "MultiObjectiveASHA",
    "PausedTrial",
    "RESUME_OF",
    "RungPromotion",
    "crowding_distance",
    "is_promoted",
    "launch_stopper",
    "make_pruner",
    "make_stopper",
    "promotion_order",
    "promotion_rule",
]
