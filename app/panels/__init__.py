"""Dockable panels of the main window (all built generically from the detector's declarations)."""
from .browser import BrowserPanel
from .detector import DetectorPanel
from .fewshot import FewShotPanel
from .fusion import FusionPanel
from .messages import MessageBanner
from .params import ParamForm, make_editor
from .prompts import PromptPanel
from .review import ReviewPanel

__all__ = ["BrowserPanel", "DetectorPanel", "FewShotPanel", "FusionPanel", "MessageBanner", "ParamForm",
           "PromptPanel", "ReviewPanel", "make_editor"]
