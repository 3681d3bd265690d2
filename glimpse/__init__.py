"""glimpse: the one shared, vectorized crop/sampling core for hard and soft visual attention.

Modules: :mod:`glimpse.retina` (exact multi-scale glimpses), :mod:`glimpse.baselines` (other
implementations' retinas, which the benchmarks measure it against), :mod:`glimpse.samplers` (differentiable
samplers of the soft agents), :mod:`glimpse.policies` (location and item heads), :mod:`glimpse.reinforce`
(returns, baselines, the REINFORCE loss), :mod:`glimpse.policy_gradient` (actor-critic and PPO blocks:
GAE, advantage normalisation, the clipped policy and value losses, explained variance, the entropy
bonus), :mod:`glimpse.rewards` (per-step prediction rewards: the log-probability of the label and its gain,
for the envs' ``reward_mode`` and agents that predict at every step), :mod:`glimpse.checks` (input checks
every package uses) and :mod:`glimpse.modes` (code that keeps tensors across calls, outside inference mode).

Coordinate convention
---------------------
This is the one statement of it; every docstring of the project that says "normalized" or "the
project's frame" means exactly this.

- Images are ``(B, C, H, W)`` (an env's canvases ``(N, C, H, W)``, videos ``(N, T, C, H, W)``).
- A point is ``(x, y)``: ``x`` runs along the width (columns, left to right), ``y`` along the height
  (rows, **top to bottom**, so ``+y`` is down).
- **Normalized** coordinates lie in ``[-1, 1]``, where ``-1`` and ``+1`` are the *outer edges* of the
  image, not the centres of its border pixels (PyTorch's ``align_corners=False``;
  :data:`ALIGN_CORNERS` is passed explicitly to every ``affine_grid`` / ``grid_sample``). The centre
  ``(0, 0)`` is the middle of the image whatever its size.
- **Pixel** units: ``x_px = (x + 1) / 2 * W`` and ``y_px = (y + 1) / 2 * H``; pixel ``i`` covers
  ``[i, i + 1)`` and its centre is ``i + 0.5``. A *corner* ``(x0, y0)`` is the integer (column, row)
  of a window's or patch's top-left pixel.
- A normalized *size* (a half-side, a scale of an affine map) is a fraction of the image's half-extent:
  ``1`` spans from the centre to an edge.
"""

from glimpse.retina import (GlimpseSensor, RetinaError, RetinaSpec, centers_from_corners_px, coarse_view,
                            extract_glimpses, grid_cell_centers, retina_spec, scale_gains, window_corners_px)
from glimpse.samplers import ALIGN_CORNERS, affine_sample, box_theta, boxcar_mask, crop_boxes

__all__ = [
    "ALIGN_CORNERS",
    "GlimpseSensor",
    "RetinaError",
    "RetinaSpec",
    "affine_sample",
    "box_theta",
    "boxcar_mask",
    "centers_from_corners_px",
    "coarse_view",
    "crop_boxes",
    "extract_glimpses",
    "grid_cell_centers",
    "retina_spec",
    "scale_gains",
    "window_corners_px",
]
