"""Hand-crafted, weight-free feature extraction shared by the detectors.

* :mod:`.rgb`: colour + differential-texture patch descriptors of an image;
* :mod:`.geometry`: FPFH + local-shape descriptors of a point cloud;
* :mod:`.grid`: both on one common patch grid with a validity mask (the trained detectors).
"""
from .grid import FEATURE_VERSION, FeatureConfig, GridFeatures, grid_features, upsample_map

__all__ = ["FEATURE_VERSION", "FeatureConfig", "GridFeatures", "grid_features", "upsample_map"]
