"""Common base of the trained detectors (``cross-modal``, ``unified-moe``).

One model, trained on the good samples of several classes (:mod:`core.training`), is a
**checkpoint** (:mod:`core.checkpoint`) named by the fit-stage parameter ``checkpoint``.
``build_state`` loads and verifies it (detector, features, that the part class is one it was
trained on, SHA-256) and calibrates the model's discrepancies on the class's good support samples
(nominal scale: each modality's map is divided by the 99th percentile of its support discrepancies,
so 1 means "as unusual as the top 1 % of good locations" and the fusion weights mean what they
say; without support, the calibration made on the training data of that class is used).

**The FitState holds the weights** (arrays ``net.*`` and ``std.*``, a few hundred kB): a state is
self-contained, so a worker process or a saved fit needs no access to the checkpoint file.  Its
meta records the checkpoint path and SHA-256; ``restore_state`` refuses a saved fit whose
checkpoint file has since changed (a retrained model at the same path), so the session refits
from the new one instead of using stale weights.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np

from ..checkpoint import CheckpointError, check_finite, file_sha256, load_checkpoint
from ..errors import InputError
from ..features.grid import D_GEO, D_RGB, FEATURE_VERSION, FeatureConfig, GridFeatures, grid_features, upsample_map
from ..sample import Sample
from .base import STAGE_FIT, CancelFn, Components, Detector, DetectorResult, Param, ProgressFn
from .calibrated import CalibratedThreshold, calibration_params
from . import postprocess
from .postprocess import component_score, image_top_fraction_param, sigma_param
from .schema import ArraySpec, StateSchema
from .state import FitStateError

CALIB_Q = 0.99
TEXT_OFF = "off: no CLIP text features (no weights installed), the text term (OCTA) is not computed"


def current_features() -> dict[str, Any]:
    return {"version": FEATURE_VERSION, "d_rgb": D_RGB, "d_geo": D_GEO}


def checkpoint_param() -> Param:
    return Param("checkpoint", "", "text", stage=STAGE_FIT,
                 help="trained model (.safetensors + .json) made by 'python main.py train'")


def to_batch(feats: GridFeatures, std: dict[str, np.ndarray], class_index: int):
    """Standardized torch batch of one sample's grid locations."""
    import torch
    n = feats.n
    rgb = np.zeros((n, D_RGB), np.float32)
    geo = np.zeros((n, D_GEO), np.float32)
    has_rgb = np.zeros(n, bool)
    has_geo = np.zeros(n, bool)
    if feats.rgb is not None:
        rgb = (feats.rgb - std["rgb.mean"]) / std["rgb.std"]
        has_rgb[:] = True
    if feats.geo is not None:
        geo = np.where(feats.valid[:, None], (feats.geo - std["geo.mean"]) / std["geo.std"], 0.0)
        has_geo = feats.valid.copy()
    return {"rgb": torch.from_numpy(np.ascontiguousarray(rgb, np.float32)),
            "geo": torch.from_numpy(np.ascontiguousarray(geo, np.float32)),
            "has_rgb": torch.from_numpy(has_rgb), "has_geo": torch.from_numpy(has_geo),
            "cls": torch.full((n,), int(class_index), dtype=torch.long)}


