"""What a caller asks of a detector, checked in one place: the number of support samples
(``--shots``) and parameter values saved earlier (settings, projects)."""
from __future__ import annotations

from typing import Any, Mapping

from ..detectors import registry
from ..detectors.base import Detector
from ..errors import UsageError


def support_shots(detector_id: str, shots: int) -> int:
    """``shots`` as the number of good support samples per class for ``detector_id``: a few-shot
    detector needs at least one (:class:`~core.errors.UsageError` otherwise); a zero-shot detector
    takes 0 or more.  An unknown id raises :class:`~core.errors.UnknownDetectorError`."""
    if registry.get(detector_id).needs.support and shots < 1:
        raise UsageError(f"--shots must be at least 1 for detector '{detector_id}' (got {shots})")
    return max(int(shots), 0)


def saved_params(detector: type[Detector] | Detector, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The saved ``values`` that ``detector`` (a class or an instance) still declares and accepts,
    coerced, and one message per value that no longer validates (dropped).  Names the detector no
    longer declares are dropped silently: a saved file outlives a renamed parameter."""
    declared = {p.name: p for p in detector.params}
    usable: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in values.items():
        if name in declared:
            try:
                usable[name] = declared[name].coerce(value)
            except ValueError as err:
                dropped.append(str(err))
    return usable, dropped
