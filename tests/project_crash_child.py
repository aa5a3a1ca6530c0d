"""Child process of the project kill -9 trials (tests/test_project.py).

``python project_crash_child.py DATASET PREFIX``: opens the project of DATASET and loops over actions
(a verdict, a region mark, an undo, a support set, a batch of scores), printing ``<kind> <i>`` on
stdout (flushed) right after each call returned; the parent kills it with SIGKILL at a random moment
and checks that every acknowledged action is in the project.
"""
import sys
from types import SimpleNamespace

from core.project import Project

project = Project.open(sys.argv[1], import_jsonl=False)
prefix = sys.argv[2]
print("ready", flush=True)
i = 0
marks = []
while True:
    key = f"{prefix}{i}"
    kind = i % 5
    if kind == 0:
        project.record_verdict(key, "confirm", final="nok", note="n" * (i % 300), reviewer="trial")
        out = f"verdict {key}"
    elif kind == 1:
        marks.append(project.mark_region(key, "false_positive", {"polygon": [[0, 0], [i, 0], [i, i]]}).id)
        out = f"mark {marks[-1]}"
    elif kind == 2:
        m = project.undo_mark(marks[-1])
        out = f"undo {m.id}"
    elif kind == 3:
        project.set_support(f"{prefix}class{i}", [{"key": f"k{j}"} for j in range(5)])
        out = f"support {prefix}class{i}"
    else:
        recs = [SimpleNamespace(key=f"{key}-{j}", image_score=float(j), decision="good", threshold=9.0)
                for j in range(16)]
        project.save_scores(recs, "det", "ph", f"fk{prefix}")
        out = f"scores {key}"
    sys.stdout.write(out + "\n")
    sys.stdout.flush()
    i += 1
