"""CLIP detector speed on this machine (random weights: the timing is real, the scores mean nothing).

    python benchmarks/bench_clip.py [--backbone ViT-B-16] [--n 3] [--device cpu] [--precision auto]

Reports seconds per sample (RGB 224 px + a 200k-point organized cloud in 9 views), peak RSS, one
prompt edit (rescore: text only) and one support change (few-shot refit of the memory, 1 shot).
Every figure is wall time and, in brackets, this process's CPU time divided by the torch threads: on a
shared machine the wall time measures the other users too, the CPU time is what this work costs.
A breakdown (render 9 views, backbone on RGB + views, the rest) follows.
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


class Clock:
    """Wall and CPU seconds of a block (CPU / torch threads ~ the wall time on an idle machine)."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        import torch
        self.wall = time.perf_counter() - self.w
        self.cpu = (time.process_time() - self.c) / max(torch.get_num_threads(), 1)

    def __str__(self):
        return f"{self.wall:.2f} s (cpu/threads {self.cpu:.2f} s)"


def breakdown(det, s) -> None:
    from core.backbones.clip_dense import encode_dense, preprocess
    from core.detectors.clip import multiview
    import torch
    h = det._handle()
    size = det._size(h)
    with Clock() as r:
        imgs, _, _ = multiview.prepare(s.valid_points(), det["view_set"], size)
    x = preprocess([s.rgb] + list(imgs), size, torch.device(h.device), getattr(torch, h.dtype))
    from core.detectors.clip.detector import _parse_layers
    layers = _parse_layers(det["layers"], h.depth)
    with Clock() as e:
        encode_dense(h.model, x, layers)
    print(f"  breakdown: render 9 views {r}; backbone on {len(x)} images {e}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="ViT-B-16")
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto", help="auto | float32 | bfloat16 | float16 (CUDA)")
    a = ap.parse_args()
    import os
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    det = registry.create("clip-few-shot", device=a.device, backbone=a.backbone, weights="random",
                          precision=a.precision)
    t = time.perf_counter()
    det.fit([part(100)], class_name="bump")
    print(f"first fit (build model + 1 support sample): {time.perf_counter() - t:.2f} s")
    print(f"backbone {a.backbone} in {det._handle().dtype} on {a.device}")
    samples = [part(i) for i in range(a.n + 1)]
    det.extract(samples[0])     # warm-up
    ts, cs = [], []
    for s in samples[1:]:
        with Clock() as k:
            c = det.extract(s)
            det.fuse(c)
        ts.append(k.wall)
        cs.append(k.cpu)
    print(f"extract + fuse, RGB {s.rgb.shape[0]} px + {s.n_points} points in 9 views: "
          f"median {np.median(ts):.2f} s/sample (cpu/threads {np.median(cs):.2f} s) (n={len(ts)})")
    breakdown(det, samples[1])
    det.set_params(object_name="widget")
    with Clock() as k:
        det.rescore(c)
    print(f"prompt edit (object name: all 231 prompts re-encoded) rescore: {k}")
    states = tuple(det["anomalous_states"])
    det.set_params(anomalous_states=states + ("cracked {}",))
    with Clock() as k:
        det.rescore(c)
    print(f"prompt edit (one state added: 21 new prompts) rescore: {k}")
    det.set_params(object_name="", anomalous_states=states)      # the defaults again: every prompt cached
    with Clock() as k:
        det.rescore(c)
    print(f"prompt edit back to the default prompt set (all cached, no text encoding) rescore: {k}")
    with Clock() as k:
        det.fit([part(101)], class_name="bump")
    print(f"support change (refit the memory, 1 shot): {k}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
