"""The ``memory-bank`` detector's parameters (fit and fusion stages) and modality names."""
from __future__ import annotations

from ..base import STAGE_FIT, STAGE_FUSION, Param
from ..calibrated import calibration_params
from ..postprocess import image_top_fraction_param, rgb_weight_param, sigma_param

RGB, GEOMETRY = "rgb", "geometry"
TEXTURE, OBJECT = "texture", "object"


PARAMS: tuple[Param, ...] = (
    # ---- fit
    Param("coreset_ratio", 0.25, "float", min=0.01, max=1.0, step=0.05, stage=STAGE_FIT,
          help="fraction of the support descriptors kept in each memory bank (greedy k-center)"),
    Param("coreset_max", 4000, "int", min=100, max=500000, step=1000, stage=STAGE_FIT,
          help="upper bound on the size of each memory bank"),
    Param("working_size", 256, "int", min=64, max=1024, step=32, stage=STAGE_FIT,
          help="RGB working resolution in pixels (the bank's descriptors depend on it, so it is "
               "a fit-stage parameter)"),
    Param("patch_stride", 4, "int", min=2, max=16, stage=STAGE_FIT,
          help="RGB patch grid step in working pixels"),
    Param("target_points", 4000, "int", min=1000, max=200000, step=1000, stage=STAGE_FIT,
          help="typical number of working 3D points per sample; sets the voxel size from the "
               "support clouds' point spacing"),
    Param("normal_radius_factor", 5.0, "float", min=1.5, max=20.0, step=0.5, stage=STAGE_FIT,
          help="normal estimation radius, in working voxel sizes"),
    Param("fpfh_radius_factor", 12.0, "float", min=3.0, max=40.0, step=1.0, stage=STAGE_FIT,
          help="FPFH radius, in working voxel sizes"),
    Param("remove_background", True, "bool", stage=STAGE_FIT,
          help="remove the background plane of organized clouds (RANSAC on the border strips)"),
    Param("boundary_aware", True, "bool", stage=STAGE_FIT,
          help="normalize 3D scores separately for points near a data boundary (object outline, "
               "missing points), whose descriptors vary more between good parts"),
    Param("noise_augment", 1.5, "float", min=0.0, max=5.0, step=0.25, stage=STAGE_FIT,
          help="add to the 3D bank a copy of each organized support cloud with extra depth noise "
               "of this many times its own measured noise (0: off), so good parts scanned with "
               "more noise stay nominal"),
    Param("image_calibration", True, "bool", stage=STAGE_FIT,
          help="divide each modality's map by the typical maximum of a good sample's map "
               "(leave-one-out on the support), so image scores of both modalities are balanced"),
    Param("plane_context", False, "bool", stage=STAGE_FIT,
          help="describe the object's outline together with the background it stands on "
               "(only the object is scored)"),
    Param("rgb_mode", "auto", "choice", choices=("auto", TEXTURE, OBJECT), stage=STAGE_FIT,
          help="RGB matching: 'texture' (any position matches any position; orientations "
               "relative to the image's dominant one; the bank also holds the flipped and "
               "second-orientation copies of the support), 'object' (a patch matches only "
               "bank patches near the same position), or 'auto' (texture when the support's "
               "patch statistics do not depend on position)"),
    Param("position_radius", 0.12, "float", min=0.01, max=1.0, step=0.01, stage=STAGE_FIT,
          help="object mode: how far (fraction of the image side) a bank patch may lie from the "
               "test patch's position"),
    Param("rgb_whiten", True, "bool", stage=STAGE_FIT,
          help="PCA-whiten the RGB descriptors on the support patches (regularised Mahalanobis "
               "distance)"),
    Param("seed", 0, "int", min=0, max=2**31 - 1, stage=STAGE_FIT, help="coreset / RANSAC seed"),
    # ---- fusion
    rgb_weight_param("rgb_weight * RGB + (1 - rgb_weight) * 3D, renormalised where one modality is "
                     "undefined"),
    Param("max_weight", 0.5, "float", min=0.0, max=1.0, step=0.05, stage=STAGE_FUSION,
          help="weight of the 'either modality' term where both are defined: "
               "(1 - max_weight) * weighted mean + max_weight * weighted maximum of the modality maps "
               "(0: the mean; 1: the maximum, so a defect seen in one modality only is not diluted)"),
    Param("agreement_weight", 0.0, "float", min=0.0, max=1.0, step=0.05, stage=STAGE_FUSION,
          help="weight of the agreement term where both are defined, applied after max_weight: "
               "(1 - agreement_weight) * map + agreement_weight * max(RGB, 0)^w * max(3D, 0)^(1 - w) "
               "(w = rgb_weight: the weighted geometric mean of both modalities)"),
    sigma_param(100 * 4.0 / 256),       # 4 working pixels at the default working_size
    Param("threshold", 0.0, "float", min=0.0, max=1000.0, step=0.1, stage=STAGE_FUSION,
          help="decision threshold on the image score; 0 = calibrated on the support's good "
               "parts (leave-one-out image scores) for the false alarm rate below"),
    *calibration_params(),
    image_top_fraction_param(),
)
