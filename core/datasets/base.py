"""Lazy datasets: opening a dataset only lists files (fast); a sample's arrays load on demand."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from .. import io
from ..errors import SampleLoadError
from ..sample import GOOD, Sample

#: the most held-out good parts a threshold is calibrated on (each costs one extraction per fit)
MAX_CALIBRATION = 20


@dataclass(frozen=True)
class SampleRef:
    """Where a sample's files are; cheap to create (no file is opened)."""
    id: str
    class_name: str
    split: str                       # train | validation | test | (plain folders: "")
    label: str                       # good | <defect kind> | "" when unknown
    paths: dict = field(default_factory=dict, hash=False, compare=False)  # role -> Path: rgb, points, gt, labels...

    @property
    def key(self) -> str:
        return "/".join(p for p in (self.class_name, self.split, self.label, self.id) if p)

    @property
    def is_good(self) -> bool:
        return self.label == GOOD


class Dataset:
    """A list of :class:`SampleRef` plus a loader. Subclasses fill ``refs`` and implement ``load``."""

    layout: str = "base"
    #: human name of the layout, for the GUI ("MVTec AD", "plain folder"...)
    layout_label: str = "dataset"

    def __init__(self, root: Path, refs: Sequence[SampleRef], warnings: Sequence[str] = ()):
        self.root = Path(root)
        self.refs: list[SampleRef] = list(refs)
        #: problems noticed while listing (e.g. a folder named like an image); each names the path
        self.warnings: list[str] = list(warnings)

    def describe(self) -> str:
        """One line for the GUI: ``"MVTec AD, 1 class, 39 samples"``."""
        n_cls, n = len(self.classes), len(self.refs)
        return (f"{self.layout_label}, {n_cls:,} class{'es' if n_cls != 1 else ''}, "
                f"{n:,} sample{'s' if n != 1 else ''}")

    def __len__(self) -> int:
        return len(self.refs)

    def __iter__(self) -> Iterator[SampleRef]:
        return iter(self.refs)

    def __getitem__(self, i: int) -> SampleRef:
        return self.refs[i]

    @property
    def classes(self) -> list[str]:
        return sorted({r.class_name for r in self.refs})

    def select(self, classes: Optional[Sequence[str]] = None, split: Optional[str] = None,
               label: Optional[str] = None, where: Optional[Callable[[SampleRef], bool]] = None) -> list[SampleRef]:
        out = []
        for r in self.refs:
            if classes and r.class_name not in classes:
                continue
            if split is not None and r.split != split:
                continue
            if label is not None and r.label != label:
                continue
            if where is not None and not where(r):
                continue
            out.append(r)
        return out

    def support_refs(self, class_name: str, k: int) -> list[SampleRef]:
        """The first ``k`` good training samples of a class (sorted by id): the few-shot support set."""
        refs = self.select([class_name], split="train", label=GOOD)
        if not refs:  # plain folders / odd layouts: any good sample not in test
            refs = [r for r in self.select([class_name], label=GOOD) if r.split != "test"]
        return sorted(refs, key=lambda r: r.id)[:k]

    def calibration_refs(self, class_name: str, exclude: Sequence[SampleRef] = (),
                         limit: int = MAX_CALIBRATION) -> list[SampleRef]:
        """Good parts a decision threshold can be calibrated on, none of them in ``exclude`` (the
        support): the class's ``validation`` good samples, then the ``train``/``good`` samples the
        support left out (a user with 25 good parts and a 5-shot support has 20 parts the bank
        never saw).  At most ``limit`` (validation first; train parts spread evenly over the id
        order); none for ``limit`` <= 0."""
        if limit <= 0:
            return []
        taken = {(r.split, r.label, r.id) for r in exclude}
        out: list[SampleRef] = []
        for split in ("validation", "train"):
            refs = sorted((r for r in self.select([class_name], split=split) if r.is_good
                           and (r.split, r.label, r.id) not in taken), key=lambda r: r.id)
            room = limit - len(out)
            if len(refs) > room:
                refs = [refs[int(i)] for i in np.linspace(0, len(refs) - 1, room).round()] if room > 0 else []
            out.extend(refs)
        return out

    def load(self, ref: SampleRef) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError


