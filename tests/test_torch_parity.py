"""Parity with PyTorch: forward, losses, gradients, optimizers, initialisation.

The documentation promises that backprop computes what an equivalent PyTorch model
computes: ``W`` has ``torch.nn.Linear.weight``'s layout, the losses are the
ones below, and SGD / Adam follow ``torch.optim.SGD`` / ``torch.optim.Adam``.
Every test builds the torch twin of a backprop network (same weights, same
activations), runs both, and compares. Both backends and both dtypes; torch
runs in the network's dtype.

The losses as backprop defines them, written with torch:

- mse: mean over samples of ½·Σ_k (a_k − y_k)² (not ``MSELoss``'s default,
  which averages over units too and has no ½);
- cross_entropy: ``F.cross_entropy`` of the logits, integer labels or rows of
  class probabilities, mean over samples;
- binary_cross_entropy: ``F.binary_cross_entropy_with_logits`` summed over the
  output units, mean over samples.

Weight decay in backprop applies to weights only, so the torch optimizers get
two parameter groups: weights with ``weight_decay``, biases without.
"""

from __future__ import annotations

import numpy as np
import pytest

import backprop as bp

from conftest import TORCH_MISSING, make_data

torch = pytest.importorskip("torch", reason=TORCH_MISSING)
nn = torch.nn
F = torch.nn.functional

DTYPES = ["float32", "float64"]
HIDDEN = ["relu", "leaky_relu", "tanh", "sigmoid", "identity", "gelu", "silu", "elu"]

# Tolerances for one forward/backward pass. float64: both sides do the same
# few products in double precision, differing only in summation order, so the
# relative error is a few ulps times the width (≈1e-15); 1e-10 leaves ample
# room, and atol 1e-12 only covers entries that cancel to ~0. float32: a few
# ulps (6e-8 each) accumulate over ≤3 layers plus exp/log in the losses, so
# rtol 1e-4 with atol 1e-6 (values and gradients here are O(0.01..1)).
PASS_TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-6)}

# Tolerances after training (20-60 optimizer steps). Round-off of each step
# feeds into the next, and Adam divides by √v, which magnifies differences in
# small gradient entries. float64 stays ~1e-13 in practice, so rtol 1e-9 /
# atol 1e-11. float32 drifts further than one pass: rtol 1e-4, atol 1e-5.
TRAIN_TOL = {"float64": dict(rtol=1e-9, atol=1e-11), "float32": dict(rtol=1e-4, atol=1e-5)}

# The epoch loss is a float64 sum of per-batch losses in both libraries; it
# inherits the parameters' drift, so the training tolerance fits it too.
LOSS_TOL = TRAIN_TOL

TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # The tensors here are tiny: torch's intra-op threads only add overhead, and
    # spin badly when another process shares the cores (4x slower observed).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


TORCH_ACTIVATION = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),  # backprop's slope (docs/guide/math.md)
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
    "gelu": nn.GELU,  # exact, approximate='none'
    "silu": nn.SiLU,
    "elu": nn.ELU,  # alpha=1
}

# (loss, output activation, target kind) pairings that backprop allows:
# mse with any non-softmax output, cross_entropy with softmax (labels or
# probability rows), binary_cross_entropy with sigmoid.
PAIRINGS = [
    ("mse", "identity", "values"),
    ("mse", "sigmoid", "values"),
    ("mse", "tanh", "values"),
    ("mse", "relu", "values"),
    ("mse", "leaky_relu", "values"),
    ("cross_entropy", "softmax", "labels"),
    ("cross_entropy", "softmax", "probabilities"),
    ("binary_cross_entropy", "sigmoid", "binary"),
]
PAIRING_IDS = [f"{loss}-{output}-{kind}" for loss, output, kind in PAIRINGS]


# -- helpers -------------------------------------------------------------------
def data_for(loss, kind, n_samples, n_in, n_out, seed=0):
    X, y = make_data(loss, n_samples, n_in, n_out, seed=seed)
    if kind == "probabilities":
        y = np.random.default_rng(seed + 100).dirichlet(np.ones(n_out), size=n_samples)
    return X, y


def to_torch(array, dtype):
    # torch.tensor copies, so read-only or non-contiguous arrays are fine.
    return torch.tensor(np.asarray(array, dtype=dtype))


def torch_targets(net, y):
    y = np.asarray(y)
    if net.loss == "cross_entropy" and y.ndim == 1:
        return torch.tensor(y.astype(np.int64))
    return to_torch(y, net.dtype)


