"""The project store (core.project): restore after reopen, crash safety, one writer, journal import."""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.errors import InputError
from core.project import (Project, ProjectLockedError, ProjectReadOnlyError, params_hash, project_path_for,
                          restore_session, save_session_scores)
from core.project import store as project_store
from core.project.importer import journal_path_for
from core.project.store import KEEP_SCORE_VERSIONS
from core.session import Session, ThreadBackend

sys.path.insert(0, str(Path(__file__).parent))
from review_crash import Model, kill_trial  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOCK_CHILD = Path(__file__).with_name("project_lock_child.py")


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture
def dataset(tmp_path) -> Path:
    d = tmp_path / "parts"
    d.mkdir()
    return d


def _rec(key, score, decision="good", threshold=1.0, cls="c"):
    return SimpleNamespace(key=key, image_score=score, decision=decision, threshold=threshold, seconds=0.1,
                           ref=SimpleNamespace(class_name=cls))


# ---------------------------------------------------------------------- restore after reopen
def test_everything_survives_reopen(dataset, tmp_path):
    with Project.open(dataset) as p:
        assert p.path == dataset / ".mmad" / "project.sqlite"
        p.record_verdict("c/test/crack/000", "confirm", note="clear crack", reviewer="ana", image_score=2.5,
                         decision="anomalous", detector="det")
        p.record_verdict("c/test/crack/000", final="NOK")
        p.record_verdict("c/test/good/001", "reject", final="ok", reviewer="bo")
        m1 = p.mark_region("c/test/crack/000", "true_defect", {"polygon": [[1, 2], [5, 2], [5, 9]]}, note="scratch")
        m2 = p.mark_region("c/test/crack/000", "false_positive", {"points": [3, 4, 5]})
        assert p.undo_mark(key="c/test/crack/000").id == m2.id
        p.set_support("c", [SimpleNamespace(key="c/train/good/000"), tmp_path / "extra.png"])
        p.set_detector("other", {"k": 3})
        p.set_detector("det", {"alpha": 0.25, "prompts": ("a", "b")})
        p.save_scores([_rec("c/test/crack/000", 2.5, "anomalous"), _rec("c/test/good/001", 0.25)], "det", "ph1",
                      {"c": "fk1"})
        p.set_setting("layout", {"split": [3, 1]})
    with Project.open(dataset) as p:
        v = p.verdict("c/test/crack/000")
        assert (v.verdict, v.final, v.note, v.reviewer) == ("confirmed", "nok", "clear crack", "")
        assert [h.final for h in p.verdict_history("c/test/crack/000")] == [None, "nok"]
        assert p.verdict_history("c/test/crack/000")[0].image_score == 2.5
        assert set(p.verdicts()) == {"c/test/crack/000", "c/test/good/001"}
        assert [m.id for m in p.marks("c/test/crack/000")] == [m1.id]
        assert p.marks("c/test/crack/000")[0].geometry == {"polygon": [[1.0, 2.0], [5.0, 2.0], [5.0, 9.0]]}
        assert [m.active for m in p.marks(include_deleted=True)] == [True, False]
        sup = p.support("c")
        assert sup[0].key == "c/train/good/000" and sup[1].path == tmp_path / "extra.png"
        assert p.support("other") is None
        d = p.detector()
        assert d.id == "det" and d.params == {"alpha": 0.25, "prompts": ["a", "b"]}
        assert p.detector_params("other") == {"k": 3} and p.detector_params("none") is None   # kept per detector
        s = p.load_scores("det", "ph1", "fk1")
        assert s["c/test/crack/000"].image_score == 2.5 and s["c/test/crack/000"].anomalous is True
        assert s["c/test/good/001"].anomalous is False
        assert p.setting("layout") == {"split": [3, 1]}
        assert p.redo_mark(m2.id).active


def test_scores_are_found_only_for_what_they_depend_on(dataset):
    with Project.open(dataset) as p:
        p.save_scores([_rec("k", 0.5)], "det", "ph1", "fk1")
        assert p.load_scores("det", "ph2", "fk1") == {}        # a parameter changed
        assert p.load_scores("det", "ph1", "fk2") == {}        # the support (fit) changed
        assert p.load_scores("other", "ph1", "fk1") == {}      # another detector
        for i in range(KEEP_SCORE_VERSIONS + 3):               # a slider dragged: old versions are pruned
            p.save_scores([_rec("k", float(i))], "det", f"v{i}", "fk1")
        n = p._query("SELECT COUNT(*) FROM scores WHERE key = 'k'")[0][0]
        assert n == KEEP_SCORE_VERSIONS
        assert p.load_scores("det", f"v{KEEP_SCORE_VERSIONS + 2}", "fk1")["k"].image_score == KEEP_SCORE_VERSIONS + 2
        assert p.save_scores([_rec("none", None), _rec("nan", float("nan"))], "det", "x", "y") == 0


