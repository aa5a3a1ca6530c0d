"""Exports of results: overlay PNG, scored cloud PLY, per-sample JSON, CSV of every sample.

* :func:`write_overlay_png` - the heatmap over the sample's picture (:func:`core.colormaps.heatmap_overlay`
  over :func:`core.colormaps.score_range`, the colours the GUI shows);
* :func:`write_scored_ply` - a binary PLY with ``x, y, z`` (float), optional ``red, green, blue``
  (uchar) and the score as the float vertex property ``scalar_anomaly``: CloudCompare opens it with
  the score as a scalar field (NaN: a point without a score);
* :func:`write_sample_json` - scores, threshold, decision, parameters, detector, versions, support set;
* :func:`write_samples_csv` - one row per sample of the dataset, reviewed or not;
* :func:`write_verdicts_csv` - the review state of the reviewed samples.

The default folder of exports is :func:`core.paths.exports_dir` (``~/MMAD Inspector exports/<dataset>``).
Every writer writes atomically (:mod:`core.io.atomic`) and raises
:class:`~core.errors.OutputWriteError` (an :class:`~core.errors.InputError`) naming the file when it cannot be written.
"""
from __future__ import annotations

import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from ..colormaps import DEFAULT_COLORMAP, heatmap_overlay, score_range
from ..errors import InputError
from ..io import atomic_write, to_jsonable, write_csv, write_json, write_rgb
from .records import finite_or_none

SCALAR_FIELD = "scalar_anomaly"
CSV_COLUMNS = ("key", "class", "split", "label", "ground_truth", "image_score", "decision", "threshold",
               "detector", "verdict", "final_verdict", "note", "reviewer", "review_time", "marks",
               "rgb_path", "points_path", "gt_path")
_VERSION_PACKAGES = ("mmad-inspector", "numpy", "torch", "open_clip_torch", "open3d", "open3d-cpu", "opencv-python-headless")


