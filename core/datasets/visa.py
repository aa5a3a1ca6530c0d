"""VisA layout (RGB only, Zou et al. 2022).

::

    <root>/split_csv/1cls.csv                      object,split,label,image,mask
    <root>/<class>/Data/Images/Normal/NNNN.JPG
    <root>/<class>/Data/Images/Anomaly/NNN.JPG
    <root>/<class>/Data/Masks/Anomaly/NNN.png      anomalous pixels are > 0

Splits, in this order of preference:

1. **The split CSV** (``split_csv/1cls.csv``, VisA's own one-class protocol; another file with
   ``split_csv="2cls_fewshot.csv"`` or a path): each row gives the class, ``train``/``test``
   (``val`` accepted), ``normal``/``anomaly`` and the image and mask paths relative to the root.
   ``root`` may also be one class folder whose parent holds ``split_csv/``: only its rows are used.
2. **No CSV, raw tree**: every ``Normal`` image is good training data except the last 10 % in
   natural order (``test_ratio``), which are test good parts (VisA's 1cls protocol holds out
   about 10 % of the normal images too); every ``Anomaly`` image is a test defect, with
   ``Data/Masks/Anomaly/<stem>.png`` as its mask.

Anomalous images get the label ``"defect"`` (VisA does not name defect kinds).  Listing reads the
CSV (the dataset's index) but no image; masks must have the image's size.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

from .. import io
from ..errors import InputError
from ..sample import GOOD, Sample
from .base import Dataset, SampleRef, hold_out, list_entries, load_rgb_and_mask

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
CSV_DIR, DEFAULT_CSV = "split_csv", "1cls.csv"
COLUMNS = ("object", "split", "label", "image", "mask")
SPLITS = {"train": "train", "test": "test", "val": "validation", "validation": "validation"}
LABELS = {"normal": GOOD, "anomaly": "defect"}
DEFAULT_TEST_RATIO = 0.1
MAX_CSV_BYTES = 64 * 1024 * 1024


def _images(cdir: Path, kind: str) -> Path:
    return cdir / "Data" / "Images" / kind


def _is_class_dir(d: Path) -> bool:
    return _images(d, "Normal").is_dir() or _images(d, "Anomaly").is_dir()


def class_dirs(root: Path) -> list[Path]:
    root = Path(root)
    if _is_class_dir(root):
        return [root]
    return [d for d in io.list_dir(root, dirs=True) if _is_class_dir(d)]


def find_csv(root: Path, split_csv: Optional[str] = None) -> Optional[Path]:
    """The split CSV for ``root`` (a dataset root or a class folder), or None."""
    root = Path(root)
    if split_csv is not None:
        p = Path(split_csv)
        cands = [p] if p.is_absolute() else [root / p, root / CSV_DIR / p, root.parent / CSV_DIR / p]
        for c in cands:
            if c.is_file():
                return c
        raise InputError(cands[0], "split CSV not found")
    for c in (root / CSV_DIR / DEFAULT_CSV, root.parent / CSV_DIR / DEFAULT_CSV):
        if c.is_file() and (c.parent.parent == root or _is_class_dir(root)):
            return c
    return None


class VisADataset(Dataset):
    """A lazily listed VisA dataset (or one class of it)."""

    layout = "visa"
    layout_label = "VisA"

    @staticmethod
    def detect(root: Path) -> bool:
        root = Path(root)
        return (root / CSV_DIR / DEFAULT_CSV).is_file() or bool(class_dirs(root))

    @classmethod
    def from_root(cls, root, split_csv: Optional[str] = None,
                  test_ratio: float = DEFAULT_TEST_RATIO) -> "VisADataset":
        root = Path(root)
        csv_path = find_csv(root, split_csv)
        if csv_path is not None:
            only = root.name if csv_path.parent.parent != root else None
            return cls(root, _refs_from_csv(csv_path, only))
        if not 0 <= float(test_ratio) < 1:
            raise InputError(root, f"test_ratio must be in [0, 1), got {test_ratio}")
        refs: list[SampleRef] = []
        warnings: list[str] = []
        for cdir in class_dirs(root):
            train, test = hold_out(list_entries(_images(cdir, "Normal"), IMAGE_EXTS, warnings), test_ratio)
            for split, group in (("train", train), ("test", test)):
                refs.extend(SampleRef(id=p.stem, class_name=cdir.name, split=split, label=GOOD, paths={"rgb": p})
                            for p in group)
            masks = {p.stem: p for p in list_entries(cdir / "Data" / "Masks" / "Anomaly", IMAGE_EXTS, warnings)}
            for p in list_entries(_images(cdir, "Anomaly"), IMAGE_EXTS, warnings):
                paths = {"rgb": p}
                if p.stem in masks:
                    paths["gt"] = masks[p.stem]
                refs.append(SampleRef(id=p.stem, class_name=cdir.name, split="test", label="defect", paths=paths))
        return cls(root, refs, warnings)

    def load(self, ref: SampleRef) -> Sample:
        return load_rgb_and_mask(ref)


def _refs_from_csv(csv_path: Path, only: Optional[str] = None) -> list[SampleRef]:
    """Rows of a VisA split CSV as refs (``only``: keep the rows of that class)."""
    try:
        size = csv_path.stat().st_size
        if size > MAX_CSV_BYTES:
            raise InputError(csv_path, f"split CSV too large ({size:,} bytes, limit {MAX_CSV_BYTES:,})")
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(csv_path, "split CSV is not UTF-8 text") from None
    except OSError as e:
        raise InputError(csv_path, f"cannot read the split CSV ({e.strerror or e})") from None
    rows = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(rows, [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InputError(csv_path, f"not a VisA split CSV: missing column(s) {', '.join(missing)} "
                                   f"(expected {','.join(COLUMNS)}; found {','.join(header) or 'nothing'})")
    col = {c: header.index(c) for c in COLUMNS}
    base = csv_path.parent.parent
    refs = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise InputError(csv_path, f"line {line}: expected {len(header)} columns, got {len(row)}")
        get = {c: row[i].strip() for c, i in col.items()}
        if only is not None and get["object"] != only:
            continue
        split = SPLITS.get(get["split"].lower())
        label = LABELS.get(get["label"].lower())
        if split is None:
            raise InputError(csv_path, f"line {line}: unknown split '{get['split']}' (expected train or test)")
        if label is None:
            raise InputError(csv_path, f"line {line}: unknown label '{get['label']}' (expected normal or anomaly)")
        if not get["image"]:
            raise InputError(csv_path, f"line {line}: no image path")
        paths = {"rgb": base / get["image"]}
        if get["mask"]:
            paths["gt"] = base / get["mask"]
        refs.append(SampleRef(id=Path(get["image"]).stem, class_name=get["object"], split=split, label=label,
                              paths=paths))
    return refs
