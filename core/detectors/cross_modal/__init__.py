"""The ``cross-modal`` detector (trained RGB <-> 3D feature mappers). Importing registers it."""
from ..registry import register
from .detector import CrossModalDetector

register(CrossModalDetector)

__all__ = ["CrossModalDetector"]
