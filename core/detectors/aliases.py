"""Renamed detector parameters: the names (and units) saved or typed before a rename -> today's.

:func:`migrate_params` is applied wherever saved or typed parameters are read: the project's
detector choice (:meth:`core.project.Project.detector`), the settings file
(``app.settings.Settings.detector_params``) and ``--param NAME=VALUE`` on the command line.  No
fit-stage parameter was renamed, so saved fits and checkpoints keep their keys.

The table records the *old* units as they were, so a saved value keeps its meaning:

* ``sigma`` -> ``sigma_pct`` (% of the image's longer side, :mod:`core.detectors.postprocess`):
  memory-bank's was in working pixels (``100 * sigma / working_size``); the trained detectors' in
  patches of the feature grid (``100 * sigma / 32``, the grid of every checkpoint the train
  command and panel make: 256 px working size, stride 8); the CLIP detectors' in pixels of the
  CLIP input (``100 * sigma / size``, ``image_size`` or the backbone's own size);
* memory-bank ``alpha`` / ``gamma`` / ``beta`` -> ``rgb_weight`` / ``max_weight`` /
  ``agreement_weight`` (same values);
* CLIP ``w_rgb`` and ``w_3d`` (weights normalised by their sum) -> ``rgb_weight = w_rgb / (w_rgb + w_3d)``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from ..errors import InvalidParameterError

__all__ = ["ALIASES", "Alias", "migrate_params"]

log = logging.getLogger(__name__)

MEMORY_BANK = ("memory-bank",)
TRAINED = ("cross-modal", "unified-moe")
CLIP = ("clip-zero-shot", "clip-few-shot")

#: the CLIP input side of each backbone (``image_size`` = 0), the old sigma's pixels
CLIP_INPUT = {"ViT-B-16": 224, "ViT-L-14-336": 336, "ViT-B-16-plus-240": 240, "tiny-test": 64}
OLD_FEATURE_GRID = 32        # patches per side of the trained detectors' feature grid (256 / 8)
OLD_DEFAULT_WEIGHT = 0.5     # CLIP's w_rgb / w_3d default


@dataclass(frozen=True)
class Alias:
    """``old`` saved names (any of them present) of ``detectors`` become ``new``, valued
    ``convert(values of the old names present, all saved params)``."""
    detectors: tuple[str, ...]
    old: tuple[str, ...]
    new: str
    convert: Callable[[dict[str, Any], Mapping[str, Any]], Any] = lambda old, saved: next(iter(old.values()))


def _clip_side(saved: Mapping[str, Any]) -> float:
    size = int(float(saved.get("image_size") or 0))
    return float(size or CLIP_INPUT.get(str(saved.get("backbone", "ViT-B-16")), 224))


def _rgb_share(old: dict[str, Any], saved: Mapping[str, Any]) -> float:
    r = float(old.get("w_rgb", OLD_DEFAULT_WEIGHT))
    d = float(old.get("w_3d", OLD_DEFAULT_WEIGHT))
    return r / (r + d) if r + d > 0 else 0.5


ALIASES: tuple[Alias, ...] = (
    Alias(MEMORY_BANK, ("alpha",), "rgb_weight"),
    Alias(MEMORY_BANK, ("gamma",), "max_weight"),
    Alias(MEMORY_BANK, ("beta",), "agreement_weight"),
    Alias(MEMORY_BANK, ("sigma",), "sigma_pct",
          lambda old, saved: 100.0 * float(old["sigma"]) / float(saved.get("working_size") or 256)),
    Alias(TRAINED, ("sigma",), "sigma_pct", lambda old, saved: 100.0 * float(old["sigma"]) / OLD_FEATURE_GRID),
    Alias(CLIP, ("sigma",), "sigma_pct", lambda old, saved: 100.0 * float(old["sigma"]) / _clip_side(saved)),
    Alias(CLIP, ("w_rgb", "w_3d"), "rgb_weight", _rgb_share),
)


def migrate_params(detector_id: str, params: Mapping[str, Any], *, strict: bool = False,
                   notes: Optional[list[str]] = None) -> dict[str, Any]:
    """``params`` of ``detector_id`` with every renamed parameter under today's name and unit.

    A value saved under today's name wins over an old one.  An old value that cannot be converted
    raises :class:`~core.errors.InvalidParameterError` with ``strict`` (typed input), else is
    dropped with a log warning (a saved file: the default is used).  ``notes`` collects one line
    per renamed parameter."""
    out = dict(params)
    for a in ALIASES:
        if detector_id not in a.detectors:
            continue
        old = {k: out.pop(k) for k in a.old if k in out}
        if not old or a.new in out:
            continue
        try:
            out[a.new] = a.convert(old, params)
        except (TypeError, ValueError, ArithmeticError):
            msg = (f"parameter {' / '.join(repr(k) for k in old)} (now '{a.new}'): "
                   f"{', '.join(repr(v) for v in old.values())} is not a number")
            if strict:
                raise InvalidParameterError(msg) from None
            log.warning("ignoring saved value of %s: %s", detector_id, msg)
            continue
        if notes is not None:
            v = out[a.new]
            notes.append(f"{detector_id}: {', '.join(f'{k}={x}' for k, x in old.items())} is now "
                         f"{a.new}={f'{v:.6g}' if isinstance(v, float) else v}")
    return out
