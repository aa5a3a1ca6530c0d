"""Persistent per-user preferences: last folder, window layout, view options, default detector and device.

What belongs to a dataset (verdicts, marks, the detector's parameters) is kept in the dataset's
project (:mod:`core.project`), not here.  Parameters older versions saved here are only read, once,
as a migration (:meth:`Settings.legacy_detector_params`).

**No code from files.**  Settings hold plain data only: ``str``, ``int``, ``float``, ``bool``,
``bytes`` (the window-layout blobs Qt hands us) and lists of ``str``/``int``/``float``/``bool``.
They are kept in an INI file that this module reads and writes itself with :mod:`configparser`;
QSettings never touches the file, because QSettings unpickles ``@Variant(...)`` values when it
reads an INI file (a crafted value in the user's settings would run code at start).  On disk:

* every value is its JSON text (``"inferno"``, ``0.55``, ``true``, ``["a", "b"]``);
* ``bytes`` are ``b64:<base64>``;
* ``[section]`` + ``name=value`` for the key ``section/name`` (keys without ``/`` go to
  ``[General]``), so a file written by the old QSettings-based version is read as well: its plain
  strings and numbers are kept, its ``@Variant(...)`` / ``@ByteArray(...)`` / other ``@`` values
  are ignored with a warning (never decoded), and they are gone from the file at the next save.

Any other value read from the file (a JSON object, a nested list, undecodable bytes, deep
nesting...) is ignored with a warning (:attr:`Settings.warnings` and one logged warning); a value of
another type given to :meth:`Settings.set_value` is ignored with a warning too.  A file that
cannot be read or parsed gives the defaults and a warning, never an exception.  Saving
(:meth:`Settings.sync`, also run at exit when something changed) writes a temporary file and
renames it over the old one, so a crash never leaves half a settings file.

Tests pass an ini ``path`` so they never touch the user's settings.
"""
from __future__ import annotations

import base64
import binascii
import configparser
import json
import logging
import math
import numbers
import os
import sys
import threading
import weakref
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import QByteArray, QStandardPaths

from core.colormaps import COLORMAPS

from core.detectors.aliases import migrate_params
from core.io import atomic_open

log = logging.getLogger(__name__)

ORGANIZATION = "MMAD"
APPLICATION = "MMAD Inspector"
LAYOUT_VERSION = 1  # bump when the dock layout changes so stale saved states are ignored

GENERAL = "General"
MAX_FILE_BYTES = 4 << 20        # a settings file is a few kB; a bigger one is not read
POINT_SIZE_RANGE = (1, 15)      # the point-size spin box's range (pixels)
_BYTES_TAG = "b64:"
_SCALARS = (str, bool, int, float)
_NO_DEFAULT_SECTION = "\x00no default section"   # configparser's [DEFAULT] would leak into every section


def default_path(organization: str = ORGANIZATION, application: str = APPLICATION) -> Path:
    """The user's settings file: where QSettings kept its INI file (``~/.config/MMAD/MMAD
    Inspector.ini`` on Linux and macOS, ``%APPDATA%\\MMAD\\MMAD Inspector.ini`` on Windows)."""
    base = os.environ.get("APPDATA") if sys.platform == "win32" else None
    if not base:
        base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericConfigLocation)
    if not base:
        base = str(Path.home() / ".config")
    return Path(base) / organization / f"{application}.ini"


def plain(value: Any) -> Any:
    """``value`` as a plain settings value, or raise TypeError.

    str, bool, int, float (numpy scalars included), bytes / bytearray / QByteArray (-> bytes),
    a Path (-> str) and lists / tuples of str, bool, int, float (-> list).
    """
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, QByteArray):
        return bytes(value.data())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        out = []
        for x in value:
            if isinstance(x, _SCALARS):
                out.append(x)
            elif isinstance(x, numbers.Integral):
                out.append(int(x))
            elif isinstance(x, numbers.Real):
                out.append(float(x))
            else:
                raise TypeError(f"a list in the settings holds only text, numbers and booleans, not {type(x).__name__}")
        return out
    raise TypeError(f"settings hold only text, numbers, booleans, bytes and lists of those, not {type(value).__name__}")


