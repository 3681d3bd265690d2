"""Shared test settings."""

import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

# The tree mirrors the packages (tests/glimpse, tests/envs, tests/agents, tests/scripts) and test modules share
# helpers across it by module name (``from test_data import synthetic``): every folder is importable, whichever
# files a run collects. (No __init__.py: a tests/glimpse package would shadow the real one.)
sys.path[:0] = [str(Path(__file__).parent / folder) for folder in ("glimpse", "envs", "agents", "scripts")]


@pytest.fixture(autouse=True, scope="session")
def _temp_dir_inside_pytests(tmp_path_factory):
    """Tests write only inside pytest's temporary directories: what libraries put in the system temp dir
    (SB3's logger makes an empty ``SB3-<time>`` folder there at every ``learn()``) goes into this session's
    base temp dir instead, in this process and in the scripts it starts."""
    folder = tmp_path_factory.mktemp("system-tmp")
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = str(folder)
    os.environ["TMPDIR"] = str(folder)
    yield
    tempfile.tempdir = saved[0]
    if saved[1] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved[1]


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests use small tensors: a second intra-op thread only adds contention on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