# ---------------------------------------------------------------------- overlay PNG
def overlay_image(sample: Any, result: Any, opacity: float = 0.5, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """H x W x 3 uint8: the fused map over the sample's picture (its RGB, else its shaded depth)."""
    from ..sample import resize_map
    from ..session.display import display_image
    pm = getattr(result, "pixel_map", None)
    if pm is None:
        raise InputError(None, "this result has no pixel map (a cloud-only sample): export the PLY instead")
    base = display_image(sample) if sample is not None else None
    if base is not None and base.shape[:2] != pm.shape[:2]:
        pm = resize_map(pm, base.shape[:2])
    vmin, vmax = score_range(result)
    return heatmap_overlay(base, pm, vmin, vmax, opacity=opacity, name=colormap)


def write_overlay_png(path: str | Path, sample: Any, result: Any, opacity: float = 0.5,
                      colormap: str = DEFAULT_COLORMAP) -> Path:
    return write_rgb(path, overlay_image(sample, result, opacity, colormap))


# ---------------------------------------------------------------------- scored PLY
def write_scored_ply(path: str | Path, points: np.ndarray, scores: np.ndarray,
                     colors: Optional[np.ndarray] = None) -> Path:
    """Binary little-endian PLY: ``x y z`` float32, ``red green blue`` uchar (when ``colors``) and
    ``scalar_anomaly`` float32 (one score per point; NaN where a point has none)."""
    pts = np.asarray(points, np.float32).reshape(-1, 3)
    s = np.asarray(scores, np.float32).reshape(-1)
    if s.shape[0] != pts.shape[0]:
        raise InputError(path, f"{s.shape[0]:,} scores for {pts.shape[0]:,} points")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        cols = np.asarray(colors).reshape(-1, 3)
        if cols.shape[0] != pts.shape[0]:
            raise InputError(path, f"{cols.shape[0]:,} colours for {pts.shape[0]:,} points")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    fields.append((SCALAR_FIELD, "<f4"))
    rec = np.empty(pts.shape[0], dtype=np.dtype(fields))
    rec["x"], rec["y"], rec["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    if colors is not None:
        c = cols if cols.dtype == np.uint8 else np.clip(np.rint(np.asarray(cols, np.float64)), 0, 255).astype(np.uint8)
        rec["red"], rec["green"], rec["blue"] = c[:, 0], c[:, 1], c[:, 2]
    rec[SCALAR_FIELD] = s
    ply_types = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment MMAD Inspector anomaly scores",
              f"element vertex {pts.shape[0]}"]
    header += [f"property {ply_types[t]} {n}" for n, t in fields]
    header.append("end_header")
    return atomic_write(path, ("\n".join(header) + "\n").encode("ascii") + rec.tobytes())


def write_sample_ply(path: str | Path, sample: Any, result: Any) -> Path:
    """The sample's valid points with their colours and the result's fused per-point scores."""
    ps = getattr(result, "point_scores", None)
    if ps is None or sample is None or not sample.has_points:
        raise InputError(path, "this result has no per-point scores (an image-only sample): export the PNG instead")
    return write_scored_ply(path, sample.valid_points(), ps, sample.valid_colors())


def read_ply_fields(path: str | Path) -> dict[str, np.ndarray]:
    """Every vertex property of a PLY file (any format the loaders accept), by name."""
    from ..io.probe import check_ply_header
    from ..io.plypcd import PLY_NUMPY_TYPES
    p = Path(path)
    info = check_ply_header(p, p.stat().st_size)
    props = info["elements"][info["vi"]][2]
    if info["fmt"] == "ascii" or info["vi"] != 0 or any(pr[0] is None for pr in props):
        raise InputError(p, "only binary PLY files whose first element is the vertices are read here")
    order = "<" if info["fmt"] == "binary_little_endian" else ">"
    dt = np.dtype([(pr[1], order + PLY_NUMPY_TYPES[pr[2]]) for pr in props])
    rec = np.fromfile(p, dtype=dt, count=info["n"], offset=info["header_len"])
    return {name: np.asarray(rec[name]) for name in dt.names}


# ---------------------------------------------------------------------- per-sample JSON
def versions() -> dict[str, str]:
    """Versions of the program and the libraries that decide the scores (no module is imported)."""
    out = {"python": platform.python_version()}
    for pkg in _VERSION_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    if "mmad-inspector" not in out:
        from .. import __version__
        out["mmad-inspector"] = __version__
    return out


def _support_name(item: Any) -> Any:
    """A support item as JSON: a dataset sample by its key, a file by its path."""
    key = getattr(item, "key", None)
    return key if isinstance(key, str) else to_jsonable(item)


def _map_stats(a: Optional[np.ndarray]) -> Optional[dict]:
    if a is None:
        return None
    a = np.asarray(a, np.float64)
    ok = a[np.isfinite(a)]
    if not ok.size:
        return {"n": int(a.size), "n_scored": 0}
    return {"n": int(a.size), "n_scored": int(ok.size), "min": float(ok.min()), "max": float(ok.max()),
            "mean": float(ok.mean()), "p99": float(np.percentile(ok, 99))}


def sample_report(key: str, *, result: Any = None, record: Any = None, detector: str = "",
                  params: Optional[Mapping[str, Any]] = None, support: Sequence[Any] = (),
                  verdict: Any = None, marks: Sequence[Any] = (), fit_key: str = "",
                  ref: Any = None) -> dict:
    """The JSON-able description of one sample's result (see :func:`write_sample_json`)."""
    src = result if result is not None else record
    score = finite_or_none(getattr(src, "image_score", None))
    threshold = finite_or_none(getattr(src, "threshold", None))
    anomalous = None if score is None or threshold is None else bool(score >= threshold)
    out: dict[str, Any] = {"format": "mmad-sample-result/1", "key": key, "detector": detector,
                           "image_score": score, "threshold": threshold,
                           "decision": None if anomalous is None else ("anomalous" if anomalous else "good"),
                           "params": to_jsonable(dict(params or {})), "fit_key": fit_key,
                           "support": [_support_name(s) for s in support], "versions": versions()}
    if ref is not None:
        out.update({"class": ref.class_name, "split": ref.split, "label": ref.label,
                    "files": {k: str(v) for k, v in ref.paths.items()}})
    if result is not None:
        comps = getattr(result, "components", None)
        out["component_scores"] = to_jsonable(dict(getattr(comps, "image", {}) or {}))
        out["modalities"] = getattr(result, "modalities", "")
        out["pixel_map"] = _map_stats(getattr(result, "pixel_map", None))
        out["point_scores"] = _map_stats(getattr(result, "point_scores", None))
    if verdict is not None:
        out["review"] = {"verdict": verdict.verdict, "final": verdict.final, "note": verdict.note,
                         "reviewer": verdict.reviewer, "time": verdict.time}
    if marks:
        out["marks"] = [{"id": m.id, "kind": m.kind, "geometry": m.geometry, "note": m.note,
                         "reviewer": m.reviewer, "time": m.time} for m in marks]
    return out


def write_sample_json(path: str | Path, key: str, **kw: Any) -> Path:
    """Write :func:`sample_report` as indented JSON (NaN and infinity become null)."""
    return write_json(path, sample_report(key, **kw))


# ---------------------------------------------------------------------- CSV of every sample
_GT_ROLES = ("gt", "mask", "labels")


def ground_truth_kind(ref: Any) -> str:
    """``"mask"`` (a pixel mask or per-point labels), ``"label"`` (only the image-level label: a good
    part, or a named defect without a mask) or ``"none"`` (unknown)."""
    if any(k in ref.paths for k in _GT_ROLES):
        return "mask"
    return "label" if ref.label else "none"


def _fmt(x: Optional[float]) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.6g}"


