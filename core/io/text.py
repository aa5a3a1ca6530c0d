"""Text inputs: numeric tables (text clouds, labels, poses) and YAML metadata."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import yaml

from ..errors import SampleLoadError
from ._common import PathLike, as_path, check_file, first_line, max_points, read_bytes, too_many_points

def read_text_table(path: Path, what: str = "text point cloud") -> np.ndarray:
    """Parse a whitespace-, comma- or semicolon-separated numeric table (header lines skipped)."""
    size = check_file(path)
    with open(path, "rb") as f:
        sample = f.read(65536)
    if b"\x00" in sample:
        raise SampleLoadError(path, f"not a {what} (binary content)")
    text = sample.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if len(sample) == 65536 and lines:
        lines = lines[:-1]  # possibly cut in the middle
    skip = 0
    first = None
    for i, line in enumerate(lines):
        s = line.strip()
        if not s or s.startswith("#") or s.startswith("//"):
            skip = i + 1
            continue
        toks = re.split(r"[,;\s]+", s)
        try:
            [float(t) for t in toks if t]
        except ValueError:
            skip = i + 1  # a header line such as "x,y,z,label"
            continue
        first = s
        ntok = len([t for t in toks if t])
        # a point count on a line of its own (PTS files) followed by the data
        if ntok == 1 and i + 1 < len(lines) and len(re.split(r"[,;\s]+", lines[i + 1].strip())) >= 3:
            skip = i + 1
            first = lines[i + 1].strip()
        break
    if first is None:
        raise SampleLoadError(path, f"no numeric rows found (not a {what})")
    delim = "," if "," in first else (";" if ";" in first else None)
    avg = max(len(sample) / max(len(lines), 1), 4.0)
    if size / avg > max_points() * 1.2:
        raise too_many_points(path, int(size / avg))
    try:
        a = np.loadtxt(str(path), delimiter=delim, skiprows=skip, comments=("#", "//"), ndmin=2, dtype=np.float64)
    except ValueError as e:
        msg = first_line(e)
        raise SampleLoadError(path, f"truncated or malformed {what}: {msg}") from None
    except MemoryError:
        raise SampleLoadError(path, f"not enough memory to load this {what}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SampleLoadError(path, f"could not read {what}: {first_line(e)}") from None
    return a


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python objects) with YAML 1.2 floats: ``1e-3`` is a number, not text."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def read_yaml(path: PathLike) -> dict:
    """Read a YAML mapping (e.g. Eyecandies' ``*_info_depth.yaml``) with ``yaml.safe_load`` semantics.

    Raises :class:`SampleLoadError` for a missing/empty/binary file, invalid YAML (with its line) or a
    document that is not a mapping.
    """
    p = as_path(path)
    data = read_bytes(p)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SampleLoadError(p, "not a text (YAML) file") from None
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        where = f" on line {e.problem_mark.line + 1}" if e.problem_mark is not None else ""
        raise SampleLoadError(p, f"invalid YAML{where}: {e.problem or e.context or 'syntax error'}") from None
    except yaml.YAMLError as e:
        raise SampleLoadError(p, f"invalid YAML: {first_line(e)}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise SampleLoadError(p, f"expected a YAML mapping (key: value lines), got a {type(doc).__name__}")
    return doc


#: Former name (the hand-written parser it replaced); same behaviour.
read_simple_yaml = read_yaml
