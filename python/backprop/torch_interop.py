"""PyTorch interchange: Network <-> torch.nn.Sequential, and PyTorch-style state dicts.

PyTorch is optional: it is imported only by the functions that build or read
modules (``pip install "backprop-mlp[torch]"``). State dicts are plain NumPy
arrays and need no PyTorch at all.

Layer correspondence (weights are (n_out, n_in) in both libraries)::

    Dense(activation=a)  <->  nn.Linear(n_in, n_out, bias=True) [+ the module for a]

    relu -> nn.ReLU()            leaky_relu -> nn.LeakyReLU(0.01)
    tanh -> nn.Tanh()            sigmoid    -> nn.Sigmoid()
    identity -> (no module)      softmax    -> nn.Softmax(dim=-1), output layer only
    exp (output only) -> no module: only ``to_torch(logits=True)``, whose outputs are
                         the log-rates nn.PoissonNLLLoss(log_input=True) takes

State-dict keys are those of the module ``to_torch()`` builds: ``"0.weight"``,
``"0.bias"``, then ``"2.weight"`` if an activation module sits at index 1,
and so on.
"""

from __future__ import annotations

import numpy as np

from ._architecture import LEAKY_RELU_SLOPE, OUTPUT_FOR_LOSS
from ._validation import convert_finite

__all__ = ["from_torch", "to_torch", "state_dict", "load_state_dict"]

# A plain `pip install torch` is the CUDA build on Linux (gigabytes): point to the CPU build too.
INSTALL_HINT = ('pip install "backprop-mlp[torch]", after the CPU build if no GPU is wanted: '
                'pip install torch --index-url https://download.pytorch.org/whl/cpu')
SUPPORTED = (f"Linear (with bias), ReLU, LeakyReLU(negative_slope={LEAKY_RELU_SLOPE}), Tanh, Sigmoid, Identity, "
             "and Softmax(dim=-1) as the last module")


def _import_torch():
    """The torch module, or an ImportError naming the extra to install."""
    try:
        import torch
        import torch.nn  # noqa: F401  (a broken install fails here, not later)
    except ImportError as error:
        raise ModuleNotFoundError(f"PyTorch interchange needs PyTorch, which is not installed: {INSTALL_HINT}",
                                  name="torch") from error
    return torch


def _activation_name(module, nn, position):
    """The backprop activation a torch activation module computes, or None if it is no activation."""
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.LeakyReLU):
        if module.negative_slope != LEAKY_RELU_SLOPE:
            raise ValueError(f"module {position} is LeakyReLU(negative_slope={module.negative_slope}); "
                             f"backprop's leaky_relu has slope {LEAKY_RELU_SLOPE} only")
        return "leaky_relu"
    if isinstance(module, nn.Tanh):
        return "tanh"
    if isinstance(module, nn.Sigmoid):
        return "sigmoid"
    if isinstance(module, nn.Softmax):
        # dim=None is PyTorch's legacy implicit choice, which is dim 1 for 2-D input.
        if module.dim not in (None, -1, 1):
            raise ValueError(f"module {position} is Softmax(dim={module.dim}); only the feature dimension "
                             "(dim=-1 or 1) is supported")
        return "softmax"
    return None


def _flatten(module, nn, prefix=""):
    """(position, module) pairs of a Sequential, nested Sequentials opened, Identity dropped."""
    for name, child in module.named_children():
        position = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            yield from _flatten(child, nn, position + ".")
        elif not isinstance(child, nn.Identity):  # computes nothing
            yield position, child


