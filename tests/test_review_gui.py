"""GUI side of the review work (offscreen): a verdict that a full disk refuses is kept, shown, said
in the window and saved by the retry; a corrupt journal of an older version still opens; a read-only
second window saves nothing anywhere; random key sequences with restarts lose nothing."""
from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from app.settings import Settings  # noqa: E402
from core.paths import cache_dir  # noqa: E402
from core.project import Project  # noqa: E402
from core.project.importer import journal_path_for  # noqa: E402
from core.session import Session  # noqa: E402
from conftest import MemoryDataset  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from review_crash import FINAL_KEYS, VERDICT_KEYS, Model, differences, fill_disk, free_disk  # noqa: E402


def make_window(qtbot, tmp_path) -> MainWindow:
    win = MainWindow(Settings(tmp_path / "settings.ini"), Session(detector="fake-test"), restore_layout=False)
    qtbot.addWidget(win)
    win.detector_panel.auto_run.setChecked(False)
    win.review.retry.timer.setInterval(100)
    win.show()
    return win


def open_dataset(qtbot, win, ds) -> None:
    win.set_dataset(ds)
    qtbot.waitUntil(lambda: win.inspector.sample is not None)
    win.activateWindow()
    win.browser.table.setFocus()


def dataset(tmp_path) -> MemoryDataset:
    root = tmp_path / "ds"
    root.mkdir(exist_ok=True)                   # the project lives beside the samples
    return MemoryDataset(root, classes=("disc",))


def test_disk_full_verdict_is_kept_said_and_retried(qtbot, tmp_path, fake_detector):
    win = make_window(qtbot, tmp_path)
    open_dataset(qtbot, win, dataset(tmp_path))
    first = win.dataset.current_key
    fill_disk(win.review.store)
    win.review_panel.note.setText("x" * 5000)                      # more than the file can take now
    qtbot.keyClick(win.browser.table, Qt.Key.Key_C)
    assert win.review.store.verdict(first).verdict == "confirmed" and win.review.store.pending == 1    # kept, shown
    assert "confirmed" in win.browser.model.index(win.browser.model.row_of(first), 4).data()
    text = win.banner.text()
    assert "1 verdict not saved yet (disk full)" in text and "retrying" in text
    with Project.open(win.review.store.dataset_root, if_locked="read_only") as ro:
        assert ro.verdict(first) is None                                                    # not on disk yet
    qtbot.wait(250)                                                                         # a retry fails: still said
    assert win.review.store.pending == 1 and "not saved yet" in win.banner.text()
    free_disk(win.review.store)                                                                  # space is back
    qtbot.waitUntil(lambda: win.review.store.pending == 0, timeout=3000)
    qtbot.waitUntil(lambda: "All verdicts are saved" in win.banner.text(), timeout=3000)
    with Project.open(win.review.store.dataset_root, if_locked="read_only") as ro:
        assert ro.verdict(first).verdict == "confirmed" and ro.verdict(first).note == "x" * 5000
    assert not win.review.retry.timer.isActive()
    win.close()


def test_unsaved_verdict_survives_opening_another_dataset(qtbot, tmp_path, fake_detector):
    """The project of a dataset left with verdicts a full disk refused stays open for the retry,
    which writes them once space is back and then closes it (its lock is released)."""
    win = make_window(qtbot, tmp_path)
    open_dataset(qtbot, win, dataset(tmp_path))
    first, old = win.dataset.current_key, win.review.store
    fill_disk(old)
    win.review_panel.note.setText("y" * 5000)
    qtbot.keyClick(win.browser.table, Qt.Key.Key_C)
    assert old.pending == 1
    other = tmp_path / "other"
    other.mkdir()
    open_dataset(qtbot, win, MemoryDataset(other, classes=("ring",)))
    assert win.review.store is not old and not old.closed and win.review.retry.pending == 1
    free_disk(old)
    qtbot.waitUntil(lambda: old.closed, timeout=3000)                # written, then closed
    with Project.open(old.dataset_root) as p:                         # the lock is free again
        assert p.verdict(first).verdict == "confirmed" and p.verdict(first).note == "y" * 5000
    win.close()


def test_corrupt_journal_and_infinite_score_do_not_break_the_window(qtbot, tmp_path, fake_detector):
    ds = dataset(tmp_path)
    path = journal_path_for(ds.root)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ds.select(["disc"], "test")[0].key
    path.write_bytes(b"\xef\xbb\xbf" + f'{{"key":"{key}","verdict":"rejected"}}\n'.encode() + b"[" * 1000 + b"\n")
    win = make_window(qtbot, tmp_path)
    open_dataset(qtbot, win, ds)
    assert win.review.store.verdict(key).verdict == "rejected"            # the BOM did not drop it
    assert "could not be read" in win.banner.text()
    win.review.store.record_verdict(key, "unsure", image_score=math.inf)   # stored as null, no exception
    assert win.review.store.verdict_history(key)[-1].image_score is None
    win.close()


