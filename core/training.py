"""Training of the trained detectors on **good samples only**, one model for several classes.

Headless API for the CLI and the GUI::

    result = train(dataset, "cross-modal", classes=["cookie", "tube"], epochs=20, out="model",
                   progress=lambda f, msg: ..., cancel=lambda: False, on_epoch=lambda e, loss: ...)

Steps: features on the common grid (:mod:`core.features.grid`) of every good training sample of
the classes (a sample that fails to load is skipped with a warning), per-channel standardization
from those features, then epochs of shuffled mini-batches of grid locations.  ``cancel`` is
polled before every batch (:class:`~core.errors.Cancelled`); batches whose gradients are not
finite are skipped.  Seeds are fixed per epoch (``(seed, epoch)``), so a run and
a run resumed from its checkpoint give the same weights.  The checkpoint (:mod:`core.checkpoint`)
is written after every epoch (cancel loses at most one; ``resume`` continues it) with the
per-class calibration of the model on its training data.
"""
from __future__ import annotations

import logging
import math
import platform
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, paths_for
from .errors import Cancelled, InputError, UsageError
from .features.grid import D_GEO, D_RGB, FeatureConfig, grid_features

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
EpochFn = Callable[[int, float], None]
BatchFn = Callable[[float, float], None]


@dataclass
class TrainResult:
    path: Path
    detector: str
    classes: list[str]
    epochs: int
    losses: list[float] = field(default_factory=list)
    n_samples: int = 0
    n_locations: int = 0
    skipped: list[str] = field(default_factory=list)
    feature_seconds: float = 0.0
    train_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    skipped_batches: int = 0


@dataclass
class _Data:
    rgb: np.ndarray
    geo: np.ndarray
    has_rgb: np.ndarray
    has_geo: np.ndarray
    cls: np.ndarray

    def __len__(self) -> int:
        return len(self.cls)

    def batch(self, idx: np.ndarray) -> dict:
        import torch
        return {"rgb": torch.from_numpy(self.rgb[idx]), "geo": torch.from_numpy(self.geo[idx]),
                "has_rgb": torch.from_numpy(self.has_rgb[idx]), "has_geo": torch.from_numpy(self.has_geo[idx]),
                "cls": torch.from_numpy(self.cls[idx])}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _versions() -> dict[str, str]:
    import torch
    try:
        import safetensors
        st = safetensors.__version__
    except Exception:  # pragma: no cover  # noqa: BLE001 - a failed epoch is reported, the checkpoint kept
        st = "?"
    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "safetensors": st}


#: fraction of a class's training good parts held out of training for threshold calibration
#: (at least 1 once the class has MIN_FOR_HOLD_OUT)
HOLD_OUT = 0.2
MIN_FOR_HOLD_OUT = 5
MAX_HOLD_OUT = 20
#: the trained detectors' default support is the first 5 training parts: held-out parts come after them
SUPPORT_GUARD = 5


def good_training_refs(dataset, classes: Sequence[str]) -> list:
    refs = []
    for c in classes:
        r = dataset.select([c], split="train", label="good")
        if not r:
            r = [x for x in dataset.select([c], label="good") if x.split not in ("test", "validation")]
        refs += sorted(r, key=lambda x: x.id)
    return refs


def split_held_out(dataset, refs: Sequence, hold_out: float = HOLD_OUT) -> tuple[list, list]:
    """(refs to train on, refs held out for calibration): ``hold_out`` of each class's training
    parts, evenly spread over the id order from the last one (at least one from
    :data:`MIN_FOR_HOLD_OUT` parts, at most :data:`MAX_HOLD_OUT`); ``hold_out`` <= 0: nothing.
    They join the class's ``validation/good`` parts in calibration: measured on the demo, the 4
    validation parts of a class alone gave a threshold that flagged half of gasket's good parts
    (cross-modal), their scores spreading less than later parts' do."""
    by_class: dict[str, list] = {}
    for r in refs:
        by_class.setdefault(r.class_name, []).append(r)
    train_on, held = [], []
    for c, rs in by_class.items():
        k = 0 if hold_out <= 0 or len(rs) < MIN_FOR_HOLD_OUT else \
            min(MAX_HOLD_OUT, max(1, int(round(hold_out * len(rs)))))
        # spread from the last part down to the first part after the default support (which the
        # detector calibrates its location scale on, so it must not be one of them)
        lo = min(SUPPORT_GUARD, len(rs) - 1)
        pick = set(np.linspace(len(rs) - 1, lo, k).round().astype(int).tolist()) if k else set()
        held += [r for i, r in enumerate(rs) if i in pick]
        train_on += [r for i, r in enumerate(rs) if i not in pick]
    return train_on, held