def test_bad_input_is_refused_and_changes_nothing(dataset):
    with Project.open(dataset) as p:
        with pytest.raises(ValueError, match="verdict must be"):
            p.record_verdict("k", "maybe")
        with pytest.raises(ValueError, match="final verdict"):
            p.record_verdict("k", final="great")
        with pytest.raises(ValueError):
            p.record_verdict("", "confirm")
        with pytest.raises(ValueError, match="mark"):
            p.mark_region("k", "scratch", {"bbox": [0, 0, 1, 1]})
        for bad in ({"bbox": [0, 0, 1]}, {"bbox": [5, 0, 1, 1]}, {"polygon": [[0, 0], [1, 1]]},
                    {"points": [1, -2]}, {"points": [1.5]}, {"polygon": [[0, 0], [1, float("inf")], [2, 2]]},
                    {"bbox": [0, 0, 1, 1], "points": [1]}, [1, 2, 3]):
            with pytest.raises(ValueError):
                p.mark_region("k", "false_positive", bad)
        with pytest.raises(ValueError, match="needs a verdict"):
            p.record_verdict("k", None, None, None)
        assert p.n_verdict_rows() == 0 and p.marks(include_deleted=True) == []
        assert p.undo_mark() is None


def test_corrupt_or_newer_project_file_gets_one_clear_message(dataset):
    path = project_path_for(dataset)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"this is no database" * 100)
    with pytest.raises(InputError, match="project file") as e:
        Project.open(dataset)
    assert str(path) in str(e.value)
    path.unlink()
    with Project.open(dataset):
        pass
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match="newer"):
        Project.open(dataset)
    # the refused open released its lock
    project_store.ProjectLock(path).acquire().release()


