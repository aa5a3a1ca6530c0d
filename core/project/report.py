"""A self-contained HTML report of a batch: one file, no external resource.

It holds, for the samples given: per-class metrics (image AUROC / AP / F1-max from
:mod:`core.metrics`, the confusion at the detector's threshold, and the ``eval`` metrics of an
:class:`~core.evaluate.EvalReport` when one is given), one histogram per class of the image scores
of good vs defective parts with the threshold (matplotlib, Agg, as base64 PNG), the verdict-vs-detector
confusion (the reviewers' final verdict against the detector's decision), and a table of every
sample with its thumbnail (base64 PNG).
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from ..errors import InputError
from ..io import atomic_write, to_jsonable
from .export import ground_truth_kind, versions
from .records import finite_or_none

THUMB_SIZE = 96
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{font-size:22px}h2{font-size:18px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}.bad{color:#b00020}.ok{color:#176c2f}.muted{color:#777}
.hist{display:inline-block;margin:6px;vertical-align:top}img.t{width:72px;height:72px;image-rendering:auto}
code{font-size:12px}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _png_b64(img: np.ndarray) -> str:
    import cv2
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(np.asarray(img, np.uint8)[:, :, ::-1]))
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else ""


def _label_of(ref: Any) -> Optional[bool]:
    """True: defective, False: good, None: unknown."""
    if not ref.label:
        return None
    return ref.label != "good"


def _num(x: Optional[float], fmt: str = ".3f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def histogram_png(good: Sequence[float], bad: Sequence[float], threshold: Optional[float], title: str) -> str:
    """Base64 PNG of the two score histograms (shared bins) and the threshold line (matplotlib Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(4.2, 2.6), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    vals = np.asarray(list(good) + list(bad), np.float64)
    if vals.size:
        lo, hi = float(vals.min()), float(vals.max())
        if threshold is not None:
            lo, hi = min(lo, threshold), max(hi, threshold)
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 25)
        if len(good):
            ax.hist(good, bins=bins, alpha=0.6, color="#2a9d4b", label=f"good ({len(good)})")
        if len(bad):
            ax.hist(bad, bins=bins, alpha=0.6, color="#d1495b", label=f"defective ({len(bad)})")
    if threshold is not None:
        ax.axvline(threshold, color="#222", linestyle="--", linewidth=1.2, label=f"threshold {threshold:.3g}")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("image score", fontsize=9)
    ax.tick_params(labelsize=8)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def class_metrics(rows: Sequence[tuple[Any, Any]]) -> dict[str, Any]:
    """Image-level metrics of (ref, record) pairs of one class: counts, AUROC, AP, F1-max and the
    confusion at the records' decisions (samples with an unknown label or no score are left out)."""
    from ..metrics import UndefinedMetricWarning, f1_max, image_ap, image_auroc
    labels, scores, tp, fp, fn, tn = [], [], 0, 0, 0, 0
    for ref, rec in rows:
        y, s = _label_of(ref), finite_or_none(getattr(rec, "image_score", None))
        if y is None or s is None:
            continue
        labels.append(y)
        scores.append(s)
        d = getattr(rec, "anomalous", None)
        if d is None:
            continue
        tp += y and d
        fp += (not y) and d
        fn += y and not d
        tn += (not y) and not d
    out: dict[str, Any] = {"n": len(rows), "n_scored": len(scores), "n_good": labels.count(False),
                           "n_defective": labels.count(True), "tp": int(tp), "fp": int(fp), "fn": int(fn),
                           "tn": int(tn), "image_auroc": math.nan, "image_ap": math.nan, "f1_max": math.nan}
    if labels and 0 < sum(labels) < len(labels):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            out["image_auroc"] = image_auroc(labels, scores)
            out["image_ap"] = image_ap(labels, scores)
            out["f1_max"] = f1_max(labels, scores)[0]
    return out


