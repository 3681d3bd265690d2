"""glimpse: the one shared, vectorized crop/sampling core for hard and soft visual attention.

Coordinates everywhere are ``(x, y)`` normalized to ``[-1, 1]`` where -1 and +1 are the outer edges of
the image (``align_corners=False``); images are ``(B, C, H, W)``.
"""

from glimpse.retina import GlimpseSensor, centers_from_corners_px, extract_glimpses, grid_cell_centers, window_corners_px
from glimpse.samplers import ALIGN_CORNERS, affine_sample, box_theta, boxcar_mask, crop_boxes

__all__ = [
    "ALIGN_CORNERS",
    "GlimpseSensor",
    "affine_sample",
    "box_theta",
    "boxcar_mask",
    "centers_from_corners_px",
    "crop_boxes",
    "extract_glimpses",
    "grid_cell_centers",
    "window_corners_px",
]
