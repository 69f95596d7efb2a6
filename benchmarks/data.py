"""The benchmark's data: Fashion-MNIST when its IDX files are found, else synthetic.

Reading the IDX files is the package's job (``backprop.datasets``); this
module only picks the source, slices it to each workload's size and derives
the 64-feature inputs of W3.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from backprop.datasets import FASHION_MNIST_DIRS, load_fashion_mnist

N_FEATURES = 784
N_CLASSES = 10
TRAIN_SAMPLES = 60_000
TEST_SAMPLES = 10_000


class DataError(ValueError):
    """The data named by --data cannot be read."""


@dataclass
class Data:
    """Training and prediction arrays in float32, and where they came from.

    Attributes
    ----------
    X : ndarray (n_train, 784) float32, in [0, 1]
    y : ndarray (n_train,) int64, labels 0..9
    X_test : ndarray (n_test, 784) float32, the rows W5 predicts
    source : str, "fashion-mnist" or "synthetic"
    description : str, one line for the report (folder, or why synthetic)
    """

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    source: str
    description: str


def synthetic(n_train=TRAIN_SAMPLES, n_test=TEST_SAMPLES, seed=0):
    """Uniform [0, 1) pixels and uniform labels, shaped like Fashion-MNIST.

    The network cannot learn anything from them; timings do not depend on
    the values, only on the shapes.
    """
    rng = np.random.default_rng(seed)
    X = rng.random((n_train, N_FEATURES), dtype=np.float32)
    y = rng.integers(0, N_CLASSES, size=n_train, dtype=np.int64)
    X_test = rng.random((n_test, N_FEATURES), dtype=np.float32)
    return X, y, X_test


def load(path=None, force_synthetic=False, n_train=TRAIN_SAMPLES, n_test=TEST_SAMPLES):
    """The benchmark's data, at most `n_train` training and `n_test` test rows.

    Parameters
    ----------
    path : str, optional
        Folder with Fashion-MNIST's IDX files (``--data``); default: where
        Debian's ``dataset-fashion-mnist`` installs them. Only without a
        path does unusable data fall back to synthetic data.
    force_synthetic : bool
        Skip Fashion-MNIST (``--synthetic``).
    n_train, n_test : int
        Rows to keep. Synthetic data is generated at exactly this size; a
        request above Fashion-MNIST's 60,000 / 10,000 falls back to synthetic.

    Returns
    -------
    Data
    """
    if force_synthetic:
        return Data(*synthetic(n_train, n_test), "synthetic", "synthetic (--synthetic)")
    if n_train > TRAIN_SAMPLES or n_test > TEST_SAMPLES:
        reason = f"more rows ({n_train:,}/{n_test:,}) than Fashion-MNIST has"
        return Data(*synthetic(n_train, n_test), "synthetic", f"synthetic ({reason})")
    try:
        (X, y), (X_test, _) = load_fashion_mnist(path, dtype=np.float32)
    except (FileNotFoundError, ValueError) as error:
        where = path if path is not None else ", ".join(FASHION_MNIST_DIRS)
        first_line = str(error).splitlines()[0][:160]
        if path is not None:  # asked for by name: timing other data instead would mislead
            raise DataError(f"--data {path}: Fashion-MNIST cannot be read there ({first_line})") from None
        return Data(*synthetic(n_train, n_test), "synthetic",
                    f"synthetic (Fashion-MNIST not usable in {where}: {first_line})")
    # Copies, so that the full arrays are freed and the slices are contiguous.
    folder = path if path is not None else next((d for d in FASHION_MNIST_DIRS if os.path.isdir(d)),
                                                FASHION_MNIST_DIRS[0])
    return Data(X[:n_train].copy(), y[:n_train].copy(), X_test[:n_test].copy(), "fashion-mnist",
                f"Fashion-MNIST from {folder}")


def pool_to_64(X):
    """28×28 images → 64 features: the central 24×24 crop, averaged over 3×3 blocks.

    Gives 8×8 images, the shape of the UCI digits that W3's 64-32-10 network
    is sized for. Deterministic, so every peer sees the same inputs.

    Parameters
    ----------
    X : ndarray (n, 784)

    Returns
    -------
    ndarray (n, 64), X's dtype, C-contiguous
    """
    images = X.reshape(-1, 28, 28)[:, 2:26, 2:26]
    pooled = images.reshape(-1, 8, 3, 8, 3).mean(axis=(2, 4), dtype=np.float64)
    return np.ascontiguousarray(pooled.reshape(-1, 64), dtype=X.dtype)
