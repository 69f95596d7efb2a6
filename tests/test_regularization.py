"""Dropout, LayerNorm, AdamW and gradient clipping: behaviour, reproducibility, and parity with PyTorch.

PyTorch parity: the twin of a network is built by hand as
nn.Sequential(Linear, [LayerNorm], activation, [Dropout], ..., Linear) and
loaded with ``net.state_dict()``, so the key names are checked too. Optimizer
runs compare several steps in float64 with rtol 1e-9 (as test_torch_parity's
training tolerance); dropout masks cannot match torch's generator, so
training parity runs without dropout and dropout is checked against its own
definition instead.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import backprop as bp
from backprop._dropout_mask import dropout_mask
from conftest import TORCH_MISSING, make_data

TRAIN_TOL = dict(rtol=1e-9, atol=1e-11)
PASS_TOL = dict(rtol=1e-10, atol=1e-12)


def _torch():
    return pytest.importorskip("torch", reason=TORCH_MISSING)


# -- dropout --------------------------------------------------------------------------------------
def test_inference_has_no_dropout(backend):
    X, y = make_data("cross_entropy", 20, 4, 3)
    net = bp.Network([4, 8, 6, 3], dropout=0.5, dtype="float64", backend=backend, seed=0)
    plain = bp.Network([4, 8, 6, 3], dtype="float64", backend=backend, seed=0)
    np.testing.assert_array_equal(net.parameters(), plain.parameters())  # dropout draws nothing from rng
    np.testing.assert_array_equal(net.forward(X), plain.forward(X))
    np.testing.assert_array_equal(net.predict(X), plain.predict(X))
    assert net.evaluate(X, y) == plain.evaluate(X, y)
    assert net.gradients(X, y)[0] != plain.gradients(X, y)[0]  # training passes do drop units


def test_masks_are_the_counter_generator_and_the_backends_agree():
    """Both backends drop the units the NumPy generator names, scaled by 1/(1 − p)."""
    X, y = make_data("mse", 12, 3, 2)
    grads = {}
    for backend in ("native", "numpy"):
        net = bp.Network([3, 50, 2], activation="identity", loss="mse", dropout=0.3, dtype="float64",
                         backend=backend, seed=4)
        grads[backend] = net.gradients(X, y)[1]
    mask = dropout_mask(net.dropout_seed, 1, 0, 12, 50, 0.3, np.float64)
    # With an identity hidden layer, the output layer's dW is Δᵀ·Ã: zero columns where no sample kept the unit.
    dW = grads["numpy"][1][0]
    np.testing.assert_array_equal(dW[:, ~mask.any(axis=0)], 0)
    assert set(np.unique(mask)) == {0.0, 1 / 0.7}
    assert abs((mask > 0).mean() - 0.7) < 0.05
    for (a, b), (c, d) in zip(grads["native"], grads["numpy"]):
        np.testing.assert_allclose(a, c, **PASS_TOL)
        np.testing.assert_allclose(b, d, **PASS_TOL)


def test_mask_generator_keeps_one_minus_p():
    mask = dropout_mask(12345, 7, 2, 1000, 100, 0.2, np.float32)
    assert abs((mask > 0).mean() - 0.8) < 0.005
    other = dropout_mask(12345, 8, 2, 1000, 100, 0.2, np.float32)
    assert 0.3 < ((mask > 0) == (other > 0)).mean() < 0.8  # another step, other units


def test_dropout_fit_is_bit_identical_for_any_thread_count():
    X, y = make_data("cross_entropy", 300, 20, 4, seed=1)
    results = []
    for threads in (1, 2):
        previous = bp.get_num_threads()
        bp.set_num_threads(threads)
        try:
            net = bp.Network([20, 64, 48, 4], activation="gelu", norm="layer", dropout=[0.3, 0.1], seed=2)
            net.fit(X, y, epochs=2, batch_size=100, optimizer=bp.AdamW(lr=0.01, clip_norm=1.0))
            results.append(net.parameters().copy())
        finally:
            bp.set_num_threads(previous)
    np.testing.assert_array_equal(results[0], results[1])


def test_dropout_fit_is_reproducible_and_resumable(backend):
    X, y = make_data("cross_entropy", 40, 5, 3, seed=1)

    def make():
        return bp.Network([5, 16, 3], dropout=0.4, dtype="float64", backend=backend, seed=6)

    whole, first, second = make(), make(), make()
    assert whole.dropout_seed == first.dropout_seed
    whole.fit(X, y, epochs=4, batch_size=8, optimizer=bp.SGD(lr=0.1, momentum=0.9))
    first.fit(X, y, epochs=2, batch_size=8, optimizer=bp.SGD(lr=0.1, momentum=0.9))
    resumed = pickle.loads(pickle.dumps(first))  # a copy taken half-way goes on as the original would
    resumed.fit(X, y, epochs=2, batch_size=8)
    np.testing.assert_array_equal(resumed.parameters(), whole.parameters())
    second.fit(X, y, epochs=4, batch_size=8, optimizer=bp.SGD(lr=0.1, momentum=0.9))
    np.testing.assert_array_equal(second.parameters(), whole.parameters())


def test_dropout_seed_exists_without_a_seed():
    a, b = bp.Network([3, 4, 2], dropout=0.1), bp.Network([3, 4, 2], dropout=0.1)
    assert isinstance(a.dropout_seed, int) and a.dropout_seed != b.dropout_seed


def test_train_on_batch_uses_the_masks_gradients_reports(backend):
    X, y = make_data("cross_entropy", 10, 4, 3)
    net = bp.Network([4, 9, 3], dropout=0.5, dtype="float64", backend=backend, seed=1)
    twin = bp.Network([4, 9, 3], dropout=0.5, dtype="float64", backend=backend, seed=1)
    _, grads = net.gradients(X, y, flat=True)
    net.train_on_batch(X, y, optimizer=bp.SGD(lr=0.1))
    twin.apply_gradients(grads, optimizer=bp.SGD(lr=0.1))
    np.testing.assert_array_equal(net.parameters(), twin.parameters())


@pytest.mark.parametrize("dropout, message", [(1.0, r"dropout must be in \[0, 1\)"), (-0.1, "dropout"),
                                              ([0.1], "one rate per hidden layer"), ("0.2", "real number")])
def test_bad_dropout_is_refused(dropout, message):
    with pytest.raises((ValueError, TypeError), match=message):
        bp.Network([3, 4, 5, 2], dropout=dropout)


def test_bad_norm_is_refused():
    with pytest.raises(ValueError, match="norm"):
        bp.Network([3, 4, 2], norm="batch")


# -- LayerNorm --------------------------------------------------------------------------------
def test_layer_norm_layout_and_initial_values(backend):
    net = bp.Network([3, 4, 5, 2], norm="layer", backend=backend, seed=0)
    assert net.n_params == (3 * 4 + 4 + 8) + (4 * 5 + 5 + 10) + (5 * 2 + 2)
    np.testing.assert_array_equal(net.layers[0].gamma, 1)
    np.testing.assert_array_equal(net.layers[1].beta, 0)
    assert net.layers[2].gamma is None  # never after the output layer
    flat = net.parameters()
    flat[16:20] = 3.0  # γ^(1) sits right after b^(1)
    np.testing.assert_array_equal(net.layers[0].gamma, 3.0)
    with pytest.raises(AttributeError, match="no LayerNorm"):
        net.layers[2].gamma = [1.0, 1.0]


def test_layer_norm_forward_is_the_formula(backend):
    rng = np.random.default_rng(0)
    net = bp.Network([4, 6, 2], activation="identity", norm="layer", loss="mse", dtype="float64",
                     backend=backend, seed=0)
    net.layers[0].gamma = rng.normal(size=6)
    net.layers[0].beta = rng.normal(size=6)
    X = rng.normal(size=(5, 4))
    z = X @ net.layers[0].W.T + net.layers[0].b
    u = (z - z.mean(1, keepdims=True)) / np.sqrt(z.var(1, keepdims=True) + 1e-5) * net.layers[0].gamma \
        + net.layers[0].beta
    np.testing.assert_allclose(net.forward(X), u @ net.layers[1].W.T + net.layers[1].b, rtol=1e-12)


# -- PyTorch parity ---------------------------------------------------------------------------------
def torch_twin(net, torch):
    """nn.Sequential built by hand from the issue's block order, loaded from net.state_dict()."""
    nn = torch.nn
    dtype = torch.float64 if net.dtype == np.float64 else torch.float32
    modules = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU, "elu": nn.ELU,
               "sigmoid": nn.Sigmoid}
    layers = []
    for layer in net.layers[:-1]:
        layers.append(nn.Linear(layer.n_in, layer.n_out, dtype=dtype))
        if layer.gamma is not None:
            layers.append(nn.LayerNorm(layer.n_out, dtype=dtype))
        layers.append(modules[layer.activation]())
        if layer.dropout:
            layers.append(nn.Dropout(layer.dropout))
    layers.append(nn.Linear(net.layers[-1].n_in, net.layers[-1].n_out, dtype=dtype))
    model = nn.Sequential(*layers)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()})  # strict: same keys
    return model


