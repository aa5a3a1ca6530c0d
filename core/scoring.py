"""Score files given on the command line, through the same :class:`~core.session.Session` code as
the GUI and ``eval``.

The paths are grouped into samples first: a file inside an MVTec 3D-AD tree pairs with its
``rgb``/``xyz`` sibling, and plain files of one folder and one stem (``part7.png`` + ``part7.ply``)
are one sample, never two.  Each sample's support set is ``--support`` when given, else the
``train/good`` samples of the tree it lives in.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .datasets.base import Dataset, SampleRef
from .errors import InputError, MMADError
from .io import atomic_open, why_missing, write_rgb
from .sample import Sample

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


class FilesDataset(Dataset):
    """Samples gathered from loose paths; each ref loads through the dataset it came from."""

    layout = "files"

    def __init__(self, root: Path, refs: Sequence[SampleRef], sources: dict[str, Dataset]):
        super().__init__(root, refs)
        self._sources = dict(sources)

    def add_source(self, ref: SampleRef, source: Dataset) -> None:
        """Make ``ref`` (e.g. a support sample of another dataset) loadable through this one."""
        self._sources[ref.key] = source

    def load(self, ref: SampleRef) -> Sample:
        src = self._sources.get(ref.key)
        if src is None:
            raise InputError(None, f"sample {ref.key} is not part of this run")
        return src.load(ref)


def _mvtec_home(path: Path):
    """(dataset, ref) if ``path`` is a file inside an MVTec 3D-AD class tree, else None."""
    from .datasets.mvtec3d import MVTec3DDataset
    if path.parent.name not in ("rgb", "xyz") or len(path.parents) < 4:
        return None
    class_root = path.parents[3]
    try:
        ds = MVTec3DDataset.from_root(class_root)
    except MMADError:
        return None
    rp = path.resolve()
    for r in ds.refs:
        if any(Path(p).resolve() == rp for p in r.paths.values()):
            return ds, r
    return None


def gather(paths: Sequence[str | Path], on_error: Callable[[Path, Exception], None]
           ) -> tuple[FilesDataset, dict[str, Optional[Dataset]]]:
    """Group paths into samples.  Returns the dataset and, per sample key, its home dataset
    (whose ``train/good`` samples are its default support) or None."""
    from .datasets.folder import FolderDataset
    refs: list[SampleRef] = []
    sources: dict[str, Dataset] = {}
    homes: dict[str, Optional[Dataset]] = {}
    seen: set[str] = set()
    plain: dict[tuple[Path, str], dict[str, Path]] = {}
    order: list[tuple[Path, str]] = []

    def add(ref: SampleRef, src: Dataset, home: Optional[Dataset]) -> None:
        key = ref.key
        n = 2
        while key in seen:   # same class/label/id from different folders: keep both
            ref = SampleRef(id=f"{ref.id.split('~')[0]}~{n}", class_name=ref.class_name, split=ref.split,
                            label=ref.label, paths=ref.paths)
            key, n = ref.key, n + 1
        seen.add(key)
        refs.append(ref)
        sources[key] = src
        homes[key] = home

    for raw in paths:
        p = Path(raw).expanduser()
        try:
            if p.is_dir():
                raise InputError(p, "is a folder: give files here (use 'eval --data' for a folder)")
            if not p.exists():   # not found, a symbolic link loop, a broken link: say which
                raise InputError(p, why_missing(p))
            hit = _mvtec_home(p)
            if hit is not None:
                ds, ref = hit
                if ref.key not in {r.key for r in refs if sources.get(r.key) is ds}:
                    add(ref, ds, ds)
                continue
            kind = "rgb" if p.suffix.lower() in IMAGE_EXTS else "points"
            g = (p.parent.resolve(), p.stem)
            if g not in plain:
                plain[g] = {}
                order.append(g)
            if kind in plain[g]:
                # two files of one stem and one kind (e.g. a.tiff image + a.tiff?): keep them apart
                g2 = (g[0], f"{g[1]}{p.suffix}")
                plain.setdefault(g2, {})[kind] = p
                order.append(g2)
            else:
                plain[g][kind] = p
        except MMADError as e:
            on_error(p, e)
    for g in order:
        files = plain[g]
        try:
            ds = FolderDataset.from_files(rgb=files.get("rgb"), cloud=files.get("points")) \
                if len(files) > 1 else FolderDataset.from_file(next(iter(files.values())))
        except MMADError as e:
            on_error(next(iter(files.values())), e)
            continue
        add(ds[0], ds, None)
    root = Path(paths[0]).expanduser().parent if paths else Path(".")
    return FilesDataset(root, refs, sources), homes


@dataclass
class ScoreOutcome:
    written: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def output_stem(sample: Sample, key: str) -> str:
    base = f"{sample.class_name}_{sample.label}_{sample.id}" if sample.class_name else sample.id
    if "~" in key:
        base += "_" + key.rsplit("~", 1)[1]
    return base.replace("/", "_").replace("~", "_")


def unique_path(path: Path, taken: set[Path]) -> Path:
    """``path``, or ``path`` with ``_2``, ``_3``... before the suffix when already written in this run
    (an output never overwrites another one of the same run)."""
    out, n = path, 2
    while out in taken:
        out = path.with_name(f"{path.stem}_{n}{path.suffix}")
        n += 1
    taken.add(out)
    return out


def heatmap_png(sample: Sample, res) -> np.ndarray:
    """RGB (uint8) of the fused heatmap over the sample's image, with the GUI's colormap and colour
    range (:mod:`core.colormaps`)."""
    from .colormaps import heatmap_overlay, score_range
    from .sample import resize_map
    vmin, vmax = score_range(res)
    m = resize_map(res.pixel_map, sample.grid_shape or res.pixel_map.shape)
    rgb = sample.rgb if sample.rgb is not None and sample.rgb.shape[:2] == m.shape[:2] else None
    return heatmap_overlay(rgb, m, vmin, vmax, 0.5)


def score_paths(paths: Sequence[str | Path], detector_id: str, out: Path, *, support: Optional[Sequence[str]] = None,
                shots: int = 5, params: Optional[dict] = None, device: str = "cpu",
                on_line: Callable[[str], None] = print, on_error: Callable[[str], None] = print,
                fit_store="auto", on_analysis: Optional[Callable] = None) -> ScoreOutcome:
    """Score each sample found in ``paths``; write heatmap PNGs (and per-point scores for free
    clouds) to ``out``.  A failing sample is reported and skipped; the others go on."""

    from .datasets import open_dataset
    from .detectors import get
    from .session import Session, ThreadBackend, describe_error, support_shots
    shots = support_shots(detector_id, shots)
    det_cls = get(detector_id)
    outcome = ScoreOutcome()

    def bad(p, e) -> None:
        msg = describe_error(e)
        outcome.skipped.append((str(p), msg))
        on_error(f"skipped {p}: {msg}" if str(p) not in msg else f"skipped: {msg}")

    ds, homes = gather(paths, bad)
    if not ds.refs:
        return outcome
    session = Session(ds, detector_id, device=device, params=dict(params or {}), backend=ThreadBackend(),
                      component_cache_bytes=0, fit_store=fit_store)
    # support per class: explicit files / folder, else the home tree's train/good samples
    explicit: Optional[list] = None
    if support:
        explicit = []
        for sp in support:
            p = Path(sp).expanduser()
            if p.is_dir():
                sds = open_dataset(p)
                for c in sds.classes:
                    for r in (sds.support_refs(c, shots) or sds.select([c])[:shots]):
                        ds.add_source(r, sds)
                        explicit.append(r)
            else:
                explicit.append(p)
        explicit = explicit[:shots]
    for c in ds.classes:
        if explicit is not None:
            session.set_support(c, explicit)
            continue
        home = next((homes[r.key] for r in ds.select([c]) if homes.get(r.key) is not None), None)
        if home is not None:
            refs = home.support_refs(c, shots)
            for r in refs:
                ds.add_source(r, home)
            session.set_support(c, refs)
        elif det_cls.needs.support:
            for r in ds.select([c]):
                bad(r.key, InputError(next(iter(r.paths.values()), None),
                                      f"detector '{detector_id}' needs good reference samples of this part: pass "
                                      f"--support FILES_OR_DIR (or score a file inside an MVTec 3D-AD tree, "
                                      f"whose train/good samples are used)"))
    todo = [r for r in ds.refs if r.key not in {k for k, _ in outcome.skipped}]
    out.mkdir(parents=True, exist_ok=True)
    taken: set[Path] = set()

    def on_result(a) -> None:
        res, sample = a.result, a.sample
        stem = output_stem(sample, a.ref.key)
        written = []
        if res.pixel_map is not None:
            img = heatmap_png(sample, res)
            f = unique_path(out / f"{stem}_heatmap.png", taken)
            write_rgb(f, img)
            written.append(f)
        if res.point_scores is not None and not sample.organized:
            f = unique_path(out / f"{stem}_scores.npy", taken)
            with atomic_open(f) as fh:
                np.save(fh, np.concatenate([sample.valid_points(), res.point_scores[:, None]], 1).astype(np.float32))
            written.append(f)
        outcome.written += written
        verdict = "" if res.is_anomalous is None else ("  ANOMALOUS" if res.is_anomalous else "  ok")
        mods = res.modalities
        src = ", ".join(str(p) for k, p in sorted(sample.paths.items()) if k in ("rgb", "points"))
        if str(res.params.get("weights", "")).lower() == "random":
            verdict += "  [RANDOM WEIGHTS: the score is meaningless]"
        line = (f"{src}: image score {res.image_score:.3f}{verdict} ({a.seconds:.2f} s)"
                + (f" [{mods}]" if mods else "") + f" -> {', '.join(w.name for w in written)}")
        outcome.lines.append(line)
        on_line(line)
        if on_analysis is not None:
            on_analysis(a)

    def on_err(ref, e) -> None:
        key = getattr(ref, "key", str(ref))
        msg = describe_error(e)
        if not isinstance(e, MMADError):
            log.error("failed on %s", key, exc_info=e)
        outcome.skipped.append((key, msg))
        on_error(f"skipped {key}: {msg}")

    summary = session.run(todo, on_result=on_result, on_error=on_err)
    reported = {k for k, _ in outcome.skipped}
    for key, msg in summary.skipped:      # e.g. samples of a class that could not be fitted
        if key not in reported:
            outcome.skipped.append((key, msg))
            on_error(f"skipped {key}: {msg}")
    session.close()
    return outcome
