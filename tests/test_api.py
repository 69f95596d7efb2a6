"""The Network API: defaults, views, predictions, history, summary, interrupts."""

from __future__ import annotations

import _thread
import signal
import sys
import threading

import numpy as np
import pytest

import backprop as bp
from conftest import make_data


def test_contract_example_shapes(backend):
    net = bp.Network([784, 256, 128, 10], activation="relu", output="softmax", loss="cross_entropy",
                     init="he", dtype="float32", backend=backend, seed=0)
    assert [(l.W.shape, l.b.shape) for l in net.layers] == [((256, 784), (256,)), ((128, 256), (128,)),
                                                             ((10, 128), (10,))]
    assert all(l.W.dtype == np.float32 for l in net.layers)
    assert net.n_params == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    X = np.random.default_rng(0).random((5, 784))
    out = net.forward(X)
    assert out.shape == (5, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
    assert net.predict(X).shape == (5,)


def test_defaults():
    net = bp.Network([3, 4, 2])
    assert (net.loss, net.activations, net.init, net.dtype) == ("cross_entropy", ("relu", "softmax"), "he",
                                                                np.float32)
    assert bp.Network([3, 4, 2], loss="mse").activations[-1] == "identity"
    assert bp.Network([3, 4, 2], output="sigmoid").loss == "binary_cross_entropy"
    assert bp.Network([3, 4, 2], activation="tanh").init == "xavier"


def test_same_seed_same_weights_in_both_backends_and_dtypes():
    nets = [bp.Network([5, 7, 3], backend=b, dtype=d, seed=11) for b in ("numpy", "native")
            for d in ("float64", "float32")]
    for layer in range(2):
        np.testing.assert_array_equal(nets[0].layers[layer].W, nets[2].layers[layer].W)
        np.testing.assert_array_equal(nets[1].layers[layer].W, nets[0].layers[layer].W.astype(np.float32))


def test_per_layer_activations(backend):
    net = bp.Network([3, 4, 5, 2], activation=["tanh", "relu"], output="identity", loss="mse", backend=backend)
    assert [l.activation for l in net.layers] == ["tanh", "relu", "identity"]


def test_layer_views_drive_computation(backend):
    net = bp.Network([2, 2], output="identity", loss="mse", dtype="float64", backend=backend)
    net.layers[0].W = [[1, 2], [3, 4]]  # ints convert to the network's dtype
    net.layers[0].b[...] = [0.5, -0.5]
    np.testing.assert_array_equal(net.forward([[1.0, 1.0]]), [[3.5, 6.5]])
    assert net.layers[0].W.dtype == np.float64


def test_predict_and_evaluate_per_loss(backend):
    X, y = make_data("binary_cross_entropy", 10, 3, 2)
    bce = bp.Network([3, 2], output="sigmoid", backend=backend, seed=0)
    assert set(np.unique(bce.predict(X))) <= {0, 1} and bce.predict(X).shape == (10, 2)
    assert set(bce.evaluate(X, y)) == {"loss", "accuracy"}
    X, y = make_data("mse", 10, 3, 2)
    reg = bp.Network([3, 2], loss="mse", backend=backend, seed=0)
    np.testing.assert_array_equal(reg.predict(X), reg.forward(X))
    assert set(reg.evaluate(X, y)) == {"loss"}


def test_labels_as_whole_floats_and_any_integer_dtype(backend):
    X, y = make_data("cross_entropy", 12, 3, 4)
    net = bp.Network([3, 4], backend=backend, seed=0)
    expected = net.evaluate(X, y)
    for labels in (y.astype(np.uint8), y.astype(np.int16), y.astype(float), list(y)):
        assert net.evaluate(X, labels) == expected


def test_history_and_grad_norms(backend, capsys):
    X, y = make_data("cross_entropy", 40, 4, 3)
    net = bp.Network([4, 6, 6, 3], activation="sigmoid", backend=backend, seed=0)
    hist = net.fit(X, y, epochs=3, batch_size=10, validation_data=(X, y), verbose=1, record_grad_norms=True)
    assert hist.epoch == [1, 2, 3] and len(hist) == 3 and net.history is hist
    assert set(hist.history) == {"loss", "accuracy", "lr", "val_loss", "val_accuracy"}
    assert hist.grad_norms.shape == (3, 3) and np.all(hist.grad_norms > 0)
    printed = capsys.readouterr().out
    assert printed.count("Epoch") == 3 and "val_accuracy" in printed
    assert net.fit(X, y, epochs=1).grad_norms is None


def test_summary(capsys):
    bp.Network([784, 256, 10]).summary()
    printed = capsys.readouterr().out
    assert "(256, 784)" in printed and "200,960" in printed and "203,530" in printed and "relu" in printed


def test_fallback_to_numpy_when_core_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "backprop._native_backend", None)
    with pytest.warns(RuntimeWarning, match="compiled core could not be imported"):
        net = bp.Network([3, 2], backend="native")
    assert net.backend == "numpy"


