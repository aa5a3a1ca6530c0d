"""The ``memory-bank`` detector (training-free, weight-free few-shot RGB + 3D).

Importing this package registers the detector in :mod:`core.detectors.registry`.
"""
from ..registry import register
from .detector import MemoryBankDetector

register(MemoryBankDetector)

__all__ = ["MemoryBankDetector"]
