"""PyTorch interchange: Network <-> torch.nn.Sequential, and PyTorch-style state dicts.

PyTorch is optional: it is imported only by the functions that build or read
modules (``pip install "backprop-mlp[torch]"``). State dicts are plain NumPy
arrays and need no PyTorch at all.

Layer correspondence (weights are (n_out, n_in) in both libraries)::

    Dense(activation=a)  <->  nn.Linear(n_in, n_out, bias=True) [+ the module for a]
    hidden block         <->  nn.Linear, [nn.LayerNorm(n_out)], [activation], [nn.Dropout(p)]
                              (norm='layer': LayerNorm's weight is γ, its bias β)

    relu -> nn.ReLU()            leaky_relu -> nn.LeakyReLU(0.01)
    tanh -> nn.Tanh()            sigmoid    -> nn.Sigmoid()
    gelu -> nn.GELU()            silu       -> nn.SiLU()          elu -> nn.ELU()
    identity -> (no module)      softmax    -> nn.Softmax(dim=-1), output layer only
    exp (output only) -> no module: only ``to_torch(logits=True)``, whose outputs are
                         the log-rates nn.PoissonNLLLoss(log_input=True) takes

State-dict keys are those of the module ``to_torch()`` builds: ``"0.weight"``,
``"0.bias"``, then ``"1.weight"`` and ``"1.bias"`` (γ, β) if a LayerNorm sits at
index 1, ``"2.weight"`` for the next Linear if an activation module sits at
index 1, and so on.
"""

from __future__ import annotations

import numpy as np

from ._architecture import ELU_ALPHA, LEAKY_RELU_SLOPE, OUTPUT_FOR_LOSS
from ._validation import convert_finite

__all__ = ["from_torch", "to_torch", "state_dict", "load_state_dict"]

# A plain `pip install torch` is the CUDA build on Linux (gigabytes): point to the CPU build too.
INSTALL_HINT = ('pip install "backprop-mlp[torch]", after the CPU build if no GPU is wanted: '
                'pip install torch --index-url https://download.pytorch.org/whl/cpu')
SUPPORTED = (f"Linear (with bias), LayerNorm(n_out, eps=1e-05) after a hidden Linear, ReLU, "
             f"LeakyReLU(negative_slope={LEAKY_RELU_SLOPE}), Tanh, Sigmoid, GELU(approximate='none'), SiLU, "
             f"ELU(alpha={ELU_ALPHA}), Dropout after a hidden layer, Identity, and Softmax(dim=-1) as the last module")
# The torch module class of each activation; identity and exp (only ever the output) have none.
_MODULES = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "softmax": "Softmax",
            "gelu": "GELU", "silu": "SiLU", "elu": "ELU", "identity": None, "exp": None}


def _import_torch():
    """The torch module, or an ImportError naming the extra to install."""
    try:
        import torch
        import torch.nn  # noqa: F401  (a broken install fails here, not later)
    except ImportError as error:
        raise ModuleNotFoundError(f"PyTorch interchange needs PyTorch, which is not installed: {INSTALL_HINT}",
                                  name="torch") from error
    return torch


# Activation modules with a setting backprop fixes: class -> (attribute, what it is called, the value, name).
_FIXED_SETTINGS = {"LeakyReLU": ("negative_slope", "slope", LEAKY_RELU_SLOPE, "leaky_relu"),
                   "GELU": ("approximate", "approximate", "none", "gelu"),
                   "ELU": ("alpha", "alpha", ELU_ALPHA, "elu")}
_PLAIN = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "SiLU": "silu"}


def _activation_name(module, nn, position):
    """The backprop activation a torch activation module computes, or None if it is no activation."""
    for class_name, name in _PLAIN.items():
        if isinstance(module, getattr(nn, class_name)):
            return name
    for class_name, (attribute, label, value, name) in _FIXED_SETTINGS.items():
        if isinstance(module, getattr(nn, class_name)):
            found = getattr(module, attribute)
            if found != value:
                raise ValueError(f"module {position} is {class_name}({attribute}={found!r}); backprop's {name} has "
                                 f"{label} {value!r} only")
            return name
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
    norms, rates = [], []  # the LayerNorm and dropout rate after linears[i] (None, 0.0 for none)
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
            norms.append(None)
            rates.append(0.0)
            continue
        if isinstance(child, (nn.LayerNorm, nn.Dropout)):
            _check_block_module(child, nn, what, linears, activations, norms, rates)
            continue
        name = _activation_name(child, nn, position)
        if name is None:
            raise ValueError(f"{what} is not supported; from_torch understands {SUPPORTED}")
        if linears and rates[-1]:
            raise ValueError(f"{what} follows a Dropout; backprop's dropout comes after the layer's activation")
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
    if norms[-1] is not None or rates[-1]:
        raise ValueError("LayerNorm and Dropout are supported after hidden layers only, not after the last Linear")
    hidden_norms = [n is not None for n in norms[:-1]]
    if any(hidden_norms) and not all(hidden_norms):
        raise ValueError("LayerNorm must follow every hidden Linear or none (backprop's norm='layer' normalises "
                         "every hidden layer)")

    hidden = [a or "identity" for a in activations[:-1]]
    output = activations[-1]
    if output is None:
        # A bare last Linear: regression unless the loss says its outputs are logits.
        output = OUTPUT_FOR_LOSS.get(loss, "identity")
    if dtype is None:
        dtype = "float64" if linears[0].weight.dtype == torch.float64 else "float32"
    sizes = [linears[0].in_features] + [linear.out_features for linear in linears]
    network = network_class(sizes, activation=hidden, output=output, loss=loss, dtype=dtype,
                            backend=backend, seed=seed, dropout=rates[:-1],
                            norm="layer" if any(hidden_norms) else None)
    for layer, linear, norm in zip(network.layers, linears, norms):
        layer.W = _to_numpy(linear.weight)
        layer.b = _to_numpy(linear.bias)
        if norm is not None:
            layer.gamma = _to_numpy(norm.weight)
            layer.beta = _to_numpy(norm.bias)
    return network


