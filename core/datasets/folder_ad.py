"""anomalib's Folder layout: normal / abnormal / mask folders given as options (RGB only).

>>> open_dataset("/data/cubes", layout="folder-ad", normal_dir="normal", abnormal_dir="abnormal",
...              mask_dir="mask/abnormal")

Same semantics as anomalib's ``Folder`` datamodule:

* ``normal_dir`` (required): good images.  Without ``normal_test_dir``, the last
  ``normal_split_ratio`` (default 0.2, anomalib's ``test_split_ratio``) of them in natural order are
  held out as test good parts, the rest is training data.  (anomalib draws them at random; the
  last ones are taken here so that the split is the same every time the folder is opened.)
* ``normal_test_dir``: good test images; then every ``normal_dir`` image is training data.
* ``abnormal_dir``: defective test images, labelled with the folder's name.
* ``mask_dir``: masks matched to the abnormal images **by file name** (``000.png`` for
  ``000.png``; ``000_mask.png`` is accepted too); an abnormal image without a mask, or a mask
  without an image, is noted in :attr:`Dataset.warnings`.

Each option is a folder (relative to the root or absolute) or a list of folders; ``extensions``
restricts the image suffixes.  This layout is never auto-detected: its folder names are the
user's choice, and a folder with the usual names (``good/`` + ``bad/`` + ``mask/``) is already read
by the plain-folder conventions.  The class is the root folder's name.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

from ..errors import InputError
from ..sample import GOOD, Sample
from .base import Dataset, SampleRef, hold_out, list_entries, load_rgb_and_mask

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DEFAULT_SPLIT_RATIO = 0.2
Dirs = Union[None, str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def _dirs(root: Path, value: Dirs, option: str) -> list[Path]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    values = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    out = []
    for v in values:
        p = Path(os.path.expanduser(os.fspath(v)))
        p = p if p.is_absolute() else root / p
        if not p.is_dir():
            raise InputError(p, f"{option} folder not found")
        out.append(p)
    return out


class AnomalibFolderDataset(Dataset):
    """A lazily listed anomalib-style Folder dataset."""

    layout = "folder-ad"
    layout_label = "anomalib Folder"

    @staticmethod
    def detect(root: Path) -> bool:
        return False  # needs its folder options: never auto-detected

    @classmethod
    def from_root(cls, root, normal_dir: Dirs = None, abnormal_dir: Dirs = None, mask_dir: Dirs = None,
                  normal_test_dir: Dirs = None, normal_split_ratio: float = DEFAULT_SPLIT_RATIO,
                  extensions: Optional[Sequence[str]] = None) -> "AnomalibFolderDataset":
        root = Path(root)
        if normal_dir is None:
            raise InputError(root, "the anomalib Folder layout needs normal_dir= (the folder of good images)")
        try:
            ratio = float(normal_split_ratio)
        except (TypeError, ValueError):
            ratio = -1.0
        if not 0 <= ratio < 1:
            raise InputError(root, f"normal_split_ratio must be in [0, 1), got {normal_split_ratio!r}")
        exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions) if extensions \
            else IMAGE_EXTS
        warnings: list[str] = []
        name = root.name

        def listed(dirs):
            return [p for d in dirs for p in list_entries(d, exts, warnings)]

        normals = listed(_dirs(root, normal_dir, "normal_dir"))
        test_dirs = _dirs(root, normal_test_dir, "normal_test_dir")
        if test_dirs:
            train, test = normals, listed(test_dirs)
        else:
            train, test = hold_out(normals, ratio)
        refs = [SampleRef(id=p.stem, class_name=name, split="train", label=GOOD, paths={"rgb": p}) for p in train]
        refs += [SampleRef(id=p.stem, class_name=name, split="test", label=GOOD, paths={"rgb": p}) for p in test]

        masks: dict[str, Path] = {}
        for p in listed(_dirs(root, mask_dir, "mask_dir")):
            stem = p.stem[:-5] if p.stem.lower().endswith("_mask") and len(p.stem) > 5 else p.stem
            masks.setdefault(stem, p)
        used = set()
        for d in _dirs(root, abnormal_dir, "abnormal_dir"):
            for p in list_entries(d, exts, warnings):
                paths = {"rgb": p}
                if p.stem in masks:
                    paths["gt"] = masks[p.stem]
                    used.add(p.stem)
                elif masks:
                    warnings.append(f"{p}: no mask with this file name in the mask folder")
                refs.append(SampleRef(id=p.stem, class_name=name, split="test", label=d.name, paths=paths))
        warnings += [f"{masks[s]}: mask without an abnormal image of that name" for s in masks if s not in used]
        return cls(root, _unique(refs), warnings)

    def load(self, ref: SampleRef) -> Sample:
        return load_rgb_and_mask(ref)


def _unique(refs: list[SampleRef]) -> list[SampleRef]:
    """Several normal folders may hold the same file name: suffix the id with its folder."""
    seen: dict[str, int] = {}
    for r in refs:
        seen[r.key] = seen.get(r.key, 0) + 1
    return [r if seen[r.key] == 1 else
            SampleRef(id=f"{r.paths['rgb'].parent.name}/{r.id}", class_name=r.class_name, split=r.split,
                      label=r.label, paths=r.paths) for r in refs]