@pytest.mark.parametrize("activation", ["gelu", "silu", "elu", "tanh"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_norm_pass_matches_torch(backend, activation, dtype):
    torch = _torch()
    rng = np.random.default_rng(1)
    net = bp.Network([5, 7, 6, 3], activation=activation, norm="layer", dropout=0.2, dtype=dtype,
                     backend=backend, seed=1)
    params = net.parameters()
    params += rng.normal(scale=0.2, size=params.shape).astype(dtype)
    X, y = make_data("cross_entropy", 11, 5, 3, seed=2)
    model = torch_twin(net, torch).eval()  # eval: Dropout off, as in forward
    logits = model(torch.from_numpy(X.astype(dtype)))
    tol = PASS_TOL if dtype == "float64" else dict(rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.forward(X), torch.softmax(logits, 1).detach().numpy(), **tol)
    # gradients without dropout: the same network with rate 0
    plain = bp.Network([5, 7, 6, 3], activation=activation, norm="layer", dtype=dtype, backend=backend)
    plain.parameters()[...] = params
    loss, grads = plain.gradients(X, y, flat=True)
    model.zero_grad()
    torch_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    torch_loss.backward()
    expected = np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])
    assert loss == pytest.approx(torch_loss.item(), rel=tol["rtol"])
    np.testing.assert_allclose(grads, expected, **tol)


