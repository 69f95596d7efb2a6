"""Dropout masks from a counter-based generator, as the C++ core draws them (dropout.hpp).

The mask of a training pass is a pure function of (seed, step, layer, sample
position in the batch, unit): no stream is shared between threads or
calls, so a fit is bit-identical for any thread count and resumable from
its saved step. SplitMix64's finaliser turns counters into 64-bit words:

    key  = mix(mix(mix(seed + G) ^ step + G) ^ layer + G)     (all mod 2^64)
    word = mix(key + c·G),  c = j·n + i + 1 for sample j, unit i of n
    keep unit i of sample j  ⇔  (word >> 11) ≥ ⌊p · 2^53⌋

with G = 0x9E3779B97F4A7C15 (SplitMix64's increment), so P(keep) = 1 − p up to
2^-53. Kept units are scaled by 1/(1 − p) (inverted dropout).
"""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(z):
    """SplitMix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z = z * _M1
    z = z ^ (z >> np.uint64(27))
    z = z * _M2
    return z ^ (z >> np.uint64(31))


def mask_key(seed, step, layer):
    """The 64-bit key of one layer's mask in one training step."""
    with np.errstate(over="ignore"):
        key = _mix(np.uint64(seed) + GOLDEN)
        key = _mix((key ^ np.uint64(step)) + GOLDEN)
        return _mix((key ^ np.uint64(layer)) + GOLDEN)


def keep_threshold(p):
    """⌊p · 2^53⌋: a unit is kept when the top 53 bits of its word reach it."""
    return int(float(p) * 2.0 ** 53)


def dropout_scale(p, dtype):
    """m/(1 − p) per kept unit: 1/(1 − p) in `dtype`, as the core rounds it."""
    return np.dtype(dtype).type(1.0 / (1.0 - float(p)))


def dropout_mask(seed, step, layer, n_samples, n_units, p, dtype):
    """m/(1 − p): (n_samples, n_units) of 0 and 1/(1 − p), for hidden layer `layer` (from 0)."""
    key = mask_key(seed, step, layer)
    counter = np.arange(1, n_samples * n_units + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        words = _mix(key + counter * GOLDEN)
    keep = (words >> np.uint64(11)) >= np.uint64(keep_threshold(p))
    return np.where(keep, dropout_scale(p, dtype), np.dtype(dtype).type(0)).reshape(n_samples, n_units)
