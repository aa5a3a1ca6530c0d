"""CLIP detector speed on this machine (random weights: the timing is real, the scores mean nothing).

    python benchmarks/bench_clip.py [--backbone ViT-B-16] [--n 3] [--device cpu]

Reports seconds per sample (RGB 224 px + a 200k-point organized cloud in 9 views), peak RSS, one
prompt edit (rescore: text only) and one support change (few-shot refit of the memory, 1 shot).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from core.detectors import registry  # noqa: E402
from core.sample import Sample  # noqa: E402


def part(seed: int, size: int = 448) -> Sample:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32) / size - 0.5
    z = 0.2 * np.exp(-(xx ** 2 + yy ** 2) * 8) + rng.normal(0, 1e-3, xx.shape)
    img = (np.stack([xx, yy, z], -1) * 255 + 128).clip(0, 255).astype(np.uint8)
    return Sample(id=str(seed), rgb=img, points=np.stack([xx, yy, z], -1).astype(np.float32))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="ViT-B-16")
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    det = registry.create("clip-few-shot", device=a.device, backbone=a.backbone, weights="random")
    t = time.perf_counter()
    det.fit([part(100)], class_name="bump")
    print(f"first fit (build model + 1 support sample): {time.perf_counter() - t:.2f} s")
    samples = [part(i) for i in range(a.n + 1)]
    det.extract(samples[0])     # warm-up
    ts = []
    for s in samples[1:]:
        t = time.perf_counter()
        c = det.extract(s)
        det.fuse(c)
        ts.append(time.perf_counter() - t)
    print(f"extract + fuse, RGB {s.rgb.shape[0]} px + {s.n_points} points in 9 views: "
          f"median {np.median(ts):.2f} s/sample (n={len(ts)})")
    det.set_params(object_name="widget")
    t = time.perf_counter()
    det.rescore(c)
    print(f"prompt edit (object name: all 231 prompts re-encoded) rescore: {time.perf_counter() - t:.3f} s")
    det.set_params(anomalous_states=tuple(det["anomalous_states"]) + ("cracked {}",))
    t = time.perf_counter()
    det.rescore(c)
    print(f"prompt edit (one state added: 21 new prompts) rescore: {time.perf_counter() - t:.3f} s")
    t = time.perf_counter()
    det.fit([part(101)], class_name="bump")
    print(f"support change (refit the memory, 1 shot): {time.perf_counter() - t:.2f} s")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
