"""Optimizers: hyper-parameters and state, handed to a backend for each step.

The update rules follow PyTorch's ``torch.optim.SGD``, ``torch.optim.Adam`` and
``torch.optim.AdamW`` so that results can be compared with it. Every
optimizer can clip the batch gradient before its update: ``clip_norm`` scales
the gradient of all parameters to a global L2 norm of at most ``clip_norm``
(``torch.nn.utils.clip_grad_norm_``: g ← g·min(1, c/(‖g‖₂ + 1e-6))), then
``clip_value`` clamps it elementwise to [−v, v] (``clip_grad_value_``). State (momentum buffers, Adam's
moments, the step counter) lives here, in arrays laid out like the network's
flat parameter vector, and carries over between calls to ``Network.fit``.
"""

from __future__ import annotations

import weakref

import numpy as np

from ._validation import as_real_array, check_bool, check_choice, check_int, check_real, convert_finite

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "MAX_STEP_COUNT"]

#: The largest step count: both backends keep it in a signed 64-bit counter
#: and refuse, before any step of a call, steps that would carry it past this.
MAX_STEP_COUNT = 2**63 - 2


def _check_real(name, value, accept, expected):
    """`value` as a float if it is a finite real number with accept(value)."""
    value = check_real(name, value)
    if not (np.isfinite(value) and accept(value)):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def _positive(name, value):
    return _check_real(name, value, lambda v: v > 0, "> 0")


def _non_negative(name, value):
    return _check_real(name, value, lambda v: v >= 0, ">= 0")


def _unit_interval(name, value):
    return _check_real(name, value, lambda v: 0 <= v < 1, "in [0, 1)")


def _optional_positive(name, value):
    return None if value is None else _positive(name, value)


def _convention(name, value):
    return check_choice(name, value, CONVENTIONS)


#: what ``convention`` accepts: whose definitions of weight decay (and Adam's eps) a step follows
CONVENTIONS = ("pytorch", "sklearn")


class _Hyper:
    """A hyper-parameter attribute, checked on every assignment."""

    def __init__(self, check):
        self.check = check

    def __set_name__(self, owner, name):
        self.name, self.slot = name, "_" + name

    def __get__(self, optimizer, owner=None):
        return self if optimizer is None else getattr(optimizer, self.slot)

    def __set__(self, optimizer, value):
        setattr(optimizer, self.slot, self.check(self.name, value))