def from_torch(module, network_class, loss=None, dtype=None, backend="native", seed=None):
    """A `network_class` computing what a ``torch.nn.Sequential`` of Linear layers computes.

    Users call ``Network.from_torch(module, ...)``, which passes itself as
    `network_class` (so this module never imports network.py).

    Parameters
    ----------
    module : torch.nn.Sequential or torch.nn.Linear
        Linear layers (with bias), each optionally followed by one of ReLU,
        LeakyReLU(0.01), Tanh, Sigmoid; Identity modules and nested
        Sequentials are allowed; Softmax(dim=-1) only at the very end.
    loss : str, optional
        The network's loss. Default: ``cross_entropy`` after a trailing
        Softmax, ``binary_cross_entropy`` after a trailing Sigmoid, else
        ``mse`` (a last Linear without activation is a regression output).
        ``loss='cross_entropy'`` on a module ending in a Linear reads its
        outputs as logits (``nn.CrossEntropyLoss``'s convention) and gives
        the network a softmax output; ``'binary_cross_entropy'`` likewise
        adds a sigmoid (``nn.BCEWithLogitsLoss``). Predicted classes are the
        same either way.
    dtype : 'float32' or 'float64', optional
        Default: float64 for a float64 module, else float32.
    backend : 'native' or 'numpy'
    seed : int, optional
        Seeds the network's generator (shuffling in later training).
    network_class : type
        Network or a subclass.

    Returns
    -------
    Network with copies of the module's weights.

    Raises
    ------
    ModuleNotFoundError
        When PyTorch is not installed.
    TypeError
        When `module` is not a Sequential or Linear.
    ValueError
        Naming the first unsupported module (Conv2d, Dropout,
        LeakyReLU(0.2), Linear without bias, ...) or mismatched layer sizes.
    """
    torch = _import_torch()
    nn = torch.nn
    if isinstance(module, nn.Linear):
        module = nn.Sequential(module)
    if not isinstance(module, nn.Sequential):
        raise TypeError(f"from_torch takes a torch.nn.Sequential (or one nn.Linear), got {type(module).__name__}")

    linears, activations = [], []  # activations[i]: the activation after linears[i], None for identity
    items = list(_flatten(module, nn))
    for k, (position, child) in enumerate(items):
        what = f"{type(child).__name__} (module {position})"
        if isinstance(child, nn.Linear):
            if child.bias is None:
                raise ValueError(f"{what} has no bias; backprop's layers always have one "
                                 "(load it with a zero bias: nn.Linear(..., bias=True))")
            if linears and child.in_features != linears[-1].out_features:
                raise ValueError(f"{what} takes {child.in_features} inputs but the layer before it gives "
                                 f"{linears[-1].out_features}")
            linears.append(child)
            activations.append(None)
            continue
        name = _activation_name(child, nn, position)
        if name is None:
            raise ValueError(f"{what} is not supported; from_torch understands {SUPPORTED}")
        if not linears:
            raise ValueError(f"{what} comes before the first Linear layer")
        if activations[-1] is not None:
            raise ValueError(f"{what} follows another activation ({activations[-1]}); backprop has one "
                             "activation per layer")
        if name == "softmax" and k != len(items) - 1:
            raise ValueError(f"{what}: Softmax is supported only as the last module")
        activations[-1] = name
    if not linears:
        raise ValueError("the module holds no Linear layer")

    hidden = [a or "identity" for a in activations[:-1]]
    output = activations[-1]
    if output is None:
        # A bare last Linear: regression unless the loss says its outputs are logits.
        output = OUTPUT_FOR_LOSS.get(loss, "identity")
    if dtype is None:
        dtype = "float64" if linears[0].weight.dtype == torch.float64 else "float32"
    sizes = [linears[0].in_features] + [linear.out_features for linear in linears]
    network = network_class(sizes, activation=hidden, output=output, loss=loss, dtype=dtype,
                            backend=backend, seed=seed)
    for layer, linear in zip(network.layers, linears):
        layer.W = _to_numpy(linear.weight)
        layer.b = _to_numpy(linear.bias)
    return network


def _module_names(network):
    """The torch module class name (or None) following each layer, as to_torch lays them out."""
    # exp (only ever the output) has no module; being last, it moves no index.
    names = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "tanh": "Tanh", "sigmoid": "Sigmoid",
             "softmax": "Softmax", "identity": None, "exp": None}
    return [names[a] for a in network.activations]


def _linear_indices(network):
    """The Linear indices of ``to_torch(network)``: one per layer."""
    indices, index = [], 0
    for module in _module_names(network):
        indices.append(index)
        index += 1 if module is None else 2
    return indices