def test_to_torch_and_from_torch_round_trip(backend):
    _torch()  # skips without PyTorch
    net = bp.Network([4, 6, 5, 3], activation=["gelu", "elu"], norm="layer", dropout=[0.25, 0.0],
                     dtype="float64", backend=backend, seed=2)
    net.parameters()[...] += np.random.default_rng(0).normal(scale=0.1, size=net.n_params)
    module = net.to_torch()
    assert [type(m).__name__ for m in module] == ["Linear", "LayerNorm", "GELU", "Dropout", "Linear", "LayerNorm",
                                                  "ELU", "Linear", "Softmax"]
    assert list(net.state_dict()) == list(module.state_dict())
    assert module[3].p == 0.25 and module[1].eps == 1e-5
    back = bp.Network.from_torch(module, backend=backend)
    assert (back.norm, back.dropout, back.activations) == ("layer", (0.25, 0.0), net.activations)
    np.testing.assert_array_equal(back.parameters(), net.parameters())


# (name, backprop optimizer, torch optimizer class and arguments, weight decay of the torch weight group)
OPTIMIZERS = [
    ("sgd-momentum", lambda **c: bp.SGD(lr=0.1, momentum=0.9, weight_decay=0.01, **c), "SGD",
     dict(lr=0.1, momentum=0.9), 0.01),
    ("nesterov", lambda **c: bp.SGD(lr=0.1, momentum=0.8, nesterov=True, **c), "SGD",
     dict(lr=0.1, momentum=0.8, nesterov=True), 0.0),
    ("adam", lambda **c: bp.Adam(lr=0.02, weight_decay=0.01, **c), "Adam", dict(lr=0.02), 0.01),
    ("adamw", lambda **c: bp.AdamW(lr=0.02, weight_decay=0.1, **c), "AdamW", dict(lr=0.02), 0.1),
]
CLIPS = [{}, {"clip_norm": 0.5}, {"clip_value": 0.01}, {"clip_norm": 0.3, "clip_value": 0.02}]