def _thumb(ref: Any, thumbnails: Optional[Mapping[str, np.ndarray]], dataset: Any) -> str:
    img = thumbnails.get(ref.key) if thumbnails else None
    if img is None and dataset is not None:
        from ..session.display import thumbnail
        try:
            img = thumbnail(dataset, ref, THUMB_SIZE)
        except InputError:
            img = None
    if img is None:
        return '<span class="muted">-</span>'
    return f'<img class="t" alt="" src="data:image/png;base64,{_png_b64(img)}">'


def _confusion_table(pairs: Iterable[tuple[Any, Any]], columns: Sequence[tuple[str, str]], attr: str) -> str:
    """Detector decision (rows) against a review field (columns)."""
    rows = (("anomalous", "detector: anomalous"), ("good", "detector: good"), (None, "not scored"))
    counts = {(r, c): 0 for r, _ in rows for c, _ in columns}
    for rec, v in pairs:
        d = getattr(rec, "decision", None) if rec is not None else None
        val = getattr(v, attr, None) if v is not None else None
        counts[(d if d in ("anomalous", "good") else None, val if any(val == c for c, _ in columns) else None)] += 1
    head = "".join(f"<th>{_e(t)}</th>" for _, t in columns)
    body = "".join(f'<tr><th class="l">{_e(t)}</th>' + "".join(f"<td>{counts[(r, c)]}</td>" for c, _ in columns)
                   + "</tr>" for r, t in rows)
    return f'<table><tr><th class="l"></th>{head}</tr>{body}</table>'


