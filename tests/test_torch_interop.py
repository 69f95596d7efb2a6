"""PyTorch interchange: Network.from_torch, to_torch, state_dict and load_state_dict.

Round trips must give the same predictions; unsupported modules must be named
in the error; state dicts use PyTorch's key names and are checked completely
before anything is written. PyTorch stays optional (the last tests run without it).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import TORCH_MISSING, assert_unchanged, snapshot

import backprop as bp

RNG = np.random.default_rng(0)
X5 = RNG.normal(size=(12, 5))


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason=TORCH_MISSING)


@pytest.fixture(scope="module")
def nn(torch):
    return torch.nn


def torch_out(module, X, torch):
    with torch.no_grad():
        return module(torch.from_numpy(np.asarray(X))).numpy()


def seeded(torch):
    torch.manual_seed(0)


# -- from_torch -------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_from_torch_computes_what_the_module_computes(torch, nn, backend, dtype):
    seeded(torch)
    torch_dtype = getattr(torch, dtype)
    module = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 7), nn.Tanh(), nn.Linear(7, 6),
                           nn.LeakyReLU(), nn.Linear(6, 4), nn.Sigmoid(), nn.Linear(4, 3), nn.Identity(),
                           nn.Linear(3, 3), nn.Softmax(dim=-1)).to(torch_dtype)
    net = bp.Network.from_torch(module, backend=backend)
    assert net.dtype == np.dtype(dtype) and net.backend == backend
    assert net.sizes == (5, 8, 7, 6, 4, 3, 3)
    assert net.activations == ("relu", "tanh", "leaky_relu", "sigmoid", "identity", "softmax")
    assert net.loss == "cross_entropy"
    X = X5.astype(dtype)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(net.forward(X), torch_out(module, X, torch), rtol=rtol, atol=rtol)
    # The weights are copies: changing the module changes nothing in the network.
    before = snapshot(net)
    with torch.no_grad():
        module[0].weight.add_(1.0)
    assert_unchanged(net, before)


@pytest.mark.parametrize("tail, loss, output, expected_loss", [
    ([], None, "identity", "mse"),                                   # regression
    ([], "cross_entropy", "softmax", "cross_entropy"),               # logits for CrossEntropyLoss
    ([], "binary_cross_entropy", "sigmoid", "binary_cross_entropy"),  # logits for BCEWithLogitsLoss
    (["Softmax"], None, "softmax", "cross_entropy"),
    (["Sigmoid"], None, "sigmoid", "binary_cross_entropy"),
    (["Sigmoid"], "mse", "sigmoid", "mse"),
    (["Tanh"], None, "tanh", "mse"),
    (["ReLU"], None, "relu", "mse"),
])
def test_from_torch_output_and_loss(torch, nn, tail, loss, output, expected_loss):
    seeded(torch)
    modules = [nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)] + [getattr(nn, name)() if name != "Softmax"
                                                              else nn.Softmax(dim=1) for name in tail]
    net = bp.Network.from_torch(nn.Sequential(*modules), loss=loss)
    assert net.activations[-1] == output and net.loss == expected_loss
    logits = torch_out(nn.Sequential(*modules[:3]).double(), X5, torch)
    if not tail and loss == "cross_entropy":
        # A bare last Linear read as logits: same classes, softmax probabilities.
        np.testing.assert_array_equal(net.predict(X5), logits.argmax(axis=1))
        np.testing.assert_allclose(net.forward(X5), torch.softmax(torch.from_numpy(logits), 1).numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_from_torch_single_linear_nested_sequential_and_dtype_override(torch, nn):
    seeded(torch)
    linear = nn.Linear(5, 2)
    net = bp.Network.from_torch(linear, dtype="float64", backend="numpy", seed=3)
    assert net.sizes == (5, 2) and net.dtype == np.float64 and net.seed == 3
    np.testing.assert_allclose(net.forward(X5), torch_out(linear.double(), X5, torch), rtol=1e-12)
    nested = nn.Sequential(nn.Sequential(nn.Linear(5, 4), nn.Tanh()), nn.Sequential(nn.Linear(4, 2)))
    net = bp.Network.from_torch(nested)
    assert net.sizes == (5, 4, 2) and net.activations == ("tanh", "identity")


def test_from_torch_half_precision_weights(torch, nn):
    seeded(torch)
    module = nn.Sequential(nn.Linear(5, 3)).to(torch.bfloat16)
    net = bp.Network.from_torch(module)
    assert net.dtype == np.float32
    np.testing.assert_array_equal(net.layers[0].W, module[0].weight.float().detach().numpy())


@pytest.mark.parametrize("build, message", [
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.Mish(), nn.Linear(4, 2)),
     r"Mish \(module 1\) is not supported"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2), nn.Dropout(0.5)),
     "after hidden layers only"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.LayerNorm(4), nn.Linear(4, 2)),
     "right after its Linear layer"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4, eps=1e-3), nn.Linear(4, 2)), "eps=1e-05"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4), nn.Linear(4, 3), nn.Linear(3, 2)),
     "every hidden Linear or none"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.Dropout(0.5), nn.ReLU(), nn.Linear(4, 2)), "follows a Dropout"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.GELU(approximate="tanh")), "approximate 'none' only"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.ELU(alpha=0.5)), "alpha 1.0 only"),
    (lambda nn: nn.Sequential(nn.Conv2d(1, 2, 3)), r"Conv2d \(module 0\) is not supported"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.LeakyReLU(0.2), nn.Linear(4, 2)),
     r"LeakyReLU\(negative_slope=0.2\).*slope 0.01 only"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4, bias=False)), r"Linear \(module 0\) has no bias"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.Softmax(dim=-1), nn.Linear(4, 2)),
     "Softmax is supported only as the last module"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.Softmax(dim=0)), r"Softmax\(dim=0\)"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.LogSoftmax(dim=-1)), r"LogSoftmax \(module 1\) is not supported"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.Linear(3, 2)), "takes 3 inputs but the layer before it gives 4"),
    (lambda nn: nn.Sequential(nn.ReLU(), nn.Linear(5, 4)), "before the first Linear"),
    (lambda nn: nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Tanh(), nn.Linear(4, 2)),
     "follows another activation"),
    (lambda nn: nn.Sequential(), "no Linear layer"),
    (lambda nn: nn.Sequential(nn.Identity()), "no Linear layer"),
    (lambda nn: nn.Sequential(nn.Sequential(nn.Linear(5, 4), nn.Mish())), r"Mish \(module 0.1\)"),
])
def test_from_torch_names_unsupported_modules(torch, nn, build, message):
    with pytest.raises(ValueError, match=message) as info:
        bp.Network.from_torch(build(nn))
    if "not supported" in message:
        assert "ReLU" in str(info.value) and "Softmax" in str(info.value)  # lists what is supported


def test_from_torch_refuses_other_modules_and_bad_loss(torch, nn):
    class Net(nn.Module):
        def forward(self, x):
            return x
    with pytest.raises(TypeError, match="torch.nn.Sequential.*got Net"):
        bp.Network.from_torch(Net())
    with pytest.raises(TypeError, match="got ndarray"):
        bp.Network.from_torch(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="softmax.*cross_entropy"):
        bp.Network.from_torch(nn.Sequential(nn.Linear(5, 3), nn.Softmax(dim=-1)), loss="mse")
    with pytest.raises(ValueError, match="loss must be one of"):
        bp.Network.from_torch(nn.Sequential(nn.Linear(5, 3)), loss="hinge")
    with pytest.raises(ValueError, match="dtype"):
        bp.Network.from_torch(nn.Sequential(nn.Linear(5, 3)), dtype="float16")


def test_from_torch_leaves_torch_rng_alone(torch, nn):
    module = nn.Sequential(nn.Linear(5, 3))
    state = torch.get_rng_state()
    bp.Network.from_torch(module).to_torch()
    assert torch.equal(state, torch.get_rng_state())


# -- to_torch ---------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_gives_the_same_predictions(torch, backend, loss, dtype):
    net = bp.Network([5, 7, 6, 3], activation=["leaky_relu", "sigmoid"], loss=loss, dtype=dtype,
                     backend=backend, seed=1)
    module = net.to_torch()
    assert next(module.parameters()).dtype == getattr(torch, dtype)
    X = X5.astype(dtype)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(torch_out(module, X, torch), net.forward(X), rtol=rtol, atol=rtol)
    back = bp.Network.from_torch(module, backend=backend)
    assert back.loss == net.loss and back.activations == net.activations and back.dtype == net.dtype
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    for a, b in zip(net.layers, back.layers):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)


def test_to_torch_layout_and_logits(torch, nn):
    net = bp.Network([5, 7, 6, 3], activation=["relu", "identity"], output="softmax", backend="numpy", seed=1)
    module = net.to_torch()
    assert [type(m).__name__ for m in module] == ["Linear", "ReLU", "Linear", "Linear", "Softmax"]
    assert module[-1].dim == -1
    logits = net.to_torch(logits=True)
    assert [type(m).__name__ for m in logits] == ["Linear", "ReLU", "Linear", "Linear"]
    out = torch_out(logits, X5.astype(np.float32), torch)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(out), 1).numpy(), net.forward(X5), rtol=1e-5,
                               atol=1e-6)
    again = bp.Network.from_torch(logits, loss="cross_entropy")
    np.testing.assert_allclose(again.forward(X5), net.forward(X5), rtol=1e-6)
    # The module is independent of the network.
    with torch.no_grad():
        module[0].weight.zero_()
    assert np.any(net.layers[0].W != 0)


def test_to_torch_poisson_gives_log_rates_only(torch, nn):
    """An exp output has no torch module: to_torch refuses it, logits=True gives the log-rates.

    torch's PoissonNLLLoss(log_input=True) is exp(z) − y·z per output, backprop's poisson adds the
    constant xlogy(y, y) − y, so their gradients are the same.
    """
    net = bp.Network([5, 4, 2], activation="tanh", loss="poisson", dtype="float64", backend="numpy", seed=0)
    with pytest.raises(ValueError, match="exp.*logits=True"):
        net.to_torch()
    module = net.to_torch(logits=True)
    assert [type(m).__name__ for m in module] == ["Linear", "Tanh", "Linear"]
    np.testing.assert_allclose(np.exp(torch_out(module, X5, torch)), net.forward(X5), rtol=1e-12)
    assert list(module.state_dict()) == list(net.state_dict())
    y = RNG.poisson(1.0, size=(12, 2)).astype(np.float64)
    nll = nn.PoissonNLLLoss(log_input=True, full=False, reduction="sum")(
        module(torch.from_numpy(X5)), torch.from_numpy(y)) / 12
    nll.backward()
    _, grads = net.gradients(X5, y)
    np.testing.assert_allclose(module[2].weight.grad.numpy(), grads[1][0], rtol=1e-10)
    np.testing.assert_allclose(module[0].bias.grad.numpy(), grads[0][1], rtol=1e-10)


def test_to_torch_module_trains_in_torch(torch, nn):
    net = bp.Network([5, 4, 3], activation="tanh", backend="numpy", seed=0)
    module = net.to_torch(logits=True)
    y = torch.from_numpy(RNG.integers(0, 3, 12))
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    loss = nn.CrossEntropyLoss()(module(torch.from_numpy(X5.astype(np.float32))), y)
    loss.backward()
    optimizer.step()
    before = snapshot(net)
    net.load_state_dict(module.state_dict())
    assert not np.array_equal(net.layers[0].W, before[0][0])


# -- state dicts ------------------------------------------------------------------
def test_state_dict_keys_match_to_torch(torch):
    net = bp.Network([5, 7, 6, 4, 3], activation=["relu", "identity", "tanh"], loss="mse", backend="numpy", seed=0)
    state = net.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias", "5.weight", "5.bias"]
    torch_state = net.to_torch().state_dict()
    assert list(torch_state) == list(state)
    for key, value in state.items():
        assert isinstance(value, np.ndarray) and value.dtype == np.float32
        np.testing.assert_array_equal(torch_state[key].numpy(), value)


def test_state_dict_needs_no_torch_and_is_a_copy(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    net = bp.Network([3, 4, 2], backend="numpy", seed=0)
    state = net.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert state["0.weight"].shape == (4, 3) and state["2.bias"].shape == (2,)
    state["0.weight"][...] = 0
    assert np.any(net.layers[0].W != 0)
    other = bp.Network([3, 4, 2], backend="numpy", seed=1)
    other.load_state_dict(net.state_dict())
    X = X5[:, :3]
    np.testing.assert_array_equal(other.forward(X), net.forward(X))


def test_load_state_dict_from_torch_tensors_and_float64(torch, nn, backend):
    seeded(torch)
    module = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    net = bp.Network([5, 4, 2], output="identity", backend=backend, seed=0)
    net.load_state_dict(module.state_dict())  # float64 tensors into a float32 network
    assert net.layers[0].W.dtype == np.float32
    np.testing.assert_allclose(net.forward(X5), torch_out(module, X5, torch), rtol=1e-5, atol=1e-6)
    # Tensors that need grad are fine too.
    net.load_state_dict({k: v for k, v in zip(net.state_dict(), module.parameters())})


@pytest.mark.parametrize("change, error, message", [
    (lambda d: d.pop("2.bias"), ValueError, r"missing keys \['2.bias'\]"),
    (lambda d: d.update({"4.weight": np.zeros((1, 1))}), ValueError, r"unexpected keys \['4.weight'\]"),
    (lambda d: d.update({"1.weight": d.pop("2.weight")}), ValueError, "missing keys.*unexpected keys"),
    (lambda d: d.update({"2.weight": np.zeros((4, 2))}), ValueError, r"'2.weight'\] has shape \(4, 2\), expected \(2, 4\)"),
    (lambda d: d.update({"0.bias": np.zeros((4, 1))}), ValueError, r"expected \(4,\)"),
    (lambda d: d.update({"2.bias": np.array([np.nan, 0.0])}), ValueError, "NaN or infinity"),
    (lambda d: d.update({"2.bias": np.array([1e300, 0.0])}), ValueError, "too large for float32"),
    (lambda d: d.update({"2.bias": np.array(["a", "b"])}), TypeError, "real numbers"),
    (lambda d: d.update({"2.bias": None}), TypeError, "real numbers"),
])
def test_load_state_dict_checks_everything_and_changes_nothing(change, error, message):
    net = bp.Network([5, 4, 2], backend="numpy", seed=0)
    state = {key: value + 1 for key, value in net.state_dict().items()}
    change(state)
    before = snapshot(net)
    with pytest.raises(error, match=message):
        net.load_state_dict(state)
    assert_unchanged(net, before)  # "0.weight" was valid and came first, yet nothing was written


def test_load_state_dict_refuses_non_mappings():
    net = bp.Network([5, 4, 2], backend="numpy", seed=0)
    with pytest.raises(TypeError, match="mapping"):
        net.load_state_dict([("0.weight", np.zeros((4, 5)))])


# -- without PyTorch --------------------------------------------------------------
def test_without_torch_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ModuleNotFoundError
    net = bp.Network([3, 2], backend="numpy", seed=0)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "backprop-mlp\[torch\]"') as info:
        net.to_torch()
    assert info.value.name == "torch"
    with pytest.raises(ModuleNotFoundError, match=r"backprop-mlp\[torch\]"):
        bp.Network.from_torch(object())


def test_importing_backprop_does_not_import_torch():
    import subprocess
    code = "import sys, backprop, backprop.torch_interop, backprop.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
