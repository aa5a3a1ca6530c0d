"""The JSON header beside a saved array file (fit states, checkpoints): read it and check that it
is ours and of the expected detector, with one clear error naming the file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Type

from .errors import InputError


def read_header(path: Path, fmt: str, what: str, error: Type[InputError],
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
