from .base import (STAGE_FIT, STAGE_FUSION, STAGE_SCORE, STAGE_TEXT, Components, Detector,
                   DetectorResult, Needs, Param)
from .registry import available, create, get, register

__all__ = ["Components", "Detector", "DetectorResult", "Needs", "Param", "STAGE_FIT", "STAGE_FUSION",
           "STAGE_SCORE", "STAGE_TEXT", "available", "create", "get", "register"]
