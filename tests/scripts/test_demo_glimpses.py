"""scripts/demo_glimpses.py in this process: the picture it draws, its bad values, and a link where it writes."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from envs import GlimpseVectorEnv
from glimpse import extract_glimpses
from script_runs import in_process

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def test_each_row_is_a_canvas_and_the_env_retinas_glimpse_at_the_centre(tmp_path):
    done = in_process("demo_glimpses.py", "--out", str(tmp_path), "--canvases", "2", "--scales", "2", env=ENV)
    assert done.returncode == 0, done.stderr
    picture = np.asarray(Image.open(tmp_path / "glimpses.png"))
    row, zoom, size = 240, 240 // 12, 12
    assert picture.shape == (4 * row + 3 * 8, 240 + 2 * (8 + zoom * size), 3)  # 2 canvases x 2 places, 2 scales
    env = GlimpseVectorEnv(2, task="cluttered", split="test", glimpse_size=12, scales=2)
    env.reset(seed=0)
    canvases, _ = env.scene()
    expected = extract_glimpses(canvases[:1], torch.zeros(1, 2), retina=env.retina)[0]  # (S, 1, g, g)
    for scale in range(2):  # the first row's centre glimpse, each scale enlarged zoom x zoom
        left = 240 + scale * (8 + zoom * size) + 8
        tile = picture[:zoom * size:zoom, left:left + zoom * size:zoom, 0] / 255
        np.testing.assert_allclose(tile, expected[scale, 0].numpy(), atol=1 / 255 + 1e-6)


@pytest.mark.parametrize("args, flag", [(["--canvases", "0"], "--canvases"),
                                        (["--glimpse-size", "0"], "--glimpse-size"), (["--seed", "-1"], "--seed")])
def test_bad_values_are_one_line(args, flag, tmp_path):
    done = in_process("demo_glimpses.py", "--out", str(tmp_path), *args, env=ENV)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error:") and flag in line


def test_an_out_that_cannot_be_a_folder_is_one_line_and_a_link_is_replaced_not_followed(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep")
    done = in_process("demo_glimpses.py", "--out", str(a_file), env=ENV)
    assert done.returncode == 2 and f"--out {a_file}" in done.stderr.strip().splitlines()[-1]
    out = tmp_path / "out"
    out.mkdir()
    (out / "glimpses.png").symlink_to(a_file)
    assert in_process("demo_glimpses.py", "--out", str(out), "--canvases", "1", env=ENV).returncode == 0
    assert a_file.read_text() == "keep" and not (out / "glimpses.png").is_symlink()
