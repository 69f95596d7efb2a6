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
    if a is None or (a.dtype == dtype and a.flags.aligned):  # the common case, without np.require's overhead
        return a
    return np.require(a, dtype, requirements="A")


def _labels(labels):
    # The core reads class labels as one contiguous int64 vector.
    return None if labels is None else np.require(labels, np.int64, requirements=["C", "A"])


def _weights(weights):
    return None if weights is None else np.require(weights, np.float64, requirements=["C", "A"])


def _config(optimizer):
    """The core's OptimizerConfig for `optimizer`: its hyper-parameters under the same names."""
    config = _core.OptimizerConfig()
    settings = optimizer.get_config()
    sklearn = settings.pop("convention", "pytorch") == "sklearn"
    for name in ("clip_norm", "clip_value"):  # the core's 0 is "no clipping"
        settings[name] = settings[name] or 0.0
    config.kind = getattr(_core.OptimizerKind, optimizer.kind)
    for name, value in settings.items():
        setattr(config, name, value)
    config.decay_per_batch_weight = sklearn
    config.eps_before_bias_correction = sklearn
    return config


class NativeBackend:
    """Forward, loss and gradients, and whole epochs in C++."""

    name = "native"

    def __init__(self, sizes, activations, loss, dtype, norms=None, dropout=None, dropout_seed=0):
        self.layout = Layout(sizes, norms)
        self.dtype = np.dtype(dtype)
        n_hidden = len(sizes) - 2
        self.model = _core.Model(list(sizes), list(activations), loss,
                                 [bool(v) for v in norms] if norms is not None else [False] * n_hidden,
                                 [float(p) for p in dropout] if dropout is not None else [0.0] * n_hidden,
                                 int(dropout_seed))

    def forward(self, params, X, check_finite=False):
        return self.model.forward(params, _aligned(X, self.dtype), check_finite)

    def evaluate(self, params, X, labels=None, targets=None, weights=None):
        return self.model.evaluate(params, _aligned(X, self.dtype), _labels(labels),
                                   _aligned(targets, self.dtype), _weights(weights))

    def gradients(self, params, X, labels=None, targets=None, weights=None, dropout_step=1):
        return self.model.gradients(params, _aligned(X, self.dtype), _labels(labels),
                                    _aligned(targets, self.dtype), _weights(weights), int(dropout_step))

    def prepare(self, X, labels=None, targets=None, weights=None):
        """The training data, checked once by the core; see NumpyBackend.prepare."""
        return self.model.dataset(_aligned(X, self.dtype), _labels(labels), _aligned(targets, self.dtype),
                                  _weights(weights))

    def train_epoch(self, params, data, order, batch_size, optimizer, state, record_grad_norms):
        """One pass over the rows in `order`; see NumpyBackend.train_epoch."""
        optimizer._check_room(-(-order.shape[0] // batch_size))  # before the first step, as NumPy's
        first, second = (None if name is None else state[name] for name in optimizer._state_slots)
        return self.model.train_epoch(params, data, np.ascontiguousarray(order, np.int64), int(batch_size),
                                      _config(optimizer), first, second, optimizer._step, bool(record_grad_norms))

    def gradient_sum(self, params, data, rows, out):
        """out ← Σ w·∂L/∂θ over `rows` of `data`; see NumpyBackend.gradient_sum."""
        return self.model.gradient_sum(params, data, np.ascontiguousarray(rows, np.int64), out)

    def optimizer_step(self, params, grads, optimizer, state, batch_weight, grad_scale=1.0):
        """One step with the flat gradient grad_scale·grads; False (nothing changed) when not finite."""
        optimizer._check_room(1)
        first, second = (None if name is None else state[name] for name in optimizer._state_slots)
        return self.model.optimizer_step(params, grads, _config(optimizer), first, second, optimizer._step,
                                         float(batch_weight), float(grad_scale))