@pytest.mark.parametrize("norm", [None, "layer"])
@pytest.mark.parametrize("clip", CLIPS, ids=["none", "norm", "value", "both"])
@pytest.mark.parametrize("name, make, torch_name, kwargs, weight_decay", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizers_and_clipping_match_torch(backend, norm, clip, name, make, torch_name, kwargs, weight_decay):
    """Several steps in float64. Decay applies to weight matrices only: torch gets two parameter groups."""
    torch = _torch()
    net = bp.Network([5, 8, 6, 3], activation="tanh", norm=norm, dtype="float64", backend=backend, seed=5)
    X, y = make_data("cross_entropy", 40, 5, 3, seed=6)
    model = torch_twin(net, torch)
    weights = [p for p in model.parameters() if p.dim() == 2]
    others = [p for p in model.parameters() if p.dim() == 1]
    torch_optimizer = getattr(torch.optim, torch_name)(
        [{"params": weights, "weight_decay": weight_decay}, {"params": others, "weight_decay": 0.0}], **kwargs)
    optimizer = make(**clip)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for first in range(0, 40, 8):  # five steps
        torch_optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(Xt[first:first + 8]), yt[first:first + 8]).backward()
        if "clip_norm" in clip:  # norm first, then value, as the optimizers document
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip["clip_norm"])
        if "clip_value" in clip:
            torch.nn.utils.clip_grad_value_(model.parameters(), clip["clip_value"])
        torch_optimizer.step()
    net.fit(X, y, epochs=1, batch_size=8, optimizer=optimizer, shuffle=False)
    expected = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    np.testing.assert_allclose(net.parameters(), expected, **TRAIN_TOL)


def test_clipping_bounds_the_step():
    X, y = make_data("cross_entropy", 30, 4, 3)
    net = bp.Network([4, 6, 3], dtype="float64", backend="numpy", seed=0)
    before = net.parameters().copy()
    net.train_on_batch(X, y, optimizer=bp.SGD(lr=1.0, clip_norm=1e-3))
    assert np.linalg.norm(net.parameters() - before) == pytest.approx(1e-3, rel=1e-3)
    net.train_on_batch(X, y, optimizer=bp.SGD(lr=1.0, clip_value=1e-4))
    assert np.abs(net.parameters() - before).max() <= 1e-3 + 1e-4 + 1e-15


@pytest.mark.parametrize("make, message", [
    (lambda: bp.SGD(lr=0.1, clip_norm=0.0), "clip_norm must be > 0"),
    (lambda: bp.Adam(clip_value=-1.0), "clip_value must be > 0"),
    (lambda: bp.AdamW(weight_decay=-0.1), "weight_decay must be >= 0"),
    (lambda: bp.AdamW(clip_norm="1"), "clip_norm must be a real number"),
])
def test_bad_optimizer_settings_are_refused(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_adamw_defaults_and_config():
    opt = bp.AdamW()
    assert (opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay) == (1e-3, 0.9, 0.999, 1e-8, 1e-2)
    assert opt.clip_norm is None and opt.clip_value is None
    assert repr(bp.AdamW(clip_norm=1.0)) == ("AdamW(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.01, "
                                             "clip_norm=1.0)")
    assert type(opt)(**opt.get_config()).get_config() == opt.get_config()
