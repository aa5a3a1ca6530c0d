"""The two central views of the workbench and their shared colour mapping.

* :class:`~app.views.image_view.ImageView`: RGB image + anomaly heatmap (2D);
* :class:`~app.views.cloud_view.CloudView`: point cloud coloured by RGB / score / ground truth (3D);
* :mod:`~app.views.colormap`: lookup tables and the :class:`~app.views.colormap.ColorBar` both share.
"""
from .cloud_view import CloudView
from .colormap import COLORMAPS, ColorBar, apply_colormap, colorbar_image
from .image_view import ImageView

__all__ = ["CloudView", "ColorBar", "ImageView", "COLORMAPS", "apply_colormap", "colorbar_image"]