class Optimizer:
    """Base class: keeps the state arrays of one network between steps.

    State is created on first use for a network and reset when the optimizer
    is used with a different network (or dtype).
    """

    kind = ""
    lr = _Hyper(_positive)
    weight_decay = _Hyper(_non_negative)
    convention = _Hyper(_convention)
    clip_norm = _Hyper(_optional_positive)
    clip_value = _Hyper(_optional_positive)

    def __init__(self, lr, weight_decay, convention="pytorch", clip_norm=None, clip_value=None):
        self.lr = lr
        self.weight_decay = weight_decay
        self.convention = convention
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.reset()

    @property
    def _state_names(self):
        """Names of the state arrays this optimizer keeps, laid out like the parameters."""
        return ()

    @property
    def _state_slots(self):
        """(first, second): the state names a step reads as the core's first and second buffers, or None."""
        names = self._state_names
        return (names + (None, None))[:2]

    def get_config(self):
        """The hyper-parameters, as the constructor takes them (also what the core's step reads)."""
        return {**self._hyper(), "clip_norm": self.clip_norm, "clip_value": self.clip_value,
                "convention": self.convention}

    def _check(self):
        """Checks that involve several hyper-parameters (each one is checked when set)."""

    def reset(self):
        """Forget all state (momentum, moments, step count)."""
        self.state = {}
        # The step count lives in an array so that the native core updates it
        # together with the weights, with no Python code (where Ctrl-C could
        # land) in between.
        self._step = np.zeros(1, np.int64)
        self._owner = None

    @property
    def step_count(self):
        """Updates taken so far (Adam's t)."""
        return int(self._step[0])

    @step_count.setter
    def step_count(self, value):
        value = check_int("optimizer.step_count", value, minimum=0)
        if value > MAX_STEP_COUNT:
            raise ValueError(f"optimizer.step_count must be at most {MAX_STEP_COUNT} (2**63 - 2), got {value}")
        self._step[0] = value

    def _check_room(self, n_steps):
        """Refuse, before the first of them, `n_steps` steps that would carry the
        step count past MAX_STEP_COUNT (both backends call this)."""
        if self.step_count > MAX_STEP_COUNT - n_steps:
            raise ValueError(f"optimizer.step_count is {self.step_count}: {n_steps} more step(s) would pass its "
                             f"maximum {MAX_STEP_COUNT}; reset() the optimizer or assign a smaller step_count")

    def _bound_to(self, network):
        return self._owner is not None and self._owner() is network

    def _check_state(self, network):
        """Refuse, changing nothing, state arrays that `network`'s next step cannot use.

        Only the state kept for `network` matters (any other is reset on first
        use). Arrays of the right length whose dtype, alignment, contiguity or
        writeability does not suit the backends are fine: _state_for copies them.
        """
        if not self._bound_to(network):
            return
        if not isinstance(self.state, dict):
            raise TypeError(f"optimizer.state must be a dict of arrays, got {type(self.state).__name__}")
        for name in self._state_names:
            if name in self.state:
                self._state_array(name, self.state[name], network)

    def _state_array(self, name, value, network):
        """optimizer.state[name] as a C-contiguous, aligned, writeable array of the network's dtype."""
        label = f"optimizer.state[{name!r}]"
        array = as_real_array(label, value)
        if array.shape != (network.n_params,):
            raise ValueError(f"{label} must have shape ({network.n_params},), like the network's parameters; "
                             f"got {array.shape}")
        if array.dtype != network.dtype:  # refusing values the network's dtype cannot hold
            array = convert_finite(label, array, network.dtype)
        flags = array.flags
        if flags.c_contiguous and flags.aligned and flags.writeable:
            return array
        # The core reads state with aligned loads and writes it in place: a copy it can use.
        return np.array(array, order="C")

    def _state_for(self, network):
        """The state arrays for `network`, created (zeroed) on first use; assigned
        arrays the backends cannot use as they are (wrong dtype, misaligned,
        strided, read-only) are replaced by usable copies."""
        if not self._bound_to(network):
            self.state = {}
            self.step_count = 0
            self._owner = weakref.ref(network)
        for name in self._state_names:  # e.g. momentum switched on after earlier steps
            if name not in self.state:
                self.state[name] = np.zeros(network.n_params, network.dtype)
            else:
                self.state[name] = self._state_array(name, self.state[name], network)
        return self.state

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_owner"] = None  # a weak reference; Network.__setstate__ rebinds it
        return state

    def _hyper(self):
        raise NotImplementedError

    def __repr__(self):
        config = self.get_config()
        if config.get("convention") == "pytorch":
            del config["convention"]
        for name in ("clip_norm", "clip_value"):
            if config[name] is None:
                del config[name]
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    With gradient g of the batch-mean loss and weight decay λ (weights only)::

        g ← g + λ·w
        buf ← μ·buf + g                       (momentum μ > 0)
        w ← w − lr · (g + μ·buf if nesterov else buf)

    which is PyTorch's formulation of Sutskever et al. (2013); with μ = 0 it is
    plain w ← w − lr·g, and with batch_size=1 the classic per-sample delta rule.

    Parameters
    ----------
    lr : float > 0
    momentum : float in [0, 1)
    nesterov : bool, needs momentum > 0
    weight_decay : float >= 0, L2 penalty added to weight gradients (not biases)
    convention : 'pytorch' or 'sklearn'
        'pytorch' (default) adds λ·w to the gradient of the batch's mean
        loss, as torch.optim does. 'sklearn' adds λ·w / Σ_batch w_j (λ·w /
        batch size without sample weights): the gradient of scikit-learn's
        MLP penalty α/2·‖W‖² / n_batch. Used by ``backprop.sklearn``.
    clip_norm : float > 0, optional
        Before the update, scale the gradient of all parameters (weights,
        biases, LayerNorm's γ and β) to a global L2 norm of at most this
        (torch.nn.utils.clip_grad_norm_, with its 1e-6).
    clip_value : float > 0, optional
        Then clamp each gradient entry to [−clip_value, clip_value]
        (torch.nn.utils.clip_grad_value_). Weight decay is added after both.
    """

    kind = "sgd"
    momentum = _Hyper(_unit_interval)
    nesterov = _Hyper(check_bool)

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0, convention="pytorch", clip_norm=None,
                 clip_value=None):
        self.momentum = momentum
        self.nesterov = nesterov
        super().__init__(lr, weight_decay, convention, clip_norm, clip_value)
        self._check()

    @property
    def _state_names(self):
        return ("momentum_buffer",) if self.momentum > 0 else ()

    def _check(self):
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")

    def _hyper(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization").

    ::

        g ← g + λ·w                 (weight decay λ, weights only; L2, not AdamW)
        m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
        w ← w − lr · m̂ / (√v̂ + eps),  m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)

    The step t advances once per update of the whole network.

    Parameters
    ----------
    lr : float > 0
    beta1, beta2 : float in [0, 1)
    eps : float > 0
    weight_decay : float >= 0
    convention : 'pytorch' or 'sklearn'
        As for SGD; 'sklearn' also adds eps to √v before the bias correction,
        as scikit-learn's Adam does (PyTorch's form with eps/√(1 − β2^t)).
    clip_norm, clip_value : float > 0, optional
        Gradient clipping before the update, as for SGD.
    """

    kind = "adam"
    beta1 = _Hyper(_unit_interval)
    beta2 = _Hyper(_unit_interval)
    eps = _Hyper(_positive)

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, convention="pytorch",
                 clip_norm=None, clip_value=None):
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        super().__init__(lr, weight_decay, convention, clip_norm, clip_value)

    @property
    def _state_names(self):
        return ("m", "v")

    def _hyper(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019,
    "Decoupled Weight Decay Regularization"), as ``torch.optim.AdamW``.

    ::

        w ← w − lr·λ·w              (weight matrices only: not biases, not γ, β)
        m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²     (g without λ)
        w ← w − lr · m̂ / (√v̂ + eps)

    Parameters
    ----------
    lr : float > 0
    beta1, beta2 : float in [0, 1)
    eps : float > 0
    weight_decay : float >= 0, the decoupled decay λ (default 1e-2, PyTorch's)
    clip_norm, clip_value : float > 0, optional
        Gradient clipping before the update, as for SGD.
    """

    kind = "adamw"

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2, clip_norm=None,
                 clip_value=None):
        super().__init__(lr, beta1, beta2, eps, weight_decay, "pytorch", clip_norm, clip_value)

    def get_config(self):
        config = super().get_config()
        del config["convention"]  # always PyTorch's: decoupled decay has no scikit-learn form
        return config

    def _check(self):
        if self.convention != "pytorch":
            raise ValueError("AdamW has only the 'pytorch' convention")


def check_optimizer(optimizer, current=None):
    """The optimizer a training call uses: `optimizer`, else `current` (the network's), else SGD(lr=0.01).

    Raises TypeError for anything but a backprop Optimizer, and ValueError for
    inconsistent hyper-parameters.
    """
    if optimizer is None:
        optimizer = current if current is not None else SGD(lr=0.01)
    elif not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a backprop optimizer such as bp.SGD(lr=0.1) or bp.Adam(), "
                        f"got {type(optimizer).__name__}")
    optimizer._check()
    return optimizer
