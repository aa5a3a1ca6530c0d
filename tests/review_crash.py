"""Random review sessions on a project and the model of what they must leave behind.

Shared by tests/test_review.py (sequences of open / act / close and kill -9 trials),
tests/project_crash_child.py (the process that is killed) and benchmarks/bench_review_crash.py.

* :func:`random_action` draws one action (a verdict C / R / U, a final verdict O / X / unsure, a
  note, a region mark, an undo or redo of a mark, a support set, a batch of scores) on a few sample
  keys, so that actions on one sample pile up across reopens;
* :func:`apply` performs it on a :class:`~core.project.Project` through the product's API and returns
  what the user is told (a mark's id; ``None`` for the rest);
* :class:`Model` is the simple in-test model: it applies the *acknowledged* actions the way the
  project documents them (a verdict left None keeps the previous one, a note left None keeps the
  note, undo withdraws the sample's latest standing mark, ...), and :func:`differences` lists every
  way a project differs from it (empty: nothing lost, nothing extra).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("project_crash_child.py")

KEYS = tuple(f"c{i % 2}/test/{'crack' if i % 3 else 'good'}/{i:03d}" for i in range(6))
VERDICT_KEYS = {"C": "confirmed", "R": "rejected", "U": "unsure"}      # the review panel's keys
FINAL_KEYS = {"O": "ok", "X": "nok", "unsure": "unsure"}                # final verdict on the part
NOTES = (None, None, None, "", "dust", "  scratch at the rim ", "ünïcode ✓", "n" * 500)


def random_action(rng: random.Random, with_data: bool = False) -> dict:
    """One action as a plain (JSON) dict; ``with_data`` adds support sets and score batches."""
    key = rng.choice(KEYS)
    kinds = ["verdict"] * 4 + ["final"] * 3 + ["note", "mark", "mark", "undo", "redo"]
    if with_data:
        kinds += ["support", "scores"]
    kind = rng.choice(kinds)
    if kind == "verdict":
        return {"do": "verdict", "key": key, "verdict": rng.choice(list(VERDICT_KEYS)), "note": rng.choice(NOTES),
                "reviewer": rng.choice(("", "ana", "bo"))}
    if kind == "final":
        return {"do": "final", "key": key, "final": rng.choice(list(FINAL_KEYS)), "note": rng.choice(NOTES)}
    if kind == "note":
        return {"do": "note", "key": key, "note": rng.choice(NOTES[3:])}
    if kind == "mark":
        return {"do": "mark", "key": key, "kind": rng.choice(("false_positive", "true_defect")), "size": rng.randint(1, 40)}
    if kind == "undo":
        return {"do": "undo", "key": key}
    if kind == "redo":
        return {"do": "redo", "id": rng.randint(1, 12)}
    if kind == "support":
        return {"do": "support", "class": rng.choice(("c0", "c1")), "n": rng.randint(1, 5)}
    return {"do": "scores", "key": key, "n": rng.randint(1, 16), "base": round(rng.random(), 6)}


def apply(project: Any, a: dict) -> Optional[int]:
    """Perform action ``a`` on ``project``; returns a mark's id for ``mark`` / ``undo`` / ``redo``
    (None when there was none to undo / redo)."""
    do = a["do"]
    if do == "verdict":
        project.record_verdict(a["key"], verdict=VERDICT_KEYS[a["verdict"]], note=a["note"], reviewer=a["reviewer"])
    elif do == "final":
        project.record_verdict(a["key"], final=FINAL_KEYS[a["final"]], note=a["note"])
    elif do == "note":
        project.record_verdict(a["key"], note=a["note"])
    elif do == "mark":
        s = a["size"]
        return project.mark_region(a["key"], a["kind"], {"polygon": [[0, 0], [s, 0], [s, s]]}).id
    elif do == "undo":
        m = project.undo_mark(key=a["key"])
        return None if m is None else m.id
    elif do == "redo":
        m = project.redo_mark(a["id"])
        return None if m is None else m.id
    elif do == "support":
        project.set_support(a["class"], [{"key": f"{a['class']}/train/good/{j:03d}"} for j in range(a["n"])])
    elif do == "scores":
        recs = [SimpleNamespace(key=f"{a['key']}-{j}", image_score=a["base"] + j, decision="good", threshold=9.0)
                for j in range(a["n"])]
        project.save_scores(recs, "det", "ph", "fk")
    return None


@dataclass
class Model:
    """What the project must hold after the acknowledged actions (see the module doc)."""
    state: dict = field(default_factory=dict)        # key -> (verdict, final, note)
    rows: int = 0                                     # verdict history rows
    marks: dict = field(default_factory=dict)        # id -> [key, kind, active]
    support: dict = field(default_factory=dict)      # class -> n items
    scores: dict = field(default_factory=dict)       # key -> score

    def verdict(self, key: str, verdict: Optional[str] = None, final: Optional[str] = None,
                note: Optional[str] = None) -> None:
        v, f, n = self.state.get(key, (None, None, ""))
        self.state[key] = (verdict if verdict is not None else v, final if final is not None else f,
                           n if note is None else note.strip())
        self.rows += 1

    def expect(self, a: dict) -> Optional[int]:
        """The mark id :func:`apply` must return for ``a`` in this state (None for other actions)."""
        if a["do"] == "undo":
            standing = [i for i, (k, _, on) in self.marks.items() if k == a["key"] and on]
            return max(standing) if standing else None
        if a["do"] == "redo":
            return a["id"] if a["id"] in self.marks and not self.marks[a["id"]][2] else None
        return None

    def ack(self, a: dict, result: Optional[int]) -> None:
        """Apply an acknowledged action (``result``: what :func:`apply` returned)."""
        do = a["do"]
        if do == "verdict":
            self.verdict(a["key"], verdict=VERDICT_KEYS[a["verdict"]], note=a["note"])
        elif do == "final":
            self.verdict(a["key"], final=FINAL_KEYS[a["final"]], note=a["note"])
        elif do == "note":
            self.verdict(a["key"], note=a["note"])
        elif do == "mark":
            self.marks[result] = [a["key"], a["kind"], True]
        elif do in ("undo", "redo") and result is not None:
            self.marks[result][2] = do == "redo"
        elif do == "support":
            self.support[a["class"]] = a["n"]
        elif do == "scores":
            self.scores.update({f"{a['key']}-{j}": a["base"] + j for j in range(a["n"])})


def differences(project: Any, model: Model) -> list[str]:
    """Every way ``project`` differs from ``model`` (empty when it holds exactly the acknowledged work)."""
    out = []
    got = {k: (v.verdict, v.final, v.note) for k, v in project.verdicts().items()}
    for k in sorted(set(got) | set(model.state)):
        if got.get(k) != model.state.get(k):
            out.append(f"verdict of {k}: project {got.get(k)}, acknowledged {model.state.get(k)}")
    rows = project.n_verdict_rows() + project.pending
    if rows != model.rows:
        out.append(f"{rows} verdict history rows, {model.rows} acknowledged actions")
    marks = {m.id: [m.key, m.kind, m.active] for m in project.marks(include_deleted=True)}
    if marks != model.marks:
        out.append(f"marks: project {marks}, acknowledged {model.marks}")
    for c, n in model.support.items():
        s = project.support(c)
        if s is None or len(s) != n:
            out.append(f"support of {c}: project {None if s is None else len(s)} items, acknowledged {n}")
    if model.scores:
        got_s = {k: r.image_score for k, r in project.load_scores("det", "ph", "fk").items()}
        if got_s != model.scores:
            out.append(f"scores: {len(set(got_s.items()) ^ set(model.scores.items()))} differ")
    return out


def fill_disk(project: Any) -> None:
    """The project file may not grow any more: SQLite's own "database or disk is full" error."""
    c = project._db()
    c.execute(f"PRAGMA max_page_count = {c.execute('PRAGMA page_count').fetchone()[0]}").fetchall()


