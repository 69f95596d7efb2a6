"""The public API: Network and its Dense layers. Backend-agnostic.

Parameters live in one flat vector owned by the Network; each layer's ``W``
and ``b`` are views into it, so whatever a user writes into them is what
both backends compute with.
"""

from __future__ import annotations

import copy
import warnings
import weakref

import numpy as np

from . import _serialization
from ._architecture import INITS, check_hidden_activation, hidden_blocks, output_and_loss
from ._layout import Layout
from ._training import (EpochLoop, LocalSteps, SparseSteps, check_class_weight, nonfinite_message, split_point,
                        split_validation, validation_schedule)
from ._validation import (check_bool, check_choice, check_int, check_real, check_sample_weight, check_targets, check_X,
                          convert_finite)
from .callbacks import CallbackList
from .optim import check_optimizer

__all__ = ["Network", "Dense"]

BACKENDS = ("native", "numpy")
DTYPES = ("float32", "float64")


def _check_dtype(dtype):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {name!r}")
    return np.dtype(name)


def _make_backend(name, sizes, activations, loss, dtype, blocks):
    """The backend `name` for this architecture; `blocks` is (norms, dropout rates, dropout seed)."""
    if name == "native":
        try:
            from ._native_backend import NativeBackend
        except ImportError as error:
            advice = getattr(error, "advice", "Reinstall with `pip install .` to build it.")
            warnings.warn(f"backprop's compiled core could not be imported ({error}); "
                          f"using the NumPy backend instead. {advice}", RuntimeWarning, stacklevel=3)
        else:
            return NativeBackend(sizes, activations, loss, dtype, *blocks)
    from ._numpy_backend import NumpyBackend
    return NumpyBackend(sizes, activations, loss, dtype, *blocks)


def _norm_parameter(attribute, what):
    """A Dense property for LayerNorm's `attribute` (gamma or beta): None without LayerNorm."""
    def get(self):
        return getattr(self, "_" + attribute)

    def set(self, value):
        if get(self) is None:
            raise AttributeError(f"layers[{self.index}] has no LayerNorm (build the network with norm='layer')")
        self._assign(get(self), value, attribute)
    return property(get, set, doc=f"LayerNorm's {what}, (n_out,), or None for a layer without LayerNorm.")


class Dense:
    """One dense layer of a Network: z = W·a_prev + b, [u = LayerNorm(z)], a = activation(u), [dropout].

    ``W`` (n_out, n_in) and ``b`` (n_out,) are views of the network's
    parameters: writing into them (``layer.W[...] = x``) or assigning them
    (``layer.W = x``, same shape, converted to the network's dtype) changes
    what the network computes. A normalised hidden layer also has ``gamma``
    and ``beta`` (n_out,), LayerNorm's gain and shift (None otherwise);
    ``dropout`` is the layer's dropout rate (0 for none).
    """

    def __init__(self, index, activation, W, b, norm=None, dropout=0.0):
        self.index = index
        self.activation = activation
        self._W, self._b = W, b
        self._gamma, self._beta = norm if norm is not None else (None, None)
        self.dropout = dropout

    n_in = property(lambda self: self._W.shape[1], doc="Number of inputs.")
    n_out = property(lambda self: self._W.shape[0], doc="Number of outputs (units).")
    n_params = property(lambda self: self._W.size + self._b.size + (0 if self._gamma is None else 2 * self._b.size),
                        doc="Number of weights, biases (and LayerNorm gains and shifts).")

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

    gamma = _norm_parameter("gamma", "gain γ")
    beta = _norm_parameter("beta", "shift β")

    def _assign(self, target, value, attribute):
        name = f"layers[{self.index}].{attribute}"
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
        if array.shape != target.shape:
            raise ValueError(f"{name} must have shape {target.shape}, got {array.shape}")
        target[...] = convert_finite(name, array, target.dtype)

    def __repr__(self):
        extras = (", norm='layer'" if self._gamma is not None else "") + \
            (f", dropout={self.dropout!r}" if self.dropout else "")
        return f"Dense({self.n_in} -> {self.n_out}, activation={self.activation!r}{extras})"


