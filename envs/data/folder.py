"""ImageFolder-style directories of JPEG/PNG images (CUB-200, a subset of ImageNet, your own photos):
:func:`load_image_folder` reads one split, decoded, upright and resized, into an
:class:`ImageFolderDataset` of ``uint8`` pictures ``(M, C, size, size)``. It is the data of the env's
``task="folder"``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from envs.data.announce import announce, warn_once
from envs.data.download import stamp
from envs.data.records import record
from envs.data.sources import SPLITS
from glimpse.checks import check_positive_int

__all__ = [
    "ImageFolderDataset",
    "load_image_folder",
    "decode_images",
    "IMAGE_EXTENSIONS",
    "TEST_EVERY",
    "COUNTS_LISTED",
]


#: File name endings read as images (case-insensitive); other files in a class folder are ignored.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# The Pillow formats decoded, whatever a file's name says; a file in any other format is refused.
_DECODED_FORMATS = ("JPEG", "PNG")
#: Without train/ and test/ folders, file ``i`` (0-based, by sorted name) of each class is a test image
#: when ``i % TEST_EVERY == TEST_EVERY - 1``: the 5th, 10th, ... file, 20% of each class of 5 or more.
TEST_EVERY = 5


@dataclass(frozen=True, eq=False)
class ImageFolderDataset:
    """One split of an ImageFolder-style directory, decoded and resized, in memory.

    Attributes:
        images: ``(M, C, size, size)`` ``torch.uint8`` (``C`` = 3 for RGB, 1 for grey).
        labels: ``(M,)`` ``torch.int64``: the index of each image's class in ``classes``.
        classes: the class folder names, sorted; label ``k`` is ``classes[k]``.
        files: the path of each image, in the order of ``images`` (class by class, sorted by name).
        root: the directory given.
        split: ``"train"`` or ``"test"``.
        source: where the data came from, in words (layout and folders).

    The tensors may be shared with other callers of :func:`load_image_folder`; clone before writing.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    files: tuple[str, ...]
    root: str
    split: str
    source: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (M, C, H, W); got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 ({self.images.shape[0]},); got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if len(self.files) != len(self.labels):
            raise ValueError(f"files must name every image: {len(self.files)} names for {len(self.labels)} images")

    @property
    def num_classes(self) -> int:
        """The number of class folders (a class may have no image in one split: see :func:`load_image_folder`)."""
        return len(self.classes)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return (
            f"ImageFolderDataset(root={self.root!r}, split={self.split!r}, n={len(self)}, "
            f"classes={self.num_classes}, shape={tuple(self.images.shape[1:])})"
        )


