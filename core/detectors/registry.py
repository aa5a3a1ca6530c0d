"""Registry of detectors by id (anomalib-style: one module per model, looked up by name)."""
from __future__ import annotations

import importlib
from typing import Type

from ..errors import UnknownDetectorError
from .base import Detector

_REGISTRY: dict[str, Type[Detector]] = {}
# modules imported lazily the first time the registry is queried
_BUILTIN_MODULES = ("core.detectors.memory_bank",)
# optional detectors: a missing optional dependency must not hide the others
_OPTIONAL_MODULES: tuple[str, ...] = ("core.detectors.clip", "core.detectors.cross_modal", "core.detectors.unified_moe")
_loaded = False


def register(cls: Type[Detector]) -> Type[Detector]:
    """Class decorator: add a detector to the registry under ``cls.id``."""
    if not cls.id:
        raise ValueError(f"{cls.__name__} has no id")
    if cls.id in _REGISTRY and _REGISTRY[cls.id] is not cls:
        raise ValueError(f"detector id '{cls.id}' registered twice")
    _REGISTRY[cls.id] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)
    for mod in _OPTIONAL_MODULES:
        try:
            importlib.import_module(mod)
        except ImportError as e:  # pragma: no cover - depends on the installation
            import logging
            logging.getLogger(__name__).warning("detector module %s unavailable: %s", mod, e)


def available() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get(detector_id: str) -> Type[Detector]:
    _load_builtins()
    try:
        return _REGISTRY[detector_id]
    except KeyError:
        raise UnknownDetectorError(f"unknown detector '{detector_id}' (available: {', '.join(sorted(_REGISTRY))})") from None


def create(detector_id: str, device: str = "cpu", **params) -> Detector:
    return get(detector_id)(device=device, **params)
