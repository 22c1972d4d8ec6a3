"""The Python API: everything the ``refiner-nas`` commands do, as the library functions they call.

Searching (``search launch|status|list|delete|plot``)::

    SearchSettings(...)            options of a launch, validated (the CLI's defaults)
    plan_launch(settings)          what a launch will cost, without writing (``--dry-run``)
    launch(settings)               run or resume the search; returns the Optuna study
    load_study(name, ...)          an existing study, read only
    study_status(study)            trials by state and record status, the best, the front's size
    study_front(study)             the study's Pareto front as a DataFrame
    list_studies(run_dir)          the studies under a run folder or in a storage
    delete_study(name, ...)        delete a study (its run folder for the default journal)
    write_study_plots(study, out)  optimisation history and parameter importance pages

Results (``leaderboard``, ``pareto``, ``export``, ``train``)::

    collect(run_dir=..., results_dir=...)     trials of studies into the leaderboard file
    load_leaderboard(results_dir)             the stored rows
    result_rows(frame)                        without over-budget, duplicate and resumed paused trials
    leaderboard_table(frame, ...)             selected, sorted, with the paper's Table 7
    parse_front_objectives("top1:max,params:min")   objectives over leaderboard columns
    leaderboard_front(frame, objectives)      Pareto front across studies, with its hypervolume
    export_top_k(frame, objectives, k=, out_dir=)   YAML files for full training
    run_full_training(config_file, data=, output=)  train an exported configuration with a recipe

Costs (``models``, ``bench``): ``count_costs(config)``.
"""

from __future__ import annotations

from refiner_nas.refiner_space.costs import count_costs
from refiner_nas.results.collect import collect
from refiner_nas.results.export import export_top_k
from refiner_nas.results.leaderboard import leaderboard_table, result_rows
from refiner_nas.results.pareto import leaderboard_front, parse_front_objectives
from refiner_nas.results.store import load_leaderboard
from refiner_nas.results.train import run_full_training
from refiner_nas.search.runner import launch, plan_launch
from refiner_nas.search.settings import SearchSettings
from refiner_nas.search.study import (
    delete_study,
    list_studies,
    load_study,
    study_front,
    study_status,
    write_study_plots,
)

__all__ = [
    "SearchSettings", "collect", "count_costs", "delete_study", "export_top_k", "launch", "leaderboard_front",
    "leaderboard_table", "list_studies", "load_leaderboard", "load_study", "parse_front_objectives", "plan_launch",
    "result_rows", "run_full_training", "study_front", "study_status", "write_study_plots",
]
