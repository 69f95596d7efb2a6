"""The public API: Network and its Dense layers. Backend-agnostic.

Parameters live in one flat vector owned by the Network; each layer's ``W``
and ``b`` are views into it, so whatever a user writes into them is what
both backends compute with.
"""

from __future__ import annotations

import time
import warnings
import weakref

import numpy as np

from ._layout import Layout
from ._validation import (check_bool, check_choice, check_int, check_real, check_targets, check_X,
                          convert_finite)
from .history import History
from .optim import SGD, Optimizer

__all__ = ["Network", "Dense"]

HIDDEN_ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")
OUTPUT_ACTIVATIONS = HIDDEN_ACTIVATIONS + ("softmax",)
LOSSES = ("mse", "cross_entropy", "binary_cross_entropy")
INITS = ("he", "xavier", "normal")
BACKENDS = ("native", "numpy")
DTYPES = ("float32", "float64")

# The output each loss is defined with, and the loss each output implies.
_OUTPUT_FOR_LOSS = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "identity"}
_LOSS_FOR_OUTPUT = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}


def _check_dtype(dtype):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {name!r}")
    return np.dtype(name)


def _check_hidden_activation(name, value):
    if value == "softmax":
        raise ValueError(f"{name}: softmax can only be the output activation (output='softmax')")
    check_choice(name, value, HIDDEN_ACTIVATIONS)


def _make_backend(name, sizes, activations, loss, dtype):
    if name == "native":
        try:
            from ._native_backend import NativeBackend
        except ImportError as error:
            warnings.warn(f"backprop's compiled core could not be imported ({error}); "
                          "using the NumPy backend instead. Reinstall with `pip install .` to build it.",
                          RuntimeWarning, stacklevel=3)
        else:
            return NativeBackend(sizes, activations, loss, dtype)
    from ._numpy_backend import NumpyBackend
    return NumpyBackend(sizes, activations, loss, dtype)


class Dense:
    """One dense layer of a Network: z = W·a_prev + b, a = activation(z).

    ``W`` (n_out, n_in) and ``b`` (n_out,) are views of the network's
    parameters: writing into them (``layer.W[...] = x``) or assigning them
    (``layer.W = x``, same shape, converted to the network's dtype) changes
    what the network computes.
    """

    def __init__(self, index, activation, W, b):
        self.index = index
        self.activation = activation
        self._W, self._b = W, b

    n_in = property(lambda self: self._W.shape[1], doc="Number of inputs.")
    n_out = property(lambda self: self._W.shape[0], doc="Number of outputs (units).")
    n_params = property(lambda self: self._W.size + self._b.size, doc="Number of weights and biases.")

    @property
    def W(self):
        """Weights, (n_out, n_in), like torch.nn.Linear.weight."""
        return self._W

    @W.setter
    def W(self, value):
        self._assign(self._W, value, "W")

    @property
    def b(self):
        """Biases, (n_out,)."""
        return self._b

    @b.setter
    def b(self, value):
        self._assign(self._b, value, "b")

    def _assign(self, target, value, attribute):
        name = f"layers[{self.index}].{attribute}"
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
        if array.shape != target.shape:
            raise ValueError(f"{name} must have shape {target.shape}, got {array.shape}")
        target[...] = convert_finite(name, array, target.dtype)

    def __repr__(self):
        return f"Dense({self.n_in} -> {self.n_out}, activation={self.activation!r})"


