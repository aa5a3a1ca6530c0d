"""The project file's tables (SQLite), created or checked when a project is opened.

Every table is append-friendly: verdicts keep their history (one row per action, the latest row of a
sample is its current state), region marks are soft-deleted (``deleted`` holds the time of the undo),
cached scores are keyed by what they depend on (detector, parameter hash, fit key), so a change of
any of them simply finds no row (nothing has to be invalidated by hand).  (Files of older versions
may also hold ``thresholds`` and ``fits`` tables; nothing reads them.)
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import InputError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verdicts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT NOT NULL,
    verdict     TEXT,              -- on the detector's call: confirmed | rejected | unsure
    final       TEXT,              -- the part: ok | nok | unsure
    note        TEXT NOT NULL DEFAULT '',
    reviewer    TEXT NOT NULL DEFAULT '',
    time        TEXT NOT NULL,
    image_score REAL,
    decision    TEXT,              -- the detector's decision that was reviewed: anomalous | good
    detector    TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL DEFAULT 'app'
);
CREATE INDEX IF NOT EXISTS verdicts_key ON verdicts (key, id);
CREATE TABLE IF NOT EXISTS marks (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    key       TEXT NOT NULL,
    kind      TEXT NOT NULL,       -- false_positive | true_defect
    geometry  TEXT NOT NULL,       -- JSON: {"polygon": [[x, y], ...]} | {"bbox": [x0, y0, x1, y1]} | {"points": [i, ...]}
    note      TEXT NOT NULL DEFAULT '',
    reviewer  TEXT NOT NULL DEFAULT '',
    time      TEXT NOT NULL,
    deleted   TEXT                 -- time of the undo; NULL while the mark stands
);
CREATE INDEX IF NOT EXISTS marks_key ON marks (key, id);
CREATE TABLE IF NOT EXISTS support (
    class_name TEXT PRIMARY KEY,
    items      TEXT NOT NULL,      -- JSON list of {"key": sample key} | {"path": file}
    time       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL            -- JSON
);
CREATE TABLE IF NOT EXISTS scores (
    detector    TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    fit_key     TEXT NOT NULL,
    key         TEXT NOT NULL,
    image_score REAL,
    decision    TEXT,
    threshold   REAL,
    seconds     REAL NOT NULL DEFAULT 0,
    time        TEXT NOT NULL,
    PRIMARY KEY (detector, params_hash, fit_key, key)
);
CREATE INDEX IF NOT EXISTS scores_key ON scores (key);
"""


def create_or_check(conn: sqlite3.Connection, path: Path, writable: bool) -> None:
    """Create the tables of a new project (``writable``) and refuse a file of a newer version."""
    try:
        if writable:
            conn.executescript("BEGIN;" + SCHEMA + "COMMIT;")
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            if row is None:
                with conn:
                    conn.execute("INSERT INTO meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                return
        else:
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as e:
        raise InputError(path, f"is not a usable project file ({e}); move it away to start a new project") from None
    version = int(row[0]) if row is not None and str(row[0]).isdigit() else 0
    if version > SCHEMA_VERSION:
        raise InputError(path, f"was written by a newer MMAD Inspector (project format {version}, this version "
                               f"reads up to {SCHEMA_VERSION}); update the program")