class Network:
    """A feedforward network of dense layers trained by backpropagation.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths n_0 (features), n_1, ..., n_L (outputs); at least two.
    activation : str or sequence of str
        Hidden-layer activation, one for all or one per hidden layer:
        'relu', 'leaky_relu', 'tanh', 'sigmoid', 'identity', 'gelu' (exact,
        z·Φ(z), as torch.nn.GELU()), 'silu' (z·σ(z)) or 'elu' (α = 1).
    output : str, optional
        Output activation; with `loss` unset, 'softmax' implies cross_entropy,
        'sigmoid' binary_cross_entropy, 'exp' poisson and anything else mse.
        Default: the one the loss is defined with (softmax, sigmoid, exp,
        identity).
    loss : str, optional
        'cross_entropy' (softmax output, integer labels or probability rows),
        'binary_cross_entropy' (sigmoid output, targets in [0, 1]), 'poisson'
        (exp output, targets >= 0: half the Poisson deviance
        Σ_k y_k·log(y_k/a_k) − y_k + a_k, scikit-learn's poisson loss) or
        'mse' (½‖a − y‖²). Default cross_entropy. Averaged over the batch.
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
    dropout : float or sequence of float, each in [0, 1)
        Inverted dropout after each hidden layer's activation (one rate for
        all, or one per hidden layer; never after the output), active in
        training passes only (fit, train_on_batch, gradients). Its masks are a
        pure function of ``dropout_seed``, the optimizer's step, the layer and
        the element, so training is reproducible for any thread count.
    norm : None or 'layer'
        'layer': LayerNorm over each hidden layer's units, per sample, between
        the affine map and the activation (torch.nn.LayerNorm, ε = 1e-5,
        learnable gain γ = 1 and shift β = 0 to start).

    A hidden layer is the block z = W·a + b → [LayerNorm] → activation →
    [dropout]. ``dropout_seed`` (saved with the model) is drawn from the
    seed's SeedSequence at construction, without disturbing ``rng``.
    """

    def __init__(self, sizes, activation="relu", output=None, loss=None, init=None, init_std=0.01,
                 dtype="float32", backend="native", seed=None, dropout=0.0, norm=None):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a sequence of layer widths, got {type(sizes).__name__}")
        sizes = tuple(check_int(f"sizes[{i}]", n, minimum=1) for i, n in enumerate(sizes))
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least two entries (inputs and outputs), got {list(sizes)}")
        n_hidden = len(sizes) - 2

        if isinstance(activation, str):
            check_hidden_activation("activation", activation)
            hidden = [activation] * n_hidden
        elif isinstance(activation, (list, tuple)):
            hidden = list(activation)
            if len(hidden) != n_hidden:
                raise ValueError(f"activation needs one entry per hidden layer ({n_hidden}), got {len(hidden)}")
            for i, a in enumerate(hidden):
                check_hidden_activation(f"activation[{i}]", a)
        else:
            raise TypeError(f"activation must be a string or a list of strings, got {type(activation).__name__}")

        output, loss = output_and_loss(output, loss)
        norms, rates = hidden_blocks(n_hidden, norm, dropout)

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
        self.norm = norm
        self.dropout = rates
        self._layout = Layout(sizes, norms)
        self._params = np.zeros(self._layout.n_params, dtype)
        self._rng = np.random.default_rng(seed)
        # Its own word of the generator's SeedSequence: the weights and orders stay those of `seed`.
        self.dropout_seed = int(self._rng.bit_generator.seed_seq.spawn(1)[0].generate_state(1, np.uint64)[0])
        self._initialise()
        self._make_layers()
        self._backend = _make_backend(backend, sizes, self.activations, loss, dtype, self._blocks())
        self.optimizer = None
        self.history = None
        self.stop_training = False

    def _set_dropout_seed(self, seed):
        """Use `seed` (an integer in [0, 2**64)) as the key of dropout's masks, e.g. a loaded model's."""
        seed = check_int("dropout_seed", seed, minimum=0)
        if seed >= 2**64:
            raise ValueError(f"dropout_seed must be below 2**64, got {seed}")
        self.dropout_seed = seed
        self._backend = _make_backend(self.backend, self.sizes, self.activations, self.loss, self.dtype,
                                      self._blocks())

    def _blocks(self):
        """(norms, dropout rates, dropout seed): what a backend needs beyond sizes and activations."""
        return self._layout.norms[:-1], self.dropout, self.dropout_seed

    def _make_layers(self):
        """The Dense views of the flat parameters."""
        norms = self._layout.norm_views(self._params)
        rates = self.dropout + (0.0,)
        self.layers = [Dense(l, self.activations[l], W, b, norms[l], rates[l])
                       for l, (W, b) in enumerate(self._layout.views(self._params))]

    @property
    def rng(self):
        """The ``numpy.random.Generator`` that drew the initial weights and draws each epoch's order.

        ``fit(shuffle=True)`` takes ``rng.permutation(n_samples)`` once per
        epoch. Assign another Generator to change the orders to come.
        """
        return self._rng

    @rng.setter
    def rng(self, generator):
        if not isinstance(generator, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(generator).__name__}")
        self._rng = generator

    def parameters(self):
        """All weights and biases as one writable 1-D array, the network's own storage.

        Layout: [W^(1) (n_1 × n_0, C order), b^(1), [γ^(1), β^(1)], W^(2),
        b^(2), ...] (γ, β only for LayerNorm layers), the
        layout of the core, of ``gradients(..., flat=True)`` and of the
        optimizers' state. Writing into it changes the network (every
        layer's ``W`` and ``b`` is a view of it); keep a ``.copy()`` to save
        a state.
        """
        return self._params

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
        for norm in self._layout.norm_views(self._params):
            if norm is not None:
                norm[0][...] = 1  # γ = 1, β = 0: LayerNorm starts as plain normalisation

    # -- description ----------------------------------------------------------
    @property
    def backend(self):
        """The backend in use: 'native' or 'numpy'."""
        return self._backend.name

    @property
    def n_params(self):
        """Total number of weights, biases, and LayerNorm gains and shifts."""
        return self._layout.n_params

    @property
    def is_classifier(self):
        return self.loss in ("cross_entropy", "binary_cross_entropy")

    def __repr__(self):
        extras = (f", norm={self.norm!r}" if self.norm else "") + \
            (f", dropout={list(self.dropout)!r}" if any(self.dropout) else "")
        return (f"Network({list(self.sizes)}, activation={list(self.activations[:-1])!r}, "
                f"output={self.activations[-1]!r}, loss={self.loss!r}, dtype={self.dtype.name!r}, "
                f"backend={self.backend!r}{extras})")

    def summary(self):
        """Print the layers, their shapes, activations and parameter counts."""
        rows = [("layer", "shape (n_out, n_in)", "activation", "parameters")]
        for layer in self.layers:
            block = ("LayerNorm, " if layer.gamma is not None else "") + layer.activation + \
                (f", dropout {layer.dropout:g}" if layer.dropout else "")
            rows.append((f"{layer.index}: Dense", str(layer.W.shape), block, f"{layer.n_params:,}"))
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

    def _check_weights(self, labels, targets, sample_weight, class_weight=None, name="sample_weight"):
        """Per-sample weights (float64) from sample_weight and class_weight, or None for none."""
        n = labels.shape[0] if labels is not None else targets.shape[0]
        weights = None if sample_weight is None else check_sample_weight(sample_weight, n, name)
        if class_weight is not None:
            per_class = check_class_weight(class_weight, labels, targets, self.loss, self.sizes[-1])
            weights = per_class if weights is None else weights * per_class
            if not weights.sum() > 0:
                raise ValueError("sample_weight and class_weight together give every sample weight 0")
        return weights

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
        # The backend scans X for NaN and ±inf itself: for one row the core's
        # scan costs nanoseconds where NumPy's costs a microsecond.
        X = check_X(X, self.sizes[0], self.dtype, finite=False)
        return self._backend.forward(self._params, X, check_finite=True)

    def predict(self, X):
        """Predictions for each row of X.

        Returns class labels (n_samples,) int64 for cross_entropy, 0/1 labels
        (n_samples, n_out) int64 for binary_cross_entropy (output > 0.5), and
        the outputs (n_samples, n_out) for mse and poisson.
        """
        out = self.forward(X)
        if self.loss == "cross_entropy":
            return out.argmax(axis=1)
        if self.loss == "binary_cross_entropy":
            return (out > 0.5).astype(np.int64)
        return out

    def _evaluate_checked(self, X, labels, targets, weights=None):
        loss_sum, n_correct, weight_sum = self._backend.evaluate(self._params, X, labels, targets, weights)
        result = {"loss": loss_sum / weight_sum}
        if self.is_classifier:
            result["accuracy"] = n_correct / (weight_sum * self._units_per_sample)
        return result

    @property
    def _units_per_sample(self):
        """What accuracy counts per sample: one class, or each sigmoid output unit."""
        return self.sizes[-1] if self.loss == "binary_cross_entropy" else 1

    def evaluate(self, X, y, sample_weight=None):
        """Mean loss over the samples, and accuracy for classifiers.

        Parameters
        ----------
        X, y : as for fit
        sample_weight : array-like (n_samples,), optional
            Non-negative weights: the loss and accuracy become weighted means
            Σ w_i·L_i / Σ w_i (scikit-learn's ``score(sample_weight=...)``).

        Returns
        -------
        dict: {"loss": float} plus "accuracy" (fraction of samples whose argmax
        is the label for cross_entropy; fraction of output units on the right
        side of 0.5 for binary_cross_entropy).
        """
        X, labels, targets = self._check_Xy(X, y)
        return self._evaluate_checked(X, labels, targets, self._check_weights(labels, targets, sample_weight))

    def gradients(self, X, y, flat=False, sample_weight=None, return_accuracy=False):
        """Loss and gradients of the mean loss over all rows of X (one batch).

        With ``sample_weight`` the loss is the weighted mean R = Σ w_i·L_i / Σ w_i.

        Returns
        -------
        loss : float
        grads : list of (dW, db) per layer, shaped like layers[i].W and .b
            ((dW, db, dgamma, dbeta) for a LayerNorm layer); or with
            ``flat=True`` one 1-D array laid out like ``parameters()``.
        accuracy : float or None
            Only with ``return_accuracy=True``: the (weighted) accuracy as
            ``evaluate`` defines it, from the same forward pass; None for mse.
        """
        flat = check_bool("flat", flat)
        return_accuracy = check_bool("return_accuracy", return_accuracy)
        X, labels, targets = self._check_Xy(X, y)
        weights = self._check_weights(labels, targets, sample_weight)
        # A training pass: dropout takes the masks of the step these gradients are for.
        step = (self.optimizer.step_count if self.optimizer is not None else 0) + 1
        loss, grads, right = self._backend.gradients(self._params, X, labels, targets, weights, step)
        per_layer = [pair + (norm if norm is not None else ())
                     for pair, norm in zip(self._layout.views(grads), self._layout.norm_views(grads))]
        result = (float(loss), grads if flat else per_layer)
        if return_accuracy:
            result += (right / self._units_per_sample if self.is_classifier else None,)
        return result

    # -- training -------------------------------------------------------------
    def _check_optimizer(self, optimizer):
        optimizer = check_optimizer(optimizer, self.optimizer)
        optimizer._check_state(self)  # before anything changes: the core would refuse it mid-fit
        return optimizer

    def train_on_batch(self, X, y, optimizer=None, sample_weight=None, class_weight=None):
        """One optimizer step on the mean loss of all rows of X: a building block for custom loops.

        Parameters
        ----------
        X, y, sample_weight, class_weight : as for fit, one batch
        optimizer : SGD or Adam, optional
            As for fit: default the network's current optimizer (whose state
            carries over between calls), else SGD(lr=0.01).

        Returns
        -------
        dict: "loss" (the batch's mean loss before the step) and, for
        classifiers, "accuracy".

        Raises
        ------
        FloatingPointError
            When the loss or the update is not finite; nothing is changed.
        """
        X, labels, targets = self._check_Xy(X, y)
        weights = self._check_weights(labels, targets, sample_weight, class_weight)
        optimizer = self._check_optimizer(optimizer)
        self.optimizer = optimizer
        n = X.shape[0]
        data = self._backend.prepare(X, labels, targets, weights)
        result = self._backend.train_epoch(self._params, data, np.arange(n, dtype=np.int64), n, optimizer,
                                           optimizer._state_for(self), False)
        if result["status"] != "completed":
            raise FloatingPointError(nonfinite_message(result["status"], "in train_on_batch"))
        logs = {"loss": result["loss_sum"] / n}
        if self.is_classifier:
            logs["accuracy"] = result["n_correct"] / (n * self._units_per_sample)
        return logs

    def apply_gradients(self, grads, optimizer=None, batch_weight=None):
        """One optimizer step with a given gradient, e.g. one summed over processes.

        Parameters
        ----------
        grads : array-like, (n_params,)
            ∂R/∂θ laid out like ``parameters()`` (as ``gradients(..., flat=True)``
            returns it), before weight decay, which the optimizer adds.
        optimizer : SGD or Adam, optional
            As for fit.
        batch_weight : float > 0, optional
            Σ of the sample weights (the number of samples) behind `grads`;
            only the 'sklearn' convention reads it (its weight decay is
            divided by it), and then it is required.

        Raises
        ------
        FloatingPointError
            When the update would make a parameter or the optimizer's state
            NaN or infinite; nothing is changed.
        """
        grads = np.asarray(grads)
        if grads.shape != (self.n_params,):
            raise ValueError(f"grads must have shape ({self.n_params},), like parameters(); got {grads.shape}")
        grads = np.ascontiguousarray(convert_finite("grads", grads, self.dtype))
        optimizer = self._check_optimizer(optimizer)
        if batch_weight is None:
            if optimizer.convention == "sklearn":
                raise ValueError("batch_weight is required with an optimizer of convention='sklearn'")
            batch_weight = 1.0
        batch_weight = check_real("batch_weight", batch_weight)
        if not (batch_weight > 0 and np.isfinite(batch_weight)):
            raise ValueError(f"batch_weight must be > 0, got {batch_weight}")
        self.optimizer = optimizer
        if not self._backend.optimizer_step(self._params, grads, optimizer, optimizer._state_for(self), batch_weight):
            raise FloatingPointError(nonfinite_message("nonfinite_update", "in apply_gradients"))

    def fit(self, X, y, epochs=1, batch_size=32, optimizer=None, shuffle=True, validation_data=None,
            verbose=0, record_grad_norms=False, callbacks=None, sample_weight=None, class_weight=None,
            validation_split=0.0, validation_freq=1):
        """Train by mini-batch backpropagation.

        Parameters
        ----------
        X : array-like, (n_samples, n_features)
        y : array-like
            Class labels (n_samples,) or probability rows for cross_entropy;
            (n_samples, n_out) targets for mse, binary_cross_entropy and poisson.
        epochs : int >= 1
        batch_size : int >= 1 or None
            Samples per update; 1 is online learning (the per-sample delta
            rule), None the full batch. Capped at n_samples.
        optimizer : SGD or Adam, optional
            Default: the optimizer of the previous fit, else SGD(lr=0.01). Its
            state (momentum, moments) carries over between fits.
        shuffle : bool or callable
            True: visit samples in a new order each epoch,
            ``self.rng.permutation(n_samples)``. False: in their order. A
            callable ``shuffle(epoch)`` (epoch from 0) returns the epoch's
            order itself: a 1-D array of row indices.
        validation_data : (X_val, y_val) or (X_val, y_val, sample_weight_val), optional
            Evaluated after epochs (val_loss, val_accuracy).
        verbose : 0, 1 or 2
            0 silent, 1 and 2 one line per epoch.
        record_grad_norms : bool
            Record each layer's mean ‖∂R/∂W‖ per epoch in History.grad_norms.
        callbacks : list of backprop.callbacks.Callback, optional
            Called at the start and end of training and of each epoch, and
            after chunks of batches for those that ask for batch events (see
            backprop.callbacks). ``network.stop_training = True`` from a
            callback ends training after the current epoch.
        sample_weight : array-like (n_samples,), optional
            Non-negative weights. Each step minimises the batch's weighted
            mean loss R = Σ w_i·L_i / Σ w_i (scikit-learn's MLP normalisation);
            a batch whose weights are all 0 takes a step with zero gradient.
        class_weight : dict {class: weight}, sequence (n_classes,) or 'balanced', optional
            For class labels: sample i weighs class_weight[y_i] (multiplied
            into sample_weight), so the loss is Σ w_{y_i}·L_i / Σ w_{y_i}, as
            ``torch.nn.CrossEntropyLoss(weight=...)``. 'balanced' is
            n_samples / (n_classes · count(class)), as scikit-learn's.
        validation_split : float in [0, 1)
            Hold out the last fraction of X and y (taken before shuffling, as
            Keras does) as validation data; not with validation_data.
        validation_freq : int >= 1 or collection of int
            Validate every k-th epoch, or after the listed epochs (from 1).

        Returns
        -------
        History, also ``self.history``. Per epoch: "loss" (the mean over the
        epoch's samples of each batch's weighted mean loss, measured before
        its step), "accuracy" for classifiers, "lr", and the validation
        figures when validation ran.

        Raises
        ------
        FloatingPointError
            When a loss, gradient or updated weight becomes NaN or inf;
            training stops without that update, so the weights (and the
            optimizer's state) are those of the last finite step.
        """
        return self._fit(X, y, epochs, batch_size, optimizer, shuffle, validation_data, verbose, record_grad_norms,
                         callbacks, sample_weight, class_weight, validation_split, validation_freq)

    def _fit(self, X, y, epochs, batch_size, optimizer, shuffle, validation_data, verbose, record_grad_norms,
             callbacks, sample_weight, class_weight, validation_split, validation_freq, sparse=False):
        """fit; with `sparse`, X is a scipy.sparse matrix already checked (the estimators' sparse input)."""
        if sparse:
            labels, targets = check_targets(y, self.loss, X.shape[0], self.sizes[-1], self.dtype, "y")
            X = X.astype(self.dtype)
        else:
            X, labels, targets = self._check_Xy(X, y)
        weights = self._check_weights(labels, targets, sample_weight, class_weight)
        n = X.shape[0]
        epochs = check_int("epochs", epochs)
        batch_size = n if batch_size is None else check_int("batch_size", batch_size)
        optimizer = self._check_optimizer(optimizer)
        if not callable(shuffle):
            shuffle = check_bool("shuffle", shuffle)
        record_grad_norms = check_bool("record_grad_norms", record_grad_norms)
        verbose = check_int("verbose", verbose, minimum=0)
        callbacks = CallbackList(callbacks, self)
        validation_split = check_real("validation_split", validation_split)
        validate_on = validation_schedule(validation_freq)
        data, validation = (X, labels, targets, weights), None
        if validation_split:
            if validation_data is not None:
                raise ValueError("give validation_data or validation_split, not both")
            data, validation = split_validation(data, split_point(n, validation_split))
        elif validation_data is not None:
            validation = self._check_validation_data(validation_data)
        steps = (SparseSteps if sparse else LocalSteps)(self, data, batch_size, optimizer, record_grad_norms)
        loop = EpochLoop(self, steps, epochs=epochs, shuffle=shuffle, validation=validation, validate_on=validate_on,
                         verbose=verbose, callbacks=callbacks, record_grad_norms=record_grad_norms)
        loop.check_first_order()
        return loop.run()

    def _check_validation_data(self, validation_data):
        """(X_val, labels, targets, weights) from (X_val, y_val[, sample_weight_val])."""
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a pair (X_val, y_val) or a triple (X_val, y_val, "
                             "sample_weight_val)")
        X_val, labels, targets = self._check_Xy(*validation_data[:2], x_name="validation_data[0]",
                                                y_name="validation_data[1]")
        weights = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            weights = self._check_weights(labels, targets, validation_data[2], name="validation_data[2]")
        return X_val, labels, targets, weights

    # -- copying ----------------------------------------------------------------
    def __copy__(self):
        """copy.copy(net) is copy.deepcopy(net): an independent network.

        A shallow copy would share the parameters and the optimizer, whose
        state follows one network at a time, so the next fit of either would
        silently restart the other's momentum or Adam moments.
        """
        return copy.deepcopy(self)

    def __getstate__(self):
        # pickle and copy.deepcopy give an independent network: its own
        # parameters, and a copy of the optimizer whose state follows it. The
        # backend holds a compiled object and the layers hold views of
        # _params: both are rebuilt on unpickling, so a copy owns its weights.
        state = self.__dict__.copy()
        state["_backend"] = self.backend
        del state["layers"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "dropout_seed" not in state:  # pickled before hidden blocks existed
            self.norm, self.dropout, self.dropout_seed = None, (0.0,) * (len(self.sizes) - 2), 0
            self._layout = Layout(self.sizes)
        self._make_layers()
        self._backend = _make_backend(state["_backend"], self.sizes, self.activations, self.loss, self.dtype,
                                      self._blocks())
        if self.optimizer is not None and self.optimizer.state:
            self.optimizer._owner = weakref.ref(self)  # its state belongs to this copy

    # -- files ----------------------------------------------------------------
    def save(self, path):
        """Save architecture, dtype and parameters to an .npz file, atomically.

        The file is written beside `path` and renamed over it only when
        complete, so a failed save never leaves a half-written model.
        """
        _serialization.save(self, path)

    @classmethod
    def load(cls, path, backend=None):
        """Read a network saved with ``save`` (also ``backprop.load``).

        Parameters
        ----------
        path : str, bytes or os.PathLike
        backend : 'native' or 'numpy', optional
            Overrides the backend recorded in the file.

        Raises
        ------
        ValueError
            When the file is truncated, is not an .npz archive, or its header or
            arrays do not describe a valid network. Arrays are checked against
            the header before they are decompressed, so hostile files cost at
            most the memory of the model they declare.
        """
        if backend is not None:
            check_choice("backend", backend, BACKENDS)
        return _serialization.load(path, cls, backend)

    def _config(self):
        """The constructor arguments that rebuild this network's architecture."""
        return {"sizes": list(self.sizes), "activation": list(self.activations[:-1]),
                "output": self.activations[-1], "loss": self.loss, "init": self.init,
                "init_std": self.init_std, "dtype": self.dtype.name, "backend": self.backend,
                "seed": self.seed, "dropout": list(self.dropout), "norm": self.norm}

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
        return from_torch(module, cls, loss=loss, dtype=dtype, backend=backend, seed=seed)

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


load = Network.load
