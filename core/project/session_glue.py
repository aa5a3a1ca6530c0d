"""Between a :class:`~core.project.Project` and a :class:`~core.session.Session`: restore what the
project remembers into a session (detector, parameters, support sets, cached scores) and save a
session's scores.  Qt-free; the GUI calls these after opening a dataset and after a run."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..errors import InputError, MMADError
from .records import params_hash

if TYPE_CHECKING:  # pragma: no cover
    from ..session import Session
    from .store import Project

log = logging.getLogger(__name__)


@dataclass
class RestoreReport:
    """What :func:`restore_session` put back, and what it could not (each line names the thing)."""
    detector: Optional[str] = None
    support_classes: list[str] = field(default_factory=list)
    scores: int = 0
    warnings: list[str] = field(default_factory=list)


def session_fit_keys(session: "Session") -> dict[str, str]:
    """class -> the fit key its scores depend on (the held fit's key, else the expected one)."""
    out = {}
    for c in session.classes:
        state = session.fit_state(c)
        try:
            out[c] = state.key if state is not None and session.is_fitted(c) else session.expected_fit_key(c)
        except MMADError as e:
            log.debug("no fit key for class %s: %s", c, e)
    return out


def save_session_scores(project: "Project", session: "Session", keys: Optional[list[str]] = None) -> int:
    """Cache the session's current (not stale) image scores in the project; returns how many."""
    if session.detector is None:
        return 0
    recs = [r for k, r in session.records.items()
            if (keys is None or k in keys) and r.image_score is not None and not r.stale and r.error is None]
    return project.save_scores(recs, session.detector_id, params_hash(session.params), session_fit_keys(session))


def remember_session(project: "Project", session: "Session", scores: bool = True) -> int:
    """Save the detector choice and parameters (and the scores); returns the number of scores saved."""
    if session.detector is not None:
        project.set_detector(session.detector_id, session.params)
    return save_session_scores(project, session) if scores else 0


def _support_items(project: "Project", session: "Session", class_name: str, report: RestoreReport) -> Optional[list[Any]]:
    entries = project.support(class_name)
    if entries is None:
        return None
    items: list[Any] = []
    for e in entries:
        if e.key is not None:
            try:
                items.append(session.ref(e.key))
            except InputError:
                report.warnings.append(f"support of class '{class_name}': sample '{e.key}' is no longer in the dataset")
        elif e.path is not None:
            if not Path(e.path).exists():
                report.warnings.append(f"{e.path}: support file of class '{class_name}' is missing")
            else:
                items.append(Path(e.path))
    return items


def restore_session(project: "Project", session: "Session", detector: bool = True) -> RestoreReport:
    """Put the project's detector (with ``detector``), support sets and cached scores into ``session``
    (whose dataset must be the project's).  Scores are restored only where the detector, every
    parameter and the class's fit (support content) are the same as when they were computed."""
    from ..session.checks import saved_params
    report = RestoreReport()
    choice = project.detector() if detector else None
    if choice is not None and choice.id != session.detector_id:
        try:
            session.set_detector(choice.id, **choice.params)
        except (MMADError, KeyError, ValueError) as e:
            report.warnings.append(f"detector '{choice.id}' of the project cannot be used: {e}")
    elif choice is not None and choice.params:
        usable, dropped = saved_params(session.detector, choice.params)
        session.set_params(**usable)
        report.warnings += [f"saved parameter not applied: {why}" for why in dropped]
    report.detector = session.detector_id or None
    for c in session.classes:
        items = _support_items(project, session, c, report)
        if items is not None and items:
            session.set_support(c, items)
            report.support_classes.append(c)
    if session.detector is None:
        return report
    ph = params_hash(session.params)
    for c, fk in session_fit_keys(session).items():
        rows = project.load_scores(session.detector_id, ph, fk)
        for key, row in rows.items():
            rec = session.records.get(key)
            if rec is None or rec.ref.class_name != c:
                continue
            rec.image_score, rec.threshold, rec.anomalous = row.image_score, row.threshold, row.anomalous
            rec.seconds, rec.stale, rec.error = row.seconds, False, None
            report.scores += 1
    if report.scores:
        session.events.records_changed.emit([k for k, r in session.records.items() if r.image_score is not None])
    return report