def _check_block_module(child, nn, what, linears, activations, norms, rates):
    """Record a LayerNorm or Dropout after linears[-1], or raise naming what does not fit."""
    if not linears:
        raise ValueError(f"{what} comes before the first Linear layer")
    if isinstance(child, nn.Dropout):
        if rates[-1]:
            raise ValueError(f"{what} follows another Dropout")
        if not 0.0 <= child.p < 1.0:
            raise ValueError(f"{what} has p={child.p}; backprop's dropout rates are in [0, 1)")
        rates[-1] = float(child.p) if child.p else 0.0
        return
    n_out = linears[-1].out_features
    if norms[-1] is not None or activations[-1] is not None or rates[-1]:
        raise ValueError(f"{what} must come right after its Linear layer (before the activation)")
    if tuple(child.normalized_shape) != (n_out,):
        raise ValueError(f"{what} normalises shape {tuple(child.normalized_shape)}; backprop's LayerNorm "
                         f"normalises the layer's ({n_out},) units")
    if child.eps != 1e-5 or not child.elementwise_affine or child.bias is None:
        raise ValueError(f"{what} must have eps=1e-05 and a learnable weight and bias, as nn.LayerNorm({n_out})")
    norms[-1] = child


def _plan(network, logits=False):
    """The modules of ``to_torch(network)`` in order: (kind, layer index, argument) triples.

    kind is "Linear", "LayerNorm", an activation's module class name or
    "Dropout" (argument: its rate); `logits` leaves out a trailing Softmax or
    Sigmoid. Its positions are the Sequential's indices, so the state-dict keys.
    """
    plan = []
    last = len(network.layers) - 1
    for l, layer in enumerate(network.layers):
        plan.append(("Linear", l, None))
        if layer.gamma is not None:
            plan.append(("LayerNorm", l, None))
        name = _MODULES[layer.activation]
        if name is not None and not (l == last and logits and name in ("Softmax", "Sigmoid")):
            plan.append((name, l, None))
        if layer.dropout:
            plan.append(("Dropout", l, layer.dropout))
    return plan


def _parameter_targets(network):
    """{state-dict key: (layer, attribute)} in to_torch()'s order."""
    targets = {}
    for index, (kind, l, _) in enumerate(_plan(network)):
        if kind in ("Linear", "LayerNorm"):
            weight, bias = ("W", "b") if kind == "Linear" else ("gamma", "beta")
            targets[f"{index}.weight"] = (network.layers[l], weight)
            targets[f"{index}.bias"] = (network.layers[l], bias)
    return targets


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

    def copied(module, weight, bias):
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.array(weight)))
            module.bias.copy_(torch.from_numpy(np.array(bias)))
        return module

    modules = []
    for kind, l, argument in _plan(network, logits):
        layer = network.layers[l]
        if kind == "Linear":
            # skip_init: no random initialisation, so torch's global generator is left alone.
            modules.append(copied(nn.utils.skip_init(nn.Linear, layer.n_in, layer.n_out, dtype=torch_dtype),
                                  layer.W, layer.b))
        elif kind == "LayerNorm":
            modules.append(copied(nn.LayerNorm(layer.n_out, eps=1e-5, dtype=torch_dtype), layer.gamma, layer.beta))
        elif kind == "Dropout":
            modules.append(nn.Dropout(argument))
        elif kind == "Softmax":
            modules.append(nn.Softmax(dim=-1))
        elif kind == "LeakyReLU":
            modules.append(nn.LeakyReLU(LEAKY_RELU_SLOPE))
        else:
            modules.append(getattr(nn, kind)())
    return nn.Sequential(*modules)


def state_dict(network):
    """The parameters under PyTorch's key names, as NumPy arrays.

    Returns
    -------
    dict: ``"{i}.weight"`` (n_out, n_in) and ``"{i}.bias"`` (n_out,) for each
    layer, i being the layer's index in ``to_torch()``'s Sequential, and for
    a LayerNorm ``"{i}.weight"`` (γ) and ``"{i}.bias"`` (β) at its index. The
    arrays are copies: later training does not change them.
    """
    return {key: getattr(layer, attribute).copy() for key, (layer, attribute) in _parameter_targets(network).items()}


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
    targets = _parameter_targets(network)
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
