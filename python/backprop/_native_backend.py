"""Thin adapter over the C++ core, ``backprop._core``.

Same methods as the NumPy backend. Arrays reach the core without copies
when they already have the network's dtype (any strides, read-only and
memory-mapped arrays included).
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._layout import Layout


def _aligned(a, dtype):
    return None if a is None else np.require(a, dtype, requirements="A")


def _labels(labels):
    # The core reads class labels as one contiguous int64 vector.
    return None if labels is None else np.require(labels, np.int64, requirements=["C", "A"])


class NativeBackend:
    """Forward, loss and gradients, and whole epochs in C++."""

    name = "native"

    def __init__(self, sizes, activations, loss, dtype):
        self.layout = Layout(sizes)
        self.dtype = np.dtype(dtype)
        self.model = _core.Model(list(sizes), list(activations), loss)

    def forward(self, params, X):
        return self.model.forward(params, _aligned(X, self.dtype))

    def evaluate(self, params, X, labels=None, targets=None):
        return self.model.evaluate(params, _aligned(X, self.dtype), _labels(labels),
                                   _aligned(targets, self.dtype))

    def gradients(self, params, X, labels=None, targets=None):
        return self.model.gradients(params, _aligned(X, self.dtype), _labels(labels),
                                    _aligned(targets, self.dtype))

    def train_epoch(self, params, X, labels, targets, order, batch_size, optimizer, state,
                    record_grad_norms):
        """One epoch over the rows in `order`; see NumpyBackend.train_epoch."""
        config = _core.OptimizerConfig()
        config.kind = _core.OptimizerKind.sgd if optimizer.kind == "sgd" else _core.OptimizerKind.adam
        config.lr = optimizer.lr
        config.weight_decay = optimizer.weight_decay
        if optimizer.kind == "sgd":
            config.momentum = optimizer.momentum
            config.nesterov = optimizer.nesterov
            first, second = state.get("momentum_buffer"), None
        else:
            config.beta1, config.beta2, config.eps = optimizer.beta1, optimizer.beta2, optimizer.eps
            first, second = state["m"], state["v"]
        return self.model.train_epoch(
            params, _aligned(X, self.dtype), _labels(labels), _aligned(targets, self.dtype),
            np.ascontiguousarray(order, np.int64), int(batch_size), config, first, second,
            optimizer._step, bool(record_grad_norms))
