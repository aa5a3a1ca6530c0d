"""Datasets: lazy listing of samples in the known layouts, plus single-file loading.

>>> ds = open_dataset("/data/mvtec_3d")          # auto-detects the layout, opens no file
>>> ds.layout, len(ds), ds.classes, ds.describe()
('mvtec3d', 4147, ['bagel', ...], 'MVTec 3D-AD, 10 classes, 4,147 samples')
>>> sample = ds.load(ds.select(["bagel"], split="test")[0])
>>> open_dataset("/data/cubes", layout="folder-ad", normal_dir="good", abnormal_dir="bad", mask_dir="mask")

Layouts, tried in this order: MVTec 3D-AD (:class:`MVTec3DDataset`), Eyecandies
(:class:`EyecandiesDataset`), Real3D-AD (:class:`Real3DDataset`), MVTec AD
(:class:`MVTecADDataset`), VisA (:class:`VisADataset`), then any folder of images and/or point
clouds (:class:`FolderDataset`, whose conventions are documented in :mod:`core.datasets.folder`).
anomalib's Folder layout (:class:`AnomalibFolderDataset`) is used when asked for (``layout=
"folder-ad"`` or a ``normal_dir=`` option), never guessed.  A single file is a one-sample folder
dataset.  :func:`available_layouts` lists the ids and labels for a layout chooser.
"""
from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from .. import io
from ..errors import Cancelled, EmptyDatasetError, InputError, SampleLoadError
from ..sample import Sample
from .base import Dataset, SampleRef
from .eyecandies import EyecandiesDataset
from .folder import FolderDataset
from .folder_ad import AnomalibFolderDataset
from .mvtec3d import MVTec3DDataset
from .mvtec_ad import MVTecADDataset
from .real3d import Real3DDataset
from .visa import VisADataset

__all__ = [
    "Dataset", "SampleRef", "MVTec3DDataset", "EyecandiesDataset", "Real3DDataset", "MVTecADDataset",
    "VisADataset", "AnomalibFolderDataset", "FolderDataset", "LAYOUTS", "AUTO", "open_dataset", "detect_layout",
    "available_layouts", "layout_options", "load_sample", "load_pair", "iter_samples",
]

log = logging.getLogger(__name__)

#: layout name -> dataset class, in detection order
LAYOUTS: dict[str, type] = {
    cls.layout: cls for cls in (MVTec3DDataset, EyecandiesDataset, Real3DDataset, MVTecADDataset, VisADataset,
                                AnomalibFolderDataset, FolderDataset)
}
#: the ``layout`` value (and ``None``) that means "detect it"
AUTO = "auto"

_EXPECTED = ("no samples found: expected an MVTec 3D-AD tree (<class>/{train,test}/<label>/{rgb,xyz}/...), "
             "an Eyecandies tree (<class>/{train,test_public}/data/NNN_image_4.png ...), "
             "a Real3D-AD tree (<class>/train/*template*.pcd, test/*.pcd, gt/*.txt), "
             "an MVTec AD tree (<class>/train/good/*.png, test/<defect>/*.png, ground_truth/...), "
             "a VisA tree (split_csv/1cls.csv, <class>/Data/Images/{Normal,Anomaly}/...) "
             "or a folder of images (.png .jpg .bmp .tiff) and/or point clouds (.ply .pcd .npy .tiff .txt .xyz)")


def available_layouts() -> list[tuple[str, str]]:
    """``(id, label)`` pairs for a layout chooser: ``("auto", "Detect automatically")`` first, then
    every layout in detection order (``("mvtec-ad", "MVTec AD")``...)."""
    return [(AUTO, "Detect automatically")] + [(k, cls.layout_label) for k, cls in LAYOUTS.items()]


def layout_options(layout: str) -> dict:
    """The options a layout accepts, with their defaults (``{}`` for most)."""
    cls = LAYOUTS[_layout_id(None, layout)]
    params = list(inspect.signature(cls.from_root).parameters.values())[1:]
    return {p.name: (None if p.default is inspect.Parameter.empty else p.default) for p in params}


def _layout_id(path, layout: str) -> str:
    key = str(layout).strip().lower().replace("_", "-")
    for k in LAYOUTS:
        if key == k or key.replace("-", "") == k.replace("-", ""):
            return k
    raise InputError(path, f"unknown dataset layout '{layout}' (known: {', '.join(LAYOUTS)})")


def _check_path(path) -> Path:
    if path is None or str(path).strip() == "":
        raise InputError(None, "no file or folder given")
    p = Path(os.path.expanduser(os.fspath(path)))
    if not p.exists():
        raise InputError(p, io.why_missing(p, "file or folder not found"))
    if p.is_dir() and not os.access(p, os.R_OK | os.X_OK):
        raise InputError(p, "permission denied (cannot list this folder)")
    return p


