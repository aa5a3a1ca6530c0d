"""The window's controllers: each wires one concern of the workbench to the session and the widgets.

* :class:`~app.controllers.dataset.DatasetController`: open folder / demo, current sample, loading, thumbnails;
* :class:`~app.controllers.analysis.AnalysisController`: detector, parameters, fusion, few-shot, analysis jobs;
* :class:`~app.controllers.review.ReviewController`: verdicts and their export.
"""
from .analysis import AnalysisController
from .dataset import DatasetController
from .review import ReviewController

__all__ = ["AnalysisController", "DatasetController", "ReviewController"]