def extract_training_features(dataset, refs, classes: Sequence[str], cfg: FeatureConfig,
                              progress: Optional[ProgressFn] = None, cancel: Optional[CancelFn] = None):
    """Raw (unstandardized) location arrays of all ``refs`` and the keys of the skipped ones."""
    parts, skipped = [], []
    for i, ref in enumerate(refs):
        if cancel is not None and cancel():
            raise Cancelled("training cancelled")
        if progress:
            progress(i / max(len(refs), 1), f"features {i + 1}/{len(refs)} ({ref.key})")
        try:
            f = grid_features(dataset.load(ref), cfg)
        except InputError as e:
            log.warning("skipped %s: %s", ref.key, e)
            skipped.append(f"{ref.key}: {e}")
            continue
        n = f.n
        parts.append(_Data(
            rgb=f.rgb if f.rgb is not None else np.zeros((n, D_RGB), np.float32),
            geo=f.geo if f.geo is not None else np.zeros((n, D_GEO), np.float32),
            has_rgb=np.full(n, f.rgb is not None), has_geo=f.valid if f.valid is not None else np.zeros(n, bool),
            cls=np.full(n, list(classes).index(ref.class_name), np.int64)))
    if not parts:
        raise InputError(getattr(dataset, "root", None), "no good training sample of the chosen classes could be described")
    cat = lambda k: np.concatenate([getattr(p, k) for p in parts])  # noqa: E731
    return _Data(cat("rgb"), cat("geo"), cat("has_rgb"), cat("has_geo"), cat("cls")), skipped, len(parts)


def _standardizer(data: _Data) -> dict[str, np.ndarray]:
    out = {}
    for name, x, ok in (("rgb", data.rgb, data.has_rgb), ("geo", data.geo, data.has_geo)):
        v = x[ok] if ok.any() else np.zeros((1, x.shape[1]), np.float32)
        out[f"{name}.mean"] = v.mean(0).astype(np.float32)
        out[f"{name}.std"] = np.maximum(v.std(0), 1e-3).astype(np.float32)
    return out


def _standardize(data: _Data, std: dict[str, np.ndarray]) -> _Data:
    rgb = np.where(data.has_rgb[:, None], (data.rgb - std["rgb.mean"]) / std["rgb.std"], 0).astype(np.float32)
    geo = np.where(data.has_geo[:, None], (data.geo - std["geo.mean"]) / std["geo.std"], 0).astype(np.float32)
    return _Data(rgb, geo, data.has_rgb, data.has_geo, data.cls)


def _optim_tensors(opt) -> dict[str, np.ndarray]:
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"optim.{i}.{k}"] = v.detach().cpu().numpy().astype(np.float32).reshape(v.shape)
    return out


def _load_optim(opt, tensors: dict[str, np.ndarray]) -> None:
    import torch
    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = torch.from_numpy(np.array(v))
    sd["state"] = state
    opt.load_state_dict(sd)


def _calibration(net, data: _Data, classes: Sequence[str], batch_size: int) -> dict[str, dict[str, float]]:
    """Per class and modality: the 99th percentile of the model's discrepancies on its training data."""
    import torch
    net.eval()
    vals: dict[str, list] = {}
    with torch.no_grad():
        for s in range(0, len(data), batch_size * 4):
            idx = np.arange(s, min(s + batch_size * 4, len(data)))
            for m, v in net.discrepancies(data.batch(idx)).items():
                vals.setdefault(m, []).append(v.numpy())
    net.train()
    out: dict[str, dict[str, float]] = {}
    for m, parts in vals.items():
        v = np.concatenate(parts)
        for ci, c in enumerate(classes):
            x = v[(data.cls == ci) & np.isfinite(v)]
            if x.size >= 20:
                out.setdefault(c, {})[m] = float(max(np.quantile(x, 0.99), 1e-6))
    return out


