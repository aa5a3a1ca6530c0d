"""File readers and writers for images, masks and point clouds; atomic writes and JSON files.

Every reader turns *any* failure (missing file, empty file, truncated or corrupt content, wrong
shape, unsupported format, too large input) into :class:`~core.errors.SampleLoadError` whose
message names the file and says what is wrong in plain words, e.g.::

    /data/cookie/test/crack/rgb/003.png: truncated or corrupt PNG image (the file ends before the image data is complete)

so callers (CLI, GUI, batch evaluation) can show the message as is.

Conventions (see :mod:`core.sample`):

* RGB images are ``H x W x 3`` ``uint8`` in RGB order.
* Masks are ``H x W`` ``bool``; any value > 0 is a defect (masks may hold class ids).
* Organized clouds are ``H x W x 3`` ``float32`` with missing points as NaN (on disk, MVTec 3D-AD
  stores them as exact zeros); unorganized clouds are ``N x 3`` ``float32`` with no missing point.

Readers never keep files open and never print library warnings for bad input.

Writers never leave half a file: every output goes through :mod:`.atomic` (temporary file, fsync,
rename; :class:`~core.errors.OutputWriteError` naming the file on failure).

Modules: :mod:`._common` (path checks, limits, guards, natural sort), :mod:`.probe` (header checks
before decoding), :mod:`.images`, :mod:`.clouds`, :mod:`.labels`, :mod:`.text` (tables, YAML),
:mod:`.atomic` (atomic writes), :mod:`.csv_files` (CSV without formula injection),
:mod:`.json_files` (the one JSON conversion, JSON files, saved headers), :mod:`.locks` (a lock
file between processes).  Every public name is re-exported here:
``from core import io; io.read_rgb(path)``.  The limits ``MAX_POINTS`` and ``MAX_PIXELS`` are read
from this package at call time (``core.io.MAX_PIXELS = ...`` changes it; the environment variable
``MMAD_MAX_PIXELS`` overrides the pixel limit).
"""
from __future__ import annotations

from ._common import (CLOUD_EXTS, IMAGE_EXTS, MAX_PIXELS, MAX_POINTS, MIN_IMAGE_SIDE, TEXT_CLOUD_EXTS, TIFF_EXTS,
                      DegenerateCloudError, PathLike, check_file, list_dir, max_pixels, max_points, natural_key,
                      why_missing)
from .atomic import atomic_open, atomic_path, atomic_write
from .csv_files import csv_cell, csv_text, write_csv
from .clouds import check_points, read_cloud, read_xyz_tiff, write_cloud, write_xyz_tiff
from .probe import check_pixels, image_size, tiff_is_xyz
from .images import fit_max_side, read_image_raw, read_mask, read_rgb, write_mask, write_rgb
from .json_files import json_text, read_json_header, to_jsonable, write_json
from .labels import align_point_labels, read_point_labels
from .locks import file_lock
from .text import read_text_table, read_simple_yaml, read_yaml

__all__ = [
    "csv_cell", "csv_text", "write_csv",
    "CLOUD_EXTS", "IMAGE_EXTS", "MAX_PIXELS", "MAX_POINTS", "MIN_IMAGE_SIDE", "DegenerateCloudError",
    "check_points", "check_pixels", "image_size", "fit_max_side", "TEXT_CLOUD_EXTS", "TIFF_EXTS", "PathLike", "check_file",
    "list_dir", "max_points", "natural_key", "read_cloud", "read_xyz_tiff", "write_cloud", "write_xyz_tiff",
    "tiff_is_xyz", "read_image_raw", "read_mask", "read_rgb", "write_mask", "write_rgb",
    "align_point_labels", "read_point_labels", "read_simple_yaml", "read_text_table", "read_yaml", "why_missing",
    "atomic_open", "atomic_path", "atomic_write", "file_lock", "json_text", "read_json_header", "to_jsonable", "write_json",
]