def torch_twin(net):
    """(Sequential, [Linear]) computing what `net` computes, from its weights.

    For cross_entropy and binary_cross_entropy the model ends at the logits,
    as the torch losses want; torch_output applies softmax / sigmoid.
    """
    dtype = TORCH_DTYPE[net.dtype.name]
    modules, linears = [], []
    n_layers = len(net.layers)
    for i, layer in enumerate(net.layers):
        linear = nn.Linear(layer.n_in, layer.n_out, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(to_torch(layer.W, net.dtype))
            linear.bias.copy_(to_torch(layer.b, net.dtype))
        modules.append(linear)
        linears.append(linear)
        last = i == n_layers - 1
        if not (last and net.loss in ("cross_entropy", "binary_cross_entropy")):
            modules.append(TORCH_ACTIVATION[layer.activation]())
    return nn.Sequential(*modules), linears


def torch_loss(net, out, target):
    """backprop's loss (mean over samples) of the torch model's output."""
    if net.loss == "mse":
        return 0.5 * ((out - target) ** 2).sum(dim=1).mean()
    if net.loss == "cross_entropy":
        return F.cross_entropy(out, target)  # labels (long) or probability rows
    return F.binary_cross_entropy_with_logits(out, target, reduction="none").sum(dim=1).mean()


def torch_output(net, out):
    if net.loss == "cross_entropy":
        return torch.softmax(out, dim=1)
    if net.loss == "binary_cross_entropy":
        return torch.sigmoid(out)
    return out


def assert_close(actual, expected, tol, what):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               err_msg=what, **tol)


def assert_same_parameters(net, linears, tol):
    for i, (layer, linear) in enumerate(zip(net.layers, linears)):
        assert_close(layer.W, linear.weight.detach().numpy(), tol, f"layers[{i}].W")
        assert_close(layer.b, linear.bias.detach().numpy(), tol, f"layers[{i}].b")


# -- 1. forward, loss, gradients ------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("loss, output, kind", PAIRINGS, ids=PAIRING_IDS)
def test_forward_loss_gradients_match_torch(backend, dtype, depth, hidden, loss, output, kind):
    sizes = [4] + [6, 5, 7][:depth] + [3]
    net = bp.Network(sizes, activation=hidden, output=output, loss=loss, dtype=dtype, backend=backend,
                     seed=depth)
    X, y = data_for(loss, kind, 9, sizes[0], sizes[-1], seed=depth)
    _check_pass(net, X, y, PASS_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss, output, kind", PAIRINGS, ids=PAIRING_IDS)
def test_mixed_hidden_activations_match_torch(backend, dtype, loss, output, kind):
    sizes = [5, 6, 4, 6, 5, 3]
    net = bp.Network(sizes, activation=["tanh", "relu", "sigmoid", "leaky_relu"], output=output, loss=loss,
                     dtype=dtype, backend=backend, seed=7)
    X, y = data_for(loss, kind, 11, sizes[0], sizes[-1], seed=7)
    _check_pass(net, X, y, PASS_TOL[dtype])


def _check_pass(net, X, y, tol):
    model, linears = torch_twin(net)
    out = model(to_torch(X, net.dtype))
    expected_loss = torch_loss(net, out, torch_targets(net, y))
    expected_loss.backward()

    assert_close(net.forward(X), torch_output(net, out).detach().numpy(), tol, "forward")
    loss, grads = net.gradients(X, y)
    assert_close(loss, expected_loss.item(), tol, "gradients() loss")
    assert_close(net.evaluate(X, y)["loss"], expected_loss.item(), tol, "evaluate() loss")
    assert len(grads) == len(linears)
    for i, ((dW, db), linear) in enumerate(zip(grads, linears)):
        assert dW.shape == tuple(linear.weight.shape) and db.shape == tuple(linear.bias.shape)
        assert dW.dtype == net.dtype and db.dtype == net.dtype
        assert_close(dW, linear.weight.grad.numpy(), tol, f"dW of layer {i}")
        assert_close(db, linear.bias.grad.numpy(), tol, f"db of layer {i}")


# -- 2. training ----------------------------------------------------------------
# (id, backprop optimizer, torch optimizer class, torch keyword arguments, weight decay)
OPTIMIZERS = [
    ("sgd", lambda: bp.SGD(lr=0.1), torch.optim.SGD, dict(lr=0.1), 0.0),
    ("sgd-momentum", lambda: bp.SGD(lr=0.05, momentum=0.9), torch.optim.SGD, dict(lr=0.05, momentum=0.9), 0.0),
    ("sgd-nesterov", lambda: bp.SGD(lr=0.05, momentum=0.9, nesterov=True), torch.optim.SGD,
     dict(lr=0.05, momentum=0.9, nesterov=True), 0.0),
    ("sgd-weight-decay", lambda: bp.SGD(lr=0.1, momentum=0.5, weight_decay=0.05), torch.optim.SGD,
     dict(lr=0.1, momentum=0.5), 0.05),
    ("adam", lambda: bp.Adam(lr=0.01, beta1=0.85, beta2=0.99, eps=1e-7), torch.optim.Adam,
     dict(lr=0.01, betas=(0.85, 0.99), eps=1e-7), 0.0),
    ("adam-weight-decay", lambda: bp.Adam(lr=0.01, weight_decay=0.05), torch.optim.Adam,
     dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8), 0.05),
]
TRAIN_PAIRINGS = [p for p in PAIRINGS if p[1] in ("identity", "softmax", "sigmoid")]