def project_files(p: Project) -> dict:
    """The bytes of the project's files (not the WAL index, which a reader updates)."""
    return {f.name: f.read_bytes() for f in p.path.parent.iterdir() if f.is_file() and not f.name.endswith("-shm")}


def test_read_only_second_window_saves_nothing_anywhere(qtbot, tmp_path, fake_detector):
    """The second window says nothing is saved: its verdicts, final verdicts and marks go nowhere
    (an older version still appended its verdicts to the journal in the cache)."""
    ds = dataset(tmp_path)
    a = make_window(qtbot, tmp_path)
    open_dataset(qtbot, a, ds)
    b = make_window(qtbot, tmp_path / "b")
    open_dataset(qtbot, b, ds)
    assert a.project.writable and not b.project.writable and b.review.store.read_only
    files = project_files(a.review.store)
    reviews = cache_dir(create=False) / "reviews"
    journals = sorted(reviews.iterdir()) if reviews.is_dir() else []
    key = b.dataset.current_key
    for k in (Qt.Key.Key_C, Qt.Key.Key_R, Qt.Key.Key_U, Qt.Key.Key_O, Qt.Key.Key_X):
        qtbot.keyClick(b.browser.table, k)
        assert "not saved" in b.banner.text() and "read-only" in b.banner.text()
    assert b.dataset.current_key == key                                       # nothing recorded: no move either
    assert b.review.store.verdict(key) is None and a.review.store.verdict(key) is None and a.review.store.n_verdict_rows() == 0
    assert project_files(a.review.store) == files
    assert (sorted(reviews.iterdir()) if reviews.is_dir() else []) == journals
    assert not journal_path_for(ds.root).exists()
    b.close()
    a.close()


GUI_SEQUENCES = 6


def test_random_key_sequences_with_restarts_lose_nothing(qtbot, tmp_path, fake_detector):
    """Random C / R / U / O / X presses with notes, Up / Down, "go to the next sample" on or off, and
    window restarts; after every restart the project equals the model of the acknowledged presses."""
    keys = {k: getattr(Qt.Key, f"Key_{k}") for k in ("C", "R", "U", "O", "X")}
    ds = dataset(tmp_path)
    model = Model()
    restarts = presses = 0
    for seed in range(GUI_SEQUENCES):
        rng = random.Random(seed)
        win = make_window(qtbot, tmp_path / f"w{seed}")
        open_dataset(qtbot, win, ds)
        assert differences(win.review.store, model) == []
        for _ in range(rng.randint(4, 12)):
            step = rng.choice(["C", "R", "U", "O", "X", "C", "X", "Up", "Down"])
            if step in ("Up", "Down"):
                qtbot.keyClick(win.browser.table, getattr(Qt.Key, f"Key_{step}"))
                continue
            win.review_panel.advance.setChecked(rng.random() < 0.5)
            note = rng.choice(["", "", "dust", "  rim  "])
            win.review_panel.note.setText(note)
            key = win.dataset.current_key
            qtbot.keyClick(win.browser.table, keys[step])
            if step in VERDICT_KEYS:
                model.verdict(key, verdict=VERDICT_KEYS[step], note=note or None)
            else:
                model.verdict(key, final=FINAL_KEYS[step], note=note or None)
            presses += 1
            assert differences(win.review.store, model) == [], f"seed {seed}: after {step} on {key}"
        win.close()
        restarts += 1
        with Project.open(ds.root) as p:
            assert differences(p, model) == [], f"seed {seed}: after the restart"
            assert json.loads(p.meta("jsonl_import"))["found"] is False
    assert restarts == GUI_SEQUENCES and presses > 3 * GUI_SEQUENCES


def test_a_damaged_project_is_said_and_a_verdict_on_it_is_refused_not_a_crash(qtbot, tmp_path, fake_detector):
    ds = dataset(tmp_path)
    with Project.open(ds.root) as p:
        path = p.path
        for i in range(300):
            p.record_verdict(f"disc/test/{i:04d}", verdict="confirmed", note="n" * 50)
    import sqlite3
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    k = len(data) // page // 2
    data[k * page:(k + 1) * page] = bytes([0xA5]) * page
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    win = make_window(qtbot, tmp_path)
    open_dataset(qtbot, win, ds)
    text = win.banner.text()
    assert str(path) in text and "damaged" in text and "nothing is saved" in text
    assert win.review.store is None
    for key in (Qt.Key.Key_C, Qt.Key.Key_O, Qt.Key.Key_X):
        qtbot.keyClick(win.browser.table, key)                  # no uncaught sqlite3.DatabaseError
        assert "cannot be saved" in win.banner.text()
    assert path.read_bytes() == before
    win.close()
