"""Project controller: the dataset's SQLite project (:mod:`core.project`) behind the window.

* opening a dataset opens its project (beside the dataset, or in the user data folder for a
  read-only one) and restores what it holds: detector and parameters, support sets, cached image
  scores (only where detector, parameters and the class's fit are unchanged); a second instance of
  the app gets the project read-only, with a message, and saves nothing;
* scores, support sets, the detector choice and its parameters are saved as they change (one
  transaction each); the project is the one store of a dataset's parameters (the settings file
  keeps per-user preferences; parameters an older version left there are moved into the project);
* verdicts (:class:`~app.controllers.review.ReviewController`) and region marks are recorded in it;
* exports: CSV of all samples, HTML report, and the current sample's overlay PNG, scored PLY and
  JSON, into a visible folder (``~/MMAD Inspector exports/<dataset>``) by default.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, QTimer, Signal

from core.errors import MMADError
from core.project import NOK, OK, Project, ProjectLockedError, ProjectWriteError, remember_session, restore_session
from core.session import Session

from ..inspector import InspectorView
from ..jobs import on_gui_thread
from ..panels import BrowserPanel, MessageBanner, ReviewPanel
from ..panels.status import StatusFields
from ..settings import Settings

log = logging.getLogger(__name__)

class ProjectController(QObject):
    """Drives the inspector's region marks, the browser's "disagrees" filter and the dataset's
    saved parameters; ``review`` is the :class:`~app.controllers.review.ReviewController` (it records
    the verdicts in this controller's project).

    Signal: ``restored(detector_changed, support_changed)`` after a project restored the session
    (the window refreshes the detector panels / the few-shot list)."""

    restored = Signal(bool, bool)

    def __init__(self, session: Session, settings: Settings, *, inspector: InspectorView, browser: BrowserPanel,
                 review_panel: ReviewPanel,
                 review, banner: MessageBanner, status: StatusFields, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.session, self.settings = session, settings
        self.inspector, self.browser, self.review_panel, self.review = inspector, browser, review_panel, review
        self.banner, self.status = banner, status
        self.project: Optional[Project] = None
        self.last_restore = None
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(1500)       # scores of a burst of results: one transaction
        self._save_timer.timeout.connect(self.save_now)
        self._last_click: Optional[tuple] = None   # ("pixel", row, col) or ("point", index)
        inspector.image_view.pixelClicked.connect(lambda r, c: self._clicked(("pixel", r, c)))
        inspector.cloud_view.pointPicked.connect(lambda i: self._clicked(("point", i)))
        browser.proxy.disagree_fn = self.disagrees
        inspector.resultShown.connect(self.show_marks)
        ev = self.session.events
        ev.records_changed.connect(on_gui_thread(lambda _keys: self._save_timer.start()))
        ev.support_changed.connect(on_gui_thread(self._support_changed))
        ev.params_changed.connect(on_gui_thread(lambda _stages: self._save_timer.start()))
        ev.detector_changed.connect(on_gui_thread(lambda: self._save_timer.start()))

    # ------------------------------------------------------------------ open / close
    def open_for(self, root: Path) -> Optional[Project]:
        """Open the project of the dataset at ``root`` and restore the session from it."""
        self.close()
        banner = self.banner
        banner.dismiss()
        try:
            self.project = Project.open(root, if_locked="read_only")
        except ProjectLockedError as e:       # pragma: no cover - read_only is asked for
            banner.warning(str(e))
            return None
        except (MMADError, OSError) as e:
            banner.warning(f"The project of this dataset cannot be opened ({e}); nothing is saved for it.")
            self.project = None
            return None
        if self.project.read_only:
            banner.warning(f"{self.project.path}: this dataset is open in another MMAD Inspector window; "
                           f"it is opened read-only here (nothing you do is saved).")
        elif self.project.warnings:
            banner.warning("Some saved verdicts could not be read (kept on disk, skipped).", self.project.warnings)
        try:
            before, params_before = self.session.detector_id, dict(self.session.params)
            self.last_restore = rep = restore_session(self.project, self.session)
        except (MMADError, ValueError) as e:
            banner.warning(f"The project could not be restored: {e}")
            return self.project
        # the panels show the dataset's parameters when the detector or its parameters changed
        detector_changed = bool(rep.detector and rep.detector != before) or self.session.params != params_before
        if detector_changed or rep.support_classes:
            self.restored.emit(detector_changed, bool(rep.support_classes))
        if rep.warnings:
            banner.warning("Some of the project could not be restored.", rep.warnings)
        if rep.scores:
            self.browser.model.refresh_all()
            self.status.message(f"Restored {rep.scores} cached score(s) from {self.project.path}",
                                             10000)
        return self.project

    def close(self) -> None:
        """Save and close the project; one still holding verdicts a full disk refused is handed to
        the retry (:meth:`VerdictRetry.keep`), which closes it once they are written."""
        if self.project is None:
            return
        self.save_now()
        project, self.project = self.project, None
        if project.pending:
            try:
                project.retry()
            except ProjectWriteError:
                self.review.retry.keep(project)
                return
        project.close()

    @property
    def writable(self) -> bool:
        return self.project is not None and not self.project.read_only

    # ------------------------------------------------------------------ saving
    def save_now(self) -> None:
        if not self.writable or self.session.detector is None:
            return
        try:
            remember_session(self.project, self.session)     # detector, its parameters, the scores
        except (MMADError, OSError, ValueError) as e:
            log.warning("project not saved: %s", e)
            self.banner.warning(f"{self.project.path}: could not save ({e}); retried on the next change.")
            return
        self.settings.forget_detector_params(self.session.detector_id)   # migrated: the project has them

    # ------------------------------------------------------------------ detector parameters
    def detector_params(self, detector_id: str) -> dict:
        """The parameters of a detector on this dataset: the project's, else (a dataset the project
        has none for, or no dataset yet) what an older version left in the settings file."""
        saved = self.project.detector_params(detector_id) if self.project is not None else None
        return dict(saved) if saved is not None else self.settings.legacy_detector_params(detector_id)

    def save_params(self) -> None:
        """Remember the session's parameters now (before another detector replaces them)."""
        if not self.writable or self.session.detector is None:
            return
        try:
            self.project.set_detector(self.session.detector_id, self.session.params)
        except (MMADError, OSError, ValueError) as e:
            log.warning("parameters not saved: %s", e)
            return
        self.settings.forget_detector_params(self.session.detector_id)

    def _support_changed(self, class_name: str) -> None:
        if not self.writable:
            return
        try:
            self.project.set_support(class_name, self.session.chosen_support(class_name))
        except (MMADError, OSError, ValueError) as e:
            log.warning("support not saved: %s", e)

    # ------------------------------------------------------------------ review
    def set_final(self, final: str) -> bool:
        """The reviewer's final call on the part (OK / NOK / unsure): recorded by the review controller."""
        return self.review.set_final(final)

    def final_ok(self) -> bool:
        return self.set_final(OK)

    def final_nok(self) -> bool:
        return self.set_final(NOK)

    def disagrees(self, key: str) -> bool:
        """The reviewer disagrees with the detector on ``key``: the detection was rejected, or the
        final verdict on the part contradicts the detector's call."""
        v = self.project.verdict(key) if self.project is not None else None
        if v is None:
            return False
        if v.verdict == "rejected":
            return True
        rec = self.session.records.get(key)
        if rec is None or rec.decision is None:
            return False
        return v.final in (OK, NOK) and (v.final == OK) != (rec.decision == "good")

    # ------------------------------------------------------------------ region marks
    def _clicked(self, where: tuple) -> None:
        self._last_click = (self.inspector.key,) + where

    def mark_region(self, kind: str) -> bool:
        """Mark the heatmap blob (or 3D cluster) under the last click as a false positive or a true
        defect: click a spot, then press F (false positive) or D (defect)."""
        from core.project.regions import blob_at_pixel, cluster_at_point
        key, res, sample = self.inspector.key, self.inspector.result, self.inspector.sample
        if key is None or res is None or self._last_click is None or self._last_click[0] != key:
            self.banner.info("Click a spot of the heatmap (or of the 3D cloud) first, then press F (false "
                            "positive) or D (true defect).")
            return False
        if not self.writable:
            self.banner.warning("No writable project: region marks cannot be saved.")
            return False
        click = self._last_click[1:]
        if click[0] == "pixel" and res.pixel_map is not None:
            geom = blob_at_pixel(res.pixel_map, click[1], click[2], res.threshold)
        elif click[0] == "point" and res.point_scores is not None:
            geom = cluster_at_point(sample.valid_points(), res.point_scores, click[1], res.threshold)
        else:
            geom = None
        if geom is None:
            self.banner.info("There is no scored spot under the click to mark.")
            return False
        try:
            mark = self.project.mark_region(key, kind, geom, note=self.review_panel.note.text(),
                                            reviewer=self.review_panel.annotator.text())
        except (MMADError, OSError, ValueError) as e:
            self.banner.error(f"The mark could not be saved: {e}")
            return False
        n = len(self.project.marks(key))
        self.show_marks()
        what = "false positive" if kind == "false_positive" else "true defect"
        self.status.message(f"{key}: region marked as {what} (mark {mark.id}; {n} on this sample; "
                                    f"Ctrl+Z undoes)", 8000)
        return True

    def show_marks(self) -> None:
        """Outline the current sample's standing region marks on the heatmap."""
        key = self.inspector.key
        out: dict = {"false_positive": [], "true_defect": []}
        if self.project is not None and key is not None:
            for m in self.project.marks(key):
                g = m.geometry
                if "polygon" in g:
                    out[m.kind].append(g["polygon"])
                elif "bbox" in g:
                    x0, y0, x1, y1 = g["bbox"]
                    out[m.kind].append([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        self.inspector.image_view.set_marks(out)

    def mark_false_positive(self) -> bool:
        return self.mark_region("false_positive")

    def mark_true_defect(self) -> bool:
        return self.mark_region("true_defect")

    def undo_mark(self) -> bool:
        key = self.inspector.key
        if key is None or not self.writable:
            return False
        m = self.project.undo_mark(key=key)
        if m is None:
            self.status.message(f"{key}: no region mark to undo", 5000)
            return False
        self.show_marks()
        self.status.message(f"{key}: mark {m.id} undone", 5000)
        return True

    # ------------------------------------------------------------------ exports
    def export_dir(self) -> Path:
        from core.paths import exports_dir
        ds = self.session.dataset
        return exports_dir(ds.root if ds is not None else None)

    def _ask_path(self, title: str, name: str, filt: str) -> Optional[Path]:
        from PySide6.QtWidgets import QFileDialog
        start = str(self.export_dir() / name)
        path, _ = QFileDialog.getSaveFileName(self.inspector.window(), title, start, filt)
        return Path(path) if path else None

    def export_csv(self, path: str | Path | None = None) -> Optional[Path]:
        from core.project.export import write_samples_csv
        if self.session.dataset is None:
            return None
        path = Path(path) if path else self._ask_path("Export all samples (CSV)", "samples.csv", "CSV (*.csv)")
        if path is None:
            return None
        verdicts = self.project.verdicts() if self.project is not None else {}
        marks = {}
        if self.project is not None:
            for m in self.project.marks():
                marks[m.key] = marks.get(m.key, 0) + 1
        out = write_samples_csv(path, self.session.refs, self.session.records, verdicts=verdicts,
                                detector=self.session.detector_id, marks=marks)
        self.banner.info(f"All {len(self.session.refs)} samples exported to {out}")
        return out

    def export_html(self, path: str | Path | None = None) -> Optional[Path]:
        from core.project.report import write_html_report
        if self.session.dataset is None:
            return None
        path = Path(path) if path else self._ask_path("Export HTML report", "report.html", "HTML (*.html)")
        if path is None:
            return None
        verdicts = self.project.verdicts() if self.project is not None else {}
        out = write_html_report(path, self.session.refs, self.session.records, verdicts,
                                dataset=self.session.dataset, detector=self.session.detector_id)
        self.banner.info(f"Report written to {out}")
        return out

    def export_sample(self, folder: str | Path | None = None) -> list[Path]:
        """The current sample's overlay PNG, scored PLY (score as a scalar field) and JSON."""
        from core.project.export import write_overlay_png, write_sample_json, write_sample_ply
        sample, res, key = self.inspector.sample, self.inspector.result, self.inspector.key
        if sample is None or res is None or key is None:
            self.banner.warning("Analyse a sample first: there is nothing to export yet.")
            return []
        if folder is None:
            from PySide6.QtWidgets import QFileDialog
            d = self.export_dir()
            d.mkdir(parents=True, exist_ok=True)
            folder = QFileDialog.getExistingDirectory(self.inspector.window(), "Export the current sample to", str(d))
            if not folder:
                return []
        folder = Path(folder)
        stem = key.replace("/", "_")
        out = []
        if res.pixel_map is not None:
            out.append(write_overlay_png(folder / f"{stem}_overlay.png", sample, res))
        if res.point_scores is not None and sample.has_points:
            out.append(write_sample_ply(folder / f"{stem}_scores.ply", sample, res))
        sup = [getattr(i, "key", str(i)) for i in self.session.support(sample.class_name)] if sample.class_name else []
        out.append(write_sample_json(folder / f"{stem}.json", key, result=res,
                                     record=self.session.records.get(key), detector=self.session.detector_id,
                                     params=self.session.params, support=sup,
                                     verdict=self.project.verdict(key) if self.project is not None else None,
                                     marks=self.project.marks(key) if self.project is not None else (),
                                     ref=self.session.ref(key)))
        self.banner.info(f"Exported {', '.join(p.name for p in out)} to {folder}")
        return out
