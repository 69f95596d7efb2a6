"""Shared fixtures: small data sets, networks in both backends, tolerances."""

from __future__ import annotations

import numpy as np
import pytest


BACKENDS = ["numpy", "native"]

# Parity tolerances between the native core and the NumPy reference.
RTOL = {"float64": 1e-10, "float32": 1e-4}


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def make_data(loss, n_samples, n_in, n_out, seed=0):
    """Random inputs and targets that suit `loss`."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_in))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, size=n_samples)
    elif loss == "binary_cross_entropy":
        y = (rng.random((n_samples, n_out)) > 0.5).astype(float)
    elif loss == "poisson":
        y = rng.poisson(1.5, size=(n_samples, n_out)).astype(float)  # counts, zeros included
    else:
        y = rng.normal(size=(n_samples, n_out))
    return X, y


def snapshot(net):
    """Copies of every layer's parameters, to check that nothing changed."""
    return [(layer.W.copy(), layer.b.copy()) for layer in net.layers]


def assert_unchanged(net, before):
    for (W, b), layer in zip(before, net.layers):
        np.testing.assert_array_equal(layer.W, W)
        np.testing.assert_array_equal(layer.b, b)


# Why the PyTorch tests skip: the [test] extra leaves PyTorch out, since off this project's
# machines a plain `pip install torch` brings the CUDA build (gigabytes).
TORCH_MISSING = ("PyTorch is not installed ([test] leaves it out); to run these tests install the CPU build: "
                 "pip install torch --index-url https://download.pytorch.org/whl/cpu && pip install \".[test,torch]\"")