def load_image_folder(
    root: str | os.PathLike, split: str = "train", *, size: int = 112, channels: int = 3
) -> ImageFolderDataset:
    """Load one split of an ImageFolder-style directory of JPEG/PNG images, resized to ``size x size``.

    Layouts (the first that applies):

    - ``root/train/<class>/<image>`` with ``root/test/<class>/<image>`` (or ``root/val/...`` when there
      is no ``test/``): the split's own folder. Both must hold the same class folders.
    - ``root/<class>/<image>``: one folder for both splits, split per class by sorted file name:
      file ``i`` (0-based) is a test image when ``i % 5 == 4`` (the 5th, 10th, ... file; 20% of a
      class), a train image otherwise. So a class with fewer than 5 images has none in ``"test"``.

    There must be at least two classes (one class would score every prediction right). Every class has
    train images (in either layout), but in the second a class of fewer than 5 images has no test image:
    that is warned about (a ``UserWarning`` naming the classes, once per process), not refused, since a
    small or lopsided folder can still be worth training on, but its test accuracy then measures the
    other classes only. The announcement of the source (the dataset's ``source``, which the training
    scripts print) says how many train and test images each class has.

    Classes are the folders (not starting with ``.``), sorted by name; label ``k`` is ``classes[k]``.
    Images are the files directly in a class folder whose names end in ``.jpg``, ``.jpeg`` or ``.png``
    (any case, not starting with ``.``); other files are ignored. Images are ordered class by class,
    by file name within a class, so test example ``j`` of the env is ``files[j]``.

    Decoding and resizing happen here, once, at load time (data loading, outside the retina): each
    file is decoded by Pillow, turned upright by its EXIF orientation, converted to ``"RGB"``
    (``channels=3``; an alpha channel is dropped) or ``"L"`` (``channels=1``), centre-cropped to a
    square with the side of its shorter side and resized to ``size x size`` with Pillow's antialiased
    Lanczos filter (``ImageOps.fit``; the same as resizing the shorter side to ``size`` and taking the
    centre square). Loaded splits are cached in-process, keyed on the files' names, sizes and times.

    Args:
        root: the directory.
        split: ``"train"`` or ``"test"``.
        size: side of the square pictures in pixels (>= 1); 112 by default (the env's canvas).
        channels: 3 (RGB) or 1 (grey).

    Returns:
        An :class:`ImageFolderDataset` with ``images`` ``(M, channels, size, size)`` uint8.

    Raises:
        FileNotFoundError: ``root`` is missing or not a directory, ``root/train`` has no ``test``/``val``
            partner, or there are no class folders.
        ValueError: fewer than two classes, a class folder without images, train and test with different
            class folders, a file that is not a JPEG or PNG image or that Pillow cannot read (the message names
            it), an empty split, or a bad argument.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    check_positive_int(size, "size")
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels must be 3 (RGB) or 1 (grey); got {channels!r}")
    classes, files, labels, layout, counts = _list_image_folder(Path(root), split)
    if len(classes) < 2:
        raise ValueError(
            f"image folder {str(root)!r} holds only 1 class folder ({classes[0]!r}; {layout}); a classifier needs "
            f"at least two: put each class's images in a folder of its own"
        )
    if not files:
        raise ValueError(
            f"the {split!r} split of image folder {str(root)!r} is empty ({layout}): every class has fewer than "
            f"{TEST_EVERY} images, so none goes to test; add images or use root/train and root/test folders"
        )
    per_class = _describe_counts(classes, counts)
    untested = [c for c in classes if counts[c][1] == 0]
    if untested:
        warn_once(
            f"image folder {root}: no test image for {len(untested)} of its {len(classes)} classes "
            f"({', '.join(untested)}: fewer than {TEST_EVERY} images each), so the test accuracy leaves them out; "
            f"{per_class}",
        )
    stamps = tuple((str(f), *stamp(f)) for f in files)
    images = decode_images(stamps, size, channels)
    source = f"{len(files)} images in {len(classes)} classes of {root} ({layout}; {per_class})"
    announce(f"image folder {root}", split, source, len(files), subset=False)
    return record(ImageFolderDataset(
        images, torch.tensor(labels, dtype=torch.int64), tuple(classes), tuple(str(f) for f in files),
        str(root), split, source,
    ))


#: Up to this many classes, an image folder's announcement lists every class's counts; beyond, their range.
COUNTS_LISTED = 12


def _describe_counts(classes: list[str], counts: dict[str, tuple[int, int]]) -> str:
    """``"train/test images per class: ant 8/2, bee 3/0"``, or for many classes the range of each split."""
    if len(classes) <= COUNTS_LISTED:
        return "train/test images per class: " + ", ".join(f"{c} {counts[c][0]}/{counts[c][1]}" for c in classes)
    ranges = []
    for i, split in enumerate(SPLITS):
        fewest = min(classes, key=lambda c: counts[c][i])
        ranges.append(f"{split} {counts[fewest][i]}-{max(n[i] for n in counts.values())} per class "
                      f"(fewest: {fewest})")
    return "images: " + ", ".join(ranges)


def _list_image_folder(
    root: Path, split: str
) -> tuple[list[str], list[Path], list[int], str, dict[str, tuple[int, int]]]:
    """``(classes, files, labels, layout, counts)`` of ``split``, with no image decoded; ``counts[c]`` is
    class ``c``'s ``(train, test)`` number of images."""
    if not root.exists():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} is not a directory")
    if (root / "train").is_dir():
        test_name = "test" if (root / "test").is_dir() else "val" if (root / "val").is_dir() else None
        if test_name is None:
            raise FileNotFoundError(
                f"image folder {str(root)!r} has train/ but neither test/ nor val/: give both splits, or put the "
                f"class folders directly in {str(root)!r} to split them per class"
            )
        train = _class_files(root / "train")
        test = _class_files(root / test_name)
        if set(train) != set(test):
            only_train, only_test = sorted(set(train) - set(test)), sorted(set(test) - set(train))
            raise ValueError(
                f"image folder {str(root)!r}: train/ and {test_name}/ must hold the same class folders; "
                f"only in train/: {only_train}, only in {test_name}/: {only_test}"
            )
        chosen = train if split == "train" else test
        classes = sorted(chosen)
        files = [f for c in classes for f in chosen[c]]
        labels = [k for k, c in enumerate(classes) for _ in chosen[c]]
        counts = {c: (len(train[c]), len(test[c])) for c in classes}
        return classes, files, labels, f"train/ and {test_name}/ folders", counts
    by_class = _class_files(root)
    classes = sorted(by_class)
    files, labels = [], []
    for k, c in enumerate(classes):
        for i, f in enumerate(by_class[c]):
            if (i % TEST_EVERY == TEST_EVERY - 1) == (split == "test"):
                files.append(f)
                labels.append(k)
    counts = {c: (len(by_class[c]) - len(by_class[c]) // TEST_EVERY, len(by_class[c]) // TEST_EVERY) for c in classes}
    return classes, files, labels, f"class folders split per class, every {TEST_EVERY}th file by name to test", counts


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """Class folder name -> its image files sorted by name; every class must have at least one image."""
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise FileNotFoundError(
            f"no class folders in {str(folder)!r}: expected {folder}/<class name>/<image>.jpg|.png "
            f"(or train/ and test/ folders holding class folders)"
        )
    found = {}
    for name in classes:
        images = sorted(
            (f for f in (folder / name).iterdir()
             if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS),
            key=lambda f: f.name,
        )
        if not images:
            raise ValueError(
                f"class folder {str(folder / name)!r} holds no images (files ending in "
                f"{', '.join(IMAGE_EXTENSIONS)}, any case): remove the folder or add images"
            )
        found[name] = images
    return found


@functools.lru_cache(maxsize=4)
def decode_images(stamps: tuple[tuple[str, int, int], ...], size: int, channels: int) -> torch.Tensor:
    """Decode, orient, convert and resize every file of ``stamps`` (path, mtime, bytes): ``(M, C, size, size)``."""
    # Pillow is a dependency; imported here so the digit loaders need none of it.
    from PIL import Image, ImageOps, UnidentifiedImageError

    lanczos = getattr(Image, "Resampling", Image).LANCZOS
    mode = "RGB" if channels == 3 else "L"
    out = np.empty((len(stamps), size, size, channels), dtype=np.uint8)
    for i, (path, _, _) in enumerate(stamps):
        try:
            # Only the documented formats: Pillow otherwise picks the decoder from the contents, and some (EPS:
            # Ghostscript) run external programs on a user's file.
            with Image.open(path, formats=_DECODED_FORMATS) as opened:
                picture = ImageOps.exif_transpose(opened).convert(mode)
                picture = ImageOps.fit(picture, (size, size), method=lanczos, centering=(0.5, 0.5))
                out[i] = np.asarray(picture, dtype=np.uint8).reshape(size, size, channels)
        except UnidentifiedImageError as exc:
            raise ValueError(f"{path}: cannot be read as an image (not a {' or '.join(_DECODED_FORMATS)} file; "
                             f"other formats are not allowed, whatever the file's name)") from exc
        except Exception as exc:  # any failure to decode a user's file must name the file
            raise ValueError(f"{path}: cannot be read as an image ({type(exc).__name__}: {exc})") from exc
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
