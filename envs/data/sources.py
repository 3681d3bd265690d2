"""What the digit datasets are and where they are published: names, splits, image size, the official
file names, the ``$GLIMPSE_DATA_DIR`` variable, and the download mirrors with each file's SHA-256.

Constants only; :mod:`envs.data.digits` says in which order the sources are searched.
"""

from __future__ import annotations

__all__ = ["NAMES", "SPLITS", "NUM_CLASSES", "IMAGE_SIZE", "DATA_DIR_ENV", "FILES", "MIRRORS", "CHECKSUMS"]


NAMES = ("mnist", "fashion-mnist")
SPLITS = ("train", "test")
NUM_CLASSES = 10
IMAGE_SIZE = 28

DATA_DIR_ENV = "GLIMPSE_DATA_DIR"

# split -> (images file, labels file): the official names, without ".gz".
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Base URLs tried in order; a file's URL is the base followed by its name (e.g. "...-idx3-ubyte.gz").
# HTTPS only: the digests below already make a tampered download fail, HTTPS also keeps it private.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's primary mirror
        "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow Datasets' mirror
    ),
    "fashion-mnist": (  # the authors' repository (their other mirror serves plain HTTP only)
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}

# SHA-256 of each official gzipped file, as TensorFlow Datasets records them (url_checksums/mnist.txt and
# fashion_mnist.txt) beside the files' sizes, which are those the datasets' own pages list (MNIST: 9,912,422,
# 28,881, 1,648,877 and 4,542 bytes; Fashion-MNIST: 26,421,880, 29,515, 4,422,102 and 5,148). Every
# download, and every use of a cached file, is checked against these.
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
