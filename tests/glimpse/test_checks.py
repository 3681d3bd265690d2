"""glimpse/checks.py, the input checks every package uses, and glimpse.grid_cell_centers, the one grid-cell formula."""

import numpy as np
import pytest
import torch

from glimpse import grid_cell_centers
from glimpse.checks import check_canvas, check_int, check_positive_int, check_shape


def test_check_int_takes_python_and_numpy_integers_only():
    assert check_int(3, "n") == 3 and type(check_int(np.int64(3), "n")) is int
    assert check_int(0, "n", minimum=0) == 0
    for bad in (0, -1, 2.0, 2.5, True, "3", None):
        with pytest.raises(ValueError, match=r"n must be an integer >= 1; got"):
            check_int(bad, "n")
    with pytest.raises(ValueError, match=r"screen must be an integer >= 3 \(room\); got 2"):
        check_int(2, "screen", minimum=3, why="(room)")
    assert check_positive_int(5, "size") == 5


def test_check_canvas_is_the_one_float_canvas_check():
    check_canvas(torch.zeros(2, 3, 8, 9))
    check_canvas(torch.zeros(2, 3, 8, 9, dtype=torch.float64), shape=(3, 8, 9))
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\); got \(3, 8, 9\)"):
        check_canvas(torch.zeros(3, 8, 9))
    with pytest.raises(ValueError, match=r"x must be \(N, 1, 8, 8\); got \(2, 3, 8, 8\)"):
        check_canvas(torch.zeros(2, 3, 8, 8), "x", shape=(1, 8, 8))
    with pytest.raises(TypeError, match="divide uint8 canvases by 255"):
        check_canvas(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        check_canvas(np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"t must be \(B, 2\); got \(4,\)"):
        check_shape(torch.zeros(4), "t", "(B, 2)", (None, 2))


@pytest.mark.parametrize("grid", [1, 2, 5, 7])
def test_grid_cell_centers_tile_the_frame(grid):
    centers = grid_cell_centers(grid)
    assert centers.shape == (grid * grid, 2) and centers.dtype == torch.float32
    for k, (x, y) in enumerate(centers.tolist()):
        column, row = k % grid, k // grid  # row-major items
        assert x == pytest.approx((2 * column + 1) / grid - 1) and y == pytest.approx((2 * row + 1) / grid - 1)
    cells = torch.tensor([[[0, 0], [grid - 1, grid - 1]]])  # (1, 2, 2): any leading shape
    torch.testing.assert_close(grid_cell_centers(grid, cells), centers[torch.tensor([[0, grid * grid - 1]])], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"cells must be a \(\.\.\., 2\) tensor"):
        grid_cell_centers(grid, torch.zeros(3, 3))