def detect_layout(path) -> str:
    """The layout name of a folder (``"folder"`` when no specific layout matches), without
    opening any file."""
    p = _check_path(path)
    if p.is_file():
        return FolderDataset.layout
    for name, cls in LAYOUTS.items():
        if cls.detect(p):
            return name
    return FolderDataset.layout


def open_dataset(path, layout: Optional[str] = None, **options) -> Dataset:
    """Open a dataset folder (or a single image / cloud file) lazily.

    ``layout`` is ``None``/``"auto"`` (detect it) or one of :data:`LAYOUTS` (an override, see
    :func:`available_layouts`); ``options`` go to that layout (e.g. ``normal_dir=`` for
    ``"folder-ad"``, which a ``normal_dir`` option alone selects; ``split_csv=`` for ``"visa"``).
    Raises :class:`InputError` for a missing path, an unknown layout or an option the layout does
    not take, and :class:`EmptyDatasetError` when no sample is found.
    """
    p = _check_path(path)
    auto = layout is None or str(layout).strip().lower() in ("", AUTO)
    if p.is_file():
        if options or not (auto or _layout_id(p, layout) == FolderDataset.layout):
            raise InputError(p, "a single file opens as a one-sample folder (no layout or options apply)")
        return FolderDataset.from_file(p)
    if auto and "normal_dir" in options:
        layout, auto = AnomalibFolderDataset.layout, False
    if not auto:
        name = _layout_id(p, layout)
        ds = _from_root(LAYOUTS[name], p, options)
        if not len(ds):
            raise EmptyDatasetError(p, f"no samples found in the {LAYOUTS[name].layout_label} layout ({name})")
        return ds
    for cls in LAYOUTS.values():
        if cls is FolderDataset or not cls.detect(p):
            continue
        ds = _from_root(cls, p, options)
        if len(ds):
            return ds
    ds = _from_root(FolderDataset, p, options)
    if not len(ds):
        raise EmptyDatasetError(p, _EXPECTED)
    return ds


def _from_root(cls, p: Path, options: dict) -> Dataset:
    known = layout_options(cls.layout)
    unknown = [k for k in options if k not in known]
    if unknown:
        takes = f"it takes {', '.join(known)}" if known else "it takes none"
        raise InputError(p, f"option {', '.join(unknown)} does not apply to the {cls.layout_label} layout ({takes})")
    return cls.from_root(p, **options)


def load_sample(path) -> Sample:
    """Load a single image or point cloud file as a :class:`Sample` (with ``<stem>_mask.png`` /
    ``gt/<stem>.png`` as its mask when present)."""
    p = Path(os.fspath(path))
    if not p.exists():
        raise SampleLoadError(p, io.why_missing(p))
    if p.is_dir():
        raise SampleLoadError(p, "is a folder, not a file (use open_dataset for folders)")
    ds = FolderDataset.from_file(p)
    return ds.load(ds[0])


def load_pair(rgb_path, cloud_path, gt_path=None) -> Sample:
    """Load an image and a point cloud as one sample (an organized cloud must match the image size)."""
    ds = FolderDataset.from_files(rgb=rgb_path, cloud=cloud_path, gt=gt_path)
    return ds.load(ds[0])


def iter_samples(dataset: Dataset, refs: Optional[Iterable[SampleRef]] = None,
                 on_error: Optional[Callable[[SampleRef, InputError], None]] = None
                 ) -> Iterator[tuple[SampleRef, Sample]]:
    """Load samples one by one, skipping those that fail.

    Yields ``(ref, sample)`` for each ref (all refs of ``dataset`` by default).  A sample that cannot
    be loaded is reported as ``on_error(ref, err)`` (``err`` is an :class:`InputError`, unexpected
    errors are wrapped in a :class:`SampleLoadError`) and skipped; without ``on_error`` it is
    logged as a warning.  :class:`~core.errors.Cancelled` and ``KeyboardInterrupt`` stop the loop.
    """
    for ref in (dataset.refs if refs is None else refs):
        try:
            sample = dataset.load(ref)
        except Cancelled:
            raise
        except InputError as e:
            err = e
        except Exception as e:  # noqa: BLE001 - a bad sample must never stop a batch
            main = next(iter(ref.paths.values()), None)
            err = SampleLoadError(main, f"unexpected error while loading {ref.key}: {type(e).__name__}: {e}")
        else:
            yield ref, sample
            continue
        if on_error is not None:
            on_error(ref, err)
        else:
            log.warning("skipped %s: %s", ref.key, err)
