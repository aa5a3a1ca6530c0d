"""The project file's tables (SQLite), created or checked when a project is opened.

Every table is append-friendly: verdicts keep their history (one row per action, the latest row of a
sample is its current state), region marks are soft-deleted (``deleted`` holds the time of the undo),
cached scores are keyed by what they depend on (detector, parameter hash, fit key), so a change of
any of them simply finds no row (nothing has to be invalidated by hand).  (Files of older versions
may also hold ``thresholds`` and ``fits`` tables; nothing reads them.)
"""
from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from .errors import ProjectFileError

log = logging.getLogger(__name__)

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


#: ``PRAGMA application_id`` of our project files ("MMAD"); files of older versions have 0 and a
#: ``meta`` table with ``schema_version`` (they get the id at their first open for writing)
APPLICATION_ID = 0x4D4D4144


def expected_columns() -> dict[str, set[str]]:
    """The columns of every table :data:`SCHEMA` creates (read from SCHEMA itself)."""
    mem = sqlite3.connect(":memory:")
    try:
        mem.executescript(SCHEMA)
        names = [r[0] for r in mem.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%'")]
        return {t: {r[1] for r in mem.execute(f"PRAGMA table_info({t})")} for t in names}
    finally:
        mem.close()


def parse_version(value: object, path: Path) -> int:
    """The project format in ``meta.schema_version``: a whole number, else the file is refused."""
    text = str(value).strip()
    if not text.isascii() or not text.isdigit():
        raise ProjectFileError(path, f"has project format {str(value)[:40]!r}, which this version does not "
                                     f"understand (it reads whole numbers up to {SCHEMA_VERSION}); the file is "
                                     "left unchanged")
    return int(text)


def check_existing(conn: sqlite3.Connection, path: Path) -> bool:
    """Check a project file before anything is written to it: its pages (``PRAGMA quick_check``),
    that it is ours (application id, ``meta.schema_version``, the columns of our tables) and its
    format.  Returns False for a new, empty file.  Raises :class:`ProjectFileError` naming the file."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                         "AND name NOT LIKE 'sqlite_%'")}
    if not tables and app_id == 0:
        return False
    problems = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise ProjectFileError(path, "is damaged (SQLite integrity check: " + "; ".join(problems)[:300] + "); it "
                                     "is not opened, so nothing more is lost: restore it from a backup, or move "
                                     "it away to start a new project")
    if app_id not in (0, APPLICATION_ID):
        raise ProjectFileError(path, f"is an SQLite database of another program (application id {app_id:#x}), "
                                     "not an MMAD Inspector project; it is left unchanged")
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() if "meta" in tables else None
    if row is None:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise ProjectFileError(path, f"is an SQLite database that is not an MMAD Inspector project (tables: "
                                     f"{shown}); it is left unchanged")
    version = parse_version(row[0], path)
    if version > SCHEMA_VERSION:
        raise ProjectFileError(path, f"was written by a newer MMAD Inspector (project format {version}, this "
                                     f"version reads up to {SCHEMA_VERSION}); update the program")
    for table, columns in expected_columns().items():
        if table in tables:
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            missing = sorted(columns - have)
            if missing:
                raise ProjectFileError(path, f"has a table '{table}' without the column(s) {', '.join(missing)}: "
                                             "not a project of this format; it is left unchanged")
    return True


def create_or_check(conn: sqlite3.Connection, path: Path, writable: bool) -> None:
    """Check an existing project file (:func:`check_existing`) and, when ``writable``, create the
    tables of a new one (or the tables a file of an older version lacks)."""
    try:
        existing = check_existing(conn, path)
        if not writable:
            if not existing:
                raise ProjectFileError(path, "is empty: there is no project in it yet")
            return
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]     # only now: it rewrites the header
        if str(mode).lower() != "wal":
            log.warning("%s: WAL journal not available (%s); writes are still atomic", path, mode)
        conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + f"PRAGMA application_id = {APPLICATION_ID};" + "COMMIT;")
        with conn:
            conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    except ProjectFileError:
        raise
    except sqlite3.DatabaseError as e:
        code = getattr(e, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in (11, 26):        # SQLITE_CORRUPT, SQLITE_NOTADB
            raise ProjectFileError(path, f"is damaged or not a database ({e}); it is not opened, so nothing more "
                                         "is lost: restore it from a backup, or move it away to start a new "
                                         "project") from None
        raise ProjectFileError(path, f"is not a usable project file ({e}); it is left unchanged: move it away "
                                     "to start a new project") from None
