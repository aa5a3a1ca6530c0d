"""Dataset controller: opening a folder / the demo data, the current sample, loading, thumbnails.

Loading, thumbnails and generating the demo data are jobs (:mod:`app.jobs`: lanes ``"load"``,
``"thumb"`` and the main one).  Signals: ``aboutToOpen()`` before another dataset replaces the
current one, ``datasetReset()`` while the views are reset for a new one, ``datasetOpened(path)``,
``currentChanged(key)`` when the browser selects a sample, ``sampleShown(key)`` once it is displayed
in the inspector.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QLabel

from core.errors import InputError
from core.sample import Sample
from core.session import Session, describe_error, thumbnail

from ..inspector import InspectorView
from ..jobs import JobRunner
from ..panels import BrowserPanel, FewShotPanel, MessageBanner
from ..panels.browser import THUMB_SIZE
from ..panels.status import StatusFields
from ..settings import Settings

log = logging.getLogger(__name__)

APP_TITLE = "MMAD Inspector"


class DatasetController(QObject):
    """Drives the browser, the inspector (the selected sample), the sample's title labels and the
    few-shot panel's thumbnails; opening a dataset opens its verdicts (``review``) and project
    (``project``, optional)."""

    aboutToOpen = Signal()
    datasetReset = Signal()
    currentChanged = Signal(str)
    sampleShown = Signal(str)
    datasetOpened = Signal(str)

    def __init__(self, session: Session, settings: Settings, jobs: JobRunner, *, browser: BrowserPanel,
                 inspector: InspectorView, fewshot_panel: FewShotPanel, title: QLabel, info: QLabel,
                 banner: MessageBanner, status: StatusFields, review, project=None,
                 parent: Optional[QObject] = None):
        super().__init__(parent)
        self.session, self.settings, self.jobs = session, settings, jobs
        self.browser, self.inspector, self.fewshot_panel = browser, inspector, fewshot_panel
        self.title, self.info, self.banner, self.status = title, info, banner, status
        self.review, self.project = review, project
        self.thumbs: dict[str, np.ndarray] = {}
        browser.currentChanged.connect(self._on_current_changed)
        browser.thumbnailWanted.connect(self.want_thumbnail)
        fewshot_panel.thumbnailWanted.connect(self.want_thumbnail)

    @property
    def current_key(self) -> Optional[str]:
        """The selected sample's key (the inspector's)."""
        return self.inspector.key

    # ------------------------------------------------------------------ opening
    def choose_folder(self) -> None:
        start = self.settings.last_folder or str(Path.home())
        path = QFileDialog.getExistingDirectory(self.browser.window(), "Open dataset folder", start)
        if path:
            self.open_folder(path)

    def choose_folder_as(self) -> None:
        """Open a folder with a layout chosen by the user (when auto-detection guesses wrong)."""
        from PySide6.QtWidgets import QInputDialog

        from core.datasets import available_layouts, detect_layout
        start = self.settings.last_folder or str(Path.home())
        path = QFileDialog.getExistingDirectory(self.browser.window(), "Open dataset folder as…", start)
        if not path:
            return
        layouts = available_layouts()
        try:
            detected = detect_layout(path)
        except Exception:  # noqa: BLE001 - shown as "auto" only
            detected = None
        labels = [f"{label}  (detected)" if lid == detected else label for lid, label in layouts]
        choice, ok = QInputDialog.getItem(self.browser.window(), "Dataset layout", f"Layout of {path}:", labels,
                                          0, False)
        if ok:
            self.open_folder(path, layout=layouts[labels.index(choice)][0])

    def open_folder(self, path: str | Path, layout: Optional[str] = None) -> bool:
        """Open a dataset folder (or one file) in ``layout`` (None: auto-detected).  Listing is lazy;
        errors go to the banner."""
        self.aboutToOpen.emit()
        try:
            self.session.open(path, layout=None if layout in (None, "auto") else layout)
        except InputError as err:
            self.banner.error(f"{err}. Choose a folder holding a dataset (MVTec 3D-AD, Eyecandies, Real3D-AD) "
                                  f"or images / point clouds.")
            return False
        except Exception as err:  # noqa: BLE001
            self.banner.error(f"{path}: could not open ({describe_error(err)})")
            return False
        return True     # the session's dataset_changed event updates the window

    def set_dataset(self, dataset) -> None:
        """Show an already opened :class:`core.datasets.base.Dataset` (scripts, tests)."""
        self.aboutToOpen.emit()
        self.session.set_dataset(dataset)   # -> dataset_changed event

    def open_demo(self) -> bool:
        """Open the built-in demo data, generating it in the background the first time."""
        from core import demo  # noqa: PLC0415

        name = "Preparing the demo data"
        job = self.jobs.submit(f"{name} (first start only)…",
                               lambda progress, cancel, emit: demo.ensure_demo(progress=progress),
                               on_result=self.open_folder,
                               on_cancel=lambda: self.banner.info(f"{name}: cancelled."),
                               on_error=lambda err: self._demo_failed(name, err))
        if job is not None and self.session.dataset is None:
            self.inspector.set_placeholder("Preparing the built-in demo data…\n"
                                           "(first start only, about half a minute)")
        return job is not None

    def _demo_failed(self, name: str, err: BaseException) -> None:
        self.inspector.set_placeholder(None)
        self.banner.failure(name, err)

    def dataset_changed(self) -> None:
        """A dataset is open: reset the views and the browser, select the first sample (the slot
        of the session's ``dataset_changed`` event)."""
        ds = self.session.dataset
        describe = getattr(ds, "describe", None)
        if describe is not None:
            self.status.message(f"Opened {ds.root}: {describe()}", 15000)
        self.inspector.set_placeholder(None)
        if self.project is not None:
            self.project.open_for(ds.root)           # the dataset's project: verdicts, marks, parameters
        self.jobs.clear("thumb")
        self.thumbs.clear()
        self.inspector.key = None
        self.inspector.clear()
        self.datasetReset.emit()
        self.browser.set_session(self.session, self.review.store)
        self.settings.last_folder = str(ds.root)
        self.review.update_counts()
        self.datasetOpened.emit(str(ds.root))
        if self.browser.proxy.rowCount():
            self.browser.select_row(0)
            self.browser.focus_list()

    # ------------------------------------------------------------------ current sample
    def current_ref(self):
        if self.current_key is None:
            return None
        try:
            return self.session.ref(self.current_key)
        except KeyError:
            return None

    def _on_current_changed(self, key: str) -> None:
        self.inspector.key = key
        self.inspector.result = None
        self.inspector.clicked_point = None
        ref = self.session.ref(key)
        cached = self.session.samples.get(key)
        if cached is not None:
            self._show(ref, cached)
        else:
            self.title.setText(f"{ref.key}")
            self.info.setText("<span style='color:#8a8f98'>loading…</span>")
            self.jobs.submit(f"Loading {key}", lambda *_: self.session.load(ref), lane="load", key=key,
                             on_result=lambda sample: self._on_loaded(key, sample),
                             on_error=lambda err: self._on_load_error(key, err))
        self.currentChanged.emit(key)

    def _show(self, ref, sample: Sample) -> None:
        self.inspector.show_sample(sample)
        self.update_title()
        self.sampleShown.emit(ref.key)

    def _on_loaded(self, key: str, sample: Sample) -> None:
        if key == self.current_key:
            self._show(self.session.ref(key), sample)

    def _on_load_error(self, key: str, err: BaseException) -> None:
        if key != self.current_key:
            return
        rec = self.session.records.get(key)
        if rec is not None:
            rec.error = describe_error(err)
            self.browser.model.refresh_key(key)
        self.inspector.clear()
        self.title.setText(key)
        self.info.setText("<span style='color:#e26464'>cannot be loaded</span>")
        self.banner.error(describe_error(err))

    def want_thumbnail(self, key: str) -> None:
        if key in self.thumbs or self.session.dataset is None:
            return
        try:
            ref = self.session.ref(key)
        except KeyError:
            return
        ds = self.session.dataset
        cached = self.session.samples.get(key)
        self.jobs.submit(f"Thumbnail {key}", lambda *_: thumbnail(ds, ref, THUMB_SIZE, sample=cached), lane="thumb",
                         key=key, on_result=lambda img: self._on_thumbnail(key, img),
                         on_error=lambda _err: self._on_thumbnail(key, None))

    def _on_thumbnail(self, key: str, img: Optional[np.ndarray]) -> None:
        if img is None:       # cannot be read: a red tile
            bad = np.zeros((THUMB_SIZE, THUMB_SIZE, 3), np.uint8)
            bad[..., 0] = 110
            self.browser.model.set_thumbnail(key, bad)
            return
        self.thumbs[key] = img
        self.browser.model.set_thumbnail(key, img)
        self.fewshot_panel.set_thumbnail(key, img)

    # ------------------------------------------------------------------ title
    def update_title(self) -> None:
        """The sample's class / split / label / id and its image score and decision above the views."""
        ref = self.current_ref()
        if ref is None:
            self.title.setText("No sample")
            self.info.setText("")
            return
        rec = self.session.records.get(ref.key)
        gt = "" if not ref.label else (f" <span style='color:#e8a87c'>{ref.label}</span>" if not ref.is_good
                                       else " <span style='color:#8a8f98'>good</span>")
        self.title.setText(f"<b>{ref.class_name}</b> <span style='color:#8a8f98'>/ {ref.split} /</span>"
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
        elif self.jobs.busy:
            info = "<span style='color:#8a8f98'>analysing…</span>"
        self.info.setText(info)
