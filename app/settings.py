"""Persistent user settings (QSettings): last folder, window layout, detector and its parameters.

Parameters are stored per detector as JSON so a value saved by one version of a detector that no
longer validates is simply dropped when restored (see :meth:`core.session.Session.set_detector`).
Tests pass an ini ``path`` so they never touch the user's settings.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "MMAD"
APPLICATION = "MMAD Inspector"
LAYOUT_VERSION = 1  # bump when the dock layout changes so stale saved states are ignored


def _jsonable(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


class Settings:
    """Typed access to the application's QSettings.

    ``Settings()`` uses the user's settings (an ini file under the platform's config dir);
    ``Settings(path)`` uses the given ini file (tests, portable installs).
    """

    def __init__(self, path: str | Path | None = None, organization: str = ORGANIZATION,
                 application: str = APPLICATION):
        if path is not None:
            self.qs = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self.qs = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, organization, application)

    # ------------------------------------------------------------------ generic
    def value(self, key: str, default: Any = None, type_: Optional[type] = None) -> Any:
        v = self.qs.value(key, default)
        if v is None or type_ is None:
            return v
        try:
            if type_ is bool:
                return v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on")
            return type_(v)
        except (TypeError, ValueError):
            return default

    def set_value(self, key: str, value: Any) -> None:
        self.qs.setValue(key, value)

    def sync(self) -> None:
        self.qs.sync()

    @property
    def path(self) -> str:
        return self.qs.fileName()

    # ------------------------------------------------------------------ data & detector
    @property
    def last_folder(self) -> Optional[str]:
        v = self.qs.value("data/last_folder")
        return str(v) if v else None

    @last_folder.setter
    def last_folder(self, path: Optional[str | Path]) -> None:
        self.qs.setValue("data/last_folder", str(path) if path else "")

    @property
    def detector_id(self) -> Optional[str]:
        v = self.qs.value("detector/id")
        return str(v) if v else None

    @detector_id.setter
    def detector_id(self, det: str) -> None:
        self.qs.setValue("detector/id", det)

    @property
    def device(self) -> str:
        return str(self.qs.value("detector/device", "cpu") or "cpu")

    @device.setter
    def device(self, dev: str) -> None:
        self.qs.setValue("detector/device", dev)

    def detector_params(self, detector_id: str) -> dict[str, Any]:
        raw = self.qs.value(f"params/{detector_id}")
        if not raw:
            return {}
        try:
            d = json.loads(str(raw))
        except ValueError:
            return {}
        return d if isinstance(d, dict) else {}

    def set_detector_params(self, detector_id: str, params: dict[str, Any]) -> None:
        self.qs.setValue(f"params/{detector_id}", json.dumps(_jsonable(params)))

    # ------------------------------------------------------------------ window
    def save_window(self, window) -> None:
        self.qs.setValue("window/geometry", window.saveGeometry())
        self.qs.setValue("window/state", window.saveState(LAYOUT_VERSION))

    def restore_window(self, window) -> bool:
        """Restore geometry and dock layout; False when nothing (valid) was saved."""
        geo = self.qs.value("window/geometry")
        state = self.qs.value("window/state")
        ok = False
        if isinstance(geo, (QByteArray, bytes)) and len(geo):
            ok = bool(window.restoreGeometry(QByteArray(geo)))
        if isinstance(state, (QByteArray, bytes)) and len(state):
            ok = bool(window.restoreState(QByteArray(state), LAYOUT_VERSION)) and ok
        return ok

    def view_options(self) -> dict[str, Any]:
        return {
            "colormap": str(self.qs.value("view/colormap", "inferno")),
            "opacity": self.value("view/opacity", 0.55, float),
            "show_gt": self.value("view/show_gt", False, bool),
            "point_size": self.value("view/point_size", 3, int),
            "auto_run": self.value("view/auto_run", True, bool),
            "advance": self.value("review/advance", True, bool),
            "annotator": str(self.qs.value("review/annotator", "") or ""),
        }

    def set_view_options(self, **opts: Any) -> None:
        keys = {"colormap": "view/colormap", "opacity": "view/opacity", "show_gt": "view/show_gt",
                "point_size": "view/point_size", "auto_run": "view/auto_run", "advance": "review/advance",
                "annotator": "review/annotator"}
        for k, v in opts.items():
            self.qs.setValue(keys[k], v)
