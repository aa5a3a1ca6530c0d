"""The plain records a :class:`~core.project.Project` returns, and the checks of what goes in."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

CONFIRMED, REJECTED, UNSURE = "confirmed", "rejected", "unsure"
VERDICTS = (CONFIRMED, REJECTED, UNSURE)
OK, NOK = "ok", "nok"
FINALS = (OK, NOK, UNSURE)
FALSE_POSITIVE, TRUE_DEFECT = "false_positive", "true_defect"
MARK_KINDS = (FALSE_POSITIVE, TRUE_DEFECT)

_VERDICT_WORDS = {"confirm": CONFIRMED, "confirmed": CONFIRMED, "reject": REJECTED, "rejected": REJECTED,
                  "unsure": UNSURE}
_FINAL_WORDS = {"ok": OK, "good": OK, "nok": NOK, "not ok": NOK, "ng": NOK, "unsure": UNSURE}
MAX_GEOMETRY_ITEMS = 1_000_000


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def finite_or_none(x: Any) -> Optional[float]:
    """``float(x)`` when it is a finite number, else None (inf, nan, text, None...)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def norm_verdict(v: Optional[str]) -> Optional[str]:
    if v is None:
        return None
    out = _VERDICT_WORDS.get(str(v).strip().lower())
    if out is None:
        raise ValueError(f"verdict must be one of confirm, reject, unsure, not {v!r}")
    return out


def norm_final(v: Optional[str]) -> Optional[str]:
    if v is None:
        return None
    out = _FINAL_WORDS.get(str(v).strip().lower())
    if out is None:
        raise ValueError(f"final verdict must be one of OK, NOK, unsure, not {v!r}")
    return out


def norm_kind(kind: str) -> str:
    k = str(kind).strip().lower().replace(" ", "_").replace("-", "_")
    if k not in MARK_KINDS:
        raise ValueError(f"a region mark is one of {', '.join(MARK_KINDS)}, not {kind!r}")
    return k


def _numbers(seq: Any, what: str, integer: bool = False) -> list:
    if not isinstance(seq, (list, tuple)) or not seq:
        raise ValueError(f"{what} must be a non-empty list")
    if len(seq) > MAX_GEOMETRY_ITEMS:
        raise ValueError(f"{what} has more than {MAX_GEOMETRY_ITEMS:,} items")
    out = []
    for x in seq:
        if isinstance(x, bool) or not isinstance(x, (int, float)) and not hasattr(x, "__index__") \
                and not hasattr(x, "__float__"):
            raise ValueError(f"{what} must hold numbers")
        if integer:
            if isinstance(x, float) and not x.is_integer() or int(x) < 0:
                raise ValueError(f"{what} must hold point indices (integers >= 0)")
            out.append(int(x))
        else:
            f = float(x)
            if not math.isfinite(f):
                raise ValueError(f"{what} must hold finite numbers")
            out.append(f)
    return out


def check_geometry(geometry: Any) -> dict:
    """A clean copy of a mark's geometry: exactly one of ``polygon`` (pixel ``[[x, y], ...]``, 3+
    vertices), ``bbox`` (pixel ``[x0, y0, x1, y1]``) or ``points`` (indices into the sample's valid
    points); an optional ``space`` / ``label`` text is kept.  ValueError says what is wrong."""
    if not isinstance(geometry, dict):
        raise ValueError("a mark's geometry is a dict with 'polygon', 'bbox' or 'points'")
    shapes = [k for k in ("polygon", "bbox", "points") if k in geometry]
    if len(shapes) != 1:
        raise ValueError("a mark's geometry has exactly one of 'polygon', 'bbox' or 'points'")
    kind = shapes[0]
    out: dict[str, Any] = {}
    if kind == "polygon":
        verts = geometry["polygon"]
        if not isinstance(verts, (list, tuple)) or len(verts) < 3:
            raise ValueError("a polygon needs at least 3 vertices")
        out["polygon"] = [_numbers(v, "a polygon vertex") for v in verts]
        if any(len(v) != 2 for v in out["polygon"]):
            raise ValueError("a polygon vertex is [x, y]")
    elif kind == "bbox":
        b = _numbers(geometry["bbox"], "a bbox")
        if len(b) != 4 or b[2] < b[0] or b[3] < b[1]:
            raise ValueError("a bbox is [x0, y0, x1, y1] with x1 >= x0 and y1 >= y0")
        out["bbox"] = b
    else:
        out["points"] = _numbers(list(geometry["points"]), "'points'", integer=True)
    for k in ("space", "label"):
        if isinstance(geometry.get(k), str):
            out[k] = geometry[k]
    return out


def params_hash(params: dict[str, Any]) -> str:
    """A short stable hash of a parameter dict (every stage: the image score depends on all)."""
    from ..detectors.state import params_key
    return hashlib.sha256(params_key(params).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class VerdictRow:
    """The state of a sample's review after one action (the latest row is the current state)."""
    id: int
    key: str
    verdict: Optional[str]          # on the detector's call: confirmed | rejected | unsure
    final: Optional[str]            # on the part: ok | nok | unsure
    note: str
    reviewer: str
    time: str
    image_score: Optional[float] = None
    decision: Optional[str] = None
    detector: str = ""
    source: str = "app"


@dataclass(frozen=True)
class Mark:
    """A region of one sample marked as a false positive or a true defect."""
    id: int
    key: str
    kind: str
    geometry: dict
    note: str
    reviewer: str
    time: str
    deleted: Optional[str] = None

    @property
    def active(self) -> bool:
        return self.deleted is None


@dataclass(frozen=True)
class ScoreRow:
    """A cached image-level result of one sample."""
    key: str
    image_score: Optional[float]
    decision: Optional[str]
    threshold: Optional[float]
    seconds: float = 0.0
    time: str = ""

    @property
    def anomalous(self) -> Optional[bool]:
        return None if self.decision is None else self.decision == "anomalous"


@dataclass(frozen=True)
class SupportEntry:
    """One support item: a sample of the dataset (``key``) or a file chosen by the user (``path``)."""
    key: Optional[str] = None
    path: Optional[Path] = None

    def to_json(self) -> dict:
        return {"key": self.key} if self.key is not None else {"path": str(self.path)}


@dataclass(frozen=True)
class DetectorChoice:
    id: str
    params: dict = field(default_factory=dict)


def support_entry(item: Union[str, Path, Any]) -> SupportEntry:
    """A SampleRef (anything with ``key``), a path, or ``{"key": ...}`` / ``{"path": ...}``."""
    if isinstance(item, SupportEntry):
        return item
    if isinstance(item, dict):
        if isinstance(item.get("key"), str):
            return SupportEntry(key=item["key"])
        if isinstance(item.get("path"), str):
            return SupportEntry(path=Path(item["path"]))
        raise ValueError("a support item is {'key': sample key} or {'path': file}")
    if isinstance(item, (str, Path)):
        return SupportEntry(path=Path(item))
    key = getattr(item, "key", None)
    if isinstance(key, str) and key:
        return SupportEntry(key=key)
    raise ValueError(f"cannot use {item!r} as a support item")


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
