"""Child process of the project kill -9 trials (tests/review_crash.py).

``python project_crash_child.py DATASET SEED``: opens the project of DATASET and performs random
actions (:func:`review_crash.random_action`: verdicts, final verdicts, notes, region marks, undo /
redo, support sets, score batches) in a loop.  Before each it prints ``do <action as JSON>``, right
after the call returned ``ok <result as JSON>`` (both flushed); the parent kills it with SIGKILL at a
random moment and checks that the project holds exactly the acknowledged actions.
"""
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from review_crash import apply, random_action  # noqa: E402

from core.project import Project  # noqa: E402

project = Project.open(sys.argv[1], import_jsonl=False)
rng = random.Random(int(sys.argv[2]))
print("ready", flush=True)
while True:
    action = random_action(rng, with_data=True)
    sys.stdout.write(f"do {json.dumps(action)}\n")
    sys.stdout.flush()
    result = apply(project, action)
    sys.stdout.write(f"ok {json.dumps(result)}\n")
    sys.stdout.flush()
