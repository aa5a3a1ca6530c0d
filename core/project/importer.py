"""One-time import of the review journal older versions wrote (JSON lines), read only.

Older versions appended every verdict as one JSON line to
``<cache>/reviews/<folder-name>-<hash>.jsonl`` (:func:`journal_path_for`; ``$MMAD_CACHE`` or
``~/.cache/mmad-inspector``).  The project (:class:`~core.project.Project`) is now the only store of
verdicts: this module only *reads* such a file, once, when a project is opened for writing; nothing
writes it any more.  :class:`~core.project.Project` copies the events in one transaction together
with a ``meta`` row that records the import (also when there is no file), so the journal is never
read again.

Reading never fails on the content: a corrupt line of any shape (truncated by a power cut, binary
garbage, deeply nested JSON, a JSON value that is not a verdict, fields of the wrong type) is
skipped, the skipped lines are listed in :attr:`Journal.warnings` and reported in ONE logged
warning.  A UTF-8 byte-order mark (a file saved by an editor) is ignored; non-finite scores are read
as None.  A file that cannot be read at all is an :class:`~core.errors.InputError` naming it.

Events are merged into what the project already holds (:func:`journal_rows`): an event is imported
only when it is newer than the latest project row of its sample (a project of a version that
mirrored the journal already holds those actions, and newer project rows must stay the current
state), and it keeps the sample's final verdict (the journal had none).
"""
from __future__ import annotations

import codecs
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from ..errors import InputError
from . import records as R

log = logging.getLogger(__name__)

META_KEY = "jsonl_import"
MAX_WARNINGS = 20        # skipped lines listed one by one in Journal.warnings; the rest are counted
_BOM = codecs.BOM_UTF8
_TEXT_FIELDS = ("note", "annotator", "time", "detector")


def journal_path_for(dataset_root: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The journal file older versions kept for the dataset at ``dataset_root``."""
    from ..paths import cache_dir as default_cache_dir
    root = Path(dataset_root).expanduser().resolve()
    digest = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:12]
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in root.name) or "root"
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir(create=False)
    return base / "reviews" / f"{name}-{digest}.jsonl"


@dataclass(frozen=True)
class JournalEvent:
    """One verdict line of the journal.  ``time`` is an ISO-8601 UTC timestamp."""
    key: str
    verdict: str
    note: str = ""
    annotator: str = ""
    time: str = ""
    image_score: Optional[float] = None
    decision: Optional[str] = None
    detector: str = ""
    final: Optional[str] = None         # a final verdict a script put in the line's "extra"


def _event(d: Any) -> JournalEvent:
    """The event of a decoded line; ValueError when it is not one (wrong shape or types)."""
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    if not isinstance(d.get("key"), str) or not d["key"] or d.get("verdict") not in R.VERDICTS:
        raise ValueError("no sample key or verdict")
    for name in _TEXT_FIELDS:
        if not isinstance(d.get(name, ""), (str, type(None))):
            raise ValueError(f"'{name}' is not text")
    score = d.get("image_score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise ValueError("'image_score' is not a number")
    if not isinstance(d.get("decision"), (str, type(None))):
        raise ValueError("'decision' is not text")
    extra = d.get("extra") or {}
    if not isinstance(extra, dict):
        raise ValueError("'extra' is not an object")
    try:
        final = R.norm_final(extra["final"]) if isinstance(extra.get("final"), str) else None
    except ValueError:
        final = None
    return JournalEvent(key=d["key"], verdict=d["verdict"], note=(d.get("note") or "").strip(),
                        annotator=(d.get("annotator") or "").strip(), time=d.get("time") or "",
                        image_score=R.finite_or_none(score), decision=d.get("decision"),
                        detector=d.get("detector") or "", final=final)


def parse_line(line: bytes) -> JournalEvent:
    """Decode one journal line; ValueError (with the reason) when it is not a verdict.

    Never raises anything else: deep nesting (RecursionError), binary data, huge numbers are all
    reported as ValueError.
    """
    if line.startswith(_BOM):
        line = line[len(_BOM):]
    line = line.strip()
    if not line.startswith(b"{"):   # a verdict is an object: "[[[[...", garbage, NUL bytes stop here
        raise ValueError("not a JSON object")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except (ValueError, OverflowError) as err:
        raise ValueError(f"not JSON ({str(err).split(':')[0]})") from None
    return _event(obj)


@dataclass
class Journal:
    """The readable events of a journal file, oldest first, and what was skipped."""
    path: Path
    events: list[JournalEvent] = field(default_factory=list)
    skipped_lines: int = 0
    warnings: list[str] = field(default_factory=list)


def read_journal(path: str | Path) -> Optional[Journal]:
    """The journal at ``path`` (None when there is no such file); InputError when it cannot be read."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise InputError(path, f"cannot read the review journal ({err.strerror or err})") from None
    out = Journal(path)
    lines = raw.split(b"\n")
    ends_clean = raw.endswith(b"\n") or not raw
    first = ""
    for i, line in enumerate(lines, start=1):
        if not line.strip() or line.strip() == _BOM:
            continue
        try:
            out.events.append(parse_line(line))
        except ValueError as err:
            last = i == len(lines) and not ends_clean
            what = "truncated last line (interrupted write?)" if last else f"corrupt line {i} ({err})"
            out.skipped_lines += 1
            first = first or what
            if len(out.warnings) < MAX_WARNINGS:
                out.warnings.append(f"{path}: {what} skipped")
    if out.skipped_lines > len(out.warnings):
        out.warnings.append(f"{path}: {out.skipped_lines - len(out.warnings)} more corrupt line(s) skipped")
    if out.skipped_lines:
        log.warning("%s: %d unreadable line(s) skipped (first: %s); the other verdicts are imported",
                    path, out.skipped_lines, first)
    out.events.sort(key=lambda v: v.time)          # ISO-8601 UTC: text order is time order (stable)
    return out


def journal_rows(journal: Journal, latest: Mapping[str, R.VerdictRow]) -> list[tuple]:
    """The ``verdicts`` rows to insert for the journal's events, given the latest project row of
    each sample (``latest``): only events newer than it, each keeping the sample's final verdict
    and merged as :meth:`Project.record_verdict` merges an action.  Columns: key, verdict, final,
    note, reviewer, time, image_score, decision, detector, source."""
    state = {k: (r.verdict, r.final, r.time) for k, r in latest.items()}
    rows = []
    for v in journal.events:
        prev = state.get(v.key)
        if prev is not None and prev[2] >= v.time:
            continue                    # the project already knows this sample from then on
        final = v.final if v.final is not None else (prev[1] if prev is not None else None)
        rows.append((v.key, v.verdict, final, v.note, v.annotator, v.time or R.now(), v.image_score, v.decision,
                     v.detector, "jsonl"))
        state[v.key] = (v.verdict, final, v.time)     # an event without a time orders before any other
    return rows
