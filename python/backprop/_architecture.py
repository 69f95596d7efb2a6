"""The names a network is built from, and which output goes with which loss.

Every Python caller (Network, the NumPy backend, PyTorch interchange, the
scikit-learn adapter, the CLI) asks this module; the C++ core keeps its own
copy of what it must check (architecture.hpp, activations.hpp).
"""

from __future__ import annotations

from ._validation import check_choice

HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
#: softmax and exp are output activations only, each fused with its loss
OUTPUT_ACTIVATIONS = HIDDEN_ACTIVATIONS + ("softmax", "exp")
LOSSES = ("mse", "cross_entropy", "binary_cross_entropy", "poisson")
INITS = ("he", "xavier", "normal")

#: slope of leaky_relu for z < 0 (torch.nn.LeakyReLU's default)
LEAKY_RELU_SLOPE = 0.01

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
