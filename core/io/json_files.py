"""JSON in and out: the one conversion of our values to JSON, atomic JSON files, and the JSON
header beside a saved array file (fit states, checkpoints).

:func:`to_jsonable` is the only place that decides how a value becomes JSON: numpy scalars and
arrays become numbers and lists, NaN and infinity become ``null``, paths become text, tuples and
sets become lists, mapping keys become text and anything else its ``str``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Optional, Type

import numpy as np

from ..errors import InputError
from .atomic import PathLike, atomic_write


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (see the module doc); ``json.dumps(..., allow_nan=False)`` of
    the result never fails."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(v) for v in sorted(value, key=str)]
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return str(value)


def json_text(value: Any, indent: Optional[int] = 1, sort_keys: bool = False) -> str:
    """Strict JSON text of :func:`to_jsonable` ``(value)`` (UTF-8 characters kept as they are)."""
    return json.dumps(to_jsonable(value), indent=indent, sort_keys=sort_keys, ensure_ascii=False, allow_nan=False)


def write_json(path: PathLike, value: Any, indent: Optional[int] = 1, sort_keys: bool = False) -> Path:
    """Write :func:`json_text` ``(value)`` and a newline to ``path`` atomically; returns the path."""
    return atomic_write(path, json_text(value, indent, sort_keys) + "\n")


def read_json_header(path: Path, fmt: str, what: str, error: Type[InputError],
                     detector: Optional[str] = None) -> dict[str, Any]:
    """The JSON object in ``path``; raises ``error(path, ...)`` when it cannot be read, is not a
    ``what`` of this application (its ``format`` is not ``fmt``) or belongs to another detector."""
    try:
        header = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise error(path, f"cannot read the {what} ({type(e).__name__}: {e})") from None
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise error(path, f"is not a {what} of this application")
    if detector is not None and header.get("detector") != detector:
        raise error(path, f"is a {what} of detector '{header.get('detector')}', not '{detector}'")
    return header
