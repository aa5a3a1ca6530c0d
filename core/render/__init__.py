"""Point cloud -> views (numpy z-buffer, no GL) and view maps -> point scores."""
from .backproject import BackProjection, backproject
from .views import (MVTEC_VIEWS, Views, ViewStrip, auto_radius, render_views, rotation, shade, view_label,
                    view_rotations, zbuffer)

__all__ = ["render_views", "backproject", "BackProjection", "Views", "MVTEC_VIEWS", "view_rotations", "rotation", "zbuffer",
           "shade", "auto_radius", "ViewStrip", "view_label"]
