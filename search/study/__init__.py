"""Studies: creating or resuming one (``_open``), listing and deleting them (``_catalog``), what one
holds (``_summary``, ``_index``) and Optuna's views of it (``_plots``, ``_dashboard``).
"""

from refiner_nas.search.study._catalog import (
    StudyEntry,
    delete_study,
    journal_studies,
    list_studies,
    load_study,
    require_study_storage,
)
from refiner_nas.search.study._dashboard import name_metrics
from refiner_nas.search.study._index import StudyIndex
from refiner_nas.search.study._open import (
    StudyMismatchError,
    check_resumable,
    create_or_resume_study,
    join_study,
    load_existing_study,
)
from refiner_nas.search.study._plots import StudyPlots, write_study_plots
from refiner_nas.search.study._summary import StudyStatus, objective_names, requeued_waiting, study_front, study_status

__all__ = [
    "StudyEntry",
    "StudyIndex",
    "StudyMismatchError",
    "StudyPlots",
    "StudyStatus",
    "check_resumable",
    "create_or_resume_study",
    "delete_study",
    "join_study",
    "journal_studies",
    "list_studies",
    "load_existing_study",
    "load_study",
    "name_metrics",
    "objective_names",
    "require_study_storage",
    "requeued_waiting",
    "study_front",
    "study_status",
    "write_study_plots",
]