def to_torch(network, logits=False):
    """A ``torch.nn.Sequential`` computing what `network` computes.

    Parameters
    ----------
    network : Network
    logits : bool
        Leave out a trailing Softmax or Sigmoid, so the module returns the
        last layer's pre-activations: what ``nn.CrossEntropyLoss`` and
        ``nn.BCEWithLogitsLoss`` expect. By default the module ends in
        ``nn.Softmax(dim=-1)`` / ``nn.Sigmoid()`` when the network's output
        is softmax / sigmoid, so its outputs equal ``network.forward``'s.

    Returns
    -------
    torch.nn.Sequential of Linear layers (the network's dtype, copies of its
    weights, on the CPU) and activation modules; identity activations get no
    module. Its ``state_dict()`` keys match ``network.state_dict()``'s.

    Raises
    ------
    ModuleNotFoundError
        When PyTorch is not installed.
    ValueError
        For an 'exp' output (loss 'poisson') without ``logits=True``: torch.nn
        has no exponential module.
    """
    if network.activations[-1] == "exp" and not logits:
        raise ValueError("to_torch: the network's 'exp' output (loss 'poisson') has no torch.nn module; use "
                         "to_torch(logits=True), whose outputs are the log-rates that "
                         "nn.PoissonNLLLoss(log_input=True) takes (torch.exp of them is forward's output)")
    torch = _import_torch()
    nn = torch.nn
    torch_dtype = torch.float64 if network.dtype == np.float64 else torch.float32
    modules = []
    for k, (layer, name) in enumerate(zip(network.layers, _module_names(network))):
        # skip_init: no random initialisation, so torch's global generator is left alone.
        linear = nn.utils.skip_init(nn.Linear, layer.n_in, layer.n_out, dtype=torch_dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.array(layer.W)))
            linear.bias.copy_(torch.from_numpy(np.array(layer.b)))
        modules.append(linear)
        last = k == len(network.layers) - 1
        if name is None or (last and logits and name in ("Softmax", "Sigmoid")):
            continue
        if name == "Softmax":
            modules.append(nn.Softmax(dim=-1))
        elif name == "LeakyReLU":
            modules.append(nn.LeakyReLU(LEAKY_RELU_SLOPE))
        else:
            modules.append(getattr(nn, name)())
    return nn.Sequential(*modules)


def state_dict(network):
    """The parameters under PyTorch's key names, as NumPy arrays.

    Returns
    -------
    dict: ``"{i}.weight"`` (n_out, n_in) and ``"{i}.bias"`` (n_out,) for each
    layer, i being the layer's index in ``to_torch()``'s Sequential. The
    arrays are copies: later training does not change them.
    """
    result = {}
    for index, layer in zip(_linear_indices(network), network.layers):
        result[f"{index}.weight"] = layer.W.copy()
        result[f"{index}.bias"] = layer.b.copy()
    return result


def _to_numpy(value):
    """A NumPy array from an array-like or a torch tensor (without importing torch)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        tensor = value.detach().cpu()
        if not tensor.dtype.is_floating_point or tensor.dtype.itemsize < 4:
            tensor = tensor.double()  # bfloat16 has no NumPy dtype; integers convert exactly
        return tensor.numpy()
    return np.asarray(value)


def load_state_dict(network, state):
    """Set the network's parameters from a PyTorch-style state dict.

    Parameters
    ----------
    network : Network
    state : mapping of str -> array-like or torch.Tensor
        Exactly the keys ``network.state_dict()`` has, with the same shapes
        (a ``to_torch()`` module's ``state_dict()`` qualifies). Values are
        converted to the network's dtype.

    Raises
    ------
    TypeError
        When `state` is not a mapping or a value does not hold real numbers.
    ValueError
        On missing or unexpected keys, wrong shapes, NaN or infinity. Every
        value is checked before any is written, so on error the network is
        unchanged.
    """
    if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
        raise TypeError(f"state_dict must be a mapping of names to arrays, got {type(state).__name__}")
    targets = {}
    for index, layer in zip(_linear_indices(network), network.layers):
        targets[f"{index}.weight"] = (layer, "W")
        targets[f"{index}.bias"] = (layer, "b")
    keys = list(state.keys())
    missing = [key for key in targets if key not in keys]
    unexpected = [key for key in keys if key not in targets]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        raise ValueError(f"state_dict does not fit this network: {'; '.join(parts)} "
                         f"(expected {list(targets)})")
    converted = {}
    for key, (layer, attribute) in targets.items():
        target = getattr(layer, attribute)
        array = _to_numpy(state[key])
        if array.dtype.kind not in "biuf":
            raise TypeError(f"state_dict[{key!r}] must hold real numbers, got dtype {array.dtype}")
        if array.shape != target.shape:
            raise ValueError(f"state_dict[{key!r}] has shape {tuple(array.shape)}, expected {target.shape}")
        converted[key] = convert_finite(f"state_dict[{key!r}]", array, target.dtype)
    # Everything checked: now write.
    for key, (layer, attribute) in targets.items():
        getattr(layer, attribute)[...] = converted[key]