def free_disk(project: Any) -> None:
    project._db().execute("PRAGMA max_page_count = 1073741823").fetchall()


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def kill_trial(dataset: Path, model: Model, seed: int, delay: float) -> dict:
    """Start a child running random actions (seed ``seed``) on the project of ``dataset``,
    SIGKILL it after ``delay`` seconds, reopen the project and compare it with ``model`` plus the
    child's acknowledged actions (``model`` is updated).  The one action in flight when the kill
    landed may or may not be there; both are accepted, and ``model`` follows what is.

    Returns ``acked`` (actions acknowledged), ``in_flight`` (0 / 1), ``in_flight_saved`` (0 / 1),
    ``lost`` (differences: must be empty).
    """
    from core.project import Project
    proc = subprocess.Popen([sys.executable, str(CHILD), str(dataset), str(seed)], stdout=subprocess.PIPE,
                            env=_env(), cwd=str(ROOT))
    assert proc.stdout.readline().strip() == b"ready"
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()                     # drained as it comes: the child never waits on a full pipe
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reader.join()
    proc.stdout.close()
    acked, flight = 0, None
    for raw in lines:
        if not raw.endswith(b"\n"):
            break                      # the kill cut this line: its action is in flight
        line = raw.decode("utf-8")
        if line.startswith("do "):
            flight = json.loads(line[3:])
        elif line.startswith("ok ") and flight is not None:
            model.ack(flight, json.loads(line[3:]))
            acked += 1
            flight = None
    with Project.open(dataset, import_jsonl=False) as p:
        lost = differences(p, model)
        saved = 0
        if lost and flight is not None and flight["do"] != "mark":
            trial = Model(dict(model.state), model.rows, {k: list(v) for k, v in model.marks.items()},
                          dict(model.support), dict(model.scores))
            trial.ack(flight, trial.expect(flight))
            if not differences(p, trial):
                model.__dict__.update(trial.__dict__)
                lost, saved = [], 1
        elif lost and flight is not None:         # a mark committed just before the kill: its id is the next one
            new = [m for m in p.marks(include_deleted=True) if m.id not in model.marks]
            if len(new) == 1:
                model.ack(flight, new[0].id)
                lost, saved = differences(p, model), 1
    return {"acked": acked, "in_flight": int(flight is not None), "in_flight_saved": saved, "lost": lost}
