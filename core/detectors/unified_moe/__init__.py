"""The ``unified-moe`` detector (trained, seed 003 style). Importing registers it."""
from ..registry import register
from .detector import UnifiedMoEDetector

register(UnifiedMoEDetector)

__all__ = ["UnifiedMoEDetector"]
