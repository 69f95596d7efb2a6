"""Each optimizer's update recomputed independently, in the textbook form.

The math page (docs/guide/math.md) states SGD momentum as v ← μv − ηg, w ← w + v (Nesterov:
w ← w + μv − ηg) and Adam with bias-corrected m̂, v̂; the core uses
PyTorch's algebraically equal form, so float64 agrees to rounding.
Full-batch steps make each step's gradient known from net.gradients.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from conftest import make_data


def flat(pairs):
    return np.concatenate([np.concatenate([W.ravel(), b.ravel()]) for W, b in pairs])


def weight_mask(net):
    return flat([(np.ones_like(l.W), np.zeros_like(l.b)) for l in net.layers])


def run_steps(backend, optimizer, update, n_steps=3):
    """Take n_steps full-batch steps with `optimizer`; compare with `update` each step."""
    net = bp.Network([4, 6, 5, 3], activation="tanh", dtype="float64", backend=backend, seed=0)
    X, y = make_data("cross_entropy", 20, 4, 3)
    mask = weight_mask(net)
    state = {}
    for t in range(1, n_steps + 1):
        w = flat((l.W, l.b) for l in net.layers)
        _, grads = net.gradients(X, y)
        expected = update(w, flat(grads), mask, state, t)
        net.fit(X, y, epochs=1, batch_size=None, optimizer=optimizer)
        np.testing.assert_allclose(flat((l.W, l.b) for l in net.layers), expected, rtol=1e-12, atol=1e-14)
    assert optimizer.step_count == n_steps
    return net


def test_plain_sgd(backend):
    def update(w, g, mask, state, t):
        return w - 0.1 * g
    run_steps(backend, bp.SGD(lr=0.1), update)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum(backend, nesterov):
    mu, eta, lam = 0.9, 0.1, 0.01

    def update(w, g, mask, state, t):
        g = g + lam * mask * w
        v = mu * state.get("v", 0.0) - eta * g
        state["v"] = v
        return w + mu * v - eta * g if nesterov else w + v
    run_steps(backend, bp.SGD(lr=eta, momentum=mu, nesterov=nesterov, weight_decay=lam), update)


def test_adam(backend):
    eta, b1, b2, eps, lam = 0.01, 0.8, 0.99, 1e-6, 0.05

    def update(w, g, mask, state, t):
        g = g + lam * mask * w
        m = state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
        v = state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        return w - eta * m_hat / (np.sqrt(v_hat) + eps)
    run_steps(backend, bp.Adam(lr=eta, beta1=b1, beta2=b2, eps=eps, weight_decay=lam), update, n_steps=4)


def test_weight_decay_spares_biases(backend):
    net = bp.Network([3, 2], output="identity", loss="mse", dtype="float64", backend=backend, seed=0)
    net.layers[0].W = np.ones((2, 3))
    net.layers[0].b = np.ones(2)
    X, y = np.zeros((1, 3)), np.ones((1, 2))  # zero input and error: only decay acts
    net.fit(X, y, epochs=1, optimizer=bp.SGD(lr=0.5, weight_decay=0.1))
    np.testing.assert_allclose(net.layers[0].W, 0.95)
    np.testing.assert_allclose(net.layers[0].b, 1.0)


def test_state_carries_over_between_fits_and_resets_for_another_network(backend):
    X, y = make_data("cross_entropy", 16, 4, 3)
    one_fit = bp.Network([4, 3], dtype="float64", backend=backend, seed=0)
    two_fits = bp.Network([4, 3], dtype="float64", backend=backend, seed=0)
    one_fit.fit(X, y, epochs=2, batch_size=None, shuffle=False, optimizer=bp.Adam(lr=0.1))
    adam = bp.Adam(lr=0.1)
    two_fits.fit(X, y, epochs=1, batch_size=None, shuffle=False, optimizer=adam)
    two_fits.fit(X, y, epochs=1, batch_size=None, shuffle=False)  # reuses net.optimizer
    np.testing.assert_array_equal(two_fits.layers[0].W, one_fit.layers[0].W)
    assert adam.step_count == 2

    other = bp.Network([4, 3], dtype="float64", backend=backend, seed=0)
    other.fit(X, y, epochs=1, batch_size=None, shuffle=False, optimizer=adam)
    assert adam.step_count == 1  # fresh state for a different network


# -- the step counter -----------------------------------------------------------------------
@pytest.mark.parametrize("value, exc, match", [
    (-5, ValueError, r"optimizer.step_count must be >= 0, got -5"),
    (2**63 - 1, ValueError, r"optimizer.step_count must be at most 9223372036854775806"),
    (2**64, ValueError, r"optimizer.step_count must be at most"),
    (1.5, TypeError, r"optimizer.step_count must be an integer, got float"),
    (True, TypeError, r"optimizer.step_count must be an integer, got bool"),
    ("3", TypeError, r"optimizer.step_count must be an integer, got str"),
])
def test_step_count_is_checked_when_assigned(value, exc, match):
    for optimizer in (bp.SGD(lr=0.1), bp.Adam()):
        optimizer.step_count = 4
        with pytest.raises(exc, match=match):
            optimizer.step_count = value
        assert optimizer.step_count == 4
        optimizer.step_count = np.int64(7)
        assert optimizer.step_count == 7


@pytest.mark.parametrize("make", [lambda: bp.Adam(), lambda: bp.SGD(lr=0.1, momentum=0.9)],
                         ids=["adam", "sgd-momentum"])
@pytest.mark.parametrize("entry", ["fit", "train_on_batch", "apply_gradients"])
def test_steps_past_the_largest_step_count_are_refused_alike(make, entry):
    """Both backends refuse, with one message and before any step, what would
    overflow the core's signed 64-bit counter."""
    X, y = make_data("cross_entropy", 20, 4, 3)
    messages = set()
    for backend in ("numpy", "native"):
        net = bp.Network([4, 5, 3], dtype="float64", backend=backend, seed=0)
        optimizer = make()
        net.fit(X, y, epochs=1, batch_size=10, optimizer=optimizer)
        before = flat((l.W, l.b) for l in net.layers)
        state = {name: a.copy() for name, a in optimizer.state.items()}
        optimizer.step_count = bp.optim.MAX_STEP_COUNT - (1 if entry == "fit" else 0)  # fit takes 2 steps
        with pytest.raises(ValueError, match=r"optimizer.step_count is 92233720368547758\d\d: \d more step") as error:
            if entry == "fit":
                net.fit(X, y, epochs=1, batch_size=10, optimizer=optimizer)
            elif entry == "train_on_batch":
                net.train_on_batch(X, y, optimizer=optimizer)
            else:
                net.apply_gradients(net.gradients(X, y, flat=True)[1], optimizer=optimizer)
        messages.add(str(error.value))
        np.testing.assert_array_equal(flat((l.W, l.b) for l in net.layers), before)
        for name, value in state.items():
            np.testing.assert_array_equal(optimizer.state[name], value)
        optimizer.step_count = bp.optim.MAX_STEP_COUNT - 2
        net.fit(X, y, epochs=1, batch_size=10, optimizer=optimizer)  # room for exactly two steps
        assert optimizer.step_count == bp.optim.MAX_STEP_COUNT
    assert len(messages) == 1
