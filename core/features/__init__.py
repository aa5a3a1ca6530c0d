"""Feature extraction shared by the trained detectors (features on a common grid)."""
from .grid import FEATURE_VERSION, FeatureConfig, GridFeatures, grid_features, upsample_map

__all__ = ["FEATURE_VERSION", "FeatureConfig", "GridFeatures", "grid_features", "upsample_map"]
