"""Networks actually learn: XOR with a 2-2-1 sigmoid network, digits with an MLP."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from backprop.datasets import load_digits

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=float)


def train_xor(backend, seed, epochs=3000):
    # The classic setting: online learning (batch_size=1), the per-sample delta rule.
    net = bp.Network([2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse", dtype="float64",
                     backend=backend, seed=seed)
    net.fit(XOR_X, XOR_Y, epochs=epochs, batch_size=1, optimizer=bp.SGD(lr=2.0))
    return net


def test_xor_is_learned(backend):
    net = train_xor(backend, seed=1)
    np.testing.assert_array_equal(net.forward(XOR_X) > 0.5, XOR_Y > 0.5)
    assert net.evaluate(XOR_X, XOR_Y)["loss"] < 0.01


def test_xor_converges_from_most_starts(backend):
    # 2-2-1 XOR has local minima, so not every start converges; most must.
    solved = [bool(np.all((train_xor(backend, seed).forward(XOR_X) > 0.5) == (XOR_Y > 0.5)))
              for seed in range(10)]
    assert sum(solved) >= 5, solved


def test_xor_with_binary_cross_entropy(backend):
    net = bp.Network([2, 4, 1], activation="tanh", output="sigmoid", loss="binary_cross_entropy",
                     dtype="float64", backend=backend, seed=0)
    hist = net.fit(XOR_X, XOR_Y, epochs=500, batch_size=4, optimizer=bp.Adam(lr=0.05))
    np.testing.assert_array_equal(net.predict(XOR_X), XOR_Y.astype(int))
    assert hist["accuracy"][-1] == 1.0
    assert hist["loss"][-1] < hist["loss"][0] / 10


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_digits_reach_95_percent(backend, dtype):
    X, y = load_digits()
    assert X.shape == (1797, 64) and set(np.unique(y)) == set(range(10))
    X = X / 16.0
    order = np.random.default_rng(0).permutation(len(y))
    test, train = order[:360], order[360:]
    net = bp.Network([64, 64, 10], activation="relu", dtype=dtype, backend=backend, seed=0)
    hist = net.fit(X[train], y[train], epochs=20, batch_size=32, optimizer=bp.SGD(lr=0.05, momentum=0.9),
                   validation_data=(X[test], y[test]))
    assert net.evaluate(X[test], y[test])["accuracy"] >= 0.95
    assert hist["val_accuracy"][-1] == net.evaluate(X[test], y[test])["accuracy"]
    assert np.mean(net.predict(X[test]) == y[test]) >= 0.95