def train(dataset, detector_id: str, classes: Optional[Sequence[str]] = None, epochs: int = 20,
          out: str | Path = "model", progress: Optional[ProgressFn] = None, cancel: Optional[CancelFn] = None,
          on_epoch: Optional[EpochFn] = None, *, on_batch: Optional[BatchFn] = None, resume: bool = False,
          seed: int = 0, batch_size: int = 2048,
          lr: float = 2e-3, model: Optional[dict[str, Any]] = None,
          features: Optional[FeatureConfig] = None, hold_out: float = HOLD_OUT) -> TrainResult:
    """Train ``detector_id`` on the good training samples of ``classes`` (default: all) of
    ``dataset``; write the checkpoint ``out`` (``.safetensors`` + ``.json``) after every epoch.

    ``hold_out`` of each class's training parts stay out of training (:func:`split_held_out`;
    listed in the checkpoint as ``held_out``): the detector calibrates its decision threshold on
    them and on the class's ``validation/good`` parts.

    ``on_epoch(epoch, mean_loss)`` after every epoch; ``on_batch(epoch_float, running_loss)`` after
    every batch (``epoch_float`` counts from 0: 0.5 is half-way through the first epoch)."""
    import torch

    from .detectors import get
    from .detectors.state import support_hash
    from .detectors import available

    det_cls = get(detector_id)
    if not det_cls.trainable():
        trainable = ", ".join(i for i in available() if get(i).trainable())
        raise UsageError(f"detector '{detector_id}' is not trainable (trainable: {trainable})")
    if epochs < 1:
        raise UsageError(f"--epochs must be at least 1 (got {epochs})")
    all_classes = list(dataset.classes)
    classes = sorted(classes) if classes else all_classes
    unknown = [c for c in classes if c not in all_classes]
    if unknown:
        raise UsageError(f"unknown class(es) {', '.join(unknown)} (the dataset has: {', '.join(all_classes)})")
    refs = good_training_refs(dataset, classes)
    if not refs:
        raise InputError(getattr(dataset, "root", None), f"no good training samples for {', '.join(classes)}")
    if det_cls.needs.points == "required" and not any(k in r.paths for r in refs for k in ("points", "tiff")):
        raise InputError(getattr(dataset, "root", None), f"detector '{detector_id}' needs training samples with a "
                                                          f"point cloud and none of {', '.join(classes)} has one "
                                                          f"(RGB-only data: use unified-moe)")
    cfg = features or FeatureConfig(seed=seed)
    refs, held = split_held_out(dataset, refs, hold_out)
    data_hash = support_hash(refs)
    tpath, _ = paths_for(out)
    prev: Optional[Checkpoint] = None
    if resume and tpath.exists():
        prev = load_checkpoint(out, detector=detector_id)
        if prev.classes != list(classes):
            raise InputError(tpath, f"cannot resume: it was trained on {', '.join(prev.classes)}, not on {', '.join(classes)}")
        if prev.meta.get("training_data_sha256") != data_hash:
            raise InputError(tpath, "cannot resume: it was trained on other training data")
        cfg = FeatureConfig.from_json(prev.meta["features"])
        seed = int(prev.meta.get("seed", seed))

    sub = (lambda a, b: (lambda f, m: progress(a + (b - a) * f, m))) if progress else (lambda a, b: None)
    t0 = time.perf_counter()
    raw, skipped, n_samples = extract_training_features(dataset, refs, classes, cfg, sub(0.0, 0.4), cancel)
    feat_s = time.perf_counter() - t0
    std = {k[4:]: v for k, v in prev.tensors.items() if k.startswith("std.")} if prev else _standardizer(raw)
    data = _standardize(raw, std)
    del raw
    config = dict(model or {}, d_rgb=D_RGB, d_geo=D_GEO, n_classes=len(classes))
    torch.manual_seed(seed)
    net = det_cls.net_from_tensors(prev.meta["model"], prev.tensors, prev.path, CheckpointError) if prev \
        else det_cls.make_net(config)
    config = dict(net.config)
    if hasattr(net, "usable") and not bool(net.usable(data.batch(np.arange(len(data)))).any()):
        raise InputError(getattr(dataset, "root", None), f"detector '{detector_id}' needs training samples with an RGB "
                                                          f"image and an organized point cloud; none has both")
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    start = 0
    losses: list[float] = []
    if prev:
        _load_optim(opt, prev.tensors)
        start = int(prev.meta.get("epochs", 0))
        losses = list(prev.meta.get("losses", []))
    n = len(data)
    n_batches = max(1, math.ceil(n / batch_size))
    skipped_batches = 0
    t1 = time.perf_counter()
    meta_base = {"detector": detector_id, "model": config, "features": cfg.to_json(), "classes": list(classes),
                 "versions": _versions(), "training_data_sha256": data_hash, "n_training_samples": n_samples,
                 "seed": seed, "lr": lr, "batch_size": batch_size,
                 "held_out": [r.key for r in held]}
    total = epochs - start
    if total <= 0:
        log.warning("checkpoint already has %d epochs (asked %d): nothing to train", start, epochs)
    for ep in range(start, epochs):
        torch.manual_seed(seed * 1_000_003 + ep)
        perm = np.random.default_rng([seed, ep]).permutation(n)
        acc, cnt = 0.0, 0
        for b in range(n_batches):
            if cancel is not None and cancel():
                raise Cancelled("training cancelled")
            loss, _ = net.loss(data.batch(perm[b * batch_size:(b + 1) * batch_size]), train=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            finite = torch.isfinite(loss) and all(p.grad is None or bool(torch.isfinite(p.grad).all())
                                                  for p in net.parameters())
            if not finite:
                skipped_batches += 1
                continue
            opt.step()
            acc += float(loss.detach())
            cnt += 1
            if on_batch is not None:
                on_batch(ep + (b + 1) / n_batches, acc / cnt)
            if progress:
                done = (ep - start) + (b + 1) / n_batches
                el = time.perf_counter() - t1
                eta = el / done * (total - done) if done > 0 else float("nan")
                progress(0.4 + 0.6 * done / max(total, 1),
                         f"epoch {ep + 1}/{epochs}, batch {b + 1}/{n_batches}, loss {acc / cnt:.4f}, ETA {eta:.0f} s")
        ep_loss = acc / max(cnt, 1)
        losses.append(ep_loss)
        tensors = {f"net.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()}
        tensors.update({f"std.{k}": v for k, v in std.items()})
        tensors.update(_optim_tensors(opt))
        Checkpoint(tensors=tensors, meta=dict(meta_base, epochs=ep + 1, losses=losses,
                                              calibration=_calibration(net, data, classes, batch_size))).save(out)
        if on_epoch is not None:
            on_epoch(ep + 1, ep_loss)
    if progress:
        progress(1.0, f"trained {epochs} epoch(s): {tpath}")
    return TrainResult(path=tpath, detector=detector_id, classes=list(classes), epochs=epochs, losses=losses,
                       n_samples=n_samples, n_locations=n, skipped=skipped, feature_seconds=feat_s,
                       train_seconds=time.perf_counter() - t1, peak_rss_mb=_peak_rss_mb(),
                       skipped_batches=skipped_batches)


# ---------------------------------------------------------------------- in a worker process
class _Trainer:  # pragma: no cover - runs in the child process
    """The training process's handler: one :func:`train` call per request."""

    def __call__(self, request: tuple, reporter) -> TrainResult:
        dataset, detector_id, kwargs = request
        return train(dataset, detector_id, progress=reporter.progress, cancel=reporter.cancelled,
                     on_epoch=lambda e, loss: reporter.event("epoch", (int(e), float(loss))),
                     on_batch=lambda e, loss: reporter.event("batch", (float(e), float(loss)), throttle=True),
                     **kwargs)


def train_in_process(dataset, detector_id: str, progress: Optional[ProgressFn] = None,
                     cancel: Optional[CancelFn] = None, on_epoch: Optional[EpochFn] = None, *,
                     on_batch: Optional[BatchFn] = None, nice: int = 0, kill_after_s: float = 0.8,
                     start_method: str = "spawn", **kwargs: Any) -> TrainResult:
    """:func:`train` in a ``spawn``-ed child process (:class:`core.session.process.ChildProcess`);
    the callbacks run in the calling thread.

    Training in a thread of a GUI process stalls its event loop for more than a second at a time
    (feature extraction and torch hold the GIL), so the workbench trains in a child: ``cancel`` is
    polled before every batch there, and a child that has not stopped ``kill_after_s`` after it is
    terminated (:class:`~core.errors.Cancelled` either way; the checkpoint of the last finished
    epoch is on disk: :class:`~core.checkpoint.Checkpoint` writes atomically).  ``nice`` is the
    child's niceness increment (the caller stays responsive meanwhile); ``kwargs`` go to
    :func:`train` (``dataset`` is pickled to the child)."""
    from .session.process import ChildProcess

    events = {"epoch": on_epoch, "batch": on_batch}

    def on_event(kind: str, payload: Any) -> None:
        fn = events.get(kind)
        if fn is not None:
            fn(*payload)

    child = ChildProcess(_Trainer, name="mmad-train", what="training process", start_method=start_method,
                         kill_after_s=kill_after_s, nice=nice)
    try:
        return child.call((dataset, detector_id, kwargs), progress, cancel, on_event)
    finally:
        child.close(wait=False)
