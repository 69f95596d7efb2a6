"""Central finite differences (float64) against the analytic gradients.

Every allowed output/loss pairing, every hidden activation, at several
depths, for both backends. Reports ‖g − ĝ‖ / ‖g + ĝ‖ like mlpack's check.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from conftest import make_data

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "gelu", "silu", "elu"]
# (output activation, loss): all pairings the API allows.
PAIRINGS = [("identity", "mse"), ("sigmoid", "mse"), ("tanh", "mse"), ("relu", "mse"),
            ("leaky_relu", "mse"), ("gelu", "mse"), ("silu", "mse"), ("elu", "mse"), ("softmax", "cross_entropy"),
            ("sigmoid", "binary_cross_entropy"), ("exp", "poisson")]
CASES = ([(output, loss, None, 0) for output, loss in PAIRINGS]
         + [(output, loss, hidden, depth) for output, loss in PAIRINGS for hidden in HIDDEN for depth in (1, 3)])


def numeric_gradients(net, X, y, h=1e-6):
    """Central differences of the mean loss with respect to every parameter."""
    result = []
    for layer in net.layers:
        pair = []
        for array in (layer.W, layer.b):
            g = np.zeros_like(array)
            flat, g_flat = array.reshape(-1), g.reshape(-1)
            for i in range(flat.size):
                saved = flat[i]
                flat[i] = saved + h
                plus = net.evaluate(X, y)["loss"]
                flat[i] = saved - h
                minus = net.evaluate(X, y)["loss"]
                flat[i] = saved
                g_flat[i] = (plus - minus) / (2 * h)
            pair.append(g)
        result.append(pair)
    return result


def relative_error(analytic, numeric):
    a = np.concatenate([np.concatenate([dW.ravel(), db.ravel()]) for dW, db in analytic])
    n = np.concatenate([np.concatenate([dW.ravel(), db.ravel()]) for dW, db in numeric])
    return np.linalg.norm(a - n) / np.linalg.norm(a + n)


@pytest.mark.parametrize("output, loss, hidden, depth", CASES)
def test_gradients_match_finite_differences(backend, output, loss, hidden, depth):
    sizes = [4] + [5] * depth + [3]
    net = bp.Network(sizes, activation=hidden or "relu", output=output, loss=loss, init="xavier",
                     dtype="float64", backend=backend, seed=1)
    for layer in net.layers:  # non-zero biases so every term of db is exercised
        layer.b[...] = np.random.default_rng(2).normal(scale=0.1, size=layer.b.shape)
    X, y = make_data(loss, 7, 4, 3, seed=3)
    if output == "relu":
        y = np.abs(y)  # keep outputs mostly in relu's active region
    loss_value, grads = net.gradients(X, y)
    assert np.isclose(loss_value, net.evaluate(X, y)["loss"], rtol=1e-12)
    assert relative_error(grads, numeric_gradients(net, X, y)) < 1e-7


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("norm, dropout", [("layer", 0.0), (None, 0.4), ("layer", [0.3, 0.5])])
def test_hidden_blocks_match_finite_differences(backend, hidden, norm, dropout):
    """LayerNorm (γ, β included) and dropout with a fixed mask: the training loss of one step's masks
    (gradients() draws those of the next step, the same for every call) against central differences."""
    net = bp.Network([4, 6, 5, 3], activation=hidden, norm=norm, dropout=dropout, dtype="float64",
                     backend=backend, seed=1)
    rng = np.random.default_rng(2)
    params = net.parameters()
    params += rng.normal(scale=0.1, size=params.shape)  # γ ≠ 1, β ≠ 0, biases ≠ 0
    X, y = make_data("cross_entropy", 9, 4, 3, seed=3)
    loss, analytic = net.gradients(X, y, flat=True)
    if not dropout:
        assert loss == pytest.approx(net.evaluate(X, y)["loss"], rel=1e-12)
    numeric = np.zeros_like(analytic)
    h = 1e-6
    for i in range(params.size):
        saved = params[i]
        params[i] = saved + h
        plus = net.gradients(X, y)[0]
        params[i] = saved - h
        minus = net.gradients(X, y)[0]
        params[i] = saved
        numeric[i] = (plus - minus) / (2 * h)
    assert np.linalg.norm(analytic - numeric) / np.linalg.norm(analytic + numeric) < 1e-7


def test_cross_entropy_with_probability_targets(backend):
    net = bp.Network([4, 6, 3], activation="tanh", dtype="float64", backend=backend, seed=0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 4))
    y = rng.dirichlet(np.ones(3), size=6)
    _, grads = net.gradients(X, y)
    assert relative_error(grads, numeric_gradients(net, X, y)) < 1e-7


def test_poisson_loss_is_half_the_deviance(backend):
    """poisson: Σ_k xlogy(y, y/a) − y + a with a = exp(z), as scikit-learn's poisson_loss; δ = a − y."""
    special = pytest.importorskip("scipy.special")
    net = bp.Network([3, 4, 2], activation="tanh", loss="poisson", dtype="float64", backend=backend, seed=0)
    assert net.activations[-1] == "exp"
    X, y = make_data("poisson", 9, 3, 2, seed=1)
    assert (y == 0).any()  # the 0·log 0 = 0 branch is exercised
    a = net.forward(X)
    z = np.tanh(X @ net.layers[0].W.T + net.layers[0].b) @ net.layers[1].W.T + net.layers[1].b
    np.testing.assert_allclose(a, np.exp(z), rtol=1e-14)
    expected = np.mean(np.sum(special.xlogy(y, y / a) - y + a, axis=1))
    assert net.evaluate(X, y)["loss"] == pytest.approx(expected, rel=1e-13)
    _, grads = net.gradients(X, y)
    np.testing.assert_allclose(grads[1][1], (a - y).mean(axis=0), rtol=1e-13)


def test_hand_worked_network(backend):
    """A 1-1-1 sigmoid/mse network, one sample, worked by hand."""
    net = bp.Network([1, 1, 1], activation="sigmoid", output="sigmoid", loss="mse", dtype="float64",
                     backend=backend)
    net.layers[0].W = [[0.5]]
    net.layers[0].b = [0.1]
    net.layers[1].W = [[-1.0]]
    net.layers[1].b = [0.2]
    x, y = 2.0, 1.0
    sig = lambda z: 1 / (1 + np.exp(-z))
    a1 = sig(0.5 * x + 0.1)
    a2 = sig(-1.0 * a1 + 0.2)
    delta2 = (a2 - y) * a2 * (1 - a2)
    delta1 = -1.0 * delta2 * a1 * (1 - a1)
    loss, grads = net.gradients([[x]], [[y]])
    assert loss == pytest.approx(0.5 * (a2 - y) ** 2, rel=1e-14)
    np.testing.assert_allclose(grads[1][0], [[delta2 * a1]], rtol=1e-14)
    np.testing.assert_allclose(grads[1][1], [delta2], rtol=1e-14)
    np.testing.assert_allclose(grads[0][0], [[delta1 * x]], rtol=1e-14)
    np.testing.assert_allclose(grads[0][1], [delta1], rtol=1e-14)
