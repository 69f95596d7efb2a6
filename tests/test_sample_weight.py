"""Per-sample and per-class weights: the weighted mean loss R = Σ w_i·L_i / Σ w_i and its gradient.

Checked by finite differences, between the two backends, against repeated
rows, and against PyTorch's CrossEntropyLoss(weight=...) when installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp
from conftest import RTOL, assert_unchanged, make_data, snapshot

PAIRINGS = [("identity", "mse"), ("tanh", "mse"), ("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")]


def network(backend, output, loss, dtype="float64", seed=1):
    return bp.Network([4, 5, 3], activation="tanh", output=output, loss=loss, dtype=dtype, backend=backend, seed=seed)


def weights(n, seed=4):
    w = np.random.default_rng(seed).uniform(0.0, 3.0, n)
    w[1] = 0.0  # a sample that does not count
    return w


@pytest.mark.parametrize("output, loss", PAIRINGS)
def test_weighted_gradient_matches_finite_differences(backend, output, loss):
    net = network(backend, output, loss)
    X, y = make_data(loss, 9, 4, 3, seed=3)
    w = weights(9)
    value, grads = net.gradients(X, y, flat=True, sample_weight=w)
    params = net.parameters()
    numeric = np.empty_like(grads)
    h = 1e-6
    for i in range(params.size):
        saved = params[i]
        params[i] = saved + h
        plus = net.evaluate(X, y, sample_weight=w)["loss"]
        params[i] = saved - h
        minus = net.evaluate(X, y, sample_weight=w)["loss"]
        params[i] = saved
        numeric[i] = (plus - minus) / (2 * h)
    assert np.linalg.norm(grads - numeric) / np.linalg.norm(grads + numeric) < 1e-7
    assert value == pytest.approx(net.evaluate(X, y, sample_weight=w)["loss"], rel=1e-12)


@pytest.mark.parametrize("output, loss", PAIRINGS)
def test_weighted_loss_is_the_weighted_mean(backend, output, loss):
    net = network(backend, output, loss)
    X, y = make_data(loss, 12, 4, 3, seed=5)
    w = weights(12)
    per_sample = np.array([net.evaluate(X[i:i + 1], y[i:i + 1])["loss"] for i in range(12)])
    assert net.evaluate(X, y, sample_weight=w)["loss"] == pytest.approx(np.average(per_sample, weights=w), rel=1e-12)


@pytest.mark.parametrize("output, loss", PAIRINGS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_weighted_training_backends_agree(output, loss, dtype):
    X, y = make_data(loss, 50, 4, 3, seed=6)
    w = weights(50)
    nets = [network(b, output, loss, dtype) for b in ("native", "numpy")]
    histories = [net.fit(X, y, epochs=3, batch_size=8, optimizer=bp.Adam(lr=0.01), sample_weight=w,
                         validation_data=(X, y, w)) for net in nets]
    np.testing.assert_allclose(nets[0].parameters(), nets[1].parameters(), rtol=RTOL[dtype], atol=RTOL[dtype])
    for key in histories[0].history:
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=RTOL[dtype])


def test_integer_weights_equal_repeated_rows(backend):
    X, y = make_data("cross_entropy", 10, 4, 3, seed=7)
    counts = np.array([1, 2, 0, 3, 1, 1, 2, 1, 4, 1])
    net = network(backend, "softmax", "cross_entropy")
    weighted = net.gradients(X, y, flat=True, sample_weight=counts)
    repeated = net.gradients(np.repeat(X, counts, axis=0), np.repeat(y, counts), flat=True)
    assert weighted[0] == pytest.approx(repeated[0], rel=1e-12)
    np.testing.assert_allclose(weighted[1], repeated[1], rtol=1e-10, atol=1e-14)
    result = net.evaluate(X, y, sample_weight=counts)
    assert result["accuracy"] == pytest.approx(net.evaluate(np.repeat(X, counts, axis=0),
                                                            np.repeat(y, counts))["accuracy"])


def test_unit_weights_change_nothing(backend):
    X, y = make_data("cross_entropy", 40, 4, 3, seed=8)
    a, b = network(backend, "softmax", "cross_entropy"), network(backend, "softmax", "cross_entropy")
    a.fit(X, y, epochs=2, batch_size=7, optimizer=bp.SGD(lr=0.1, momentum=0.9))
    b.fit(X, y, epochs=2, batch_size=7, optimizer=bp.SGD(lr=0.1, momentum=0.9), sample_weight=np.ones(40))
    np.testing.assert_allclose(a.parameters(), b.parameters(), rtol=1e-12, atol=1e-15)


def test_batch_of_zero_weight_takes_a_zero_gradient_step(backend):
    X, y = make_data("cross_entropy", 4, 4, 3, seed=9)
    net = network(backend, "softmax", "cross_entropy")
    before = net.parameters().copy()
    w = np.array([0.0, 0.0, 1.0, 1.0])
    net.fit(X, y, epochs=1, batch_size=2, shuffle=False, optimizer=bp.SGD(lr=0.5), sample_weight=w)
    # The first step saw only weight 0: it changed nothing; the second did.
    changed = net.parameters() != before
    assert changed.any()
    manual = network(backend, "softmax", "cross_entropy")
    manual.train_on_batch(X[2:], y[2:], bp.SGD(lr=0.5))
    np.testing.assert_allclose(net.parameters(), manual.parameters(), rtol=1e-12)


def test_class_weight_equals_per_sample_weights(backend):
    X, y = make_data("cross_entropy", 30, 4, 3, seed=10)
    table = {0: 2.0, 2: 0.5}
    a, b = network(backend, "softmax", "cross_entropy"), network(backend, "softmax", "cross_entropy")
    a.fit(X, y, epochs=2, batch_size=6, class_weight=table)
    b.fit(X, y, epochs=2, batch_size=6, sample_weight=np.array([table.get(int(k), 1.0) for k in y]))
    np.testing.assert_array_equal(a.parameters(), b.parameters())


def test_balanced_class_weight_is_sklearns():
    sklearn_utils = pytest.importorskip("sklearn.utils.class_weight")
    y = np.array([0, 0, 0, 1, 2, 2])
    X = np.zeros((6, 4))
    net = network("numpy", "softmax", "cross_entropy")
    from backprop._training import check_class_weight
    expected = sklearn_utils.compute_sample_weight("balanced", y)
    np.testing.assert_allclose(check_class_weight("balanced", y, None, "cross_entropy", 3), expected)
    net.fit(X, y, class_weight="balanced")  # accepted by fit


def test_class_weight_matches_torch_cross_entropy(backend):
    torch = pytest.importorskip("torch")
    X, y = make_data("cross_entropy", 16, 4, 3, seed=11)
    class_weights = np.array([0.3, 2.0, 1.1])
    net = network(backend, "softmax", "cross_entropy")
    from backprop._training import check_class_weight
    loss, grads = net.gradients(X, y, sample_weight=check_class_weight(class_weights, y, None, "cross_entropy", 3))
    module = net.to_torch(logits=True)
    criterion = torch.nn.CrossEntropyLoss(weight=torch.tensor(class_weights))
    out = criterion(module(torch.tensor(X)), torch.tensor(y))
    out.backward()
    assert loss == pytest.approx(out.item(), rel=1e-12)
    linears = [m for m in module if isinstance(m, torch.nn.Linear)]
    for (dW, db), linear in zip(grads, linears):
        np.testing.assert_allclose(dW, linear.weight.grad.numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(db, linear.bias.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_binary_class_weight_uses_the_target():
    X, y = make_data("binary_cross_entropy", 20, 4, 1, seed=12)
    net = bp.Network([4, 3, 1], output="sigmoid", dtype="float64", backend="numpy", seed=0)
    twin = bp.Network([4, 3, 1], output="sigmoid", dtype="float64", backend="numpy", seed=0)
    net.fit(X, y, class_weight={1: 3.0}, batch_size=5)
    twin.fit(X, y, sample_weight=np.where(y[:, 0] > 0.5, 3.0, 1.0), batch_size=5)
    np.testing.assert_array_equal(net.parameters(), twin.parameters())


@pytest.mark.parametrize("bad, exc, match", [
    (np.ones(5), ValueError, r"sample_weight must be 1-D with one weight per sample \(10\)"),
    (np.ones((10, 1)), ValueError, "sample_weight must be 1-D"),
    (-np.ones(10), ValueError, "sample_weight must be >= 0"),
    (np.zeros(10), ValueError, "positive sum"),
    (np.where(np.arange(10) == 3, np.nan, 1.0), ValueError, "NaN"),
    (np.array(["a"] * 10), TypeError, "sample_weight must hold real numbers"),
])
@pytest.mark.parametrize("entry", ["fit", "evaluate", "gradients", "train_on_batch"])
def test_bad_sample_weight_is_refused_and_changes_nothing(backend, bad, exc, match, entry):
    X, y = make_data("cross_entropy", 10, 4, 3, seed=13)
    net = network(backend, "softmax", "cross_entropy")
    before = snapshot(net)
    with pytest.raises(exc, match=match):
        getattr(net, entry)(X, y, sample_weight=bad)
    assert_unchanged(net, before)
    assert net.optimizer is None and net.history is None


@pytest.mark.parametrize("class_weight, loss, match", [
    ({0: 1.0}, "mse", "class_weight needs class labels"),
    ({7: 1.0}, "cross_entropy", "outside"),
    ([1.0, 2.0], "cross_entropy", "one weight per class"),
    ({0: -1.0}, "cross_entropy", ">= 0"),
    ("sometimes", "cross_entropy", "balanced"),
])
def test_bad_class_weight_is_refused(backend, class_weight, loss, match):
    X, y = make_data(loss, 10, 4, 3, seed=14)
    net = network(backend, "softmax" if loss == "cross_entropy" else "identity", loss)
    before = snapshot(net)
    with pytest.raises(ValueError, match=match):
        net.fit(X, y, class_weight=class_weight)
    assert_unchanged(net, before)