def torch_fit(net, X, y, epochs, batch_size, optimizer_class, kwargs, weight_decay):
    """Train the torch twin of `net` over the batches fit(shuffle=False) visits.

    Returns the Linear layers and, per epoch, the mean of the batch losses
    (each measured before its update) weighted by batch size.
    """
    model, linears = torch_twin(net)
    groups = [{"params": [m.weight for m in linears], "weight_decay": weight_decay},
              {"params": [m.bias for m in linears], "weight_decay": 0.0}]  # backprop decays weights only
    optimizer = optimizer_class(groups, **kwargs)
    Xt, yt = to_torch(X, net.dtype), torch_targets(net, y)
    n = Xt.shape[0]
    epoch_losses = []
    for _ in range(epochs):
        total = 0.0
        for first in range(0, n, batch_size):
            xb, yb = Xt[first:first + batch_size], yt[first:first + batch_size]
            optimizer.zero_grad()
            loss = torch_loss(net, model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * xb.shape[0]
        epoch_losses.append(total / n)
    return linears, epoch_losses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss, output, kind", TRAIN_PAIRINGS,
                         ids=[f"{l}-{o}-{k}" for l, o, k in TRAIN_PAIRINGS])
@pytest.mark.parametrize("name, make, optimizer_class, kwargs, weight_decay", OPTIMIZERS,
                         ids=[o[0] for o in OPTIMIZERS])
def test_training_matches_torch(backend, dtype, loss, output, kind, name, make, optimizer_class, kwargs,
                                weight_decay):
    # 30 samples in batches of 8: three full batches and a last one of 6.
    # Smooth activations (tanh, sigmoid), so no unit sits on a relu kink where
    # a round-off difference would switch its gradient on or off.
    sizes = [4, 6, 5, 3]
    epochs, batch_size = 5, 8
    net = bp.Network(sizes, activation=["tanh", "sigmoid"], output=output, loss=loss, dtype=dtype,
                     backend=backend, seed=3)
    X, y = data_for(loss, kind, 30, sizes[0], sizes[-1], seed=3)
    linears, torch_losses = torch_fit(net, X, y, epochs, batch_size, optimizer_class, kwargs, weight_decay)

    optimizer = make()
    history = net.fit(X, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer, shuffle=False)

    assert optimizer.step_count == epochs * 4
    assert_same_parameters(net, linears, TRAIN_TOL[dtype])
    assert_close(history.history["loss"], torch_losses, LOSS_TOL[dtype], "History loss per epoch")


def test_fit_in_two_calls_continues_optimizer_state(backend):
    # State (momentum, Adam's moments and step) carries over between fits, as
    # one long torch run does. float64: same tolerance as training.
    sizes = [4, 6, 3]
    net = bp.Network(sizes, activation="tanh", loss="mse", dtype="float64", backend=backend, seed=4)
    X, y = make_data("mse", 20, 4, 3, seed=4)
    linears, torch_losses = torch_fit(net, X, y, 4, 8, torch.optim.Adam,
                                      dict(lr=0.02, betas=(0.9, 0.999), eps=1e-8), 0.0)
    optimizer = bp.Adam(lr=0.02)
    first = net.fit(X, y, epochs=2, batch_size=8, optimizer=optimizer, shuffle=False)
    second = net.fit(X, y, epochs=2, batch_size=8, shuffle=False)  # reuses net.optimizer
    assert_same_parameters(net, linears, TRAIN_TOL["float64"])
    assert_close(first.history["loss"] + second.history["loss"], torch_losses, LOSS_TOL["float64"],
                 "History loss per epoch")


# -- 3. batch_size=1: the per-sample delta rule -----------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_online_sgd_matches_torch_batch_of_one(backend, dtype):
    sizes = [3, 5, 2]
    net = bp.Network(sizes, activation="tanh", output="sigmoid", loss="mse", dtype=dtype, backend=backend,
                     seed=5)
    X, y = make_data("mse", 12, 3, 2, seed=5)
    linears, torch_losses = torch_fit(net, X, y, 3, 1, torch.optim.SGD, dict(lr=0.2), 0.0)
    history = net.fit(X, y, epochs=3, batch_size=1, optimizer=bp.SGD(lr=0.2), shuffle=False)
    assert_same_parameters(net, linears, TRAIN_TOL[dtype])
    assert_close(history.history["loss"], torch_losses, LOSS_TOL[dtype], "History loss per epoch")


