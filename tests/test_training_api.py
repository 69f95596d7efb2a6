"""The public pieces of the training loop: parameters(), flat gradients,
train_on_batch, apply_gradients, shuffle orders, validation_split and
validation_freq."""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from conftest import assert_unchanged, make_data, snapshot


def net_for(backend, seed=0, dtype="float64"):
    return bp.Network([5, 6, 3], activation="tanh", dtype=dtype, backend=backend, seed=seed)


def test_parameters_is_the_networks_storage(backend):
    net = net_for(backend)
    params = net.parameters()
    assert params.ndim == 1 and params.size == net.n_params and params.flags.writeable
    layout = np.concatenate([np.concatenate([layer.W.ravel(), layer.b]) for layer in net.layers])
    np.testing.assert_array_equal(params, layout)
    params[0] = 42.0
    assert net.layers[0].W[0, 0] == 42.0
    X = np.random.default_rng(0).normal(size=(4, 5))
    before = net.forward(X)
    params[...] = 0
    assert not np.allclose(before, net.forward(X))


def test_flat_gradients_follow_the_parameter_layout(backend):
    net = net_for(backend)
    X, y = make_data("cross_entropy", 20, 5, 3)
    loss, grads = net.gradients(X, y)
    flat_loss, flat = net.gradients(X, y, flat=True)
    assert flat_loss == loss and flat.shape == (net.n_params,)
    np.testing.assert_array_equal(flat, np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db in grads]))


@pytest.mark.parametrize("optimizer", [lambda: bp.SGD(lr=0.1), lambda: bp.SGD(lr=0.1, momentum=0.9, nesterov=True),
                                       lambda: bp.Adam(lr=0.01, weight_decay=0.01)])
def test_train_on_batch_equals_a_one_batch_fit(backend, optimizer):
    X, y = make_data("cross_entropy", 16, 5, 3)
    a, b = net_for(backend), net_for(backend)
    opt_a, opt_b = optimizer(), optimizer()
    for _ in range(3):
        logs = a.train_on_batch(X, y, opt_a)
        history = b.fit(X, y, epochs=1, batch_size=None, shuffle=False, optimizer=opt_b)
        assert logs["loss"] == pytest.approx(history["loss"][0], rel=1e-12)
        assert logs["accuracy"] == history["accuracy"][0]
    np.testing.assert_array_equal(a.parameters(), b.parameters())
    assert opt_a.step_count == opt_b.step_count == 3
    assert a.optimizer is opt_a


def test_apply_gradients_equals_train_on_batch(backend):
    X, y = make_data("cross_entropy", 16, 5, 3)
    a, b = net_for(backend), net_for(backend)
    opt_a, opt_b = bp.Adam(lr=0.01), bp.Adam(lr=0.01)
    for _ in range(3):
        a.train_on_batch(X, y, opt_a)
        b.apply_gradients(b.gradients(X, y, flat=True)[1], opt_b)
    np.testing.assert_allclose(a.parameters(), b.parameters(), rtol=1e-12, atol=1e-15)


def test_apply_gradients_refuses_bad_gradients(backend):
    net = net_for(backend)
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"grads must have shape"):
        net.apply_gradients(np.zeros(3))
    with pytest.raises(ValueError, match="grads contains NaN"):
        net.apply_gradients(np.full(net.n_params, np.nan))
    with pytest.raises(ValueError, match="batch_weight is required"):
        net.apply_gradients(np.zeros(net.n_params), bp.SGD(lr=0.1, convention="sklearn"))
    with pytest.raises(FloatingPointError, match="apply_gradients"):
        net.apply_gradients(np.full(net.n_params, 1e308), bp.SGD(lr=1e10))
    assert_unchanged(net, before)


def test_train_on_batch_divergence_changes_nothing(backend):
    net = bp.Network([2, 1], output="identity", backend=backend, seed=0)
    before = snapshot(net)
    with pytest.raises(FloatingPointError, match="train_on_batch"):
        net.train_on_batch(np.full((4, 2), 1e3), np.ones((4, 1)), bp.SGD(lr=1e308))
    assert_unchanged(net, before)


def test_shuffle_callable_gives_the_order(backend):
    X, y = make_data("cross_entropy", 30, 5, 3)
    orders = [np.random.default_rng(e).permutation(30) for e in range(3)]
    a, b = net_for(backend), net_for(backend)
    a.fit(X, y, epochs=3, batch_size=4, shuffle=lambda epoch: orders[epoch])
    for order in orders:
        b.fit(X[order], y[order], epochs=1, batch_size=4, shuffle=False)
    np.testing.assert_array_equal(a.parameters(), b.parameters())


def test_shuffle_true_draws_from_rng(backend):
    X, y = make_data("cross_entropy", 30, 5, 3)
    a, b = net_for(backend), net_for(backend)
    a.rng = np.random.default_rng(123)
    order = np.random.default_rng(123).permutation(30)
    a.fit(X, y, epochs=1, batch_size=4)
    b.fit(X, y, epochs=1, batch_size=4, shuffle=lambda epoch: order)
    np.testing.assert_array_equal(a.parameters(), b.parameters())
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        a.rng = 5


@pytest.mark.parametrize("order, match", [(lambda e: np.array([0, 99]), "outside"),
                                          (lambda e: np.array([]), "non-empty"),
                                          (lambda e: np.zeros(3), "integer")])
def test_bad_shuffle_order_is_refused(backend, order, match):
    X, y = make_data("cross_entropy", 30, 5, 3)
    net = net_for(backend)
    before = snapshot(net)
    with pytest.raises(ValueError, match=match):
        net.fit(X, y, shuffle=order)
    assert_unchanged(net, before)


def test_validation_split_takes_the_last_rows_before_shuffling(backend):
    X, y = make_data("cross_entropy", 50, 5, 3)
    a, b = net_for(backend), net_for(backend)
    ha = a.fit(X, y, epochs=2, batch_size=8, validation_split=0.3)
    hb = b.fit(X[:35], y[:35], epochs=2, batch_size=8, validation_data=(X[35:], y[35:]))
    np.testing.assert_array_equal(a.parameters(), b.parameters())
    assert ha.history == hb.history


@pytest.mark.parametrize("split, match", [(1.0, r"in \[0, 1\)"), (-0.1, r"in \[0, 1\)"),
                                          (0.99, "both need one")])
def test_bad_validation_split(backend, split, match):
    X, y = make_data("cross_entropy", 20, 5, 3)
    net = net_for(backend)
    with pytest.raises(ValueError, match=match):
        net.fit(X, y, validation_split=split)
    with pytest.raises(ValueError, match="not both"):
        net.fit(X, y, validation_split=0.5, validation_data=(X, y))


def test_validation_freq(backend):
    X, y = make_data("cross_entropy", 20, 5, 3)
    net = net_for(backend)
    every_second = net.fit(X, y, epochs=5, validation_data=(X, y), validation_freq=2)
    assert len(every_second["val_loss"]) == 2 and len(every_second["loss"]) == 5
    listed = net.fit(X, y, epochs=5, validation_data=(X, y), validation_freq=[1, 5])
    assert len(listed["val_loss"]) == 2
    with pytest.raises(ValueError, match="validation_freq must be >= 1"):
        net.fit(X, y, validation_freq=0)


def test_history_records_the_learning_rate(backend):
    X, y = make_data("cross_entropy", 20, 5, 3)
    net = net_for(backend)
    history = net.fit(X, y, epochs=2, optimizer=bp.SGD(lr=0.25))
    assert history["lr"] == [0.25, 0.25]
