"""Small networks run on the core's own small-matrix kernel (small_gemm.hpp).

Products of a few thousand multiply-adds skip Eigen's blocked product; the
kernel works in SIMD packets of the build's width, then half and quarter
packets, then single rows, and in blocks of 4 columns, then 3, 2, 1. Widths
and batch sizes here are chosen to hit every one of those edges, and the
results are compared with the NumPy backend (tolerances as in test_parity.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from conftest import RTOL, make_data

SIZES = [[1, 3, 1], [5, 17, 3], [17, 33, 5], [33, 1, 17], [3, 5, 33, 1], [64, 32, 10]]
BATCHES = [1, 7, 16]


def atol(dtype):
    return 1e-12 if dtype == "float64" else 1e-6


def pair(sizes, dtype, loss):
    output = "softmax" if loss == "cross_entropy" else "identity"
    return [bp.Network(sizes, activation="tanh", output=output, loss=loss, dtype=dtype, backend=backend, seed=3)
            for backend in ("numpy", "native")]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "-".join(map(str, s)))
def test_forward_and_gradients_of_odd_shapes(sizes, dtype):
    loss = "cross_entropy" if sizes[-1] > 1 else "mse"
    reference, native = pair(sizes, dtype, loss)
    for rows in BATCHES:
        X, y = make_data(loss, rows, sizes[0], sizes[-1], seed=rows)
        np.testing.assert_allclose(native.forward(X), reference.forward(X), rtol=RTOL[dtype], atol=atol(dtype))
        (ref_loss, ref_grads), (nat_loss, nat_grads) = reference.gradients(X, y), native.gradients(X, y)
        assert nat_loss == pytest.approx(ref_loss, rel=RTOL[dtype])
        for (rW, rb), (nW, nb) in zip(ref_grads, nat_grads):
            np.testing.assert_allclose(nW, rW, rtol=RTOL[dtype], atol=atol(dtype))
            np.testing.assert_allclose(nb, rb, rtol=RTOL[dtype], atol=atol(dtype))


@pytest.mark.parametrize("batch_size", BATCHES)
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "-".join(map(str, s)))
def test_training_of_odd_shapes(sizes, batch_size):
    loss = "cross_entropy" if sizes[-1] > 1 else "mse"
    reference, native = pair(sizes, "float64", loss)
    X, y = make_data(loss, 45, sizes[0], sizes[-1])  # 45 rows: a short last batch for every batch size
    for net in (reference, native):
        net.fit(X, y, epochs=2, batch_size=batch_size, optimizer=bp.SGD(lr=0.05, momentum=0.9))
    # Up to 90 steps with momentum: rounding differences grow along the way.
    for r, n in zip(reference.layers, native.layers):
        np.testing.assert_allclose(n.W, r.W, rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(n.b, r.b, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sizes", [[5, 17, 3], [3, 5, 33, 1], [1, 3, 1]], ids=lambda s: "-".join(map(str, s)))
def test_gradients_summed_over_chunks(sizes, dtype):
    # Over more rows than one inference chunk (1024) the core adds each chunk's
    # weight gradients to the last (the kernel's accumulate mode, through its
    # row tails as well): still the NumPy backend's mean gradient.
    loss = "cross_entropy" if sizes[-1] > 1 else "mse"
    reference, native = pair(sizes, dtype, loss)
    X, y = make_data(loss, 2500, sizes[0], sizes[-1], seed=5)
    (ref_loss, ref_grads), (nat_loss, nat_grads) = reference.gradients(X, y), native.gradients(X, y)
    assert nat_loss == pytest.approx(ref_loss, rel=RTOL[dtype])
    for (rW, rb), (nW, nb) in zip(ref_grads, nat_grads):
        np.testing.assert_allclose(nW, rW, rtol=RTOL[dtype], atol=atol(dtype))
        np.testing.assert_allclose(nb, rb, rtol=RTOL[dtype], atol=atol(dtype))