@pytest.mark.parametrize("dtype", DTYPES)
def test_online_sgd_is_the_classic_delta_rule(backend, dtype):
    # One sigmoid layer, mse: for each sample in turn, Δ_k = (y_k − a_k)·a_k(1 − a_k)
    # and w_kj ← w_kj + α·x_j·Δ_k, b_k ← b_k + α·Δ_k (docs/guide/math.md, Updates), in float64.
    alpha = 0.3
    net = bp.Network([3, 2], output="sigmoid", loss="mse", dtype=dtype, backend=backend, seed=6)
    X, y = make_data("mse", 10, 3, 2, seed=6)
    y = 1 / (1 + np.exp(-y))
    W, b = net.layers[0].W.astype(np.float64), net.layers[0].b.astype(np.float64)
    for x, t in zip(X.astype(dtype).astype(np.float64), y.astype(dtype).astype(np.float64)):
        a = 1 / (1 + np.exp(-(W @ x + b)))
        delta = (t - a) * a * (1 - a)
        W = W + alpha * np.outer(delta, x)
        b = b + alpha * delta
    net.fit(X, y, epochs=1, batch_size=1, optimizer=bp.SGD(lr=alpha), shuffle=False)
    assert_close(net.layers[0].W, W, TRAIN_TOL[dtype], "W")
    assert_close(net.layers[0].b, b, TRAIN_TOL[dtype], "b")


# -- 4. initialisation --------------------------------------------------------------
def test_he_init_statistics(backend):
    net = bp.Network([400, 500], init="he", dtype="float64", backend=backend, seed=0)
    W = net.layers[0].W
    assert W.shape == (500, 400)
    # 200,000 draws: the sample std is within ~0.2% of the true one; 10% is loose.
    expected = np.sqrt(2.0 / 400)
    assert abs(W.std() / expected - 1) < 0.10
    assert abs(W.mean()) < 0.05 * expected
    np.testing.assert_array_equal(net.layers[0].b, 0)


def test_xavier_init_statistics(backend):
    net = bp.Network([400, 500], init="xavier", dtype="float64", backend=backend, seed=0)
    W = net.layers[0].W
    limit = np.sqrt(6.0 / (400 + 500))
    assert np.abs(W).max() <= limit
    assert np.abs(W).max() > 0.99 * limit  # the whole interval is used
    assert abs(W.std() / (limit / np.sqrt(3)) - 1) < 0.10  # std of U(±l) is l/√3
    assert abs(W.mean()) < 0.05 * limit
    np.testing.assert_array_equal(net.layers[0].b, 0)


def test_normal_init_statistics(backend):
    net = bp.Network([400, 500], init="normal", init_std=0.03, dtype="float64", backend=backend, seed=0)
    W = net.layers[0].W
    assert abs(W.std() / 0.03 - 1) < 0.10
    assert abs(W.mean()) < 0.05 * 0.03
    np.testing.assert_array_equal(net.layers[0].b, 0)


def test_default_init_follows_activation(backend):
    assert bp.Network([3, 4, 2], activation="relu", backend=backend).init == "he"
    assert bp.Network([3, 4, 2], activation="leaky_relu", backend=backend).init == "he"
    assert bp.Network([3, 4, 2], activation="tanh", backend=backend).init == "xavier"


@pytest.mark.parametrize("init", ["he", "xavier", "normal"])
def test_same_seed_same_weights_in_every_backend_and_dtype(init):
    sizes = [7, 6, 5, 3]
    nets = {(backend, dtype): bp.Network(sizes, activation="tanh", init=init, dtype=dtype, backend=backend,
                                         seed=0)
            for backend in ("numpy", "native") for dtype in DTYPES}
    reference = nets["numpy", "float64"]
    for (backend, dtype), net in nets.items():
        for ref, layer in zip(reference.layers, net.layers):
            assert layer.W.dtype == np.dtype(dtype)
            # float32 weights are the float64 draw cast, bit for bit.
            np.testing.assert_array_equal(layer.W, ref.W.astype(dtype))
            np.testing.assert_array_equal(layer.b, 0)
    # Drawn from numpy.random.default_rng(seed), layer by layer (docs/guide/math.md).
    rng = np.random.default_rng(0)
    for layer in reference.layers:
        n_out, n_in = layer.W.shape
        if init == "he":
            draw = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in))
        elif init == "xavier":
            limit = np.sqrt(6.0 / (n_in + n_out))
            draw = rng.uniform(-limit, limit, size=(n_out, n_in))
        else:
            draw = rng.normal(0.0, 0.01, size=(n_out, n_in))
        np.testing.assert_array_equal(layer.W, draw)
    other = bp.Network(sizes, activation="tanh", init=init, dtype="float64", backend="numpy", seed=1)
    assert not np.array_equal(other.layers[0].W, reference.layers[0].W)
