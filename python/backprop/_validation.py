"""Checks at the API edge: every message names the argument and what was expected.

Backends trust what passes these checks; nothing here modifies its input.
"""

from __future__ import annotations

import numbers
import operator

import numpy as np


def check_choice(name, value, choices):
    """`value` if it is one of the strings in `choices`."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {', '.join(map(repr, choices))}; "
                        f"got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_int(name, value, minimum=1):
    """`value` as an int if it is an integer >= minimum (bools are refused)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return bool(value)


def as_real_array(name, value):
    """`value` as an ndarray of real numbers (bool, integer or float), not yet converted."""
    if value is None:
        raise TypeError(f"{name} must be an array of real numbers, got None")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{name} could not be read as an array: {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def _core_all_finite(array):
    """The compiled core's verdict on `array` (True: every value finite), or None where the core does
    not take the array (dtype, dimensions, layout) or is not built."""
    try:
        from ._core import all_finite
    except ImportError:
        return None
    return all_finite(array)


def refuse_nonfinite(name, array):
    if array.dtype.kind != "f" or not array.size:
        return
    if array.size <= 65536:  # small (one sample to predict): the cheapest call
        if np.isfinite(array).all():
            return
    else:
        # The core reads each value once (twice as fast as NumPy's sum on
        # 60,000 × 784 float32, a fit's X); other arrays take the sum below.
        verdict = _core_all_finite(array)
        if verdict is not None:
            if verdict:
                return
            raise ValueError(f"{name} contains NaN or infinity")
        # One pass and no temporary the size of X: a NaN or ±inf anywhere
        # makes the sum NaN or ±inf, so a finite sum proves every value
        # finite. Only a sum that is not finite needs min/max (which
        # propagate NaN and show ±inf) to tell bad values from finite ones
        # whose sum overflowed.
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(np.add.reduce(array, axis=None)):
                return
        if np.isfinite(array.min()) and np.isfinite(array.max()):
            return
    raise ValueError(f"{name} contains NaN or infinity")


def convert_finite(name, array, dtype, finite=True):
    """`array` as `dtype` (no copy if it already is), refusing NaN, ±inf, and
    values too large for `dtype` (which the conversion would turn into ±inf).
    With ``finite=False`` an array that needs no conversion is returned
    unchecked: the caller has it scanned for NaN and ±inf itself."""
    if not finite and array.dtype == dtype:
        return array
    refuse_nonfinite(name, array)
    with np.errstate(over="ignore"):
        converted = array.astype(dtype, copy=False)
    if converted is not array:
        try:
            refuse_nonfinite(name, converted)
        except ValueError:
            raise ValueError(f"{name} holds values too large for {np.dtype(dtype).name}") from None
    return converted


def check_X(X, n_features, dtype, name="X", finite=True):
    """X as a 2-D array of `dtype` with `n_features` columns, finite, non-empty.

    Returns the caller's array itself when it already has `dtype` (never
    modified), else a converted copy. ``finite=False``: see convert_finite.
    """
    array = as_real_array(name, X)
    if array.ndim != 2:
        hint = "; for a single sample use X[None, :]" if array.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {array.shape}{hint}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty: it needs at least one sample (row)")
    if array.shape[1] != n_features:
        raise ValueError(f"{name} has {array.shape[1]} features (columns), but the network expects "
                         f"{n_features}")
    return convert_finite(name, array, dtype, finite)


def check_targets(y, loss, n_samples, n_outputs, dtype, name="y"):
    """The targets of `n_samples` samples for `loss`, as (labels, targets).

    cross_entropy takes class labels, a 1-D array of integers (or of floats
    with whole values) in [0, n_outputs), returned as int64 `labels`; or rows
    of class probabilities (n_samples, n_outputs). mse, binary_cross_entropy
    and poisson take (n_samples, n_outputs) rows (in [0, 1] for
    binary_cross_entropy, >= 0 for poisson). Exactly one of the pair is not None.
    """
    array = as_real_array(name, y)
    if array.ndim == 0 or array.shape[0] != n_samples:
        got = "a scalar" if array.ndim == 0 else f"{array.shape[0]} samples"
        raise ValueError(f"{name} has {got}, but X has {n_samples}: they need one target per sample")
    refuse_nonfinite(name, array)

    if loss == "cross_entropy" and array.ndim == 1:
        if array.dtype.kind == "b":
            raise TypeError(f"{name} must hold integer class labels, got dtype bool")
        if not holds_whole_numbers(array):
            raise ValueError(f"{name} holds class labels with fractional parts; labels must be whole numbers")
        low, high = array.min(), array.max()
        if low < 0 or high >= n_outputs:
            bad = low if low < 0 else high
            raise ValueError(f"{name} holds class label {bad:g}, outside [0, {n_outputs}) for a network "
                             f"with {n_outputs} outputs")
        return array.astype(np.int64, copy=False), None

    expected = f"({n_samples}, {n_outputs})"
    if array.shape != (n_samples, n_outputs):
        what = ("1-D class labels or rows of class probabilities " + expected
                if loss == "cross_entropy" else f"targets of shape {expected}")
        hint = "; reshape with y.reshape(-1, 1)" if array.ndim == 1 and n_outputs == 1 else ""
        raise ValueError(f"{name} must be {what} for loss {loss!r}, got shape {array.shape}{hint}")
    if loss == "binary_cross_entropy" and (array.min() < 0 or array.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1] for loss 'binary_cross_entropy'")
    if loss == "poisson" and array.min() < 0:
        raise ValueError(f"{name} must be >= 0 for loss 'poisson' (counts or rates), got {array.min():g}")
    if loss == "cross_entropy":
        sums = array.sum(axis=1, dtype=np.float64)
        if array.min() < 0 or not np.allclose(sums, 1.0, rtol=0, atol=1e-5):
            raise ValueError(f"{name} rows must be class probabilities: non-negative, each row summing to 1")
    return None, convert_finite(name, array, dtype)


def holds_whole_numbers(array):
    """True when every element of a numeric array is a finite whole number (any dtype)."""
    if array.dtype.kind in "biu":
        return True
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.isfinite(array)) and np.all(np.floor(array) == array))


def check_sample_weight(sample_weight, n_samples, name="sample_weight"):
    """`sample_weight` as a contiguous float64 array of `n_samples` finite values >= 0, not all 0.

    Always a new array: the core reads it after other threads could change the caller's.
    """
    array = as_real_array(name, sample_weight)
    if array.ndim != 1 or array.shape[0] != n_samples:
        raise ValueError(f"{name} must be 1-D with one weight per sample ({n_samples}), got shape {array.shape}")
    weights = np.array(array, dtype=np.float64, order="C")
    if not np.all(np.isfinite(weights)):
        raise ValueError(f"{name} contains NaN or infinity")
    if weights.min() < 0:
        raise ValueError(f"{name} must be >= 0, got {weights.min():g}")
    if not weights.sum() > 0:
        raise ValueError(f"{name} must have a positive sum: at least one sample must carry weight")
    return weights


def check_real(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)