class ClassFolderDataset(Dataset):
    """A dataset of one folder per part class (or a class folder itself): subclasses give the class
    folders under a root (:meth:`class_folders`) and the samples of one class folder
    (:meth:`list_class`); detection and listing follow from them, opening no file."""

    @staticmethod
    def class_folders(root: Path) -> list[Path]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def list_class(cls, class_dir: Path, warnings: list[str]) -> list[SampleRef]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def detect(cls, root: Path) -> bool:
        """True when ``root`` looks like this layout or one class of it (folder listing only)."""
        return bool(cls.class_folders(Path(root)))

    @classmethod
    def from_root(cls, root) -> "ClassFolderDataset":
        """List the samples under ``root`` without opening any file."""
        root = Path(root)
        warnings: list[str] = []
        refs = [r for cdir in cls.class_folders(root) for r in cls.list_class(cdir, warnings)]
        return cls(root, refs, warnings)


def walk_split_labels(class_folders: Sequence[Path], splits: dict[str, str],
                      label_dirs: Callable[[Path], list[Path]]) -> Iterator[tuple[Path, str, Path]]:
    """``(class folder, split, label folder)`` of a ``<class>/<split>/<label>`` tree (MVTec AD,
    MVTec 3D-AD): split folders named in ``splits`` (lower-case name -> split), label folders as
    ``label_dirs`` finds them; folders only, no file is opened."""
    for cdir in class_folders:
        for split_dir in io.list_dir(cdir, dirs=True):
            split = splits.get(split_dir.name.lower())
            if split is None:
                continue
            for ldir in label_dirs(split_dir):
                yield cdir, split, ldir


def list_entries(folder: Path, exts: Sequence[str], warnings: Optional[list] = None) -> list[Path]:
    """Files of ``folder`` whose suffix is in ``exts`` (natural order, no file opened), plus any
    *folder* named like such a file (``002.png/``): it is kept so that loading its sample reports
    "is a folder, not a file" instead of the sample silently losing that modality, and it is noted
    in ``warnings``."""
    files = io.list_dir(folder, exts)
    fakes = [d for d in io.list_dir(folder, dirs=True) if os.path.splitext(d.name)[1].lower() in exts]
    if not fakes:
        return files
    if warnings is not None:
        warnings.extend(f"{d}: is a folder, not a file (its sample will fail to load)" for d in fakes)
    return sorted(files + fakes, key=lambda p: io.natural_key(p.name))


def load_rgb_and_mask(ref: SampleRef) -> Sample:
    """An image-only sample: its RGB image and, when it has one, its defect mask (same size)."""
    paths = {k: Path(v) for k, v in ref.paths.items()}
    rgb = io.read_rgb(paths["rgb"])
    gt = read_gt_mask(paths["gt"], rgb.shape[:2], paths["rgb"]) if "gt" in paths else None
    return Sample(id=ref.id, class_name=ref.class_name, label=ref.label, split=ref.split,
                  rgb=rgb, gt_mask=gt, paths=paths)


def read_gt_mask(gt_path: Path, grid: Optional[tuple], image_path: Optional[Path] = None) -> np.ndarray:
    """A ground-truth mask that must have the sample's pixel grid ``(H, W)``: a mask of another
    size is a :class:`SampleLoadError` naming both sizes (never a silent resize)."""
    mask = io.read_mask(gt_path)
    if grid is not None and tuple(mask.shape[:2]) != (int(grid[0]), int(grid[1])):
        of = f" of {Path(image_path).name}" if image_path is not None else ""
        raise SampleLoadError(gt_path, f"mask size {mask.shape[1]}x{mask.shape[0]} (W x H) does not match the "
                                       f"image size {int(grid[1])}x{int(grid[0])}{of}")
    return mask


def hold_out(items: Sequence, ratio: float) -> tuple[list, list]:
    """Split naturally sorted ``items`` into ``(train, test)``: the last ``round(ratio * n)`` go to
    test (at least one when ``ratio > 0`` and there are two or more, never all of them).
    Deterministic, so a dataset lists the same way every time."""
    items = list(items)
    n = len(items)
    k = int(round(float(ratio) * n))
    if ratio > 0 and n >= 2:
        k = max(k, 1)
    k = min(k, n - 1) if n else 0
    return items[: n - k], items[n - k:]
