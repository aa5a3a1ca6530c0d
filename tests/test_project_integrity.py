"""A project file is trusted only once it is checked: damaged pages, another program's database, a
table of another layout or a format this version does not understand are refused naming the file,
and the file is left exactly as it was (nothing of ours is added to it)."""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from core.errors import MMADError
from core.project import Project, ProjectFileError, project_path_for
from core.project.schema import APPLICATION_ID, SCHEMA_VERSION


@pytest.fixture
def dataset(tmp_path) -> Path:
    d = tmp_path / "parts"
    d.mkdir()
    return d


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(dataset: Path, match: str) -> ProjectFileError:
    """Opening for writing and read-only both refuse, leave the file unchanged, release the lock."""
    path = project_path_for(dataset)
    before = digest(path)
    for kw in ({}, {"read_only": True}):
        with pytest.raises(ProjectFileError, match=match) as e:
            Project.open(dataset, **kw)
        assert str(path) in str(e.value) and isinstance(e.value, MMADError)
    assert digest(path) == before
    assert not Path(str(path) + "-wal").exists() or Path(str(path) + "-wal").stat().st_size == 0
    return e.value


def project_with_verdicts(dataset: Path, n: int = 400) -> Path:
    with Project.open(dataset) as p:
        for i in range(n):
            p.record_verdict(f"disc/test/{i:04d}", verdict="confirmed", note="n" * 50)
        path = p.path
    conn = sqlite3.connect(path)                 # fold the WAL into the file: pages of the file are the data
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def test_a_new_project_is_marked_as_ours(dataset):
    with Project.open(dataset) as p:
        path = p.path
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    conn.close()


@pytest.mark.parametrize("where", ["middle", "last"])
def test_damaged_pages_inside_a_valid_header_are_refused(dataset, where):
    path = project_with_verdicts(dataset)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    n_pages = len(data) // page
    assert n_pages >= 4
    k = n_pages // 2 if where == "middle" else n_pages - 1
    data[k * page:(k + 1) * page] = bytes([0xA5]) * page       # the header (page 1) stays valid
    path.write_bytes(bytes(data))
    err = refused(dataset, "is damaged")
    assert "not opened" in str(err)


def test_a_database_of_another_program_gets_no_tables_of_ours(dataset):
    path = project_path_for(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('ACME')")
    conn.commit()
    conn.close()
    refused(dataset, "not an MMAD Inspector project.*customers")
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["customers"]
    conn.close()


def test_another_programs_application_id_is_refused(dataset):
    with Project.open(dataset) as p:
        path = p.path
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.commit()
    conn.close()
    refused(dataset, "another program")


@pytest.mark.parametrize("value", ["2.0", "1.5", "one", "", "-1", "\u0661"])
def test_a_schema_version_that_is_not_a_whole_number_is_refused_not_rewritten(dataset, value):
    with Project.open(dataset) as p:
        path = p.path
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (value,))
    conn.commit()
    conn.close()
    refused(dataset, "project format")
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()[0] == value
    conn.close()


def test_a_table_of_another_layout_is_refused(dataset):
    with Project.open(dataset) as p:
        path = p.path
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE verdicts; CREATE TABLE verdicts (id INTEGER PRIMARY KEY, key TEXT);")
    conn.close()
    refused(dataset, "verdicts.*without the column")


def test_a_project_of_an_older_version_opens_and_keeps_its_verdicts(dataset):
    path = project_with_verdicts(dataset, n=3)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 0")        # as files written before the id existed
    conn.commit()
    conn.close()
    with Project.open(dataset) as p:
        assert len(p.verdicts()) == 3
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()


def test_a_page_damaged_after_the_open_is_a_named_error_not_a_crash(dataset, monkeypatch):
    with Project.open(dataset) as p:
        p.record_verdict("disc/test/0000", verdict="confirmed")

        class Broken:
            def execute(self, *a, **k):
                raise sqlite3.DatabaseError("database disk image is malformed")

            def __getattr__(self, name):
                raise AssertionError(name)

        real, p._conn = p._conn, Broken()
        try:
            with pytest.raises(ProjectFileError, match="cannot be read") as e:
                p.verdict_history("disc/test/0000")
            assert str(p.path) in str(e.value)
        finally:
            p._conn = real


def test_rows_that_break_the_tables_rules_fail_the_integrity_check(dataset):
    """Content damage SQLite can see only by checking (here a NULL where the table forbids one,
    written behind the schema's back): refused by ``PRAGMA quick_check`` on open."""
    path = project_with_verdicts(dataset, n=3)
    conn = sqlite3.connect(path)
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'verdicts'").fetchone()[0]
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'verdicts'",
                 (sql.replace("key         TEXT NOT NULL", "key         TEXT"),))
    conn.commit()
    conn.close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO verdicts (key, time) VALUES (NULL, 'now')")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'verdicts'", (sql,))
    conn.commit()
    conn.close()
    err = refused(dataset, "is damaged")
    assert "integrity check" in str(err) and "verdicts.key" in str(err)
