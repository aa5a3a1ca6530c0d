"""Registry of detectors by id (anomalib-style: one package per model, looked up by name).

Detectors are *discovered*, not listed: every sub-package of :mod:`core.detectors` that registers
a class with :func:`register` on import is found by walking the package, and installed plug-ins
add theirs through the ``mmad_inspector.detectors`` entry-point group (the entry point names a
module or a :class:`~core.detectors.base.Detector` subclass).  A package whose optional
dependency is missing is logged and left out; the others stay available.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from importlib.metadata import entry_points
from typing import Type

from ..errors import UnknownDetectorError
from .base import Detector

__all__ = ["ENTRY_POINT_GROUP", "available", "create", "discover", "get", "register", "unregister", "unavailable"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mmad_inspector.detectors"

_REGISTRY: dict[str, Type[Detector]] = {}
_UNAVAILABLE: dict[str, str] = {}     # module -> why it could not be imported
_discovered = False


def register(cls: Type[Detector]) -> Type[Detector]:
    """Class decorator: add a detector to the registry under ``cls.id``."""
    if not cls.id:
        raise ValueError(f"{cls.__name__} has no id")
    if cls.id in _REGISTRY and _REGISTRY[cls.id] is not cls:
        raise ValueError(f"detector id '{cls.id}' registered twice")
    _REGISTRY[cls.id] = cls
    return cls


def unregister(detector_id: str) -> None:
    """Remove a detector (plug-ins unloaded, test doubles); unknown ids are ignored."""
    _REGISTRY.pop(detector_id, None)


def _import(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as e:      # a missing optional dependency must not hide the other detectors
        _UNAVAILABLE[module] = str(e)
        log.warning("detector module %s unavailable: %s", module, e)


def discover() -> None:
    """Import every detector package under :mod:`core.detectors` and every entry-point plug-in
    (once per process)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    from .. import detectors as pkg
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.ispkg:
            _import(f"{pkg.__name__}.{info.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plug-in must not stop the app
            _UNAVAILABLE[ep.value] = f"{type(e).__name__}: {e}"
            log.warning("detector plug-in %s unavailable: %s", ep.value, e)
            continue
        if isinstance(obj, type) and issubclass(obj, Detector):
            register(obj)


def available() -> list[str]:
    """The ids of the registered detectors, sorted."""
    discover()
    return sorted(_REGISTRY)


def unavailable() -> dict[str, str]:
    """Detector modules that could not be imported, with the reason."""
    discover()
    return dict(_UNAVAILABLE)


def get(detector_id: str) -> Type[Detector]:
    discover()
    try:
        return _REGISTRY[detector_id]
    except KeyError:
        raise UnknownDetectorError(f"unknown detector '{detector_id}' (available: {', '.join(sorted(_REGISTRY))})") from None


def create(detector_id: str, device: str = "cpu", **params) -> Detector:
    return get(detector_id)(device=device, **params)