class TrainedDetector(CalibratedThreshold, Detector):
    """Subclasses set ``net_factory`` (a function ``(config) -> nn.Module``) and implement ``fuse``."""

    state_version = "3"     # 2: calibration parts' maps (val.*); 3: taken on the feature grid
    modalities: ClassVar[tuple[str, ...]] = ("rgb", "geometry")
    #: the model's weights (their shapes are the model's: checked when it is built, see
    #: :meth:`net_from_tensors`), the feature standardizer, the calibration parts' maps
    state_schema = StateSchema(arrays=(
        ArraySpec(r"net\..+", kinds="fiub", shape=None),
        ArraySpec(r"std\.rgb\.mean", shape=(D_RGB,), required=True),
        ArraySpec(r"std\.rgb\.std", shape=(D_RGB,), required=True),
        ArraySpec(r"std\.geo\.mean", shape=(D_GEO,), required=True),
        ArraySpec(r"std\.geo\.std", shape=(D_GEO,), required=True),
        ArraySpec(r"val\.(?P<m>rgb|geometry)", shape=("n_validation", "gh", "gw"), finite=False),
    ))

    def __init__(self, device: str = "cpu", **params: Any):
        self._net = None
        self._std: dict[str, np.ndarray] = {}
        self._calib: dict[str, float] = {}
        self._val: dict[str, np.ndarray] = {}          # modality -> n x gh x gw maps of calibration parts
        self._cfg = FeatureConfig()
        self._class_index = 0
        super().__init__(device=device, **params)

    # ------------------------------------------------------------------ model
    @classmethod
    def make_net(cls, config: dict[str, Any]):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def net_from_tensors(cls, config: dict[str, Any], tensors: dict[str, np.ndarray], source: Any = None,
                         error: type[InputError] = InputError):
        """The model of ``config`` with the ``net.*`` tensors as its weights.  Tensors that do not
        fit it (missing, unexpected, another shape) or are not finite raise ``error(source, ...)``
        naming the tensor, before torch sees them."""
        import torch
        try:
            net = cls.make_net(dict(config))
        except (TypeError, ValueError, KeyError) as e:
            raise error(source, f"its model configuration does not build the '{cls.id}' model "
                                f"({type(e).__name__}: {e})") from None
        want = net.state_dict()
        got = {k[4:]: np.asarray(v) for k, v in tensors.items() if k.startswith("net.")}
        missing, unexpected = [k for k in want if k not in got], [k for k in got if k not in want]
        if missing or unexpected:
            raise error(source, f"its tensors do not fit the '{cls.id}' model "
                                f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        wrong = [k for k in want if tuple(got[k].shape) != tuple(want[k].shape)]
        if wrong:
            k = wrong[0]
            raise error(source, f"its tensor 'net.{k}' has shape {tuple(got[k].shape)}, the '{cls.id}' model needs "
                                f"{tuple(want[k].shape)}" + (f" ({len(wrong) - 1} more tensors differ)" if len(wrong) > 1 else ""))
        check_finite(got, source, error, "net.")
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in got.items()}, strict=True)
        net.eval()
        return net

    @staticmethod
    def standardizer(tensors: dict[str, np.ndarray], source: Any = None,
                     error: type[InputError] = InputError) -> dict[str, np.ndarray]:
        """The feature standardizer (``std.*``) of a checkpoint or fit: the mean and a positive
        spread per channel of each descriptor, else ``error(source, ...)``."""
        out = {k[4:]: np.asarray(v) for k, v in tensors.items() if k.startswith("std.")}
        for name, d in (("rgb", D_RGB), ("geo", D_GEO)):
            for q in ("mean", "std"):
                v = out.get(f"{name}.{q}")
                if v is None or v.shape != (d,) or v.dtype.kind != "f":
                    raise error(source, f"its tensor 'std.{name}.{q}' is "
                                        f"{'missing' if v is None else f'of shape {v.shape} and type {v.dtype}'} "
                                        f"(the features need {d} float values)")
        check_finite(out, source, error, "std.")
        for name in ("rgb", "geo"):
            if not (out[f"{name}.std"] > 0).all():
                raise error(source, f"its tensor 'std.{name}.std' holds spreads <= 0 (features would be divided by them)")
        return out

    def check_usable(self, feats: GridFeatures, sample: Sample) -> None:
        """Raise InputError when the sample's features cannot be scored by this detector."""

    # ------------------------------------------------------------------ fit
    def build_state(self, support, class_name, progress, cancel):
        ck = load_checkpoint(self["checkpoint"], detector=self.id, features=current_features(), class_name=class_name)
        self.report(progress, 0.05, f"loaded {ck.path.name}")
        classes = ck.classes
        arrays = {k: v for k, v in ck.tensors.items() if k.startswith(("net.", "std."))}
        if not isinstance(ck.meta.get("model"), dict):
            raise CheckpointError(ck.path, "its metadata has no model configuration")
        self._net = self.net_from_tensors(ck.meta["model"], arrays, ck.path, CheckpointError)
        self._std = self.standardizer(arrays, ck.path, CheckpointError)
        self._cfg = FeatureConfig.from_json(ck.meta["features"])
        self._class_index = classes.index(class_name)
        raw: dict[str, list] = {m: [] for m in self.modalities}
        for i, s in enumerate(support):
            self.check_cancel(cancel)
            self.report(progress, 0.1 + 0.85 * i / max(len(support), 1), f"calibrating on support {i + 1}/{len(support)}")
            try:
                d = self._raw_scores(s)[0]
            except InputError:
                continue
            for m, v in d.items():
                raw[m].append(v[np.isfinite(v)])
        calib, source = {}, {}
        trained = (ck.meta.get("calibration") or {}).get(class_name, {})
        for m in self.modalities:
            v = np.concatenate(raw[m]) if raw[m] else np.zeros(0)
            if v.size >= 20:
                calib[m], source[m] = float(max(np.quantile(v, CALIB_Q), 1e-6)), "support"
            elif m in trained:
                calib[m], source[m] = float(trained[m]), "training data"
        self._calib = calib
        meta = {"checkpoint": str(Path(ck.path).resolve()), "checkpoint_sha256": ck.sha256,
                "model": ck.meta["model"], "features": ck.meta["features"], "classes": classes,
                "class_index": self._class_index, "calibration": calib, "calibrated_on": source,
                "trained_epochs": ck.meta.get("epochs"), "training_data_sha256": ck.meta.get("training_data_sha256")}
        return arrays, meta

    # ------------------------------------------------------------------ decision threshold
    def calibration_refs(self, dataset, class_name: str, support=()) -> list:
        """Good parts the model never learned from, to calibrate the decision threshold on: the
        class's ``validation/good`` parts and the training parts the checkpoint held out of
        training (its ``held_out`` keys), minus the support.  Reads only the checkpoint's JSON."""
        from ..checkpoint import FORMAT, CheckpointError, paths_for
        from ..io.json_files import read_json_header
        held: set[str] = set()
        try:
            meta = read_json_header(paths_for(self["checkpoint"])[1], FORMAT, "checkpoint", CheckpointError)
            held = {str(k) for k in meta.get("held_out", [])}
        except CheckpointError:
            pass      # no readable checkpoint: fit() reports it
        taken = {(r.split, r.label, r.id) for r in support if hasattr(r, "split")}
        refs = [r for r in dataset.select([class_name]) if r.is_good
                and (r.split == "validation" or r.key in held) and (r.split, r.label, r.id) not in taken]
        return sorted(refs, key=lambda r: (r.split != "validation", r.id))

    def calibrate(self, components) -> Any:
        """Add the image-level calibration parts (see :meth:`calibration_refs`) as their extracted
        components: their maps (patch-grid resolution) join the fit state as ``val.<modality>``;
        the decision threshold (``threshold`` = 0) is then calibrated on their fused image scores."""
        import dataclasses
        import cv2
        st = self.require_fitted()
        arrays = {k: v for k, v in st.arrays.items() if not k.startswith("val.")}
        grids = [tuple(c.extra.get("patch_grid") or ()) for c in components]
        if components and all(len(g) == 2 for g in grids):
            gh, gw = grids[0]
            for m in self.modalities:
                maps = np.full((len(components), gh, gw), np.nan, np.float32)
                for j, c in enumerate(components):
                    v = (c.extra.get("patch_maps") or {}).get(m)
                    if v is not None and v.shape == (gh, gw):
                        maps[j] = v
                    elif c.maps.get(m) is not None:     # NaN-safe: nearest, not area (NaN would spread)
                        maps[j] = cv2.resize(np.asarray(c.maps[m], np.float32), (gw, gh),
                                             interpolation=cv2.INTER_NEAREST)
                if np.isfinite(maps).any():
                    arrays[f"val.{m}"] = maps
        new = dataclasses.replace(st, arrays=arrays, meta={**st.meta, "n_validation": len(components)})
        self.load_state(new)
        return new

    def calibration_scores(self, params: Optional[dict[str, Any]] = None) -> np.ndarray:
        """Image scores of the calibration parts fused with these fusion parameters."""
        p = dict(self.merged_params(params), threshold=1.0)
        if not self._val:
            return np.zeros(0)
        first = next(iter(self._val.values()))
        n, shape = len(first), first.shape[1:]
        out = []
        for j in range(n):
            maps = {m: v[j] for m, v in self._val.items() if np.isfinite(v[j]).any()}
            if maps:
                comps = Components(maps=maps, shape=tuple(shape), extra={"patch_grid": tuple(shape)})
                s = self.fuse(comps, p).image_score
                if np.isfinite(s):
                    out.append(s)
        return np.asarray(out, np.float64)

    def restore_state(self, state) -> None:
        meta = state.meta
        path = Path(str(meta.get("checkpoint", "")))
        if path.is_file() and file_sha256(path) != meta.get("checkpoint_sha256"):
            raise FitStateError(path, "the checkpoint changed since this fit was made (retrained?): refit")
        self._net = self.net_from_tensors(meta["model"], state.arrays, state.source, FitStateError)
        self._std = self.standardizer(state.arrays, state.source, FitStateError)
        self._cfg = FeatureConfig.from_json(meta["features"])
        self._class_index = int(meta["class_index"])
        self._calib = {k: float(v) for k, v in meta.get("calibration", {}).items()}
        self._val = {k[4:]: np.asarray(v, np.float32) for k, v in state.arrays.items() if k.startswith("val.")}
        self.forget_threshold()

    def on_invalidate(self, stages: set[str]) -> None:
        if STAGE_FIT in stages:
            self._net = None
        self.forget_threshold()

    # ------------------------------------------------------------------ extract
    def _raw_scores(self, sample: Sample) -> tuple[dict[str, np.ndarray], GridFeatures]:
        import torch
        feats = grid_features(sample, self._cfg)
        self.check_usable(feats, sample)
        batch = to_batch(feats, self._std, self._class_index)
        with torch.no_grad():
            d = self._net.discrepancies(batch)
        return {m: v.numpy().astype(np.float32) for m, v in d.items() if bool(torch.isfinite(v).any())}, feats

    def extract(self, sample: Sample, progress: Optional[ProgressFn] = None,
                cancel: Optional[CancelFn] = None) -> Components:
        self.require_fitted()
        self.check_sample(sample)
        t0 = time.perf_counter()
        self.check_cancel(cancel)
        self.report(progress, 0.1, "features on the common grid")
        raw, feats = self._raw_scores(sample)
        self.check_cancel(cancel)
        grid = sample.grid_shape
        comps = Components(shape=grid, valid=sample.valid_mask(),
                           extra={"patch_grid": feats.grid, "text_term": TEXT_OFF})
        if feats.geometry_note:
            comps.extra["geometry_skipped"] = feats.geometry_note
        patch: dict[str, np.ndarray] = {}
        comps.extra["patch_maps"] = patch        # the same maps on the feature grid (threshold calibration)
        for m, v in raw.items():
            scale = self._calib.get(m, 1.0)
            patch[m] = (v / scale).reshape(feats.grid).astype(np.float32)
            comps.maps[m] = upsample_map(v / scale, feats.grid, grid)
            comps.image[m] = component_score(comps.maps[m], 100.0 / max(feats.grid))   # one patch
        comps.seconds = time.perf_counter() - t0
        self.report(progress, 1.0, "done")
        return comps

    # ------------------------------------------------------------------ fuse helpers
    def finish(self, fused: Optional[np.ndarray], comps: Components, p: dict[str, Any], sample_extra: dict) -> DetectorResult:
        """The shared post-processing of a fused map (:func:`core.detectors.postprocess.finish`)
        and the decision threshold."""
        pixel = points = None
        score = float("nan")
        if fused is not None:
            done = postprocess.finish(fused, p["sigma_pct"], p["image_top_fraction"], comps.valid)
            pixel, points, score = done.pixel_map, done.point_scores, done.image_score
        params = dict(p, **sample_extra)
        return DetectorResult(components=comps, pixel_map=pixel, point_scores=points, image_score=float(score),
                              threshold=self.decision_threshold(p), params=params)


def fusion_common() -> tuple[Param, ...]:
    from .base import STAGE_FUSION
    return (
        sigma_param(100 / FeatureConfig().grid[0]),     # one patch of the default feature grid
        Param("threshold", 0.0, "float", min=0.0, max=1000.0, step=0.05, stage=STAGE_FUSION,
              help="decision threshold on the image score; 0 = calibrated on good parts the model never "
                   "learned from (validation/good and the training parts held out of training) for the "
                   "false-alarm rate below; without any, 1 (the 99th percentile of good locations)"),
        *calibration_params(),
        image_top_fraction_param(),
    )
