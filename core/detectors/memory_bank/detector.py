"""The ``memory-bank`` detector: training-free, weight-free few-shot RGB + 3D anomaly detection.

In the spirit of *Back to the Feature* (Horwitz & Hoshen, 2022) but with hand-crafted descriptors
only (no pretrained network):

* **RGB**: oriented-gradient (HOG-like) and Hessian descriptors of the locally contrast-normalised
  lightness plus Lab colour, on a patch grid (:mod:`core.features.rgb`), PCA-whitened on the support
  patches (:class:`.coreset.Whitener`).  Two matching modes, chosen from the support's
  stationarity (:func:`core.features.rgb.stationarity`) unless ``rgb_mode`` says: **texture** (any
  position matches any position; orientations relative to the image's dominant one; the bank also
  holds the second-orientation and mirrored copies of the support) and **object** (a patch matches
  only bank patches within ``position_radius`` of its position);
* **geometry**: FPFH + two-scale local shape descriptors on a voxel-downsampled copy of the object
  points, the background plane removed (:mod:`core.features.geometry`, :mod:`core.preprocess`);
* one **memory bank** per modality from the K good support samples, reduced by a greedy k-center
  coreset; a test descriptor's anomaly score is its distance to the nearest bank entry.  The 3D
  bank also holds a copy of each support cloud with extra depth noise (``noise_augment`` times its
  own measured noise) so that good parts scanned with more noise stay nominal;
* **nominal normalization**: every support descriptor is scored against the bank entries of the
  *other* support samples (leave-one-out; one shot: its own sample minus its neighbourhood), and
  each modality is mapped as :func:`core.fusion.nominal_normalize` does: 0 is the median and 1 the
  99th percentile of those good scores.  The modalities are then on a common, meaningful scale and
  the fusion weights mean what they say.  3D points near a data boundary (object outline, missing
  points) are normalized on the nominal scores of such points (``boundary_aware``);
* **decision threshold** (:mod:`.calibration`): component maps of good parts are kept
  (patch-grid resolution) and fused with the current fusion parameters: of good parts the bank
  never saw when the caller gives them (:meth:`MemoryBankDetector.calibrate`; the session passes
  ``validation/good`` and the ``train/good`` parts the support left out), else the support's
  leave-one-out maps (optimistic).  The threshold
  (``threshold`` = 0, the default) is the upper ``calibration_confidence`` limit of those scores'
  ``1 - false_alarm_rate`` quantile; ``threshold`` > 0 sets it by hand;
* **fusion** (pure, milliseconds): weighted mean, interpolated towards the weighted maximum
  (``max_weight``: a defect seen by one modality only is not diluted by the other), optional
  agreement (product) term (``agreement_weight``), then the post-processing every detector shares
  (:mod:`core.detectors.postprocess`: NaN-aware Gaussian smoothing, image score from the top of
  the map, per-point scores).

Every physical length is a multiple of the working voxel size, which is derived at fit time from
the support clouds' own point spacing: nothing depends on the unit of the coordinates.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Optional, Sequence

import cv2
import numpy as np
from scipy.spatial import cKDTree

from ...errors import InputError
from ...preprocess import point_spacing, remove_background_plane, voxel_downsample
from ...sample import Sample
from ..state import FitState, FitStateError
from ..base import (STAGE_FIT, CancelFn, Components, Detector, DetectorResult, Needs,
                    ProgressFn)
from ..schema import ArraySpec, StateSchema
from ..calibrated import CalibratedThreshold
from ..postprocess import component_score
from .fuse import fuse_components
from .params import GEOMETRY, OBJECT, PARAMS, RGB, TEXTURE
from .coreset import GroupScaler, Whitener, nn_distance
from ...features.geometry import geometry_descriptors
from .bank import Bank, WorkingCloud, build_bank, completeness_strata, depth_noise, neighbour_counts, smooth_points
from ...features.rgb import border_margin, channel_floors, dominant_angles, patch_grid, rgb_descriptors, stationarity

#: a support set whose patch statistics depend on position less than this is matched as a
#: texture.  Measured: MVTec AD grid 0.01, hazelnut toy 0.16, demo parts 0.12; the position-free
#: texture mode scored as well or better on all of them (demo bracket RGB I-AUROC 0.99 vs 0.76 in
#: object mode, whose positional prior does not yet follow a part's in-plane pose), so object
#: mode is chosen only for strongly position-dependent supports
STATIONARITY_TEXTURE = 0.25
#: smoothing (working pixels, about one patch step) of the per-component image scores
COMPONENT_SIGMA = 4.0


# ============================================================================== the detector
class MemoryBankDetector(CalibratedThreshold, Detector):
    id = "memory-bank"
    name = "Memory bank (hand-crafted features)"
    description = ("Training-free, weight-free few-shot detector: colour/texture patch descriptors "
                   "and FPFH + local-shape point descriptors matched against a coreset memory bank of "
                   "the good support samples (Back-to-the-Feature style), with each modality "
                   "normalized on its leave-one-out nominal scores so the fusion weights are balanced.")
    needs = Needs(rgb="optional", points="optional", support=1, default_support=5)
    state_version = "2"     # 2: RGB texture/object modes, whitening, calibration maps
    params = PARAMS
    #: per modality ``m`` (the meta's ``modalities``): the scaled coreset (B x K), the scaler
    #: (D channels; a whitener's projection D x K), the nominal scores and their strata; the
    #: calibration maps on the patch grid hold NaN where a part lacks the modality
    state_schema = StateSchema(arrays=(
        ArraySpec(r"(?P<m>rgb|geometry)\.features", shape=("B{m}", "K{m}"), required=True),
        ArraySpec(r"(?P<m>rgb|geometry)\.mean", shape=("D{m}",), required=True),
        ArraySpec(r"(?P<m>rgb|geometry)\.scale", shape=("D{m}",), required=True),
        ArraySpec(r"(?P<m>rgb|geometry)\.centre", shape=("D{m}",)),
        ArraySpec(r"(?P<m>rgb|geometry)\.proj", shape=("D{m}", "K{m}")),
        ArraySpec(r"(?P<m>rgb|geometry)\.positions", shape=("B{m}", 2)),
        ArraySpec(r"(?P<m>rgb|geometry)\.nominal", shape=("N{m}",), required=True),
        ArraySpec(r"(?P<m>rgb|geometry)\.strata", kinds="iu", shape=("N{m}",)),
        ArraySpec(r"calib\.(?P<c>rgb|geometry)", shape=("n_support", "gh", "gw"), finite=False),
        ArraySpec(r"val\.(?P<c>rgb|geometry)", shape=("n_validation", "gh", "gw"), finite=False),
    ), members={"m": "modalities"})

    def __init__(self, device: str = "cpu", **params: Any):
        self._banks: dict[str, Bank] = {}
        self._voxel: Optional[float] = None
        self._n_ref: float = 1.0          # neighbour count of a full 3D neighbourhood (support)
        self._orient: str = "auto"
        self._rgb_mode: str = OBJECT
        self._calib: dict[str, np.ndarray] = {}     # modality -> n x gh x gw leave-one-out maps
        self._val: dict[str, np.ndarray] = {}       # modality -> m x gh x gw maps of validation parts
        super().__init__(device=device, **params)

    def on_invalidate(self, stages: set[str]) -> None:
        if STAGE_FIT in stages:
            self._banks = {}
            self._voxel = None
            self._calib = {}
            self._val = {}
            self.forget_threshold()

    # ------------------------------------------------------------------ geometry helpers
    @staticmethod
    def _split_cloud(sample: Sample, remove_background: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(every valid point, the indices of the object points among them)."""
        pts = sample.valid_points().astype(np.float64)
        if sample.organized and remove_background:
            try:
                _, plane, obj = remove_background_plane(sample.points, seed=seed)
            except ValueError as e:
                raise InputError(sample.paths.get("points"), f"cannot prepare the point cloud: {e}") from None
            if plane is not None:
                return pts, np.flatnonzero(obj.ravel()[sample.valid_index()])
        return pts, np.arange(len(pts))

    def _working_cloud(self, pts: np.ndarray, obj_idx: np.ndarray, n_valid: int) -> WorkingCloud:
        """Voxel-downsample the object points; with ``plane_context`` add the background voxels
        within the FPFH radius of the object, so that descriptors at the object's outline see the
        surface it stands on (as in the scan) instead of a truncated neighbourhood."""
        work, owner = voxel_downsample(pts[obj_idx], self._voxel)
        n_obj = len(work)
        if self["plane_context"] and len(obj_idx) < len(pts):
            bg = np.ones(len(pts), bool)
            bg[obj_idx] = False
            work_bg, _ = voxel_downsample(pts[bg], self._voxel)
            r = self["fpfh_radius_factor"] * self._voxel
            d, _ = cKDTree(work).query(work_bg, distance_upper_bound=r)
            work = np.vstack([work, work_bg[np.isfinite(d)]])
        return WorkingCloud(work=work, n_object=n_obj, owner=owner, object_index=obj_idx, n_valid=n_valid)

    def _prepare_cloud(self, sample: Sample) -> WorkingCloud:
        pts, idx = self._split_cloud(sample, self["remove_background"], self["seed"])
        if len(idx) < 5:
            raise InputError(sample.paths.get("points"), "the point cloud has too few object points "
                                                         f"({len(idx)}) to describe")
        return self._working_cloud(pts, idx, sample.n_points)

    def _describe_cloud(self, cloud: WorkingCloud) -> np.ndarray:
        """Descriptors of the object voxels of a working cloud."""
        d, _ = geometry_descriptors(cloud.work, self._voxel, self["normal_radius_factor"],
                                    self["fpfh_radius_factor"], orient=self._orient)
        return d[:cloud.n_object]

    def _describe_rgb(self, rgb: np.ndarray, angle: Optional[float] = None,
                      flip: bool = False) -> tuple[np.ndarray, tuple[int, int], np.ndarray]:
        """Descriptors of an image; texture mode measures orientations from the image's dominant
        one (``angle`` None: measured)."""
        if angle is None:
            angle = dominant_angles(rgb, self["working_size"], 1)[0] if self._rgb_mode == TEXTURE else 0.0
        return rgb_descriptors(rgb, size=self["working_size"], stride=self["patch_stride"], angle=angle, flip=flip,
                               margin=self._rgb_mode == TEXTURE)

    def _position_radius(self) -> Optional[float]:
        """Object mode: the positional prior's radius in patch-grid units (None: texture mode)."""
        if self._rgb_mode != OBJECT:
            return None
        gh, gw = patch_grid(self["working_size"], self["patch_stride"])
        return float(self["position_radius"]) * max(gh, gw)

    def _choose_rgb_mode(self, plain: list[np.ndarray], grid: tuple[int, int]) -> tuple[str, float]:
        border = -(-border_margin(self["working_size"], self["patch_stride"]) // self["patch_stride"])
        st = stationarity(plain, grid, border=border)
        mode = self["rgb_mode"]
        if mode == "auto":
            mode = TEXTURE if st < STATIONARITY_TEXTURE else OBJECT
        return mode, st

    @staticmethod
    def _orientation_for(samples: Sequence[Sample]) -> str:
        """Normal orientation for a support set: view-dependent for organized scans (see
        :func:`core.preprocess.estimate_normals`), away from the centroid for free clouds."""
        return "auto" if all(s.organized for s in samples) else "outward"

    # ------------------------------------------------------------------ fit
    def build_state(self, support: list[Sample], class_name: str, progress: Optional[ProgressFn],
                    cancel: Optional[CancelFn]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        n = len(support)
        rgb_support = [s for s in support if s.has_rgb]
        geo_support = [s for s in support if s.has_points]
        banks: dict[str, Bank] = {}
        geo_calib: dict[int, np.ndarray] = {}

        # ---- geometry: working voxel from the support clouds' own spacing
        if geo_support:
            self._orient = self._orientation_for(geo_support)
            splits = []
            for i, s in enumerate(geo_support):
                self.check_cancel(cancel)
                self.report(progress, 0.05 + 0.15 * i / n, f"preparing point cloud {i + 1}/{len(geo_support)}")
                pts, idx = self._split_cloud(s, self["remove_background"], self["seed"])
                if len(idx) >= 5:
                    splits.append((pts, idx, s, depth_noise(s, idx)))
            if splits:
                voxels = []
                for pts, idx, _, _ in splits:
                    sp = point_spacing(pts[idx], seed=self["seed"])
                    voxels.append(sp * max(1.0, math.sqrt(len(idx) / self["target_points"])))
                self._voxel = float(np.median(voxels))
                descs, pos, sid, counts = [], [], [], []
                r_n = self["normal_radius_factor"] * self._voxel
                extra, extra_sid, extra_pos, clouds = [], [], [], []
                rng = np.random.default_rng(self["seed"])
                for i, (pts, idx, smp, noise) in enumerate(splits):
                    nv = smp.n_points
                    self.check_cancel(cancel)
                    self.report(progress, 0.2 + 0.35 * i / len(splits), f"3D descriptors {i + 1}/{len(splits)}")
                    cloud = self._working_cloud(pts, idx, nv)
                    clouds.append(cloud)
                    d, groups = geometry_descriptors(cloud.work, self._voxel, self["normal_radius_factor"],
                                                     self["fpfh_radius_factor"], orient=self._orient)
                    obj = cloud.work[:cloud.n_object]
                    descs.append(d[:cloud.n_object])
                    pos.append(obj)
                    sid.append(np.full(cloud.n_object, i))
                    counts.append(neighbour_counts(obj, r_n))
                    if self["noise_augment"] > 0 and np.isfinite(noise) and noise > 0:
                        noisy = pts.copy()
                        noisy[idx, 2] += rng.normal(0.0, self["noise_augment"] * noise, len(idx))
                        c2 = self._working_cloud(noisy, idx, nv)
                        d2, _ = geometry_descriptors(c2.work, self._voxel, self["normal_radius_factor"],
                                                     self["fpfh_radius_factor"], orient=self._orient)
                        extra.append(d2[:c2.n_object])
                        extra_sid.append(np.full(c2.n_object, i))
                        extra_pos.append(c2.work[:c2.n_object])
                strata = None
                if self["boundary_aware"]:
                    # a full neighbourhood: the typical count of the support clouds' points
                    self._n_ref = float(np.median(np.concatenate(counts)))
                    strata = [completeness_strata(c, self._n_ref) for c in counts]
                self.check_cancel(cancel)
                self.report(progress, 0.55, "3D memory bank")
                banks[GEOMETRY] = self._build_bank(descs, groups, pos, sid, cancel=cancel,
                                                   exclusion=self["fpfh_radius_factor"] * self._voxel,
                                                   smooth=True, strata=strata,
                                                   extra=(extra, extra_sid, extra_pos) if extra else None)
                if self["image_calibration"]:
                    bank = banks[GEOMETRY]
                    scores = []
                    for (_, _, smp, _), cloud, loo, st in zip(splits, clouds, bank.extra["loo"],
                                                               strata or [None] * len(clouds)):
                        m, pp = self._geometry_output(bank.normalize(loo, st), cloud, smp, smp.grid_shape)
                        scores.append(self._component_image_score(m, pp))
                    bank.image_scale = max(1.0, float(np.median(scores)))
                bank = banks[GEOMETRY]
                for (_, _, smp, _), cloud, loo, st in zip(splits, clouds, bank.extra["loo"],
                                                           strata or [None] * len(clouds)):
                    m, _ = self._geometry_output(bank.normalize(loo, st), cloud, smp, smp.grid_shape)
                    if m is not None:
                        geo_calib[id(smp)] = m

        # ---- RGB
        rgb_meta: dict[str, Any] = {}
        if rgb_support:
            plain = []
            for i, s in enumerate(rgb_support):
                self.check_cancel(cancel)
                self.report(progress, 0.6 + 0.1 * i / n, f"RGB descriptors {i + 1}/{len(rgb_support)}")
                d, grid, groups = rgb_descriptors(s.rgb, size=self["working_size"], stride=self["patch_stride"],
                                                  margin=False)
                plain.append(d)
            self._rgb_mode, st = self._choose_rgb_mode(plain, grid)
            rgb_meta = {"rgb_mode": self._rgb_mode, "stationarity": st}
            gy, gx = np.divmod(np.arange(len(plain[0])), grid[1])
            p0 = np.stack([gy, gx], 1).astype(np.float64)
            descs, pos, sid = plain, [p0] * len(plain), [np.full(len(d), i) for i, d in enumerate(plain)]
            extra = None
            if self._rgb_mode == TEXTURE:
                # orientations relative to the dominant one; the bank also holds the copies
                # relative to the second orientation and the mirror images (pose augmentation)
                descs, ex_d, ex_s, ex_p = [], [], [], []
                for i, s in enumerate(rgb_support):
                    self.check_cancel(cancel)
                    self.report(progress, 0.7 + 0.1 * i / n, f"RGB texture copies {i + 1}/{len(rgb_support)}")
                    a = dominant_angles(s.rgb, self["working_size"], 2)
                    fa = dominant_angles(np.ascontiguousarray(s.rgb[:, ::-1]), self["working_size"], 2)
                    descs.append(self._describe_rgb(s.rgb, a[0])[0])
                    copies = [dict(angle=ang) for ang in a[1:]] + [dict(angle=ang, flip=True) for ang in fa]
                    for kw in copies:
                        d, g, _ = self._describe_rgb(s.rgb, **kw)
                        gy_, gx_ = np.divmod(np.arange(len(d)), g[1])
                        ex_d.append(d)
                        ex_s.append(np.full(len(d), i))
                        ex_p.append(np.stack([gy_, gx_], 1).astype(np.float64))
                extra = (ex_d, ex_s, ex_p)
            self.check_cancel(cancel)
            self.report(progress, 0.85, "RGB memory bank")
            # patches whose largest pooling windows overlap share pixels: exclude them (1-shot LOO)
            bank = banks[RGB] = self._build_bank(descs, groups, pos, sid, cancel=cancel, exclusion=4.0, smooth=False,
                                                 extra=extra, whiten=self["rgb_whiten"],
                                                 radius=self._position_radius(),
                                                 min_std=channel_floors(groups))
            bank.extra["grid"] = grid
            if self["image_calibration"]:
                scores = []
                for smp, loo in zip(rgb_support, bank.extra["loo"]):
                    m = self._rgb_output(bank.normalize(loo), grid, smp.grid_shape)
                    scores.append(self._component_image_score(m, None))
                bank.image_scale = max(1.0, float(np.median(scores)))

        if not banks:
            raise InputError(None, "the support samples have neither an RGB image nor a usable point cloud")
        self._banks = banks
        arrays, meta = self._pack(banks)
        meta.update(rgb_meta)
        arrays.update(self._calibration_maps(support, banks, geo_calib))
        return arrays, meta

    def _calibration_maps(self, support: list[Sample], banks: dict[str, Bank],
                          geo_calib: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
        """Leave-one-out component maps of every support sample on the patch grid
        (``calib.<modality>``: n x gh x gw, NaN where a sample lacks the modality): fusing them
        with the current fusion parameters gives good-part image scores to calibrate the
        threshold on (:meth:`calibrated_threshold`)."""
        gh, gw = patch_grid(self["working_size"], self["patch_stride"])
        out: dict[str, np.ndarray] = {}
        if RGB in banks:
            bank = banks[RGB]
            rgb_support = [s for s in support if s.has_rgb]
            maps = np.full((len(support), gh, gw), np.nan, np.float32)
            by_id = {id(s): loo for s, loo in zip(rgb_support, bank.extra.get("loo", []))}
            for j, s in enumerate(support):
                if id(s) in by_id:
                    small = bank.normalize(by_id[id(s)]).reshape(bank.extra["grid"])
                    maps[j] = cv2.resize(small, (gw, gh), interpolation=cv2.INTER_LINEAR)
            out[f"calib.{RGB}"] = maps
        if geo_calib:
            maps = np.full((len(support), gh, gw), np.nan, np.float32)
            for j, s in enumerate(support):
                if id(s) in geo_calib:
                    maps[j] = cv2.resize(geo_calib[id(s)], (gw, gh), interpolation=cv2.INTER_NEAREST)
            out[f"calib.{GEOMETRY}"] = maps
        return out

    def calibrate(self, components: Sequence[Components]) -> FitState:
        """Add good parts the bank never saw (e.g. ``validation/good``), as their extracted
        components: their maps join the fit state (``val.<modality>``, patch-grid resolution) and
        replace the support's leave-one-out maps in threshold calibration.  Returns the new state
        (same :attr:`FitState.key`: the caller's support hash must already cover these parts)."""
        st = self.require_fitted()
        gh, gw = patch_grid(self["working_size"], self["patch_stride"])
        arrays = {k: v for k, v in st.arrays.items() if not k.startswith("val.")}
        for k in (RGB, GEOMETRY):
            maps = np.full((len(components), gh, gw), np.nan, np.float32)
            for j, c in enumerate(components):
                m = c.maps.get(k)
                if m is not None:
                    interp = cv2.INTER_AREA if k == RGB else cv2.INTER_NEAREST
                    maps[j] = cv2.resize(np.asarray(m, np.float32), (gw, gh), interpolation=interp)
            if np.isfinite(maps).any():
                arrays[f"val.{k}"] = maps
        new = dataclasses.replace(st, arrays=arrays, meta={**st.meta, "n_validation": len(components)})
        self.load_state(new)
        return new

    def calibration_scores(self, params: Optional[dict[str, Any]] = None) -> np.ndarray:
        """Good-part image scores fused with these fusion parameters: of the validation parts
        (:meth:`calibrate`) when the fit has any, else the support's leave-one-out ones."""
        p = self.merged_params(params)
        src = self._val or self._calib
        if not src:
            return np.zeros(0)
        n = len(next(iter(src.values())))
        shape = next(iter(src.values())).shape[1:]
        scores = []
        for j in range(n):
            maps = {k: v[j] for k, v in src.items() if np.isfinite(v[j]).any()}
            if not maps:
                continue
            comps = Components(maps=maps, shape=tuple(shape))
            scores.append(fuse_components(comps, p)[2])
        return np.asarray(scores, np.float64)

    # ------------------------------------------------------------------ state <-> arrays
    def _pack(self, banks: dict[str, Bank]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {"voxel": self._voxel, "n_ref": self._n_ref, "orient": self._orient,
                                "modalities": sorted(banks)}
        for k, b in banks.items():
            arrays[f"{k}.mean"] = b.scaler.mean
            arrays[f"{k}.scale"] = b.scaler.scale
            if isinstance(b.scaler, Whitener):
                arrays[f"{k}.centre"] = b.scaler.centre
                arrays[f"{k}.proj"] = b.scaler.proj
            if b.positions is not None:
                arrays[f"{k}.positions"] = np.asarray(b.positions, np.float32)
            arrays[f"{k}.features"] = b.features
            arrays[f"{k}.nominal"] = b.nominal
            if b.strata is not None:
                arrays[f"{k}.strata"] = b.strata
            meta[k] = {"n_full": b.n_full, "image_scale": b.image_scale, "radius": b.radius,
                       "grid": list(b.extra["grid"]) if "grid" in b.extra else None}
        return arrays, meta

    def state_sizes(self, state) -> dict[str, int]:
        gh, gw = patch_grid(self["working_size"], self["patch_stride"])
        return {"gh": gh, "gw": gw, "n_support": int(state.n_support)}

    def check_state(self, state) -> None:
        super().check_state(state)
        for k in state.meta.get("modalities", []):
            feats, mean = state.arrays[f"{k}.features"], state.arrays[f"{k}.mean"]
            if f"{k}.proj" not in state.arrays and feats.shape[1] != mean.shape[0]:
                raise FitStateError(state.source, f"the saved fit of '{self.id}' does not match its declared "
                                                  f"structure: array '{k}.features' has {feats.shape[1]} channels, "
                                                  f"its scaler '{k}.mean' {mean.shape[0]}")

    def restore_state(self, state) -> None:
        a, meta = state.arrays, state.meta
        banks: dict[str, Bank] = {}
        for k in meta.get("modalities", []):
            m = meta[k]
            if f"{k}.proj" in a:
                scaler = Whitener(a[f"{k}.mean"], a[f"{k}.scale"], a[f"{k}.centre"], a[f"{k}.proj"])
            else:
                scaler = GroupScaler(a[f"{k}.mean"], a[f"{k}.scale"])
            b = Bank(scaler=scaler, features=a[f"{k}.features"],
                      nominal=a[f"{k}.nominal"], strata=a.get(f"{k}.strata"), n_full=int(m["n_full"]),
                      positions=a.get(f"{k}.positions"),
                      radius=None if m.get("radius") is None else float(m["radius"]))
            b.image_scale = float(m["image_scale"])
            if m.get("grid") is not None:
                b.extra["grid"] = tuple(int(v) for v in m["grid"])
            banks[k] = b
        self._voxel = None if meta.get("voxel") is None else float(meta["voxel"])
        self._n_ref = float(meta.get("n_ref", 1.0))
        self._orient = str(meta.get("orient", "auto"))
        self._rgb_mode = str(meta.get("rgb_mode", OBJECT))
        self._calib = {k: np.asarray(a[f"calib.{k}"], np.float32) for k in (RGB, GEOMETRY) if f"calib.{k}" in a}
        self._val = {k: np.asarray(a[f"val.{k}"], np.float32) for k in (RGB, GEOMETRY) if f"val.{k}" in a}
        self.forget_threshold()
        self._banks = banks

    def _build_bank(self, *args: Any, cancel: Optional[CancelFn] = None, **kw: Any) -> Bank:
        return build_bank(*args, coreset_ratio=self["coreset_ratio"], coreset_max=self["coreset_max"],
                          seed=self["seed"], check=lambda: self.check_cancel(cancel), **kw)

    # ------------------------------------------------------------------ extract
    def extract(self, sample: Sample, progress: Optional[ProgressFn] = None,
                cancel: Optional[CancelFn] = None) -> Components:
        self.require_fitted()
        self.check_sample(sample)
        t0 = time.perf_counter()
        comps = Components(shape=sample.grid_shape, valid=sample.valid_mask())
        src = sample.paths.get("rgb") or sample.paths.get("points") or sample.key
        use_rgb = sample.has_rgb and RGB in self._banks
        use_geo = sample.has_points and GEOMETRY in self._banks and sample.n_points >= 5
        if not use_rgb and not use_geo:
            have = [m for m in (RGB, GEOMETRY) if m in self._banks]
            raise InputError(src, f"this sample shares no modality with the support set "
                                  f"(the memory bank has: {', '.join(have)})")
        grid = sample.grid_shape

        if use_rgb:
            self.check_cancel(cancel)
            self.report(progress, 0.05, "RGB descriptors")
            bank = self._banks[RGB]
            d, g, _ = self._describe_rgb(sample.rgb)
            self.check_cancel(cancel)
            self.report(progress, 0.25, "RGB nearest neighbours")
            gy, gx = np.divmod(np.arange(len(d)), g[1])
            dist = bank.distances(bank.scaler(d), np.stack([gy, gx], 1).astype(np.float64))
            comps.maps[RGB] = self._rgb_output(bank.normalize(dist), g, grid)

        if use_geo:
            self.check_cancel(cancel)
            self.report(progress, 0.35, "3D preprocessing")
            bank = self._banks[GEOMETRY]
            try:
                cloud = self._prepare_cloud(sample)
            except InputError as e:
                if not use_rgb:
                    raise
                # e.g. nothing stands on the background plane: RGB alone decides
                comps.extra["geometry_skipped"] = e.problem
                use_geo = False
        if use_geo:
            self.check_cancel(cancel)
            self.report(progress, 0.5, "3D descriptors (FPFH)")
            d = self._describe_cloud(cloud)
            self.check_cancel(cancel)
            self.report(progress, 0.8, "3D nearest neighbours")
            obj = cloud.work[:cloud.n_object]
            dist = smooth_points(obj, nn_distance(bank.scaler(d), bank.features))
            strata = None
            if bank.strata is not None:
                strata = completeness_strata(
                    neighbour_counts(obj, self["normal_radius_factor"] * self._voxel), self._n_ref)
            work_scores = bank.normalize(dist, strata)
            m, per_point = self._geometry_output(work_scores, cloud, sample, grid)
            if m is not None:
                comps.maps[GEOMETRY] = m
            else:
                comps.point_maps[GEOMETRY] = per_point

        # per-component image scores: max of the map smoothed by COMPONENT_SIGMA working pixels
        for k, m in comps.maps.items():
            comps.image[k] = self._component_image_score(m, None)
        for k, v in comps.point_maps.items():
            comps.image[k] = self._component_image_score(None, v)
        comps.seconds = time.perf_counter() - t0
        self.report(progress, 1.0, "done")
        return comps

    # ------------------------------------------------------------------ component outputs
    @staticmethod
    def _rgb_output(patch_scores: np.ndarray, patch_grid: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
        """Normalized patch scores -> H x W map on the sample's grid (bilinear)."""
        small = np.asarray(patch_scores, np.float32).reshape(patch_grid)
        return cv2.resize(small, (grid[1], grid[0]), interpolation=cv2.INTER_LINEAR)

    @staticmethod
    def _geometry_output(work_scores: np.ndarray, cloud: WorkingCloud, sample: Sample,
                         grid: Optional[tuple[int, int]]) -> tuple[Optional[np.ndarray], np.ndarray]:
        """Normalized working-point scores -> (H x W map or None, per-point scores).

        Every object point takes its voxel's score; background-plane points are nominal (0);
        pixels without a point are NaN.  Unorganized clouds have no map.
        """
        per_point = np.zeros(cloud.n_valid, np.float32)
        per_point[cloud.object_index] = np.asarray(work_scores, np.float32)[cloud.owner]
        if not sample.organized:
            return None, per_point
        h, w = sample.points.shape[:2]
        m = np.full(h * w, np.nan, np.float32)
        m[sample.valid_index()] = per_point
        m = m.reshape(h, w)
        if grid is not None and (h, w) != tuple(grid):
            m = cv2.resize(m, (grid[1], grid[0]), interpolation=cv2.INTER_NEAREST)
        return m, per_point

    def _component_image_score(self, m: Optional[np.ndarray], per_point: Optional[np.ndarray]) -> float:
        """A component's image score: the max of its map smoothed by ``COMPONENT_SIGMA`` working
        pixels (per-point scores: their max).  A fixed blur, not ``sigma_pct``: the fit's image
        calibration uses these scores and must not depend on a fusion parameter."""
        if m is not None:
            return component_score(m, 100.0 * COMPONENT_SIGMA / float(self["working_size"]))
        v = np.asarray(per_point)
        return float(np.max(v)) if v.size else float("nan")

    # ------------------------------------------------------------------ fuse
    def fuse(self, components: Components, params: Optional[dict[str, Any]] = None) -> DetectorResult:
        p = self.merged_params(params)
        pixel_map, point_scores, score, modalities = fuse_components(components, p)
        return DetectorResult(components=components, pixel_map=pixel_map, point_scores=point_scores,
                              image_score=float(score), threshold=self.decision_threshold(p), params=p,
                              modalities=modalities)
