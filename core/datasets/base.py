"""Lazy datasets: opening a dataset only lists files (fast); a sample's arrays load on demand."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from ..sample import GOOD, Sample


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

    def __init__(self, root: Path, refs: Sequence[SampleRef]):
        self.root = Path(root)
        self.refs: list[SampleRef] = list(refs)

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

    def load(self, ref: SampleRef) -> Sample:  # pragma: no cover - abstract
        raise NotImplementedError
