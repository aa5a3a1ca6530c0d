"""MVTec AD layout (RGB only, Bergmann et al. 2019).

::

    <root>/<class>/train/good/NNN.png
    <root>/<class>/test/good/NNN.png
    <root>/<class>/test/<defect>/NNN.png
    <root>/<class>/ground_truth/<defect>/NNN_mask.png      (NNN.png accepted too)

``root`` may be the dataset root (many classes) or one class folder.  A class folder is recognised
by a ``train/good`` or ``test/<label>`` folder holding images directly (MVTec 3D-AD puts them in
``rgb/`` sub-folders), only ``train``/``test``/``validation``/``ground_truth`` sub-folders, and no
point clouds; a dataset root is recognised when every sub-folder is such a class folder.  Anything
else (a user's folder with one MVTec-like part among others, PNG + PLY pairs in this shape) is a
plain folder (see :mod:`core.datasets.folder`), so that nothing is hidden and clouds are kept.  Listing only reads
folder entries; :meth:`MVTecADDataset.load` reads the image and its mask, which must have the
image's size.  A defective test image without a mask is loaded without ground truth.
"""
from __future__ import annotations

from pathlib import Path

from .. import io
from ..sample import GOOD, Sample
from .base import ClassFolderDataset, SampleRef, list_entries, load_rgb_and_mask, walk_split_labels

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: clouds beside the images mean a multimodal user folder, not MVTec AD
CLOUD_EXTS = (".ply", ".pcd", ".npy", ".xyz")
SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
GT_DIR = "ground_truth"
MASK_SUFFIX = "_mask"


def _label_dirs(split_dir: Path) -> list[Path]:
    return [d for d in io.list_dir(split_dir, dirs=True) if io.list_dir(d, IMAGE_EXTS)]


def _is_class_dir(d: Path) -> bool:
    """``train``/``test``/``ground_truth`` sub-folders only (no loose sample files), images directly
    in the label folders, no point clouds."""
    if io.list_dir(d, IMAGE_EXTS + CLOUD_EXTS):
        return False
    if any(s.name.lower() not in SPLITS and s.name != GT_DIR for s in io.list_dir(d, dirs=True)):
        return False
    found = False
    for name in SPLITS:
        sdir = d / name
        if not sdir.is_dir():
            continue
        if io.list_dir(sdir, IMAGE_EXTS + CLOUD_EXTS):
            return False  # loose files in train/ or test/: a plain folder
        for ldir in io.list_dir(sdir, dirs=True):
            if io.list_dir(ldir, CLOUD_EXTS):
                return False
            if io.list_dir(ldir, IMAGE_EXTS):
                found = True
    return found


def class_dirs(root: Path) -> list[Path]:
    """The class folders of an MVTec AD tree (``[root]`` when root is itself a class folder)."""
    root = Path(root)
    if _is_class_dir(root):
        return [root]
    if io.list_dir(root, IMAGE_EXTS + CLOUD_EXTS):
        return []
    subs = io.list_dir(root, dirs=True)
    # every sub-folder must be a class: a user's folder with one MVTec-like part among others is a
    # plain folder (nothing of it is hidden)
    return subs if subs and all(_is_class_dir(d) for d in subs) else []


class MVTecADDataset(ClassFolderDataset):
    """A lazily listed MVTec AD dataset (or one class of it)."""

    layout = "mvtec-ad"
    layout_label = "MVTec AD"
    class_folders = staticmethod(class_dirs)

    @classmethod
    def list_class(cls, class_dir: Path, warnings: list[str]) -> list[SampleRef]:
        refs: list[SampleRef] = []
        for _, split, ldir in walk_split_labels([class_dir], SPLITS, _label_dirs):
            is_good = ldir.name.lower() == GOOD
            masks = {} if is_good else _mask_map(class_dir / GT_DIR / ldir.name, warnings)
            for p in list_entries(ldir, IMAGE_EXTS, warnings):
                paths = {"rgb": p}
                if p.stem in masks:
                    paths["gt"] = masks[p.stem]
                refs.append(SampleRef(id=p.stem, class_name=class_dir.name, split=split,
                                      label=GOOD if is_good else ldir.name, paths=paths))
        return refs

    def load(self, ref: SampleRef) -> Sample:
        return load_rgb_and_mask(ref)


def _mask_map(folder: Path, warnings: list) -> dict[str, Path]:
    """``stem -> mask path`` for ``NNN_mask.png`` (or ``NNN.png``) files in ``folder``."""
    out: dict[str, Path] = {}
    for p in list_entries(folder, IMAGE_EXTS, warnings):
        stem = p.stem
        if stem.lower().endswith(MASK_SUFFIX) and len(stem) > len(MASK_SUFFIX):
            out[stem[: -len(MASK_SUFFIX)]] = p
        else:
            out.setdefault(stem, p)
    return out
