"""Shared fixtures: small data sets, networks in both backends, tolerances."""

from __future__ import annotations

import sys

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
    """Copies of every layer's parameters (W, b, and LayerNorm's γ, β or None), to check that nothing changed."""
    return [tuple(None if a is None else a.copy() for a in (layer.W, layer.b, layer.gamma, layer.beta))
            for layer in net.layers]


def assert_unchanged(net, before):
    for saved, layer in zip(before, net.layers):
        for value, array in zip(saved, (layer.W, layer.b, layer.gamma, layer.beta)):
            np.testing.assert_array_equal(array, value)


# Why the PyTorch tests skip: the [test] extra leaves PyTorch out, since off this project's
# machines a plain `pip install torch` brings the CUDA build (gigabytes).
TORCH_MISSING = ("PyTorch is not installed ([test] leaves it out); to run these tests install the CPU build: "
                 "pip install torch --index-url https://download.pytorch.org/whl/cpu && pip install \".[test,torch]\"")


# Property-based tests (test_properties.py): 100 examples per test by
# default, 3000 with `pytest --hypothesis-profile=long`.
try:
    from hypothesis import HealthCheck, settings
except ImportError:
    pass
else:
    # When a test fails, hypothesis's pytest plugin imports its patch writer
    # (libcst), whose DeprecationWarning pytest turns into an INTERNALERROR that
    # hides the failing example; the patch would also go into the checkout.
    # Without it the plugin reports the failure as usual.
    sys.modules.setdefault("hypothesis.extra._patching", None)
    # No deadline, and no complaint about slow data generation: the machine is
    # shared (and slower still under the sanitizers); speed is not what these
    # tests check. No example database: nothing is written into the checkout.
    quiet = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
    settings.register_profile("default", max_examples=100, **quiet)
    settings.register_profile("long", max_examples=3000, **quiet)
    settings.load_profile("default")


@pytest.fixture(scope="module")
def one_thread():
    """One thread in backprop's core and in NumPy's/SciPy's BLAS for a module of tiny problems:
    with two shared cores a second thread only adds synchronisation (scikit-learn's estimator
    checks ran ten times slower on a busy machine)."""
    from threadpoolctl import threadpool_limits

    import backprop as bp
    before = bp.get_num_threads()
    with threadpool_limits(limits=1):
        bp.set_num_threads(1)
        yield
    bp.set_num_threads(before)