def encode(value: Any) -> str:
    """The on-disk text of a plain value (see :func:`plain`)."""
    value = plain(value)
    if isinstance(value, bytes):
        return _BYTES_TAG + base64.b64encode(value).decode("ascii")
    return json.dumps(value, ensure_ascii=False)


def decode(raw: str) -> Any:
    """The plain value of one raw INI value; ValueError (with the reason) when it must be ignored.

    Never unpickles or evaluates anything: ``@Variant(...)`` and every other ``@`` value of Qt's
    INI dialect are refused, JSON is decoded by :func:`json.loads` and only plain results are kept.
    """
    text = raw.strip()
    if text.startswith("@@"):                      # QSettings' escape for a string that starts with @
        return text[1:]
    if text.startswith("@"):
        kind = text[1:].split("(", 1)[0] or "?"
        raise ValueError(f"a Qt '@{kind}' value (ignored, never decoded)")
    if text.startswith(_BYTES_TAG):
        try:
            return base64.b64decode(text[len(_BYTES_TAG):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("bad base64 data") from None
    if not text:
        return ""
    if text[0] not in '"[{-0123456789tfnNI':       # cannot be JSON: a plain string (older versions)
        return text
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError:
        return text                                  # a plain string written by an older version
    if value is None:
        raise ValueError("a null value")
    try:
        return plain(value)
    except TypeError:
        raise ValueError(f"a JSON {type(value).__name__} holding more than text, numbers and booleans") from None


def split_key(key: str) -> tuple[str, str]:
    if (not isinstance(key, str) or not key.strip("/") or len(key) > 200
            or any(c in "=[];#" or not c.isprintable() for c in key)):
        raise ValueError(f"bad settings key {key!r}")
    section, _, name = key.strip("/").partition("/")
    return (section, name) if name else (GENERAL, section)


def join_key(section: str, name: str) -> str:
    return name if section == GENERAL else f"{section}/{name}"


class _Store:
    """The values and the file; separate from :class:`Settings` so that it can be saved at exit."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.dirty = False
        self.lock = threading.Lock()

    # ---------------------------------------------------------------- reading
    def load(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        except OSError as err:
            self.warn(f"cannot read the settings ({err.strerror or err}); defaults are used")
            return
        if size > MAX_FILE_BYTES:
            self.warn(f"the settings file is {size} bytes, more than a settings file can be "
                      f"({MAX_FILE_BYTES}); it is not read, defaults are used")
            return
        try:
            raw = self.path.read_bytes()
        except OSError as err:
            self.warn(f"cannot read the settings ({err.strerror or err}); defaults are used")
            return
        text = raw.decode("utf-8-sig", errors="replace")
        cp = self._parser()
        try:
            try:
                cp.read_string(text, source=str(self.path))
            except configparser.MissingSectionHeaderError:   # keys before any [section]
                cp = self._parser()
                cp.read_string(f"[{GENERAL}]\n" + text, source=str(self.path))
        except configparser.ParsingError as err:   # the lines that parsed are kept
            self.warn(f"{len(err.errors)} unreadable line(s) skipped")
        except (configparser.Error, ValueError, TypeError) as err:
            self.warn(f"cannot parse the settings ({str(err).splitlines()[0]}); defaults are used")
            return
        ignored = []
        for section in cp.sections():
            for name, value in cp.items(section, raw=True):
                key = join_key(section, name)
                try:
                    split_key(key)
                    self.data[key] = decode(value)
                except ValueError as why:
                    shown = key if key.isprintable() and len(key) <= 60 else repr(key[:60])
                    ignored.append(f"{shown}: {why}")
        if ignored:
            self.dirty = True        # the next save drops them from the file
            self.warn(f"{len(ignored)} value(s) ignored: " + "; ".join(ignored[:10])
                      + (f"; and {len(ignored) - 10} more" if len(ignored) > 10 else ""))

    @staticmethod
    def _parser() -> configparser.RawConfigParser:
        cp = configparser.RawConfigParser(interpolation=None, strict=False, default_section=_NO_DEFAULT_SECTION,
                                          delimiters=("=",), comment_prefixes=("#", ";"),
                                          inline_comment_prefixes=None, empty_lines_in_values=False)
        cp.optionxform = str          # keys keep their case
        return cp

    def warn(self, problem: str) -> None:
        msg = f"{self.path}: {problem}"
        self.warnings.append(msg)
        log.warning("%s", msg)

    # ---------------------------------------------------------------- writing
    def save(self) -> bool:
        with self.lock:
            if not self.dirty:
                return True
            cp = self._parser()
            snapshot = dict(self.data)
            for key in sorted(snapshot):
                try:
                    section, name = split_key(key)
                except ValueError:
                    continue
                if not cp.has_section(section):
                    cp.add_section(section)
                cp.set(section, name, encode(snapshot[key]))
            try:
                with atomic_open(self.path, "w", encoding="utf-8", newline="\n") as fh:
                    cp.write(fh, space_around_delimiters=False)
            except OSError as err:
                self.warn(f"cannot save the settings ({err.strerror or err})")
                return False
            self.dirty = False
            return True


class Settings:
    """Typed access to the application's settings (plain values only; see the module doc).

    ``Settings()`` uses the user's settings (an ini file under the platform's config dir);
    ``Settings(path)`` uses the given ini file (tests, portable installs).  Changes are kept in
    memory and written by :meth:`sync` (and at exit).
    """

    def __init__(self, path: str | Path | None = None, organization: str = ORGANIZATION,
                 application: str = APPLICATION):
        self._store = _Store(Path(path) if path is not None else default_path(organization, application))
        self._store.load()
        self._finalizer = weakref.finalize(self, self._store.save)   # saved at exit if changed

    @property
    def warnings(self) -> list[str]:
        """What was ignored or could not be read / saved (also logged)."""
        return list(self._store.warnings)

    # ------------------------------------------------------------------ generic
    def value(self, key: str, default: Any = None, type_: Optional[type] = None) -> Any:
        v = self._store.data.get(key.strip("/"))
        if v is None:
            return default
        if type_ is None:
            return v
        try:
            if type_ is bool:
                return v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on")
            if type_ in (int, float) and isinstance(v, (list, bytes)):
                return default
            return type_(v)
        except (TypeError, ValueError, OverflowError):
            return default

    def set_value(self, key: str, value: Any) -> None:
        """Store a plain value (None removes the key); another type is ignored with a warning."""
        split_key(key)
        key = key.strip("/")
        if value is None:
            if self._store.data.pop(key, None) is not None:
                self._store.dirty = True
            return
        try:
            value = plain(value)
        except TypeError as err:
            self._store.warn(f"{key}: {err}; not saved")
            return
        old = self._store.data.get(key, _MISSING)
        if old is _MISSING or type(old) is not type(value) or old != value:
            self._store.data[key] = value
            self._store.dirty = True

    def contains(self, key: str) -> bool:
        return key.strip("/") in self._store.data

    def sync(self) -> bool:
        """Write the changes to the file; False (and a warning) when it cannot be written."""
        return self._store.save()

    @property
    def path(self) -> str:
        return str(self._store.path)

    def _text(self, key: str, default: str = "") -> str:
        v = self._store.data.get(key)
        return v if isinstance(v, str) else default

    # ------------------------------------------------------------------ data & detector
    @property
    def last_folder(self) -> Optional[str]:
        return self._text("data/last_folder") or None

    @last_folder.setter
    def last_folder(self, path: Optional[str | Path]) -> None:
        self.set_value("data/last_folder", str(path) if path else "")

    @property
    def detector_id(self) -> Optional[str]:
        return self._text("detector/id") or None

    @detector_id.setter
    def detector_id(self, det: str) -> None:
        self.set_value("detector/id", det)

    @property
    def device(self) -> str:
        return self._text("detector/device") or "cpu"

    @device.setter
    def device(self, dev: str) -> None:
        self.set_value("detector/device", dev)

    def legacy_detector_params(self, detector_id: str) -> dict[str, Any]:
        """The parameters an older version saved here for ``detector_id`` ({} when none).

        Read only, as a one-time migration into a dataset's project (the store of parameters now):
        :meth:`forget_detector_params` drops them once a project holds them."""
        raw = self._text(f"params/{detector_id}")
        if not raw:
            return {}
        try:
            d = json.loads(raw)
        except (ValueError, RecursionError):
            return {}
        return migrate_params(detector_id, d) if isinstance(d, dict) else {}

    def forget_detector_params(self, detector_id: str) -> None:
        self.set_value(f"params/{detector_id}", None)

    # ------------------------------------------------------------------ window
    def save_window(self, window) -> None:
        self.set_value("window/geometry", window.saveGeometry())
        self.set_value("window/state", window.saveState(LAYOUT_VERSION))

    def restore_window(self, window) -> bool:
        """Restore geometry and dock layout; False when nothing (valid) was saved."""
        geo = self.value("window/geometry")
        state = self.value("window/state")
        ok = False
        if isinstance(geo, bytes) and len(geo):
            ok = bool(window.restoreGeometry(QByteArray(geo)))
        if isinstance(state, bytes) and len(state):
            ok = bool(window.restoreState(QByteArray(state), LAYOUT_VERSION)) and ok
        return ok

    def number(self, key: str, default: float, lo: float, hi: float, type_: type = float) -> Any:
        """A numeric setting, validated and clamped to ``[lo, hi]``: a value that is not a finite
        number gives ``default``, one outside the range its nearest bound (with a warning each), so
        a hand-edited file (``point_size=3000000000``, ``opacity=1e308``, ``nan``) cannot stop the app."""
        raw = self._store.data.get(key.strip("/"))
        if raw is None:
            return type_(default)
        try:
            v = float(raw) if not isinstance(raw, (bool, list, bytes)) else math.nan
        except (TypeError, ValueError, OverflowError):
            v = math.nan
        if not math.isfinite(v):
            self._store.warn(f"setting {key}={raw!r} is not a finite number; using {default}")
            return type_(default)
        if not lo <= v <= hi:
            c = min(max(v, lo), hi)
            self._store.warn(f"setting {key}={raw!r} is outside [{lo}, {hi}]; using {type_(c)}")
            v = c
        return type_(round(v)) if type_ is int else type_(v)

    def view_options(self) -> dict[str, Any]:
        cmap = self._text("view/colormap") or "inferno"
        if cmap not in COLORMAPS:
            self._store.warn(f"setting view/colormap={cmap!r} is not a colormap ({', '.join(COLORMAPS)}); using inferno")
            cmap = "inferno"
        return {
            "colormap": cmap,
            "opacity": self.number("view/opacity", 0.55, 0.0, 1.0),
            "show_gt": self.value("view/show_gt", False, bool),
            "point_size": self.number("view/point_size", 3, POINT_SIZE_RANGE[0], POINT_SIZE_RANGE[1], int),
            "auto_run": self.value("view/auto_run", True, bool),
            "advance": self.value("review/advance", True, bool),
            "annotator": self._text("review/annotator"),
        }

    def set_view_options(self, **opts: Any) -> None:
        keys = {"colormap": "view/colormap", "opacity": "view/opacity", "show_gt": "view/show_gt",
                "point_size": "view/point_size", "auto_run": "view/auto_run", "advance": "review/advance",
                "annotator": "review/annotator"}
        for k, v in opts.items():
            self.set_value(keys[k], v)


_MISSING = object()
