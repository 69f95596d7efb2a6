"""Native core against the NumPy reference: same math, same numbers.

Tolerances: float64 rtol 1e-10 (the two differ only in summation order
inside matrix products), float32 rtol 1e-4. After several epochs the
trajectories may drift apart by rounding, so training comparisons use the
looser figures stated at each test.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from conftest import RTOL, make_data

NETWORKS = [  # (sizes, hidden activation, output, loss)
    ([6, 8, 3], "relu", "softmax", "cross_entropy"),
    ([6, 8, 7, 3], "tanh", "sigmoid", "binary_cross_entropy"),
    ([6, 5, 2], "sigmoid", "identity", "mse"),
    ([6, 9, 4, 2], "leaky_relu", "tanh", "mse"),
    ([6, 3], "relu", "softmax", "cross_entropy"),
    ([6, 8, 2], "tanh", "exp", "poisson"),
]
DTYPES = ["float64", "float32"]


def pair(sizes, activation, output, loss, dtype, seed=0):
    return [bp.Network(sizes, activation=activation, output=output, loss=loss, dtype=dtype, backend=b,
                       seed=seed) for b in ("numpy", "native")]


def atol(dtype):
    return 1e-12 if dtype == "float64" else 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes, activation, output, loss", NETWORKS)
def test_forward_loss_and_gradients_agree(sizes, activation, output, loss, dtype):
    reference, native = pair(sizes, activation, output, loss, dtype)
    assert native.backend == "native"
    X, y = make_data(loss, 2100, sizes[0], sizes[-1])  # more rows than one core chunk (1024)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(native.forward(X), reference.forward(X), rtol=rtol, atol=atol(dtype))
    ref_eval, nat_eval = reference.evaluate(X, y), native.evaluate(X, y)
    assert ref_eval.keys() == nat_eval.keys()
    for key in ref_eval:
        assert nat_eval[key] == pytest.approx(ref_eval[key], rel=rtol)
    ref_loss, ref_grads = reference.gradients(X, y)
    nat_loss, nat_grads = native.gradients(X, y)
    assert nat_loss == pytest.approx(ref_loss, rel=rtol)
    for (rW, rb), (nW, nb) in zip(ref_grads, nat_grads):
        assert nW.dtype == np.dtype(dtype) and nW.shape == rW.shape and nb.shape == rb.shape
        np.testing.assert_allclose(nW, rW, rtol=rtol, atol=atol(dtype))
        np.testing.assert_allclose(nb, rb, rtol=rtol, atol=atol(dtype))


OPTIMIZERS = {
    "sgd": lambda: bp.SGD(lr=0.05),
    "momentum": lambda: bp.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3),
    "nesterov": lambda: bp.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda: bp.Adam(lr=0.01, weight_decay=1e-3),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("sizes, activation, output, loss", NETWORKS[:3] + NETWORKS[5:])
def test_training_agrees(sizes, activation, output, loss, optimizer, dtype):
    reference, native = pair(sizes, activation, output, loss, dtype, seed=7)
    X, y = make_data(loss, 150, sizes[0], sizes[-1], seed=1)
    histories = [net.fit(X, y, epochs=4, batch_size=16, optimizer=OPTIMIZERS[optimizer](),
                         validation_data=(X[:20], y[:20]), record_grad_norms=True)
                 for net in (reference, native)]
    # float64: rounding differences grow over 40 steps but stay far below 1e-8.
    # float32: rtol 1e-3 after 40 steps of single-precision arithmetic.
    rtol, tol = (1e-8, 1e-10) if dtype == "float64" else (1e-3, 1e-5)
    for r, n in zip(reference.layers, native.layers):
        np.testing.assert_allclose(n.W, r.W, rtol=rtol, atol=tol)
        np.testing.assert_allclose(n.b, r.b, rtol=rtol, atol=tol)
    assert histories[0].history.keys() == histories[1].history.keys()
    for key in histories[0].history:
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=rtol, atol=tol)
    np.testing.assert_allclose(histories[1].grad_norms, histories[0].grad_norms, rtol=rtol, atol=tol)
    assert reference.optimizer.step_count == native.optimizer.step_count == 4 * 10


BLOCKS = [  # (hidden activations, norm, dropout)
    (["gelu", "silu"], "layer", 0.0),
    (["elu", "tanh"], None, [0.3, 0.1]),
    (["relu", "gelu"], "layer", 0.25),
]
BLOCK_OPTIMIZERS = {"adamw-clip": lambda: bp.AdamW(lr=0.01, clip_norm=0.5),
                    "momentum-clip": lambda: bp.SGD(lr=0.05, momentum=0.9, clip_value=0.01)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation, norm, dropout", BLOCKS)
def test_hidden_blocks_agree(activation, norm, dropout, dtype):
    """LayerNorm, dropout (the same masks: a pure function of seed, step, layer, row, unit) and the new
    activations, over more rows than one core chunk; then training with AdamW and clipping."""
    reference, native = (bp.Network([6, 9, 7, 3], activation=activation, norm=norm, dropout=dropout, dtype=dtype,
                                     backend=b, seed=2) for b in ("numpy", "native"))
    X, y = make_data("cross_entropy", 2100, 6, 3)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(native.forward(X), reference.forward(X), rtol=rtol, atol=atol(dtype))
    ref_loss, ref_grads = reference.gradients(X, y, flat=True)
    nat_loss, nat_grads = native.gradients(X, y, flat=True)
    assert nat_loss == pytest.approx(ref_loss, rel=rtol)
    np.testing.assert_allclose(nat_grads, ref_grads, rtol=rtol, atol=atol(dtype))
    for name, make in BLOCK_OPTIMIZERS.items():
        for net in (reference, native):
            net.fit(X[:200], y[:200], epochs=2, batch_size=32, optimizer=make())
        tol = dict(rtol=1e-8, atol=1e-10) if dtype == "float64" else dict(rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(native.parameters(), reference.parameters(), err_msg=name, **tol)


@pytest.mark.parametrize("batch_size", [1, 7, None])
def test_batch_sizes_agree(batch_size):
    reference, native = pair([5, 6, 3], "tanh", "softmax", "cross_entropy", "float64", seed=3)
    X, y = make_data("cross_entropy", 30, 5, 3, seed=2)
    for net in (reference, native):
        net.fit(X, y, epochs=3, batch_size=batch_size, optimizer=bp.SGD(lr=0.1, momentum=0.5))
    for r, n in zip(reference.layers, native.layers):
        np.testing.assert_allclose(n.W, r.W, rtol=1e-10, atol=1e-12)


def strided_views(X):
    """The same rows in several memory layouts the core must read without error."""
    wide = np.zeros((X.shape[0], 2 * X.shape[1]))
    wide[:, ::2] = X
    return {
        "fortran": np.asfortranarray(X),
        "column_stride": wide[:, ::2],
        "reversed": X[::-1][::-1],
        "negative_stride": np.ascontiguousarray(X[::-1])[::-1],
        "every_other_row": np.repeat(X, 2, axis=0)[::2],
    }


@pytest.mark.parametrize("layout", ["fortran", "column_stride", "reversed", "negative_stride", "every_other_row"])
def test_non_contiguous_inputs(layout):
    net = bp.Network([5, 7, 3], activation="relu", dtype="float64", seed=0)
    X, y = make_data("cross_entropy", 40, 5, 3)
    view = strided_views(X)[layout]
    np.testing.assert_array_equal(view, X)
    np.testing.assert_allclose(net.forward(view), net.forward(X), rtol=1e-14)
    assert net.evaluate(view, y) == pytest.approx(net.evaluate(X, y), rel=1e-14)
    twin = bp.Network([5, 7, 3], activation="relu", dtype="float64", seed=0)
    net.fit(view, y, epochs=2, batch_size=8)
    twin.fit(X, y, epochs=2, batch_size=8)
    np.testing.assert_allclose(net.layers[0].W, twin.layers[0].W, rtol=1e-14)


def test_read_only_memmap_input(tmp_path):
    X, y = make_data("cross_entropy", 64, 5, 3)
    path = tmp_path / "X.npy"
    np.save(path, X.astype(np.float32))
    mapped = np.load(path, mmap_mode="r")
    assert not mapped.flags.writeable
    net = bp.Network([5, 4, 3], seed=0)
    expected = net.forward(X.astype(np.float32))
    np.testing.assert_array_equal(net.forward(mapped), expected)
    net.fit(mapped, y, epochs=1)
    np.testing.assert_array_equal(np.load(path), X.astype(np.float32))


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("sizes, activation, output, loss", NETWORKS)
def test_gradients_return_the_accuracy_of_evaluate(sizes, activation, output, loss, backend):
    # The distributed loop logs accuracy from its gradient pass: it must be evaluate's figure.
    net = bp.Network(sizes, activation=activation, output=output, loss=loss, dtype="float64", backend=backend,
                     seed=3)
    X, y = make_data(loss, 1500, sizes[0], sizes[-1])
    weights = np.random.default_rng(4).random(X.shape[0])
    for sample_weight in (None, weights):
        loss_value, _, accuracy = net.gradients(X, y, flat=True, sample_weight=sample_weight, return_accuracy=True)
        expected = net.evaluate(X, y, sample_weight=sample_weight)
        assert loss_value == pytest.approx(expected["loss"], rel=1e-12)
        if net.is_classifier:
            assert accuracy == pytest.approx(expected["accuracy"], rel=1e-12)
        else:
            assert accuracy is None
