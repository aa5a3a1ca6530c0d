"""Datasets: lazy listing of samples in the known layouts, plus single-file loading.

>>> ds = open_dataset("/data/mvtec_3d")          # auto-detects the layout, opens no file
>>> ds.layout, len(ds), ds.classes
('mvtec3d', 4147, ['bagel', ...])
>>> sample = ds.load(ds.select(["bagel"], split="test")[0])

Layouts, tried in this order: MVTec 3D-AD (:class:`MVTec3DDataset`), Eyecandies
(:class:`EyecandiesDataset`), Real3D-AD (:class:`Real3DDataset`), then any folder of images and/or
point clouds (:class:`FolderDataset`).  A single file is a one-sample folder dataset.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from ..errors import Cancelled, EmptyDatasetError, InputError, SampleLoadError
from ..sample import Sample
from .base import Dataset, SampleRef
from .eyecandies import EyecandiesDataset
from .folder import FolderDataset
from .mvtec3d import MVTec3DDataset
from .real3d import Real3DDataset

__all__ = [
    "Dataset", "SampleRef", "MVTec3DDataset", "EyecandiesDataset", "Real3DDataset", "FolderDataset",
    "LAYOUTS", "open_dataset", "detect_layout", "load_sample", "load_pair", "iter_samples",
]

log = logging.getLogger(__name__)

#: layout name -> dataset class, in detection order
LAYOUTS: dict[str, type] = {
    MVTec3DDataset.layout: MVTec3DDataset,
    EyecandiesDataset.layout: EyecandiesDataset,
    Real3DDataset.layout: Real3DDataset,
    FolderDataset.layout: FolderDataset,
}

_EXPECTED = ("no samples found: expected an MVTec 3D-AD tree (<class>/{train,test}/<label>/{rgb,xyz}/...), "
             "an Eyecandies tree (<class>/{train,test_public}/data/NNN_image_4.png ...), "
             "a Real3D-AD tree (<class>/{train,test}/*.pcd) or a folder of images (.png .jpg .bmp .tiff) "
             "and/or point clouds (.ply .pcd .npy .tiff .txt .xyz)")


def _check_path(path) -> Path:
    if path is None or str(path).strip() == "":
        raise InputError(None, "no file or folder given")
    p = Path(os.path.expanduser(os.fspath(path)))
    if not p.exists():
        raise InputError(p, "file or folder not found")
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


def open_dataset(path, layout: Optional[str] = None) -> Dataset:
    """Open a dataset folder (or a single image / cloud file) lazily.

    ``layout`` forces one of :data:`LAYOUTS`; by default the layout is detected.  Raises
    :class:`InputError` for a missing path and :class:`EmptyDatasetError` when no sample is found.
    """
    p = _check_path(path)
    if p.is_file():
        return FolderDataset.from_file(p)
    if layout is not None:
        if layout not in LAYOUTS:
            raise InputError(p, f"unknown dataset layout '{layout}' (known: {', '.join(LAYOUTS)})")
        ds = LAYOUTS[layout].from_root(p)
        if not len(ds):
            raise EmptyDatasetError(p, f"no samples found in the {layout} layout")
        return ds
    for cls in LAYOUTS.values():
        if cls is FolderDataset or not cls.detect(p):
            continue
        ds = cls.from_root(p)
        if len(ds):
            return ds
    ds = FolderDataset.from_root(p)
    if not len(ds):
        raise EmptyDatasetError(p, _EXPECTED)
    return ds


def load_sample(path) -> Sample:
    """Load a single image or point cloud file as a :class:`Sample` (with ``<stem>_mask.png`` /
    ``gt/<stem>.png`` as its mask when present)."""
    p = Path(os.fspath(path))
    if not p.exists():
        raise SampleLoadError(p, "file not found")
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
