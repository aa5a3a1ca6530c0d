"""Dataset controller: opening a folder / the demo data, the current sample, loading, thumbnails.

Loading and thumbnails run in :class:`app.workers.BackgroundLoader` pools; generating the demo
data is a job coroutine (:mod:`app.jobs`).  Signals: ``currentChanged(key)`` when the browser
selects a sample, ``sampleShown(key)`` once it is displayed in the inspector, ``datasetOpened(path)``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from core.errors import Cancelled, InputError
from core.sample import Sample
from core.session import describe_error, thumbnail

from ..panels.browser import THUMB_SIZE

if TYPE_CHECKING:
    from ..main_window import MainWindow

log = logging.getLogger(__name__)

APP_TITLE = "MMAD Inspector"


class DatasetController(QObject):
    currentChanged = Signal(str)
    sampleShown = Signal(str)
    datasetOpened = Signal(str)

    def __init__(self, win: "MainWindow"):
        super().__init__(win)
        self.win = win
        self.session = win.session
        self.current_key: Optional[str] = None
        self.thumbs: dict[str, np.ndarray] = {}
        win.loader.done.connect(self._on_loaded)
        win.loader.error.connect(self._on_load_error)
        win.browser.currentChanged.connect(self._on_current_changed)
        win.browser.thumbnailWanted.connect(self.want_thumbnail)
        win.fewshot_panel.thumbnailWanted.connect(self.want_thumbnail)

    # ------------------------------------------------------------------ opening
    def choose_folder(self) -> None:
        start = self.win.settings.last_folder or str(Path.home())
        path = QFileDialog.getExistingDirectory(self.win, "Open dataset folder", start)
        if path:
            self.open_folder(path)

    def choose_folder_as(self) -> None:
        """Open a folder with a layout chosen by the user (when auto-detection guesses wrong)."""
        from PySide6.QtWidgets import QInputDialog

        from core.datasets import available_layouts, detect_layout
        start = self.win.settings.last_folder or str(Path.home())
        path = QFileDialog.getExistingDirectory(self.win, "Open dataset folder as…", start)
        if not path:
            return
        layouts = available_layouts()
        try:
            detected = detect_layout(path)
        except Exception:  # noqa: BLE001 - shown as "auto" only
            detected = None
        labels = [f"{label}  (detected)" if lid == detected else label for lid, label in layouts]
        choice, ok = QInputDialog.getItem(self.win, "Dataset layout", f"Layout of {path}:", labels,
                                          0, False)
        if ok:
            self.open_folder(path, layout=layouts[labels.index(choice)][0])

    def open_folder(self, path: str | Path, layout: Optional[str] = None) -> bool:
        """Open a dataset folder (or one file) in ``layout`` (None: auto-detected).  Listing is lazy;
        errors go to the banner."""
        self.win.analysis.stop()
        try:
            self.session.open(path, layout=None if layout in (None, "auto") else layout)
        except InputError as err:
            self.win.banner.error(f"{err}. Choose a folder holding a dataset (MVTec 3D-AD, Eyecandies, Real3D-AD) "
                                  f"or images / point clouds.")
            return False
        except Exception as err:  # noqa: BLE001
            self.win.banner.error(f"{path}: could not open ({describe_error(err)})")
            return False
        return True     # the session's dataset_changed event updates the window

    def set_dataset(self, dataset) -> None:
        """Show an already opened :class:`core.datasets.base.Dataset` (scripts, tests)."""
        self.win.analysis.stop()
        self.session.set_dataset(dataset)   # -> dataset_changed event

    def open_demo(self) -> bool:
        """Open the built-in demo data, generating it in the background the first time."""
        started = self.win.runner.launch("Preparing the demo data (first start only)…", self._demo())
        if started and self.session.dataset is None:
            self.win.inspector.set_placeholder("Preparing the built-in demo data…\n"
                                               "(first start only, about half a minute)")
        return started

    async def _demo(self) -> None:
        from core import demo  # noqa: PLC0415

        try:
            root = await self.win.runner.call(lambda progress, cancel, emit: demo.ensure_demo(progress=progress))
        except Cancelled:
            self.win.banner.info("Preparing the demo data: cancelled.")
        except Exception as err:  # noqa: BLE001 - shown in the window
            self.win.inspector.set_placeholder(None)
            self.win.report_failure("Preparing the demo data", err)
        else:
            self.open_folder(root)

    def dataset_changed(self) -> None:
        """A dataset is open: reset the views and the browser, select the first sample.

        (Called by :meth:`open_folder` / :meth:`set_dataset`; the slot for the session's
        ``dataset_changed`` event once it has one, instead of those calls.)"""
        ds = self.session.dataset
        win = self.win
        describe = getattr(ds, "describe", None)
        if describe is not None:
            win.statusBar().showMessage(f"Opened {ds.root}: {describe()}", 15000)
        win.inspector.set_placeholder(None)
        project = getattr(win, "project", None)
        if project is not None:
            project.open_for(ds.root)                # the dataset's project: verdicts, marks, parameters
        win.loader.clear("thumb")
        self.thumbs.clear()
        self.current_key = None
        win.inspector.clear()
        win.analysis.dataset_changed()
        win.browser.set_session(self.session, win.review.store)
        win.settings.last_folder = str(ds.root)
        win.setWindowTitle(f"{ds.root.name} - {APP_TITLE}")
        win.review.update_counts()
        self.datasetOpened.emit(str(ds.root))
        if win.browser.proxy.rowCount():
            win.browser.select_row(0)
            win.browser.focus_list()

    # ------------------------------------------------------------------ current sample
    def current_ref(self):
        if self.current_key is None:
            return None
        try:
            return self.session.ref(self.current_key)
        except KeyError:
            return None

    def _on_current_changed(self, key: str) -> None:
        self.current_key = key
        self.win.inspector.result = None
        self.win.inspector.clicked_point = None
        ref = self.session.ref(key)
        cached = self.session.samples.get(key)
        if cached is not None:
            self._show(ref, cached)
        else:
            self.win.sample_title.setText(f"{ref.key}")
            self.win.sample_info.setText("<span style='color:#8a8f98'>loading…</span>")
            self.win.loader.submit("load", key, lambda: self.session.load(ref))
        self.currentChanged.emit(key)

    def _show(self, ref, sample: Sample) -> None:
        self.win.inspector.show_sample(sample)
        self.update_title()
        self.sampleShown.emit(ref.key)

    def _on_loaded(self, kind: str, key: Any, obj: Any) -> None:
        if kind == "load" and key == self.current_key:
            self._show(self.session.ref(key), obj)
        elif kind == "thumb":
            self.thumbs[key] = obj
            self.win.browser.model.set_thumbnail(key, obj)
            self.win.fewshot_panel.set_thumbnail(key, obj)

    def _on_load_error(self, kind: str, key: Any, err: Exception) -> None:
        if kind == "load" and key == self.current_key:
            rec = self.session.records.get(key)
            if rec is not None:
                rec.error = describe_error(err)
                self.win.browser.model.refresh_key(key)
            self.win.inspector.clear()
            self.win.sample_title.setText(key)
            self.win.sample_info.setText("<span style='color:#e26464'>cannot be loaded</span>")
            self.win.banner.error(describe_error(err))
        elif kind == "thumb":
            bad = np.zeros((THUMB_SIZE, THUMB_SIZE, 3), np.uint8)
            bad[..., 0] = 110
            self.win.browser.model.set_thumbnail(key, bad)

    def want_thumbnail(self, key: str) -> None:
        if key in self.thumbs or self.session.dataset is None:
            return
        try:
            ref = self.session.ref(key)
        except KeyError:
            return
        ds = self.session.dataset
        cached = self.session.samples.get(key)
        self.win.loader.submit("thumb", key, lambda: thumbnail(ds, ref, THUMB_SIZE, sample=cached))

    # ------------------------------------------------------------------ title
    def update_title(self) -> None:
        """The sample's class / split / label / id and its image score and decision above the views."""
        ref = self.current_ref()
        win = self.win
        if ref is None:
            win.sample_title.setText("No sample")
            win.sample_info.setText("")
            return
        rec = self.session.records.get(ref.key)
        gt = "" if not ref.label else (f" <span style='color:#e8a87c'>{ref.label}</span>" if not ref.is_good
                                       else " <span style='color:#8a8f98'>good</span>")
        win.sample_title.setText(f"<b>{ref.class_name}</b> <span style='color:#8a8f98'>/ {ref.split} /</span>"
                                 f"{gt} <span style='color:#8a8f98'>/</span> <b>{ref.id}</b>")
        info = ""
        if rec is not None and rec.image_score is not None:
            dec = rec.decision
            color = "#ff8a5c" if rec.anomalous else "#63c174"
            info = (f"image score <b>{rec.image_score:.3f}</b>"
                    + (f" &nbsp;<span style='color:{color}; font-weight:bold'>● {dec.upper()}</span>" if dec else "")
                    + (" <span style='color:#8a8f98'>(stale)</span>" if rec.stale else ""))
        elif rec is not None and rec.error:
            info = "<span style='color:#e26464'>cannot be analysed</span>"
        elif win.runner.busy:
            info = "<span style='color:#8a8f98'>analysing…</span>"
        win.sample_info.setText(info)

