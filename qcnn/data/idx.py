"""The IDX file format of LeCun's MNIST distribution: parse, validate, write.

Layout (all integers big-endian)::

    offset 0   2 bytes   zero
    offset 2   1 byte    dtype code (0x08 = uint8, the only one MNIST uses)
    offset 3   1 byte    ndim
    offset 4   4*ndim    uint32 size of each dimension
    then       payload   prod(sizes) * itemsize bytes, C order

The first four bytes read as one big-endian uint32 form the "magic number": 2049 (0x00000801)
for the MNIST label files (uint8, 1-D) and 2051 (0x00000803) for the image files (uint8, 3-D).

Files may be raw or gzip-compressed; compression is detected from the gzip magic bytes, not
from the file name, because IDX data always starts with two zero bytes and gzip with 0x1f 0x8b.

Every problem raises :class:`IDXError` (a ``ValueError``) whose message names the file, so that a
corrupt download is easy to find and delete.
"""

from __future__ import annotations

import gzip as _gzip
import os
import zlib
from pathlib import Path

import numpy as np

from qcnn.io import atomic_write_bytes

__all__ = [
    "IDXError",
    "IDX_DTYPES",
    "MAGIC_LABELS",
    "MAGIC_IMAGES",
    "encode_idx",
    "parse_idx",
    "read_idx",
    "write_idx",
]

MAGIC_LABELS = 2049  # uint8, ndim 1
MAGIC_IMAGES = 2051  # uint8, ndim 3

# dtype code -> big-endian numpy dtype, from the IDX specification on yann.lecun.com.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """A file (or byte string) is not a valid IDX file of the expected kind."""


def parse_idx(
    data: bytes,
    name: str = "<bytes>",
    *,
    expected_magic: int | None = None,
    expected_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Decode the IDX bytes ``data`` (raw or gzip-compressed) into a numpy array.

    Args:
        data: the file contents.
        name: how to refer to the source in error messages (normally the file path).
        expected_magic: if given, the 4-byte magic number must equal it (e.g. ``MAGIC_IMAGES``).
        expected_shape: if given, the dimensions in the header must equal it.

    Returns:
        A writable array of shape ``dims`` (from the header) in native byte order; for MNIST
        ``uint8 (N, 28, 28)`` images or ``uint8 (N,)`` labels.

    Raises:
        IDXError: bad gzip stream, bad magic/dtype code/ndim, short header, or a payload whose
            length differs from ``prod(dims) * itemsize`` (truncated file or trailing bytes).
    """
    data = bytes(data) if not isinstance(data, bytes) else data
    if data[:2] == _GZIP_MAGIC:
        try:
            data = _gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise IDXError(f"{name}: corrupt gzip stream ({exc})") from exc
    if len(data) < 4:
        raise IDXError(f"{name}: {len(data)} bytes is too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise IDXError(f"{name}: magic number {magic} (0x{magic:08x}), expected {expected_magic}")
    if data[0] != 0 or data[1] != 0:
        raise IDXError(f"{name}: the first two header bytes must be zero (magic 0x{magic:08x})")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise IDXError(f"{name}: unknown IDX dtype code 0x{code:02x}")
    if ndim == 0:
        raise IDXError(f"{name}: ndim is 0; an IDX file needs at least one dimension")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IDXError(
            f"{name}: header declares {ndim} dimensions ({header_len} header bytes) "
            f"but the file has only {len(data)} bytes"
        )
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if expected_shape is not None and shape != tuple(expected_shape):
        raise IDXError(f"{name}: header shape {shape}, expected {tuple(expected_shape)}")
    dtype = IDX_DTYPES[code]
    # Python ints: the product of uint32 sizes can exceed 2**63, where numpy would overflow.
    n_items = 1
    for s in shape:
        n_items *= s
    expected_len = n_items * dtype.itemsize
    payload_len = len(data) - header_len
    if payload_len != expected_len:
        what = "truncated" if payload_len < expected_len else "trailing bytes"
        raise IDXError(
            f"{name}: {what}: header shape {shape} needs {expected_len} payload bytes, "
            f"file has {payload_len}"
        )
    # frombuffer is a zero-copy view of an immutable bytes object; astype(native) makes the one
    # copy that is needed anyway for a writable array (no Python loop over the 47 MB file).
    arr = np.frombuffer(data, dtype=dtype, count=n_items, offset=header_len)
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def read_idx(
    path: str | os.PathLike,
    *,
    expected_magic: int | None = None,
    expected_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Read and validate the IDX file ``path`` (raw or gzipped); see :func:`parse_idx`.

    Raises:
        IDXError: the file is not valid IDX (the message names ``path``).
        OSError: the file cannot be read.
    """
    path = Path(path)
    return parse_idx(
        path.read_bytes(),
        str(path),
        expected_magic=expected_magic,
        expected_shape=expected_shape,
    )


def encode_idx(array: np.ndarray) -> bytes:
    """Return the raw (uncompressed) IDX encoding of ``array`` (1 <= ndim <= 255)."""
    arr = np.asarray(array)
    matches = [
        (c, dt)
        for c, dt in IDX_DTYPES.items()
        if arr.dtype.kind == dt.kind and arr.dtype.itemsize == dt.itemsize
    ]
    if not matches:
        raise TypeError(f"IDX cannot store dtype {arr.dtype}")
    code, dt = matches[0]
    if not 1 <= arr.ndim <= 255:
        raise ValueError(f"IDX needs 1 <= ndim <= 255, got {arr.ndim}")
    if any(s >= 2**32 for s in arr.shape):
        raise ValueError(f"IDX dimension sizes must fit in uint32, got {arr.shape}")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(arr, dtype=dt).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, gzip: bool = False) -> None:
    """Write ``array`` to ``path`` as an IDX file, atomically (temp file + rename).

    Args:
        path: destination file.
        array: any shape with 1 to 255 dimensions; dtype uint8, int8, int16, int32, float32 or
            float64 (stored big-endian as the format requires).
        gzip: compress the file (with mtime 0, so the output is reproducible).
    """
    data = encode_idx(array)
    if gzip:
        data = _gzip.compress(data, compresslevel=6, mtime=0)
    atomic_write_bytes(path, data)
