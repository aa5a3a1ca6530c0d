"""The ``cross-modal`` detector (trained, seed 001). Importing registers it."""
from ..registry import register
from .detector import CrossModalDetector

register(CrossModalDetector)

__all__ = ["CrossModalDetector"]