def test_native_backend_is_really_native():
    assert bp.Network([3, 2]).backend == "native"
    info = bp.build_info()
    assert info["eigen"] == "3.4.0" and info["core"]


def test_interrupt_leaves_last_completed_step():
    """Ctrl-C during a native fit raises KeyboardInterrupt and keeps a consistent state."""
    X, y = make_data("cross_entropy", 2000, 64, 10)
    kwargs = dict(activation="relu", dtype="float64", backend="native", seed=0)
    net = bp.Network([64, 256, 256, 10], **kwargs)
    optimizer = bp.SGD(lr=0.01, momentum=0.9)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # SIGINT may be inherited ignored (background job)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        # Bounded: about a minute of epochs, so a lost interrupt fails the test instead of hanging it.
        net.fit(X, y, epochs=5000, batch_size=32, optimizer=optimizer, shuffle=False)
    timer.join()
    steps = optimizer.step_count
    assert steps > 0

    # Replaying exactly `steps` steps from the same start gives the same weights.
    twin = bp.Network([64, 256, 256, 10], **kwargs)
    batches_per_epoch = -(-2000 // 32)
    full_epochs, rest = divmod(steps, batches_per_epoch)
    twin_optimizer = bp.SGD(lr=0.01, momentum=0.9)
    if full_epochs:
        twin.fit(X, y, epochs=full_epochs, batch_size=32, optimizer=twin_optimizer, shuffle=False)
    if rest:
        twin.fit(X[:rest * 32], y[:rest * 32], epochs=1, batch_size=32, optimizer=twin_optimizer, shuffle=False)
    for a, b in zip(net.layers, twin.layers):
        np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(optimizer.state["momentum_buffer"], twin_optimizer.state["momentum_buffer"])


def test_strided_labels_and_targets(backend):
    X, y = make_data("cross_entropy", 40, 3, 3)
    net = bp.Network([3, 3], dtype="float64", backend=backend, seed=0)
    strided = np.repeat(y, 2)[::2]
    assert not strided.flags.c_contiguous
    assert net.evaluate(X, strided) == net.evaluate(X, y)
    X, Y = make_data("mse", 40, 3, 2)
    reg = bp.Network([3, 2], loss="mse", dtype="float64", backend=backend, seed=0)
    assert reg.evaluate(X, np.asfortranarray(Y)) == reg.evaluate(X, Y)


def test_pickle_and_deepcopy_give_an_independent_copy(backend):
    import copy
    import pickle

    X, y = make_data("cross_entropy", 64, 4, 3)
    net = bp.Network([4, 5, 3], dtype="float64", backend=backend, seed=0)
    net.fit(X, y, epochs=1, batch_size=8, optimizer=bp.SGD(lr=0.1, momentum=0.9))
    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert clone.backend == net.backend
        np.testing.assert_array_equal(clone.forward(X), net.forward(X))
        clone.layers[0].W[...] = 7.0  # the clone owns its parameters
        assert not np.any(net.layers[0].W == 7.0)
    clone = copy.deepcopy(net)
    net.fit(X, y, epochs=2, batch_size=8)  # momentum and shuffling carry on in both
    clone.fit(X, y, epochs=2, batch_size=8)
    np.testing.assert_array_equal(clone.layers[0].W, net.layers[0].W)


@pytest.mark.parametrize("make_copy", ["copy", "deepcopy"])
def test_copies_are_independent_and_leave_the_original_training_on(backend, make_copy):
    """copy.copy used to share the weights and take the optimizer over, so the
    original's next fit silently restarted Adam."""
    import copy

    X, y = make_data("cross_entropy", 40, 4, 3)
    kwargs = dict(dtype="float64", backend=backend, seed=0)
    net, twin = bp.Network([4, 5, 3], **kwargs), bp.Network([4, 5, 3], **kwargs)
    for n in (net, twin):
        n.fit(X, y, epochs=1, batch_size=8, optimizer=bp.Adam(lr=0.01))
    assert net.optimizer.step_count == 5
    clone = getattr(copy, make_copy)(net)
    assert clone.optimizer is not net.optimizer and clone.optimizer.step_count == 5
    clone.layers[0].W[...] = 7.0
    assert not np.any(net.layers[0].W == 7.0)
    clone.fit(X, y, epochs=1, batch_size=8)
    net.fit(X, y, epochs=1, batch_size=8)  # Adam carries on from step 5 in the original too
    twin.fit(X, y, epochs=1, batch_size=8)
    assert net.optimizer.step_count == 10 and clone.optimizer.step_count == 10
    np.testing.assert_array_equal(net.parameters(), twin.parameters())
    np.testing.assert_array_equal(net.optimizer.state["m"], twin.optimizer.state["m"])


def test_optimizer_hyper_parameters_are_checked_when_set(backend):
    opt = bp.SGD(lr=0.1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        opt.lr = -5.0
    with pytest.raises(TypeError, match="lr must be a real number"):
        opt.lr = "0.1"
    assert opt.lr == 0.1
    adam = bp.Adam()
    with pytest.raises(ValueError, match="beta1 must be in"):
        adam.beta1 = 1.0

    X, y = make_data("cross_entropy", 32, 4, 3)
    net = bp.Network([4, 3], dtype="float64", backend=backend, seed=0)
    opt.momentum = 0.9  # switched on after construction: state appears on use
    net.fit(X, y, epochs=1, optimizer=opt)
    assert "momentum_buffer" in opt.state
    before, history = [l.W.copy() for l in net.layers], net.history
    opt.momentum = 0.0
    opt.nesterov = True
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        net.fit(X, y, epochs=1, optimizer=opt)
    assert net.history is history
    np.testing.assert_array_equal(net.layers[0].W, before[0])


def test_binary_predict_and_accuracy_agree_at_the_threshold(backend):
    net = bp.Network([1, 1], output="sigmoid", dtype="float32", backend=backend)
    net.layers[0].W = [[1e-8]]
    X, y = np.ones((1, 1)), np.ones((1, 1))
    assert net.predict(X)[0, 0] == 0  # sigmoid(1e-8) rounds to 0.5 in float32
    assert net.evaluate(X, y)["accuracy"] == 0.0


def test_cross_entropy_with_probability_rows_at_large_logits(backend):
    net = bp.Network([3, 3], output="softmax", dtype="float32", backend=backend)
    net.layers[0].W = np.diag([30000.0, 0.0, -30000.0]).astype(np.float32)
    Y = np.array([[1 - 1e-6, 5e-7, 5e-7]])
    loss = net.evaluate([[1.0, 1.0, 1.0]], Y)["loss"]
    assert loss == pytest.approx(0.045, rel=1e-3)


def test_interrupt_stops_a_long_forward_pass():
    net = bp.Network([512, 4096, 4096, 10], backend="native", seed=0)  # ~375 GFLOP for these rows
    X = np.ones((20000, 512), dtype=np.float32)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        net.forward(X)
    timer.join()
