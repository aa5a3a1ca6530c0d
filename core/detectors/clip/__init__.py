"""CLIP detectors (WinCLIP -> AnomalyCLIP -> PointAD line): ``clip-zero-shot`` and ``clip-few-shot``.

prompting.py: prompt lists (data) · text.py: prompt ensembles · scoring.py: map maths ·
multiview.py: 3D through rendered views · detector.py: the two detectors.
"""
from .detector import ClipFewShot, ClipZeroShot

__all__ = ["ClipZeroShot", "ClipFewShot"]
