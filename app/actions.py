"""The window's actions as one declarative table: menus, toolbar, shortcuts and the help text
are all generated from :data:`ACTIONS`.

Each :class:`ActionSpec` names its slot as a dotted path on the window (``"analysis.run_all"``,
``"close"``) with optional keyword arguments, so the table is data and holds no widget.  Every
toolbar action is also in a menu (each spec has a menu).  ``id="-"`` is a separator.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Union

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence

from core.project import CONFIRMED, REJECTED, UNSURE

__all__ = ["ACTIONS", "MENUS", "ActionSpec", "build_actions", "build_menus", "shortcuts_text", "toolbar_specs"]

Shortcut = Union[str, QKeySequence.StandardKey, None]

#: Menu titles in menu-bar order.
MENUS = {"file": "&File", "run": "&Run", "review": "Re&view", "view": "&View", "help": "&Help"}


@dataclass(frozen=True)
class ActionSpec:
    id: str                       # "-" for a separator
    menu: str                     # a key of MENUS
    text: str = ""
    slot: str = ""                # dotted attribute path on the window
    shortcut: Shortcut = None
    tip: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    toolbar: bool = False
    enabled: bool = True


def _sep(menu: str) -> ActionSpec:
    return ActionSpec("-", menu)


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("open", "file", "&Open folder…", "dataset.choose_folder", QKeySequence.StandardKey.Open,
               "Open a dataset folder (or drop one on the window)", toolbar=True),
    ActionSpec("open_as", "file", "Open folder &as layout…", "dataset.choose_folder_as", "Ctrl+Shift+O",
               "Open a folder choosing its layout (MVTec AD, VisA, MVTec 3D-AD, plain folder...)"),
    ActionSpec("demo", "file", "Open &demo data", "dataset.open_demo", "Ctrl+D", "Open the built-in demo data",
               toolbar=True),
    _sep("file"),
    ActionSpec("export", "file", "&Export verdicts (CSV)…", "review.export_verdicts", "Ctrl+E"),
    ActionSpec("export_all", "file", "Export &all samples (CSV)…", "project.export_csv", "Ctrl+Shift+E",
               "Every sample with class, label, ground truth, score, decision, verdicts and file paths"),
    ActionSpec("export_html", "file", "Export &HTML report…", "project.export_html", "Ctrl+Shift+H",
               "Thumbnails, per-class metrics, histograms and the verdict-vs-detector confusion"),
    ActionSpec("export_sample", "file", "Export current &sample (PNG, PLY, JSON)…", "project.export_sample",
               "Ctrl+Shift+X", "Overlay PNG, the scored cloud as PLY with the score as a scalar field, JSON"),
    ActionSpec("screenshot", "file", "Save &screenshot…", "choose_screenshot", "Ctrl+Shift+S"),
    _sep("file"),
    ActionSpec("quit", "file", "&Quit", "close", QKeySequence.StandardKey.Quit),
    ActionSpec("run", "run", "▶ Run sample", "analysis.run_current", "F5", "Analyse the selected sample (F5)",
               {"force": True}, toolbar=True),
    ActionSpec("run_all", "run", "▶▶ Run all", "analysis.run_all", "Shift+F5",
               "Analyse every sample shown in the browser (Shift+F5)", toolbar=True),
    ActionSpec("cancel", "run", "■ Cancel", "analysis.cancel_run", "Esc", "Stop the running analysis (Esc)",
               toolbar=True, enabled=False),
    _sep("run"),
    ActionSpec("train", "run", "&Train a model…", "show_train_panel", tip="Train a detector on the good samples (Train panel)"),
    ActionSpec("confirm", "review", "&Confirm detection", "review.set_verdict", "C", kwargs={"verdict": CONFIRMED}),
    ActionSpec("reject", "review", "&Reject detection", "review.set_verdict", "R", kwargs={"verdict": REJECTED}),
    ActionSpec("unsure", "review", "&Unsure", "review.set_verdict", "U", kwargs={"verdict": UNSURE}),
    ActionSpec("final_ok", "review", "Final verdict: part &OK", "project.final_ok", "O",
               "The reviewer's own call on the part, beside the detector's"),
    ActionSpec("final_nok", "review", "Final verdict: part N&OK", "project.final_nok", "X",
               "The reviewer's own call on the part, beside the detector's"),
    ActionSpec("mark_fp", "review", "Mark clicked region as &false positive", "project.mark_false_positive", "F",
               "Click a heatmap blob or a 3D spot, then press F"),
    ActionSpec("mark_defect", "review", "Mark clicked region as true &defect", "project.mark_true_defect", "D",
               "Click a heatmap blob or a 3D spot, then press D"),
    ActionSpec("undo_mark", "review", "&Undo last region mark", "project.undo_mark", "Ctrl+Z"),
    _sep("review"),
    ActionSpec("next", "review", "&Next sample", "browser.select_next", "N", kwargs={"step": 1}),
    ActionSpec("previous", "review", "&Previous sample", "browser.select_next", "P", kwargs={"step": -1}),
    ActionSpec("toggle_gt", "view", "Toggle &ground truth", "inspector.gt_check.toggle", "G"),
    ActionSpec("toggle_grid", "view", "&Thumbnails / table", "browser.toggle_grid_mode", "T"),
    ActionSpec("toggle_components", "view", "&Modality maps (RGB / 3D / fused, rendered views)", "inspector.toggle_components", "M",
               "Show the per-modality maps of the result side by side"),
    ActionSpec("fit_image", "view", "&Fit image", "inspector.image_view.fit_view", tip="Fit the image to its view"),
    ActionSpec("reset_3d", "view", "Reset 3D &camera", "inspector.reset_3d_view", tip="Reset the 3D camera"),
    ActionSpec("demo_mode", "view", "Demo mo&de (full screen)", "demo_mode.toggle", "F11",
               "Cycle through the samples full screen; any input pauses, Esc leaves"),
    ActionSpec("reset_layout", "view", "&Reset layout", "reset_layout"),
    ActionSpec("shortcuts", "help", "&Keyboard shortcuts", "show_shortcuts", "F1"),
)

#: Help lines for what is not an action (browser keys, mouse).
EXTRA_HELP = (
    "↑ ↓ / PgUp PgDn   previous / next sample (also over the views)",
    "Image: wheel zoom, drag pan, double-click fit, hover/click marks the 3D point.",
    "3D: drag orbit, wheel zoom, right-drag pan, click a point to mark its pixel.",
)


def resolve(root: Any, path: str) -> Callable:
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _key_text(shortcut: Shortcut) -> str:
    if shortcut is None:
        return ""
    return QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText)


def build_actions(owner: QObject, target: Any, specs: Iterable[ActionSpec] = ACTIONS) -> dict[str, QAction]:
    """One QAction per spec (separators skipped), triggering ``target.<slot>(**kwargs)``; window
    shortcuts.  The slot is looked up when triggered, so it may be created after the table."""
    out: dict[str, QAction] = {}
    for spec in specs:
        if spec.id == "-":
            continue
        a = QAction(spec.text, owner)
        a.setObjectName(f"action_{spec.id}")
        if spec.shortcut is not None:
            a.setShortcut(QKeySequence(spec.shortcut))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if spec.tip:
            a.setStatusTip(spec.tip)
            a.setToolTip(spec.tip)
        a.setEnabled(spec.enabled)
        a.triggered.connect(lambda _=False, s=spec: resolve(target, s.slot)(**s.kwargs))
        out[spec.id] = a
    return out


def build_menus(menubar, actions: dict[str, QAction], specs: Iterable[ActionSpec] = ACTIONS,
                prefix: Optional[dict[str, list[QAction]]] = None) -> dict[str, Any]:
    """Fill the menu bar: menus in :data:`MENUS` order, each with ``prefix[menu]`` (then a
    separator) followed by its specs in table order."""
    specs = list(specs)
    menus = {}
    for key, title in MENUS.items():
        m = menubar.addMenu(title)
        menus[key] = m
        pre = (prefix or {}).get(key)
        if pre:
            for a in pre:
                m.addAction(a)
            m.addSeparator()
        for spec in specs:
            if spec.menu != key:
                continue
            if spec.id == "-":
                m.addSeparator()
            else:
                m.addAction(actions[spec.id])
    return menus


def toolbar_specs(specs: Iterable[ActionSpec] = ACTIONS) -> list[Optional[ActionSpec]]:
    """The toolbar's actions in table order, None between menu groups."""
    out: list[Optional[ActionSpec]] = []
    menu = None
    for spec in specs:
        if not spec.toolbar:
            continue
        if menu is not None and spec.menu != menu:
            out.append(None)
        menu = spec.menu
        out.append(spec)
    return out


def shortcuts_text(specs: Iterable[ActionSpec] = ACTIONS) -> str:
    """The keyboard help: every action with a shortcut, by menu, then :data:`EXTRA_HELP`."""
    lines = []
    specs = list(specs)
    for key, title in MENUS.items():
        items = [f"{_key_text(s.shortcut)}  {s.text.replace('&', '').rstrip('…')}"
                 for s in specs if s.menu == key and s.id != "-" and s.shortcut is not None]
        if items:
            lines.append(f"{title.replace('&', '')}:   " + "     ".join(items))
    return "\n".join(lines + list(EXTRA_HELP))
