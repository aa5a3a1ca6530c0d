"""The window's controllers: each takes the session and the panels / views it drives (never the
window, which builds them and wires them together) and wires one concern of the workbench.

* :class:`~app.controllers.dataset.DatasetController`: open folder / demo, current sample, loading, thumbnails;
* :class:`~app.controllers.analysis.AnalysisController`: detector, parameters, fusion, few-shot, analysis jobs;
* :class:`~app.controllers.review.ReviewController`: verdicts and their export;
* :class:`~app.controllers.project.ProjectController`: the dataset's project (restore / save, marks, exports);
* :class:`~app.controllers.training.TrainingController`: the Train panel's training runs.
"""
from .analysis import AnalysisController
from .dataset import APP_TITLE, DatasetController
from .project import ProjectController
from .review import ReviewController
from .training import TrainingController

__all__ = ["APP_TITLE", "AnalysisController", "DatasetController", "ProjectController", "ReviewController",
           "TrainingController"]
