"""Evaluate a detector on a labelled dataset (headless; the CLI and the GUI both call this).

Protocol (the MVTec 3D-AD few-shot protocol): for each class, the support set is the first K
``train/good`` samples; every ``test`` sample is scored; metrics are computed per class and averaged.

The GUI's evaluation view uses the helpers at the end on the scores already in a session:
:func:`collect` (a class's labelled, scored samples), :func:`roc_points`, :func:`confusion`.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from .datasets.base import Dataset
from .errors import Cancelled, MissingWeightsError, MMADError, UsageError
from .io import atomic_open, to_jsonable
from .metrics import EvalAccumulator
from .sample import Sample, resize_map

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)

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
    shots: int = 0                                  # asked for
    shots_used: dict[str, int] = field(default_factory=dict)   # per class, actually used
    notes: dict[str, list[str]] = field(default_factory=dict)  # undefined metric -> classes (shown n/a)
    params: dict[str, Any] = field(default_factory=dict)

    def shots_text(self) -> str:
        used = sorted(set(self.shots_used.values()))
        if not used:
            return f"{self.shots}-shot"
        txt = "/".join(str(u) for u in used) + "-shot"
        if used != [self.shots]:
            txt += f" ({self.shots} asked)"
        return txt

    def to_json(self) -> dict:
        """The report as JSON types (:func:`core.io.to_jsonable`: an undefined metric is ``null``)."""
        return to_jsonable({"detector": self.detector, "shots": self.shots, "shots_used": self.shots_used,
                            "params": self.params, "per_class": self.per_class, "mean": self.mean,
                            "skipped": [{"sample": s.key, "reason": s.reason} for s in self.skipped],
                            "notes": [{"undefined": k, "classes": v} for k, v in self.notes.items()]})

    def note_lines(self) -> list[str]:
        """One plain line per metric that is n/a, with the classes it concerns."""
        return [f"n/a: {why} - class(es) {', '.join(classes)}" for why, classes in self.notes.items()]

    def table(self) -> str:
        return format_table(self.per_class, self.mean)


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
    with atomic_open(out) as fh:
        tifffile.imwrite(fh, m)
    return out


def evaluate(dataset: Dataset, detector_id: str, classes: Optional[Sequence[str]] = None, shots: int = 5,
             params: Optional[dict[str, Any]] = None, device: str = "cpu", save_maps: Optional[Path] = None,
             on_event: Optional[EventFn] = None, cancel: Optional[Callable[[], bool]] = None,
             fit_store: Any = "auto", calibrate_on_validation: bool = True) -> EvalReport:
    """Few-shot evaluation of ``detector_id`` on every class of ``dataset``, through the same
    :class:`~core.session.Session` code the GUI uses (thread backend).

    ``on_event(kind, info)`` reports progress: ("class", {name, n_test, n_support}), ("sample",
    {key, seconds, image_score, done, total}), ("skip", {key, reason}).  Any failure of one sample
    (a bad file, a degenerate cloud, a detector error) skips that sample; a class that cannot be
    fitted (no good samples, ...) skips that class; the rest goes on and the report says what was
    skipped.  ``calibrate_on_validation``: detectors that calibrate a decision threshold do so on
    held-out good parts: ``validation/good`` and the ``train/good`` samples the support left out
    (see :meth:`Session.calibration_items`).  Raises
    :class:`~core.errors.UsageError` for bad arguments (``shots < 1`` for a few-shot detector,
    unknown classes).
    """
    from .detectors import get
    from .session import Session, ThreadBackend, describe_error, support_shots
    shots = support_shots(detector_id, shots)
    needs_support = get(detector_id).needs.support > 0
    report = EvalReport(detector=detector_id, shots=shots, params=dict(params or {}))
    classes = list(classes) if classes else dataset.classes
    unknown = [c for c in classes if c not in dataset.classes]
    if unknown:
        raise UsageError(f"{dataset.root}: unknown class(es) {', '.join(unknown)}; the dataset has: "
                         f"{', '.join(dataset.classes)}")
    session = Session(dataset, detector_id, device=device, params=dict(params or {}), backend=ThreadBackend(),
                      component_cache_bytes=0, sample_cache_bytes=256 << 20, fit_store=fit_store,
                      calibrate_on_validation=calibrate_on_validation)
    report.params = session.params

    def skip(key: str, reason: str) -> None:
        report.skipped.append(Skipped(key, reason))
        if on_event:
            on_event("skip", {"key": key, "reason": reason})

    for cls in classes:
        test_refs = dataset.select([cls], split="test")
        if not test_refs:
            skip(cls, "class has no test samples")
            continue
        sup = dataset.support_refs(cls, shots) if needs_support or shots > 0 else []
        session.set_support(cls, sup)
        if on_event:
            on_event("class", {"name": cls, "n_test": len(test_refs), "n_support": len(sup)})
        t0 = time.perf_counter()
        try:
            session.fit(cls, cancel=cancel, on_error=lambda item, e: skip(getattr(item, "key", str(item)), str(e)))
        except Cancelled:
            raise
        except MissingWeightsError:
            raise
        except Exception as e:  # noqa: BLE001 - one class must not discard the others
            if not isinstance(e, MMADError):
                log.exception("fit failed for class %s", cls)
            skip(cls, f"class not evaluated: {describe_error(e)}")
            continue
        fit_s = time.perf_counter() - t0
        state = session.fit_state(cls)
        used = state.n_support if state is not None else 0
        report.shots_used[cls] = used
        acc = EvalAccumulator(max_side=None)  # exact, at the original resolution
        times = []
        thresholds, good_flags = [], []   # decision threshold and false alarms on good test parts
        for i, ref in enumerate(test_refs):
            if cancel is not None and cancel():
                raise Cancelled("evaluation cancelled")
            t0 = time.perf_counter()
            try:
                a = session.analyze(ref, cancel=cancel, force=True)
                sample, result = a.sample, a.result
                acc.add_result(sample, result)
                if result.threshold is not None:
                    thresholds.append(float(result.threshold))
                    if not sample.is_anomalous:
                        good_flags.append(bool(result.is_anomalous))
            except Cancelled:
                raise
            except MissingWeightsError:
                raise
            except Exception as e:  # noqa: BLE001 - a bad sample must not stop the evaluation
                if not isinstance(e, MMADError):
                    log.exception("failed on %s", ref.key)
                skip(ref.key, describe_error(e))
                continue
            finally:
                session.samples.pop(ref.key)   # test samples are seen once
            dt = time.perf_counter() - t0
            times.append(dt)
            if save_maps is not None and result.pixel_map is not None:
                save_map_tiff(Path(save_maps), sample, result.pixel_map)
            if on_event:
                on_event("sample", {"key": ref.key, "seconds": dt, "image_score": result.image_score,
                                    "done": i + 1, "total": len(test_refs)})
        if not times:
            skip(cls, "no test sample could be scored")
            continue
        import warnings

        from .metrics import UndefinedMetricWarning
        with warnings.catch_warnings():      # undefined metrics become one plain note, not warnings
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            m = acc.compute()
        for why in getattr(acc, "undefined", []):
            report.notes.setdefault(why, []).append(cls)
        metrics = {k: float(m.get(k, float("nan"))) for k in METRIC_KEYS if k != "seconds_per_sample"}
        metrics["seconds_per_sample"] = float(np.mean(times))
        metrics["fit_seconds"] = fit_s
        metrics["fit_source"] = session.fit_sources.get(cls, "fitted")
        metrics["n_test"] = len(times)
        metrics["shots"] = used
        metrics["threshold"] = float(np.median(thresholds)) if thresholds else float("nan")
        metrics["false_alarm_rate"] = float(np.mean(good_flags)) if good_flags else float("nan")
        report.per_class[cls] = metrics
    report.mean = mean_metrics(report.per_class)
    session.close()
    return report


# ---------------------------------------------------------------------- scores already in a session
#: ``collect``'s class name for every class pooled
ALL_CLASSES = "All classes (pooled)"


@dataclass
class EvalData:
    """Labelled, scored samples of one class (or of all): keys, labels (True: defective), scores."""
    class_name: str
    keys: list[str] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    #: the threshold each score was decided with (NaN: none), as its result says
    thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    unscored: int = 0          # labelled samples of the class without a score
    stale: int = 0             # scores computed with parameters that changed since

    @property
    def n_good(self) -> int:
        return int((~self.labels).sum())

    @property
    def n_bad(self) -> int:
        return int(self.labels.sum())


def collect(session: "Session", class_name: str) -> EvalData:
    """The labelled samples of ``class_name`` (:data:`ALL_CLASSES`: every class) with a finite
    image score in the session's records (``stale`` counts those scored with older parameters);
    only the test split where the dataset has one."""
    out = EvalData(class_name)
    labels, scores, thresholds = [], [], []
    refs = [r for r in session.refs if r.label and (class_name == ALL_CLASSES or r.class_name == class_name)]
    if any(r.split == "test" for r in refs):     # support (train / validation) samples are not evaluated
        refs = [r for r in refs if r.split == "test"]
    for ref in refs:
        rec = session.records.get(ref.key)
        s = None if rec is None else rec.image_score
        if s is None or not math.isfinite(s):
            out.unscored += 1
            continue
        out.stale += bool(rec.stale)
        out.keys.append(ref.key)
        labels.append(not ref.is_good)
        scores.append(float(s))
        t = rec.threshold
        thresholds.append(float(t) if t is not None and math.isfinite(t) else math.nan)
    out.labels = np.array(labels, bool)
    out.scores = np.array(scores, np.float64)
    out.thresholds = np.array(thresholds, np.float64)
    return out


def decisions(data: EvalData, threshold: Optional[float]) -> np.ndarray:
    """Which scored samples are called anomalous: ``score >= threshold``, or, without one (the
    pooled view of classes with thresholds of their own), at the threshold each result was decided
    with (none: not anomalous)."""
    if threshold is not None:
        return data.scores >= threshold
    with np.errstate(invalid="ignore"):
        return np.isfinite(data.thresholds) & (data.scores >= data.thresholds)


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve (FPR, TPR), one vertex per distinct score from the highest down, from (0, 0) to
    (1, 1); tied scores give one diagonal segment, so the trapezoid area is the exact AUROC."""
    y = np.asarray(labels, bool)
    s = np.asarray(scores, np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])    # last index of each tie group
    tp = np.cumsum(y)[ends]
    fp = ends + 1 - tp
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def confusion(labels: np.ndarray, scores: np.ndarray, threshold: Optional[float],
              pred: Optional[np.ndarray] = None) -> np.ndarray:
    """2 x 2 counts ``[[TN, FP], [FN, TP]]`` (rows: truth good / defective; columns: predicted
    good / anomalous, anomalous when ``score >= threshold``, or as ``pred`` says)."""
    y = np.asarray(labels, bool)
    if pred is None:
        pred = np.zeros_like(y) if threshold is None else np.asarray(scores) >= threshold
    pred = np.asarray(pred, bool)
    return np.array([[int((~y & ~pred).sum()), int((~y & pred).sum())],
                     [int((y & ~pred).sum()), int((y & pred).sum())]])


def quiet_metric(fn: Callable[..., Any], *args: Any) -> Any:
    """A :mod:`core.metrics` value, NaN (without a warning) where it is undefined."""
    from .metrics import UndefinedMetricWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return fn(*args)
