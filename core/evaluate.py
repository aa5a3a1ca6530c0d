"""Evaluate a detector on a labelled dataset (headless; the CLI and the GUI both call this).

Protocol (the MVTec 3D-AD few-shot protocol): for each class, the support set is the first K
``train/good`` samples; every ``test`` sample is scored; metrics are computed per class and averaged.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .datasets import iter_samples
from .datasets.base import Dataset
from .detectors import create
from .errors import Cancelled, InputError, MMADError
from .metrics import EvalAccumulator
from .sample import Sample, resize_map

METRIC_KEYS = ("image_auroc", "pixel_auroc", "aupro_30", "aupro_1", "point_auroc", "seconds_per_sample")
TABLE_COLUMNS = (("I-AUROC", "image_auroc"), ("P-AUROC", "pixel_auroc"), ("AUPRO@30%", "aupro_30"),
                 ("AUPRO@1%", "aupro_1"), ("Pt-AUROC", "point_auroc"), ("s/sample", "seconds_per_sample"))

EventFn = Callable[[str, dict], None]  # (kind, info): kinds "class", "sample", "skip", "fit"


@dataclass
class Skipped:
    key: str
    reason: str


@dataclass
class EvalReport:
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    mean: dict[str, float] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    detector: str = ""
    shots: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        clean = lambda d: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}
        return {"detector": self.detector, "shots": self.shots, "params": _jsonable(self.params),
                "per_class": {c: clean(m) for c, m in self.per_class.items()}, "mean": clean(self.mean),
                "skipped": [{"sample": s.key, "reason": s.reason} for s in self.skipped]}

    def table(self) -> str:
        return format_table(self.per_class, self.mean)


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))


def format_table(per_class: dict[str, dict[str, float]], mean: dict[str, float]) -> str:
    name_w = max([len("class"), len("mean")] + [len(c) for c in per_class])
    head = f"{'class':<{name_w}}  " + "  ".join(f"{h:>9}" for h, _ in TABLE_COLUMNS)
    lines = [head, "-" * len(head)]

    def row(name: str, m: dict[str, float]) -> str:
        cells = []
        for _, k in TABLE_COLUMNS:
            v = m.get(k, float("nan"))
            cells.append(f"{'n/a':>9}" if v is None or (isinstance(v, float) and math.isnan(v))
                         else f"{v:>9.3f}" if k != "seconds_per_sample" else f"{v:>9.2f}")
        return f"{name:<{name_w}}  " + "  ".join(cells)

    for c, m in per_class.items():
        lines.append(row(c, m))
    lines.append("-" * len(head))
    lines.append(row("mean", mean))
    return "\n".join(lines)


def mean_metrics(per_class: dict[str, dict[str, float]]) -> dict[str, float]:
    out = {}
    for k in METRIC_KEYS:
        vals = [m[k] for m in per_class.values() if k in m and m[k] is not None and not math.isnan(m[k])]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


def save_map_tiff(root: Path, sample: Sample, pixel_map: np.ndarray) -> Path:
    """Write a fused map as float32 TIFF at the sample's original RGB resolution, in the official
    MVTec 3D-AD evaluation layout ``root/<class>/test/<label>/<id>.tiff``."""
    import tifffile
    shape = sample.grid_shape or pixel_map.shape
    m = resize_map(pixel_map, shape)
    m = np.nan_to_num(m, nan=float(np.nanmin(m)) if np.isfinite(m).any() else 0.0).astype(np.float32)
    out = Path(root) / (sample.class_name or "unknown") / "test" / (sample.label or "unknown") / f"{sample.id}.tiff"
    out.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(out, m)
    return out


def evaluate(dataset: Dataset, detector_id: str, classes: Optional[Sequence[str]] = None, shots: int = 5,
             params: Optional[dict[str, Any]] = None, device: str = "cpu", save_maps: Optional[Path] = None,
             on_event: Optional[EventFn] = None, cancel: Optional[Callable[[], bool]] = None) -> EvalReport:
    """Few-shot evaluation of ``detector_id`` on every class of ``dataset``.

    ``on_event(kind, info)`` reports progress: ("class", {name, n_test}), ("sample", {key, seconds,
    image_score, done, total}), ("skip", {key, reason}).  Bad samples are skipped and reported, the
    rest goes on.  Raises InputError when a class has no usable support or test sample.
    """
    report = EvalReport(detector=detector_id, shots=shots, params=dict(params or {}))
    classes = list(classes) if classes else dataset.classes
    unknown = [c for c in classes if c not in dataset.classes]
    if unknown:
        raise InputError(dataset.root, f"unknown class(es) {', '.join(unknown)}; the dataset has: "
                                       f"{', '.join(dataset.classes)}")

    def skip(key: str, reason: str) -> None:
        report.skipped.append(Skipped(key, reason))
        if on_event:
            on_event("skip", {"key": key, "reason": reason})

    for cls in classes:
        test_refs = dataset.select([cls], split="test")
        if not test_refs:
            skip(cls, "class has no test samples")
            continue
        det = create(detector_id, device=device, **(params or {}))
        report.params = det.get_params()
        if det.needs.support or shots > 0:
            sup_refs = dataset.support_refs(cls, shots)
            support = [smp for _, smp in iter_samples(dataset, sup_refs, lambda r, e: skip(r.key, str(e)))]
            if len(support) < max(1, det.needs.support) and det.needs.support:
                raise InputError(dataset.root / cls, f"class '{cls}' has {len(support)} usable good training "
                                                     f"sample(s); detector '{detector_id}' needs at least "
                                                     f"{det.needs.support}")
        else:
            support = []
        if on_event:
            on_event("class", {"name": cls, "n_test": len(test_refs), "n_support": len(support)})
        t0 = time.perf_counter()
        det.fit(support, cancel=cancel)
        fit_s = time.perf_counter() - t0
        acc = EvalAccumulator(max_side=None)  # exact, at the original resolution
        times = []
        for i, ref in enumerate(test_refs):
            if cancel is not None and cancel():
                raise Cancelled("evaluation cancelled")
            t0 = time.perf_counter()
            try:
                sample = dataset.load(ref)
                result = det.score(sample, cancel=cancel)
            except Cancelled:
                raise
            except MMADError as e:
                skip(ref.key, str(e))
                continue
            dt = time.perf_counter() - t0
            times.append(dt)
            acc.add_result(sample, result)
            if save_maps is not None and result.pixel_map is not None:
                save_map_tiff(Path(save_maps), sample, result.pixel_map)
            if on_event:
                on_event("sample", {"key": ref.key, "seconds": dt, "image_score": result.image_score,
                                    "done": i + 1, "total": len(test_refs)})
        if not times:
            skip(cls, "no test sample could be scored")
            continue
        m = acc.compute()
        metrics = {k: float(m.get(k, float("nan"))) for k in METRIC_KEYS if k != "seconds_per_sample"}
        metrics["seconds_per_sample"] = float(np.mean(times))
        metrics["fit_seconds"] = fit_s
        metrics["n_test"] = len(times)
        report.per_class[cls] = metrics
    report.mean = mean_metrics(report.per_class)
    return report
