"""Shared test settings."""

import os
import tempfile

import pytest
import torch


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