def test_read_only_dataset_uses_the_user_data_folder(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("MMAD_DATA", str(tmp_path / "userdata"))
    monkeypatch.setattr(project_store, "_dataset_writable", lambda root: False)
    with Project.open(dataset) as p:
        assert p.path.is_relative_to(tmp_path / "userdata" / "projects")
        assert p.path.parent.name.startswith("parts-")
        p.record_verdict("k", "unsure")
    assert not (dataset / ".mmad" / "project.sqlite").exists()
    with Project.open(dataset) as p:
        assert p.verdict("k").verdict == "unsure"
    other = tmp_path / "b" / "parts"
    other.mkdir(parents=True)
    assert project_path_for(other) != project_path_for(dataset)   # same folder name, other dataset


# ---------------------------------------------------------------------- one writer
def test_second_instance_is_refused_or_reads_only(dataset):
    child = subprocess.Popen([sys.executable, str(LOCK_CHILD), str(dataset)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=_env(), cwd=str(ROOT))
    try:
        assert child.stdout.readline().strip() == b"ready"
        with pytest.raises(ProjectLockedError) as e:
            Project.open(dataset)
        assert e.value.pid == child.pid and f"process {child.pid}" in str(e.value)
        assert "read-only" in str(e.value)
        with Project.open(dataset, if_locked="read_only") as ro:
            assert ro.read_only
            assert ro.verdict("held/by/child").verdict == "confirmed"
            with pytest.raises(ProjectReadOnlyError):
                ro.record_verdict("k", "confirm")
    finally:
        child.stdin.close()
        child.wait(10)
        child.stdout.close()
    with Project.open(dataset) as p:             # the holder is gone: the project opens for writing
        assert not p.read_only
        p.record_verdict("k", "confirm")


def test_lock_of_a_killed_instance_does_not_block(dataset):
    child = subprocess.Popen([sys.executable, str(LOCK_CHILD), str(dataset)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=_env(), cwd=str(ROOT))
    assert child.stdout.readline().strip() == b"ready"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    child.stdin.close()
    child.stdout.close()
    assert (project_path_for(dataset).parent / "project.sqlite.lock").exists()    # stale file, no lock
    with Project.open(dataset) as p:
        assert p.verdict("held/by/child") is not None


# ---------------------------------------------------------------------- crash safety
KILL_TRIALS = int(os.environ.get("MMAD_KILL_TRIALS", "20"))


def test_kill_9_at_random_moments_loses_no_acknowledged_action(dataset):
    """Writers doing random review actions (verdicts, final verdicts, notes, marks, undo / redo,
    support sets, score batches) on the same project are killed with SIGKILL at random moments:
    after each kill the project holds exactly the acknowledged actions (the one in flight may be
    there or not), and it always opens."""
    rng = random.Random(11)
    model = Model()
    acked = 0
    for trial in range(KILL_TRIALS):
        r = kill_trial(dataset, model, seed=1000 + trial, delay=rng.uniform(0.0, 0.25))
        assert r["lost"] == [], f"trial {trial}: " + "; ".join(r["lost"])
        acked += r["acked"]
    assert acked > KILL_TRIALS            # the writers did get to write
    assert model.rows > 0 and model.marks


# ---------------------------------------------------------------------- the older journal: imported once
def test_jsonl_verdicts_are_imported_once(dataset):
    path = journal_path_for(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [{"key": "c/test/crack/000", "verdict": "confirmed", "note": "first", "annotator": "ana",
              "time": "2024-01-01T00:00:00.000+00:00", "image_score": 1.5, "decision": "anomalous"},
             {"key": "c/test/crack/000", "verdict": "rejected", "note": "second look",
              "time": "2024-01-01T00:00:01.000+00:00"},
             {"key": "c/test/good/003", "verdict": "unsure", "time": "2024-01-01T00:00:02.000+00:00"}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + "{not json\n")   # a corrupt line: skipped
    with Project.open(dataset) as p:
        assert p.imported == 3
        v = p.verdict("c/test/crack/000")
        assert (v.verdict, v.note, v.source) == ("rejected", "second look", "jsonl")
        assert p.verdict_history("c/test/crack/000")[0].reviewer == "ana"
        assert p.verdict_history("c/test/crack/000")[0].image_score == 1.5
        p.record_verdict("c/test/good/003", final="ok")
    with path.open("a") as fh:                                 # written after the import: not re-read
        fh.write(json.dumps({"key": "c/test/good/004", "verdict": "confirmed"}) + "\n")
    with Project.open(dataset) as p:
        assert p.imported == 0
        assert p.n_verdict_rows() == 4
        assert p.verdict("c/test/good/003").final == "ok" and p.verdict("c/test/good/004") is None


# ---------------------------------------------------------------------- with a real session
def _session(ds) -> Session:
    return Session(ds, "fake-test", backend=ThreadBackend(), fit_store=None)


def test_restore_session_scores_support_and_detector(fake_detector, memory_dataset):
    s = _session(memory_dataset)
    s.set_params(alpha=0.3)
    custom = s.support_candidates("disc")[:2]
    s.set_support("disc", custom)
    refs = memory_dataset.select(split="test")
    s.run(refs)
    with Project.open(memory_dataset.root) as p:
        p.set_detector(s.detector_id, s.params)
        p.set_support("disc", custom)
        assert save_session_scores(p, s) == len(refs)
    before = {k: (r.image_score, r.decision, r.threshold) for k, r in s.records.items() if r.image_score is not None}
    extracts = fake_detector.counters["extract"]

    fresh = Session(memory_dataset, backend=ThreadBackend(), fit_store=None)
    with Project.open(memory_dataset.root) as p:
        rep = restore_session(p, fresh)
    assert rep.detector == "fake-test" and rep.support_classes == ["disc"] and rep.scores == len(refs)
    assert fresh.params["alpha"] == 0.3 and fresh.support("disc") == custom
    after = {k: (r.image_score, r.decision, r.threshold) for k, r in fresh.records.items() if r.image_score is not None}
    assert after == before and fake_detector.counters["extract"] == extracts     # nothing recomputed

    # another parameter value: no score is restored; another support of one class: only that class loses them
    other = _session(memory_dataset)
    other.set_params(alpha=0.3, gain=2.0)
    with Project.open(memory_dataset.root) as p:
        assert restore_session(p, other, detector=False).scores == 0
        p.set_support("disc", custom[:1])
        third = _session(memory_dataset)
        third.set_params(alpha=0.3)
        rep = restore_session(p, third)
    restored = {k for k, r in third.records.items() if r.image_score is not None}
    assert restored == {r.key for r in refs if r.class_name == "ring"}
    assert params_hash(third.params) == params_hash(s.params)


def test_exports_dir_is_visible_and_named_after_the_dataset(tmp_path, monkeypatch):
    from core import paths
    monkeypatch.delenv("MMAD_EXPORTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    d = paths.exports_dir("/data/MVTec 3D: bagel")
    assert d == tmp_path / "MMAD Inspector exports" / "MVTec 3D_ bagel" and d.is_dir()
    monkeypatch.setenv("MMAD_EXPORTS", str(tmp_path / "out"))
    assert paths.exports_dir(create=False) == tmp_path / "out"
