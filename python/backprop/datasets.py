"""Data sets: the small real data set shipped with the package."""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np

__all__ = ["load_digits"]


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
