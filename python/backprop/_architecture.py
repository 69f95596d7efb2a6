"""The names a network is built from, and which output goes with which loss.

Every Python caller (Network, the NumPy backend, PyTorch interchange, the
scikit-learn adapter, the CLI) asks this module; the C++ core keeps its own
copy of what it must check (architecture.hpp, activations.hpp).
"""

from __future__ import annotations

from ._validation import check_choice

HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
OUTPUT_ACTIVATIONS = HIDDEN_ACTIVATIONS + ("softmax",)
LOSSES = ("mse", "cross_entropy", "binary_cross_entropy")
INITS = ("he", "xavier", "normal")

#: slope of leaky_relu for z < 0 (torch.nn.LeakyReLU's default)
LEAKY_RELU_SLOPE = 0.01

# The output each loss is defined with (the fused δ^(L) = a − y needs it for
# cross_entropy and binary_cross_entropy), and the loss an output implies.
OUTPUT_FOR_LOSS = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "identity"}
_LOSS_FOR_OUTPUT = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}


def check_hidden_activation(name, value):
    if value == "softmax":
        raise ValueError(f"{name}: softmax can only be the output activation (output='softmax')")
    return check_choice(name, value, HIDDEN_ACTIVATIONS)


def output_and_loss(output=None, loss=None):
    """The checked (output, loss) pair, filling in whichever is None.

    With both None: softmax and cross_entropy. With only `output`: softmax
    implies cross_entropy, sigmoid binary_cross_entropy, anything else mse.
    With only `loss`: the output that loss is defined with.
    """
    if loss is None:
        loss = "cross_entropy" if output is None else _LOSS_FOR_OUTPUT.get(output, "mse")
    check_choice("loss", loss, LOSSES)
    if output is None:
        output = OUTPUT_FOR_LOSS[loss]
    check_choice("output", output, OUTPUT_ACTIVATIONS)
    if (output == "softmax") != (loss == "cross_entropy"):
        raise ValueError(f"output 'softmax' and loss 'cross_entropy' go together; got output={output!r} "
                         f"with loss={loss!r}")
    if loss == "binary_cross_entropy" and output != "sigmoid":
        raise ValueError(f"loss 'binary_cross_entropy' needs output 'sigmoid', got {output!r}")
    return output, loss
