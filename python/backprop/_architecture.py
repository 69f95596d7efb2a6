"""The names a network is built from, and which output goes with which loss.

Every Python caller (Network, the NumPy backend, PyTorch interchange, the
scikit-learn adapter, the CLI) asks this module; the C++ core keeps its own
copy of what it must check (architecture.hpp, activations.hpp).
"""

from __future__ import annotations

import numpy as np

from ._validation import check_choice, check_real

HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "gelu", "silu", "elu")
#: softmax and exp are output activations only, each fused with its loss
OUTPUT_ACTIVATIONS = HIDDEN_ACTIVATIONS + ("softmax", "exp")
LOSSES = ("mse", "cross_entropy", "binary_cross_entropy", "poisson")
INITS = ("he", "xavier", "normal")

#: slope of leaky_relu for z < 0 (torch.nn.LeakyReLU's default)
LEAKY_RELU_SLOPE = 0.01
#: α of elu, e^z − 1 for z ≤ 0 (torch.nn.ELU's default)
ELU_ALPHA = 1.0
#: what ``norm`` accepts besides None: LayerNorm over each hidden layer's units
NORMS = ("layer",)

# The output each loss is defined with (the fused δ^(L) = a − y needs it for
# cross_entropy, binary_cross_entropy and poisson), and the loss an output implies.
OUTPUT_FOR_LOSS = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "identity",
                   "poisson": "exp"}
_LOSS_FOR_OUTPUT = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy", "exp": "poisson"}
# Outputs that exist only fused with one loss: output -> loss.
_FUSED_ONLY = {"softmax": "cross_entropy", "exp": "poisson"}


def check_hidden_activation(name, value):
    if value in _FUSED_ONLY:
        raise ValueError(f"{name}: {value} can only be the output activation (output={value!r})")
    return check_choice(name, value, HIDDEN_ACTIVATIONS)


def hidden_blocks(n_hidden, norm, dropout):
    """(norms, rates): one bool (LayerNorm or not) and one dropout rate per hidden layer, checked.

    `norm` is None or 'layer' (every hidden layer); `dropout` one rate for
    every hidden layer or a sequence of one per hidden layer, each in [0, 1).
    """
    if norm is not None:
        check_choice("norm", norm, NORMS)
    norms = (norm == "layer",) * n_hidden
    if isinstance(dropout, (list, tuple, np.ndarray)):
        if len(dropout) != n_hidden:
            raise ValueError(f"dropout needs one rate per hidden layer ({n_hidden}), got {len(dropout)}")
        rates = tuple(_dropout_rate(f"dropout[{i}]", p) for i, p in enumerate(dropout))
    else:
        rates = (_dropout_rate("dropout", dropout),) * n_hidden
    return norms, rates


def _dropout_rate(name, value):
    rate = check_real(name, value)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {rate!r}")
    return rate


def output_and_loss(output=None, loss=None):
    """The checked (output, loss) pair, filling in whichever is None.

    With both None: softmax and cross_entropy. With only `output`: softmax
    implies cross_entropy, sigmoid binary_cross_entropy, exp poisson, anything
    else mse. With only `loss`: the output that loss is defined with.
    """
    if loss is None:
        loss = "cross_entropy" if output is None else _LOSS_FOR_OUTPUT.get(output, "mse")
    check_choice("loss", loss, LOSSES)
    if output is None:
        output = OUTPUT_FOR_LOSS[loss]
    check_choice("output", output, OUTPUT_ACTIVATIONS)
    for fused_output, fused_loss in _FUSED_ONLY.items():
        if (output == fused_output) != (loss == fused_loss):
            raise ValueError(f"output {fused_output!r} and loss {fused_loss!r} go together; got "
                             f"output={output!r} with loss={loss!r}")
    if loss == "binary_cross_entropy" and output != "sigmoid":
        raise ValueError(f"loss 'binary_cross_entropy' needs output 'sigmoid', got {output!r}")
    return output, loss