def write_samples_csv(path: str | Path, refs: Iterable[Any], records: Optional[Mapping[str, Any]] = None,
                      verdicts: Optional[Mapping[str, Any]] = None, detector: str = "",
                      marks: Optional[Mapping[str, int]] = None) -> Path:
    """One row per sample of ``refs`` (every sample of the dataset, reviewed or not): class, split,
    label, ground truth available (:func:`ground_truth_kind`), image score, decision, threshold, detector, verdict,
    final verdict, note, reviewer, review time, number of standing region marks, file paths."""
    records, verdicts, marks = records or {}, verdicts or {}, marks or {}

    def rows():
        for ref in refs:
            rec, v = records.get(ref.key), verdicts.get(ref.key)
            score = finite_or_none(getattr(rec, "image_score", None))
            threshold = finite_or_none(getattr(rec, "threshold", None))
            decision = getattr(rec, "decision", None) if rec is not None else None
            yield [ref.key, ref.class_name, ref.split, ref.label or "unknown", ground_truth_kind(ref),
                   _fmt(score), decision or "", _fmt(threshold), detector if score is not None else "",
                   getattr(v, "verdict", None) or "", getattr(v, "final", None) or "", getattr(v, "note", "") or "",
                   getattr(v, "reviewer", "") or "", getattr(v, "time", "") or "", marks.get(ref.key, 0),
                   str(ref.paths.get("rgb", "")), str(ref.paths.get("points", "")),
                   next((str(ref.paths[k]) for k in _GT_ROLES if k in ref.paths), "")]
    return write_csv(path, CSV_COLUMNS, rows())


VERDICT_CSV_COLUMNS = ("key", "verdict", "final_verdict", "note", "reviewer", "time", "image_score", "decision",
                       "detector")


def write_verdicts_csv(path: str | Path, rows: Iterable[Any]) -> Path:
    """One row per review state given (:class:`~core.project.VerdictRow`, e.g. the values of
    :meth:`Project.verdicts` or a sample's :meth:`Project.verdict_history`), in the order given."""
    return write_csv(path, VERDICT_CSV_COLUMNS,
                      ([v.key, v.verdict or "", v.final or "", v.note, v.reviewer, v.time,
                        _fmt(finite_or_none(v.image_score)), v.decision or "", v.detector] for v in rows))
