"""The project of a dataset: review work, choices and cached results in one SQLite file.

* :mod:`.store`        - :class:`Project` (open / close, verdicts, region marks, support sets,
  detector and its parameters, cached scores): the one store of what a user did on a dataset;
* :mod:`.records`      - the rows it returns and the checks of what goes in;
* :mod:`.schema`       - the tables;
* :mod:`.lock`         - one writer per project (lock file holding the pid);
* :mod:`.errors`       - a write refused (read-only) or failed (disk full...; verdicts are kept);
* :mod:`.importer`     - reads the review journal of older versions, for a one-time import;
* :mod:`.session_glue` - restore a :class:`~core.session.Session` from a project and save its scores;
* :mod:`.export`       - overlay PNG, scored PLY, per-sample JSON, CSV of all samples;
* :mod:`.report`       - the self-contained HTML report of a batch.
"""
from .errors import ProjectFileError, ProjectReadOnlyError, ProjectWriteError
from .lock import ProjectLockedError
from .records import (CONFIRMED, FALSE_POSITIVE, FINALS, MARK_KINDS, NOK, OK, REJECTED, TRUE_DEFECT, UNSURE, VERDICTS,
                      DetectorChoice, Mark, ScoreRow, SupportEntry, VerdictRow, params_hash)
from .session_glue import RestoreReport, remember_session, restore_session, save_session_scores, session_fit_keys
from .store import PROJECT_DIR, PROJECT_FILE, Project, project_path_for, user_project_path

__all__ = ["CONFIRMED", "FALSE_POSITIVE", "FINALS", "MARK_KINDS", "NOK", "OK", "PROJECT_DIR", "PROJECT_FILE", "REJECTED",
           "TRUE_DEFECT", "UNSURE", "VERDICTS", "DetectorChoice", "Mark", "Project", "ProjectLockedError",
           "ProjectFileError",
           "ProjectReadOnlyError", "ProjectWriteError", "RestoreReport", "ScoreRow", "SupportEntry", "VerdictRow", "params_hash",
           "project_path_for", "remember_session", "restore_session", "save_session_scores", "session_fit_keys",
           "user_project_path"]