def build_html_report(refs: Sequence[Any], records: Optional[Mapping[str, Any]] = None,
                      verdicts: Optional[Mapping[str, Any]] = None, *, title: str = "MMAD Inspector report",
                      dataset: Any = None, thumbnails: Optional[Mapping[str, np.ndarray]] = None,
                      detector: str = "", params: Optional[Mapping[str, Any]] = None,
                      eval_report: Any = None, marks: Optional[Mapping[str, int]] = None) -> str:
    """The report as one HTML string (see the module docstring).  ``thumbnails``: key -> RGB array;
    missing ones are made from ``dataset`` (:func:`core.session.display.thumbnail`) when given."""
    records, verdicts, marks = records or {}, verdicts or {}, marks or {}
    by_class: dict[str, list] = {}
    for ref in refs:
        by_class.setdefault(ref.class_name or "(no class)", []).append(ref)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style>"
             f"</head><body><h1>{_e(title)}</h1>"]
    n_scored = sum(1 for r in refs if finite_or_none(getattr(records.get(r.key), "image_score", None)) is not None)
    n_rev = sum(1 for r in refs if r.key in verdicts)
    when = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    parts.append(f"<p>{len(refs)} samples in {len(by_class)} classes; {n_scored} scored, {n_rev} reviewed. "
                 f"Detector <b>{_e(detector or 'n/a')}</b>. Written {_e(when)}.</p>")
    if params:
        parts.append(f"<p class='muted'>Parameters: <code>{_e(to_jsonable(dict(params)))}</code></p>")
    ver = versions()
    parts.append("<p class='muted'>Versions: " + ", ".join(f"{_e(k)} {_e(v)}" for k, v in ver.items()) + "</p>")

    # per-class metrics
    ev = getattr(eval_report, "per_class", None) or {}
    ev_cols = [("pixel_auroc", "P-AUROC"), ("aupro_30", "AUPRO@30%"), ("point_auroc", "Pt-AUROC")] if ev else []
    parts.append("<h2>Per-class metrics</h2><table><tr><th class='l'>class</th><th>samples</th><th>scored</th>"
                 "<th>good</th><th>defective</th><th>I-AUROC</th><th>AP</th><th>F1-max</th><th>TP</th><th>FP</th>"
                 "<th>FN</th><th>TN</th>" + "".join(f"<th>{_e(t)} (eval)</th>" for _, t in ev_cols) + "</tr>")
    hists = []
    for c, crefs in sorted(by_class.items()):
        pairs = [(r, records.get(r.key)) for r in crefs]
        m = class_metrics(pairs)
        evm = ev.get(c, {})
        parts.append(f"<tr><td class='l'>{_e(c)}</td><td>{m['n']}</td><td>{m['n_scored']}</td><td>{m['n_good']}</td>"
                     f"<td>{m['n_defective']}</td><td>{_num(m['image_auroc'])}</td><td>{_num(m['image_ap'])}</td>"
                     f"<td>{_num(m['f1_max'])}</td><td>{m['tp']}</td><td>{m['fp']}</td><td>{m['fn']}</td>"
                     f"<td>{m['tn']}</td>" + "".join(f"<td>{_num(evm.get(k))}</td>" for k, _ in ev_cols) + "</tr>")
        good = [s for r, rec in pairs if _label_of(r) is False
                and (s := finite_or_none(getattr(rec, "image_score", None))) is not None]
        bad = [s for r, rec in pairs if _label_of(r)
               and (s := finite_or_none(getattr(rec, "image_score", None))) is not None]
        ths = sorted({t for _, rec in pairs if (t := finite_or_none(getattr(rec, "threshold", None))) is not None})
        th = ths[len(ths) // 2] if ths else None
        if good or bad:
            hists.append(f"<div class='hist'><img alt='histogram {_e(c)}' src='data:image/png;base64,"
                         f"{histogram_png(good, bad, th, c)}'></div>")
    parts.append("</table>")
    if hists:
        parts.append("<h2>Image scores: good vs defective</h2>" + "".join(hists))

    # verdict vs detector
    pairs = [(records.get(r.key), verdicts.get(r.key)) for r in refs]
    parts.append("<h2>Reviewers vs detector</h2><p>Final verdict on the part:</p>")
    parts.append(_confusion_table(pairs, [("ok", "OK"), ("nok", "NOK"), ("unsure", "unsure"), (None, "no verdict")],
                                  "final"))
    parts.append("<p>Verdict on the detector's call:</p>")
    parts.append(_confusion_table(pairs, [("confirmed", "confirmed"), ("rejected", "rejected"), ("unsure", "unsure"),
                                          (None, "no verdict")], "verdict"))

    # samples
    parts.append("<h2>Samples</h2><table><tr><th></th><th class='l'>sample</th><th class='l'>class</th>"
                 "<th class='l'>label</th><th class='l'>ground truth</th><th>score</th><th>threshold</th>"
                 "<th class='l'>decision</th><th class='l'>verdict</th><th class='l'>final</th><th>marks</th>"
                 "<th class='l'>note</th></tr>")
    for ref in refs:
        rec, v = records.get(ref.key), verdicts.get(ref.key)
        d = getattr(rec, "decision", None) if rec is not None else None
        cls = "bad" if d == "anomalous" else "ok" if d == "good" else "muted"
        parts.append(f"<tr><td>{_thumb(ref, thumbnails, dataset)}</td><td class='l'>{_e(ref.key)}</td>"
                     f"<td class='l'>{_e(ref.class_name)}</td><td class='l'>{_e(ref.label or 'unknown')}</td>"
                     f"<td class='l'>{_e(ground_truth_kind(ref))}</td>"
                     f"<td>{_num(finite_or_none(getattr(rec, 'image_score', None)), '.4g')}</td>"
                     f"<td>{_num(finite_or_none(getattr(rec, 'threshold', None)), '.4g')}</td>"
                     f"<td class='l {cls}'>{_e(d or 'not scored')}</td><td class='l'>{_e(getattr(v, 'verdict', '') or '')}</td>"
                     f"<td class='l'>{_e((getattr(v, 'final', '') or '').upper())}</td><td>{marks.get(ref.key, 0)}</td>"
                     f"<td class='l'>{_e(getattr(v, 'note', '') or '')}</td></tr>")
    parts.append("</table></body></html>")
    return "".join(parts)


def write_html_report(path: str | Path, refs: Sequence[Any], records: Optional[Mapping[str, Any]] = None,
                      verdicts: Optional[Mapping[str, Any]] = None, **kw: Any) -> Path:
    """Write :func:`build_html_report` to ``path`` (atomically)."""
    return atomic_write(path, build_html_report(refs, records, verdicts, **kw))