class Network:
    """A feedforward network of dense layers trained by backpropagation.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths n_0 (features), n_1, ..., n_L (outputs); at least two.
    activation : str or sequence of str
        Hidden-layer activation, one for all or one per hidden layer:
        'relu', 'leaky_relu', 'tanh', 'sigmoid' or 'identity'.
    output : str, optional
        Output activation; with `loss` unset, 'softmax' implies cross_entropy,
        'sigmoid' binary_cross_entropy and anything else mse. Default: the one
        the loss is defined with (softmax, sigmoid, identity).
    loss : str, optional
        'cross_entropy' (softmax output, integer labels or probability rows),
        'binary_cross_entropy' (sigmoid output, targets in [0, 1]) or 'mse'
        (½‖a − y‖²). Default cross_entropy. Averaged over the batch.
    init : str, optional
        'he' (N(0, 2/n_in)), 'xavier' (Glorot uniform, U(±√(6/(n_in+n_out))))
        or 'normal' (N(0, init_std²)). Default 'he' for relu-like hidden
        activations, else 'xavier'. Biases start at zero.
    init_std : float
        Standard deviation for init='normal'.
    dtype : 'float32' or 'float64'
        The dtype of parameters and computations; inputs are converted to it.
    backend : 'native' or 'numpy'
        'native' runs the C++ core (falling back to NumPy with a warning when
        it cannot be imported); 'numpy' the pure-NumPy reference.
    seed : int, optional
        Seeds ``numpy.random.default_rng``, which draws the initial weights and
        then the shuffling order of every epoch: same seed, same training.
    """

    def __init__(self, sizes, activation="relu", output=None, loss=None, init=None, init_std=0.01,
                 dtype="float32", backend="native", seed=None):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a sequence of layer widths, got {type(sizes).__name__}")
        sizes = tuple(check_int(f"sizes[{i}]", n, minimum=1) for i, n in enumerate(sizes))
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least two entries (inputs and outputs), got {list(sizes)}")
        n_hidden = len(sizes) - 2

        if isinstance(activation, str):
            _check_hidden_activation("activation", activation)
            hidden = [activation] * n_hidden
        elif isinstance(activation, (list, tuple)):
            hidden = list(activation)
            if len(hidden) != n_hidden:
                raise ValueError(f"activation needs one entry per hidden layer ({n_hidden}), got {len(hidden)}")
            for i, a in enumerate(hidden):
                _check_hidden_activation(f"activation[{i}]", a)
        else:
            raise TypeError(f"activation must be a string or a list of strings, got {type(activation).__name__}")

        if loss is None:
            loss = "cross_entropy" if output is None else _LOSS_FOR_OUTPUT.get(output, "mse")
        check_choice("loss", loss, LOSSES)
        if output is None:
            output = _OUTPUT_FOR_LOSS[loss]
        check_choice("output", output, OUTPUT_ACTIVATIONS)
        if (output == "softmax") != (loss == "cross_entropy"):
            raise ValueError(f"output 'softmax' and loss 'cross_entropy' go together; got output={output!r} "
                             f"with loss={loss!r}")
        if loss == "binary_cross_entropy" and output != "sigmoid":
            raise ValueError(f"loss 'binary_cross_entropy' needs output 'sigmoid', got {output!r}")

        if init is None:
            init = "he" if all(a in ("relu", "leaky_relu") for a in hidden) else "xavier"
        check_choice("init", init, INITS)
        init_std = check_real("init_std", init_std)
        if not init_std > 0 or not np.isfinite(init_std):
            raise ValueError(f"init_std must be > 0, got {init_std}")
        dtype = _check_dtype(dtype)
        check_choice("backend", backend, BACKENDS)
        if seed is not None:
            seed = check_int("seed", seed, minimum=0)

        self.sizes = sizes
        self.activations = tuple(hidden) + (output,)
        self.loss = loss
        self.init = init
        self.init_std = init_std
        self.dtype = dtype
        self.seed = seed
        self._layout = Layout(sizes)
        self._params = np.zeros(self._layout.n_params, dtype)
        self._rng = np.random.default_rng(seed)
        self._initialise()
        self.layers = [Dense(l, self.activations[l], W, b)
                       for l, (W, b) in enumerate(self._layout.views(self._params))]
        self._backend = _make_backend(backend, sizes, self.activations, loss, dtype)
        self.optimizer = None
        self.history = None

    def _initialise(self):
        # Drawn in float64 from the seeded generator, layer by layer, then cast:
        # every backend and dtype starts from the same weights.
        for W, _ in self._layout.views(self._params):
            n_out, n_in = W.shape
            if self.init == "he":
                draw = self._rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in))
            elif self.init == "xavier":
                limit = np.sqrt(6.0 / (n_in + n_out))
                draw = self._rng.uniform(-limit, limit, size=(n_out, n_in))
            else:
                draw = self._rng.normal(0.0, self.init_std, size=(n_out, n_in))
            W[...] = draw

    # -- description ----------------------------------------------------------
    @property
    def backend(self):
        """The backend in use: 'native' or 'numpy'."""
        return self._backend.name

    @property
    def n_params(self):
        """Total number of weights and biases."""
        return self._layout.n_params

    @property
    def is_classifier(self):
        return self.loss in ("cross_entropy", "binary_cross_entropy")

    def __repr__(self):
        return (f"Network({list(self.sizes)}, activation={list(self.activations[:-1])!r}, "
                f"output={self.activations[-1]!r}, loss={self.loss!r}, dtype={self.dtype.name!r}, "
                f"backend={self.backend!r})")

    def summary(self):
        """Print the layers, their shapes, activations and parameter counts."""
        rows = [("layer", "shape (n_out, n_in)", "activation", "parameters")]
        for layer in self.layers:
            rows.append((f"{layer.index}: Dense", str(layer.W.shape), layer.activation, f"{layer.n_params:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [f"Network {' -> '.join(map(str, self.sizes))}  loss={self.loss}  dtype={self.dtype.name}  "
                 f"backend={self.backend}"]
        for k, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                                   for i, (cell, w) in enumerate(zip(row, widths))))
            if k == 0:
                lines.append("-" * len(lines[-1]))
        lines.append(f"Total parameters: {self.n_params:,}")
        print("\n".join(lines))

    # -- computing ------------------------------------------------------------
    def _check_X(self, X, name="X"):
        return check_X(X, self.sizes[0], self.dtype, name)

    def _check_Xy(self, X, y, x_name="X", y_name="y"):
        X = self._check_X(X, x_name)
        labels, targets = check_targets(y, self.loss, X.shape[0], self.sizes[-1], self.dtype, y_name)
        return X, labels, targets

    def forward(self, X):
        """Output activations a^(L) for each row of X.

        Parameters
        ----------
        X : array-like, (n_samples, n_features)

        Returns
        -------
        ndarray, (n_samples, n_out), the network's dtype. For a softmax output,
        rows of class probabilities.
        """
        return self._backend.forward(self._params, self._check_X(X))

    def predict(self, X):
        """Predictions for each row of X.

        Returns class labels (n_samples,) int64 for cross_entropy, 0/1 labels
        (n_samples, n_out) int64 for binary_cross_entropy (output > 0.5), and
        the outputs (n_samples, n_out) for mse.
        """
        out = self.forward(X)
        if self.loss == "cross_entropy":
            return out.argmax(axis=1)
        if self.loss == "binary_cross_entropy":
            return (out > 0.5).astype(np.int64)
        return out

    def _evaluate_checked(self, X, labels, targets):
        loss_sum, n_correct = self._backend.evaluate(self._params, X, labels, targets)
        n = X.shape[0]
        result = {"loss": loss_sum / n}
        if self.loss == "cross_entropy":
            result["accuracy"] = n_correct / n
        elif self.loss == "binary_cross_entropy":
            result["accuracy"] = n_correct / (n * self.sizes[-1])
        return result

    def evaluate(self, X, y):
        """Mean loss over the samples, and accuracy for classifiers.

        Returns
        -------
        dict: {"loss": float} plus "accuracy" (fraction of samples whose argmax
        is the label for cross_entropy; fraction of output units on the right
        side of 0.5 for binary_cross_entropy).
        """
        return self._evaluate_checked(*self._check_Xy(X, y))

    def gradients(self, X, y):
        """Loss and gradients of the mean loss over all rows of X (one batch).

        Returns
        -------
        loss : float
        grads : list of (dW, db) per layer, shaped like layers[i].W and .b
        """
        X, labels, targets = self._check_Xy(X, y)
        loss, flat = self._backend.gradients(self._params, X, labels, targets)
        return float(loss), [(dW, db) for dW, db in self._layout.views(flat)]

    # -- training -------------------------------------------------------------
    def _check_fit_arguments(self, X, y, epochs, batch_size, optimizer, validation_data):
        """fit's data and training arguments, checked and converted; changes nothing.

        Returns (X, labels, targets, epochs, batch_size, optimizer, validation)
        with `validation` None or (X_val, labels_val, targets_val).
        """
        X, labels, targets = self._check_Xy(X, y)
        epochs = check_int("epochs", epochs)
        batch_size = X.shape[0] if batch_size is None else min(check_int("batch_size", batch_size), X.shape[0])
        if optimizer is None:
            optimizer = self.optimizer if self.optimizer is not None else SGD(lr=0.01)
        elif not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a backprop optimizer such as bp.SGD(lr=0.1) or bp.Adam(), "
                            f"got {type(optimizer).__name__}")
        optimizer._check()
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            validation = self._check_Xy(*validation_data, x_name="validation_data[0]",
                                        y_name="validation_data[1]")
        return X, labels, targets, epochs, batch_size, optimizer, validation

    def fit(self, X, y, epochs=1, batch_size=32, optimizer=None, shuffle=True, validation_data=None,
            verbose=0, record_grad_norms=False):
        """Train by mini-batch backpropagation.

        Parameters
        ----------
        X : array-like, (n_samples, n_features)
        y : array-like
            Class labels (n_samples,) or probability rows for cross_entropy;
            (n_samples, n_out) targets for mse and binary_cross_entropy.
        epochs : int >= 1
        batch_size : int >= 1 or None
            Samples per update; 1 is online learning (the per-sample delta
            rule), None the full batch. Capped at n_samples.
        optimizer : SGD or Adam, optional
            Default: the optimizer of the previous fit, else SGD(lr=0.01). Its
            state (momentum, moments) carries over between fits.
        shuffle : bool
            Visit samples in a new order each epoch, drawn from the network's
            seeded generator.
        validation_data : (X_val, y_val), optional
            Evaluated after every epoch (val_loss, val_accuracy).
        verbose : 0, 1 or 2
            0 silent, 1 and 2 one line per epoch.
        record_grad_norms : bool
            Record each layer's mean ‖∂R/∂W‖ per epoch in History.grad_norms.

        Returns
        -------
        History

        Raises
        ------
        FloatingPointError
            When a loss, gradient or updated weight becomes NaN or inf;
            training stops without that update, so the weights (and the
            optimizer's state) are those of the last finite step.
        """
        X, labels, targets, epochs, batch_size, optimizer, validation = self._check_fit_arguments(
            X, y, epochs, batch_size, optimizer, validation_data)
        n = X.shape[0]
        shuffle = check_bool("shuffle", shuffle)
        record_grad_norms = check_bool("record_grad_norms", record_grad_norms)
        verbose = check_int("verbose", verbose, minimum=0)

        # Everything is checked: from here on the network changes.
        self.optimizer = optimizer
        state = optimizer._state_for(self)
        history = self.history = History()
        units_per_sample = self.sizes[-1] if self.loss == "binary_cross_entropy" else 1
        n_batches = -(-n // batch_size)
        for epoch in range(1, epochs + 1):
            order = self._rng.permutation(n) if shuffle else np.arange(n, dtype=np.int64)
            started = time.perf_counter()
            result = self._backend.train_epoch(self._params, X, labels, targets, order, batch_size,
                                               optimizer, state, record_grad_norms)
            seconds = time.perf_counter() - started
            if result["status"] != "completed":
                what = "loss" if result["status"] == "nonfinite_loss" else "update (gradient or new weights)"
                raise FloatingPointError(
                    f"the training {what} became NaN or infinite at epoch {epoch}, batch "
                    f"{result['batches'] + 1} of {n_batches}; training stopped before that update, so the "
                    f"weights are those of the last finite step. Try a smaller learning rate.")
            logs = {"loss": result["loss_sum"] / result["samples"]}
            if self.is_classifier:
                logs["accuracy"] = result["n_correct"] / (result["samples"] * units_per_sample)
            if validation is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate_checked(*validation).items()})
            norms = None
            if record_grad_norms:
                norms = np.asarray(result["weight_grad_norm_sums"]) / result["batches"]
            history._append(epoch, logs, norms, seconds)
            if verbose:
                figures = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
                print(f"Epoch {epoch}/{epochs} - {seconds:.2f}s ({n / max(seconds, 1e-9):,.0f} samples/s) - {figures}",
                      flush=True)
        return history

    # -- copying ----------------------------------------------------------------
    def __getstate__(self):
        # The backend holds a compiled object and the layers hold views of
        # _params: both are rebuilt on unpickling, so a copy owns its weights.
        state = self.__dict__.copy()
        state["_backend"] = self.backend
        del state["layers"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.layers = [Dense(l, self.activations[l], W, b)
                       for l, (W, b) in enumerate(self._layout.views(self._params))]
        self._backend = _make_backend(state["_backend"], self.sizes, self.activations, self.loss, self.dtype)
        if self.optimizer is not None and self.optimizer.state:
            self.optimizer._owner = weakref.ref(self)  # its state belongs to this copy

    # -- files ----------------------------------------------------------------
    def save(self, path):
        """Save architecture, dtype and parameters to an .npz file, atomically.

        The file is written beside `path` and renamed over it only when
        complete, so a failed save never leaves a half-written model.
        """
        from ._serialization import save
        save(self, path)

    def _config(self):
        """The constructor arguments that rebuild this network's architecture."""
        return {"sizes": list(self.sizes), "activation": list(self.activations[:-1]),
                "output": self.activations[-1], "loss": self.loss, "init": self.init,
                "init_std": self.init_std, "dtype": self.dtype.name, "backend": self.backend,
                "seed": self.seed}

    # -- PyTorch interchange (backprop.torch_interop) -------------------------
    @classmethod
    def from_torch(cls, module, loss=None, dtype=None, backend="native", seed=None):
        """A network computing what a ``torch.nn.Sequential`` of Linear layers computes.

        Supports Linear (with bias), ReLU, LeakyReLU(0.01), Tanh, Sigmoid,
        Identity and a final Softmax(dim=-1). The loss defaults to
        cross_entropy after a trailing Softmax, binary_cross_entropy after a
        trailing Sigmoid, else mse; ``loss='cross_entropy'`` on a module
        ending in a Linear treats its outputs as logits (adds a softmax
        output). See backprop.torch_interop.from_torch.

        Raises
        ------
        ModuleNotFoundError
            Without PyTorch (``pip install "backprop-mlp[torch]"``).
        ValueError
            Naming the first unsupported module.
        """
        from .torch_interop import from_torch
        return from_torch(module, loss=loss, dtype=dtype, backend=backend, seed=seed, network_class=cls)

    def to_torch(self, logits=False):
        """This network as a ``torch.nn.Sequential`` (copies of the weights, same dtype).

        The module ends in ``nn.Softmax(dim=-1)`` or ``nn.Sigmoid()`` when the
        output is softmax or sigmoid, so it returns what ``forward`` returns;
        ``logits=True`` leaves that last module out (for
        ``nn.CrossEntropyLoss`` / ``nn.BCEWithLogitsLoss``). Identity
        activations get no module. See backprop.torch_interop.to_torch.
        """
        from .torch_interop import to_torch
        return to_torch(self, logits=logits)

    def to_onnx(self, path, logits=False):
        """Write this network to `path` as an ONNX model (opset 17), atomically like ``save``.

        One Gemm per layer plus its activation node; input ``X`` (batch,
        n_features), output ``Y``: what ``forward`` returns, in the network's
        dtype, for any batch size. ``logits=True`` leaves out a trailing
        Softmax or Sigmoid (output ``logits``). Needs the onnx package
        (``pip install "backprop-mlp[onnx]"``); run the model with
        onnxruntime. See backprop.onnx_export.
        """
        from .onnx_export import to_onnx
        to_onnx(self, path, logits=logits)

    def state_dict(self):
        """Copies of the parameters under PyTorch's names: ``{"0.weight": W, "0.bias": b, ...}``.

        Indices are the Linear layers' positions in ``to_torch()``'s
        Sequential; values are NumPy arrays, (n_out, n_in) and (n_out,).
        """
        from .torch_interop import state_dict
        return state_dict(self)

    def load_state_dict(self, state_dict):
        """Set the parameters from a PyTorch-style state dict (NumPy arrays or torch tensors).

        Keys and shapes must be exactly those of ``self.state_dict()``; all
        are checked before anything is written, so on error (ValueError,
        TypeError) the network is unchanged.
        """
        from .torch_interop import load_state_dict
        load_state_dict(self, state_dict)
