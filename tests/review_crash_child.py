"""Child process of the kill -9 trials (tests/test_review.py, benchmarks/bench_review_crash.py).

``python review_crash_child.py STORE NOTE_BYTES PREFIX``: records verdicts ``PREFIX0, PREFIX1, ...`` in a loop and
prints ``i`` on stdout (flushed) right after ``record()`` returned for ``PREFIX{i}``; the parent kills it
with SIGKILL at a random moment and checks that every acknowledged verdict is on disk.
"""
import sys

from core.review import VERDICTS, ReviewStore

store = ReviewStore(sys.argv[1])
note = "n" * int(sys.argv[2])
prefix = sys.argv[3]
print("ready", flush=True)
i = 0
while True:
    store.record(f"{prefix}{i}", VERDICTS[i % 3], note=note, annotator="trial", image_score=i * 0.5)
    sys.stdout.write(f"{i}\n")
    sys.stdout.flush()
    i += 1
