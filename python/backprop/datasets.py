"""Data sets: the shipped digits, IDX files (MNIST, Fashion-MNIST), CSV and .npz."""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib
from importlib import resources

import numpy as np

from ._npz import open_regular, read_exactly, read_npz
from ._validation import holds_whole_numbers

__all__ = ["load_digits", "load_idx", "load_fashion_mnist", "load_csv", "load_npz", "FASHION_MNIST_DIRS"]

# Where Debian's dataset-fashion-mnist package installs the IDX files.
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# IDX element type codes -> big-endian NumPy dtypes (LeCun's format description).
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_digits():
    """The UCI optical handwritten digits (1,797 samples of 8×8 pixels).

    Shipped inside the package (see backprop/data/README.md for source and
    licence), so it needs no download.

    Returns
    -------
    X : ndarray (1797, 64) float64, pixel counts in [0, 16]
    y : ndarray (1797,) int64, the digit 0..9
    """
    with resources.files("backprop").joinpath("data/digits.csv.gz").open("rb") as raw:
        with gzip.open(raw, "rt") as text:
            table = np.loadtxt(text, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def load_idx(path):
    """Read an IDX file (the MNIST format), raw or gzip-compressed.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    ndarray with the file's shape and element type (native byte order).

    Raises
    ------
    ValueError
        When the magic number is wrong or the sizes do not match the file's length.
    """
    path = os.fspath(path)
    with open_regular(path) as file:
        file_size = os.fstat(file.fileno()).st_size
        compressed = file.read(2) == b"\x1f\x8b"
        file.seek(0)
        try:
            return _read_idx(path, gzip.GzipFile(fileobj=file) if compressed else file, file, file_size,
                             compressed)
        except (OSError, EOFError, zlib.error) as error:
            if not compressed:
                raise
            raise ValueError(f"{path}: the gzip stream is damaged or truncated ({error})") from None


def _read_idx(path, stream, file, file_size, compressed):
    """The array of an IDX stream; no more memory than its header declares, checked against the file
    first (its length, or for gzip the uncompressed length mod 2**32 its trailer records)."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES or magic[3] == 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number {magic.hex() or 'empty'})")
    ndim = magic[3]
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(n) for n in np.frombuffer(dims, ">u4"))
    dtype = np.dtype(_IDX_TYPES[magic[2]])
    header_size = 4 + 4 * ndim
    nbytes = math.prod(shape) * dtype.itemsize
    expected = header_size + nbytes
    if compressed:
        position = file.tell()
        file.seek(-4, os.SEEK_END)
        recorded = int.from_bytes(file.read(4), "little")  # gzip's ISIZE
        file.seek(position)
        if file_size < 18 or recorded != expected % 2**32:
            why = ("truncated, or the gzip stream is damaged" if recorded < expected
                   else "trailing data, or the gzip stream is damaged or truncated")
            raise ValueError(f"{path}: sizes {shape} need {expected} bytes but its gzip trailer records {recorded} "
                             f"uncompressed (mod 2**32): {why}")
    elif file_size != expected:
        raise ValueError(f"{path}: sizes {shape} need {expected} bytes but the file has {file_size} "
                         f"({'truncated' if file_size < expected else 'trailing data'})")
    data, filled = read_exactly(stream, nbytes)
    if filled < nbytes:
        raise ValueError(f"{path}: sizes {shape} need {expected} bytes but the file has "
                         f"{header_size + filled} (truncated)")
    if stream.read(1):
        raise ValueError(f"{path}: sizes {shape} need {expected} bytes but the file has more (trailing data)")
    array = np.frombuffer(data, dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=not dtype.isnative)


def _find(folder, stem):
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def load_fashion_mnist(path=None, dtype=np.float32):
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70,000 28×28 grey images, 10 classes.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Folder holding the four IDX files (``train-images-idx3-ubyte[.gz]``,
        ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``). Default: where
        Debian's ``dataset-fashion-mnist`` package installs them.
    dtype : float dtype
        dtype of the images, scaled to [0, 1].

    Returns
    -------
    (X_train, y_train), (X_test, y_test) with X (n, 784) scaled to [0, 1] and y int64.

    Raises
    ------
    FileNotFoundError
        Saying where it looked and how to get the files.
    """
    folders = [os.fspath(path)] if path is not None else list(FASHION_MNIST_DIRS)
    for folder in folders:
        found = {part: [_find(folder, stem) for stem in stems] for part, stems in FASHION_MNIST_FILES.items()}
        if all(all(files) for files in found.values()):
            result = []
            for part in ("train", "test"):
                images, labels = (load_idx(f) for f in found[part])
                if images.ndim != 3 or labels.shape != images.shape[:1]:
                    raise ValueError(f"{found[part][0]}: expected n×28×28 images and n labels")
                X = images.reshape(images.shape[0], -1).astype(dtype) / np.dtype(dtype).type(255)
                result.append((X, labels.astype(np.int64)))
            return tuple(result)
    raise FileNotFoundError(
        f"Fashion-MNIST IDX files not found in {', '.join(folders)}. Install them with "
        "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or download the four "
        "*-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist and pass their folder "
        "as path=.")


def _labels(column):
    """Whole-valued float labels become int64; anything else is kept."""
    if column.dtype.kind == "f" and holds_whole_numbers(column):
        return column.astype(np.int64)
    return column


def load_csv(path, label_column=-1, delimiter=","):
    """Features and labels from a CSV file with one sample per row.

    A first row that is not numeric is taken as a header. The label column
    may hold numbers or strings.

    Returns
    -------
    X : ndarray (n_samples, n_features) float64
    y : ndarray (n_samples,): int64 for whole numbers, float64, or str
    """
    path = os.fspath(path)
    with open_regular(path) as raw, (gzip.open(raw, "rt") if path.endswith(".gz")
                                     else io.TextIOWrapper(raw)) as file:
        rows = [line.rstrip("\r\n").split(delimiter) for line in file if line.strip()]
    if not rows:
        raise ValueError(f"{path}: the file holds no rows")
    width = len(rows[0])
    if width < 2:
        raise ValueError(f"{path}: need at least one feature column and a label column")
    if not -width <= label_column < width:
        raise ValueError(f"label_column {label_column} is outside the file's {width} columns")
    column = label_column % width

    def is_number(cell):
        try:
            float(cell)
            return True
        except ValueError:
            return False

    # A header names every column: no feature cell of it is a number or empty.
    if all(cell.strip() and not is_number(cell) for i, cell in enumerate(rows[0]) if i != column):
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path}: the file holds a header but no data")
    for number, row in enumerate(rows, 1):
        if len(row) != width:
            raise ValueError(f"{path}: data row {number} has {len(row)} fields, expected {width}")
    try:
        X = np.array([[float(c) for i, c in enumerate(row) if i != column] for row in rows])
    except ValueError as error:
        raise ValueError(f"{path}: a feature is not a number ({error})") from None
    labels = [row[column].strip() for row in rows]
    try:
        y = _labels(np.array([float(v) for v in labels]))
    except ValueError:
        y = np.array(labels)
    return X, y


def load_npz(path, require_labels=True):
    """Features ``X`` and labels ``y`` from an .npz archive (read without pickle).

    With ``require_labels=False`` an archive without ``y`` gives ``(X, None)``.
    """
    path = os.fspath(path)
    try:
        arrays = read_npz(path, names=("X", "y"))  # other members are never decompressed
    except ValueError as error:
        raise ValueError(f"{path}: cannot read features and labels from it ({error})") from None
    wanted = ("X", "y") if require_labels else ("X",)
    if any(name not in arrays for name in wanted):
        raise ValueError(f"{path}: cannot read features and labels from it (expected arrays "
                         f"{' and '.join(map(repr, wanted))}, found {sorted(arrays)})")
    return arrays["X"], arrays.get("y")
