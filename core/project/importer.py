"""One-time import of the older JSON-lines review file (:mod:`core.review`) into a project.

The whole history is copied in one transaction together with a ``meta`` row naming the file, so the
import happens exactly once: a crash before the commit leaves nothing (the next open imports again),
after it the meta row is there and the file is not read again.  Unreadable lines are skipped by
:class:`~core.review.ReviewStore` (and logged once), never fatal.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..review import ReviewStore, store_path_for
from . import records as R

if TYPE_CHECKING:  # pragma: no cover
    from .store import Project

log = logging.getLogger(__name__)

META_KEY = "jsonl_import"


def import_review_jsonl(project: "Project", cache_dir: Optional[str | Path] = None,
                        path: Optional[str | Path] = None) -> int:
    """Import the dataset's review file once; returns the number of verdict events imported
    (0 when already imported or when there is no file)."""
    if project.meta(META_KEY) is not None:
        return 0
    file = Path(path) if path is not None else store_path_for(project.dataset_root, cache_dir)
    if not file.is_file():
        return 0
    store = ReviewStore(file)
    events = []
    for key in store.keys():
        events.extend(store.history(key))
    events.sort(key=lambda v: v.time)          # ISO-8601 UTC: text order is time order
    rows = []
    for v in events:
        final = v.extra.get("final") if isinstance(v.extra, dict) else None
        try:
            final = R.norm_final(final) if isinstance(final, str) else None
        except ValueError:
            final = None
        rows.append((v.key, v.verdict, final, v.note, v.annotator, v.time or R.now(), v.image_score,
                     v.decision, v.detector, "jsonl"))
    info = R.dumps({"file": str(file), "events": len(rows), "skipped_lines": store.skipped_lines, "time": R.now()})
    with project._tx() as c:
        if c.execute("SELECT 1 FROM meta WHERE name = ?", (META_KEY,)).fetchone() is not None:
            return 0
        c.executemany("INSERT INTO verdicts (key, verdict, final, note, reviewer, time, image_score, decision, "
                      "detector, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        c.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (META_KEY, info))
    if rows:
        log.info("%s: imported %d verdict(s) from %s", project.path, len(rows), file)
    return len(rows)
