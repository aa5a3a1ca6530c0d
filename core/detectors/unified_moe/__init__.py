"""The ``unified-moe`` detector (trained, UniMMAD-style). Importing registers it."""
from ..registry import register
from .detector import UnifiedMoEDetector

register(UnifiedMoEDetector)

__all__ = ["UnifiedMoEDetector"]
