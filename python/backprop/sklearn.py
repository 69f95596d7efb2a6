"""scikit-learn estimators trained by backprop: drop-in ``MLPClassifier`` and ``MLPRegressor``.

They take the constructor parameters of :mod:`sklearn.neural_network`'s
estimators, with the same meanings, accept the same ``fit``/``partial_fit``
arguments (``sample_weight``, ``classes``) and set the same fitted
attributes, so existing code, pipelines and grid searches keep working when
the import changes::

    from backprop.sklearn import MLPClassifier      # was: from sklearn.neural_network import ...

The forward and backward passes and the optimizer steps run in backprop's
core (``backend="native"``, C++/Eigen) or its NumPy reference
(``backend="numpy"``): the stochastic solvers run all their epochs in one
``Network.fit`` call, the estimator's bookkeeping (loss curve, learning-rate
schedules, stopping rules, early stopping) between epochs in a callback.
scikit-learn provides the estimator machinery (parameter and input
validation, label encoding, splitting) and SciPy the L-BFGS-B driver.

Training follows scikit-learn 1.9's definitions step by step: the same
Glorot initialisation drawn from the same random-state calls, the same
shuffling, mini-batches, weighted losses, L2 term, learning-rate schedules,
stopping rules, early stopping and reported losses. From the same
``random_state`` both libraries therefore start from the same weights and
visit the samples in the same order; results agree to rounding (float64)
rather than only statistically. The few differences are listed in the
estimators' Notes sections.

Needs scikit-learn >= 1.6 and SciPy: ``pip install "backprop-mlp[sklearn]"``.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np

try:
    import scipy.optimize
    import scipy.sparse
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as _SkMLPClassifier
    from sklearn.neural_network import MLPRegressor as _SkMLPRegressor
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state, column_or_1d
    from sklearn.utils import shuffle as _shuffle
    from sklearn.utils._param_validation import Interval, Options, StrOptions
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
    from sklearn.utils.optimize import _check_optimize_result
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as _error:  # pragma: no cover - depends on the environment
    raise ImportError(f"backprop.sklearn needs scikit-learn >= 1.6 and SciPy ({_error}); install them with "
                      "pip install \"backprop-mlp[sklearn]\"") from _error

from .callbacks import Callback
from .network import Network
from .optim import SGD, Adam

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's hidden activation names -> backprop's.
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
# scikit-learn's out_activation_ -> backprop's (output, loss).
_OUTPUTS = {"softmax": ("softmax", "cross_entropy"), "logistic": ("sigmoid", "binary_cross_entropy"),
            "identity": ("identity", "mse"), "exp": ("exp", "poisson")}
_STOCHASTIC_SOLVERS = ("sgd", "adam")
# Rows densified at a time from a sparse X when predicting (training: SparseSteps).
_SPARSE_BLOCK_ROWS = 4096
# scikit-learn's message when training ends with non-finite weights.
_NONFINITE_MESSAGE = ("Solver produced non-finite parameter weights. The input data may contain large values "
                      "and need to be preprocessed.")


class _EpochEnd(Callback):
    """Hands each epoch's logs to the estimator's bookkeeping; stops training when it says so."""

    def __init__(self, end_epoch):
        super().__init__()
        self._end_epoch = end_epoch

    def on_epoch_end(self, epoch, logs=None):
        if self._end_epoch(logs):
            self.network.stop_training = True


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: validation, initialisation, the solvers.

    The fitted weights live in ``coefs_`` and ``intercepts_`` (NumPy arrays,
    scikit-learn's layout); a ``backprop.Network`` built from the public
    fitted attributes computes with them and keeps the optimizer's state
    between ``partial_fit`` calls. Whatever is in ``coefs_``/``intercepts_``
    when ``predict``, ``partial_fit`` or a warm-started ``fit`` runs is what
    the network computes with, so they may be set by hand like
    scikit-learn's; the network's dtype is that of ``coefs_[0]``.
    """

    _classifier = False

    # scikit-learn 1.9's declarations (its messages), then backprop's own three parameters.
    # scikit-learn's own constraint objects, so that every message (set order included) is its own.
    _parameter_constraints: dict = {
        **_SkMLPClassifier._parameter_constraints,
        "dtype": [None, StrOptions({"float32", "float64"}), Options(type, {np.float32, np.float64}),
                  Options(np.dtype, {np.dtype(np.float32), np.dtype(np.float64)})],
        "backend": [StrOptions({"native", "numpy"})],
        "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
    }

    def __init__(self, hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
                 learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose,
                 warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction,
                 beta_1, beta_2, epsilon, n_iter_no_change, max_fun, dtype, backend, dropout):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.backend = backend
        self.dropout = dropout

    # -- checks the constraints cannot express -------------------------------------------
    def _hidden_layer_sizes(self):
        """hidden_layer_sizes as a list of ints; ValueError (scikit-learn's text for sizes <= 0)."""
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not all(isinstance(n, Integral) and not isinstance(n, (bool, np.bool_)) for n in sizes):
            raise ValueError(f"hidden_layer_sizes must hold integers, got {sizes}.")
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        if self.solver == "sgd" and self.momentum == 1:
            raise ValueError(f"The 'momentum' parameter of {type(self).__name__}: momentum=1 (velocity that "
                             "never decays) is not supported by backprop's SGD; use a value in [0, 1).")
        return [int(n) for n in sizes]

    # -- the network --------------------------------------------------------------------------
    def _network(self):
        """The backprop.Network holding coefs_ and intercepts_, built from the public attributes.

        Rebuilt (which resets the optimizer's state) only when the layer
        widths, activations, dtype (that of ``coefs_[0]``) or backend change.
        """
        coefs, intercepts = list(self.coefs_), list(self.intercepts_)
        if not coefs or len(intercepts) != len(coefs):
            raise ValueError(f"coefs_ and intercepts_ must hold one array per layer, got {len(coefs)} and "
                             f"{len(intercepts)}")
        sizes = (np.shape(coefs[0])[0],) + tuple(np.shape(W)[1] for W in coefs)
        dtype = "float32" if np.asarray(coefs[0]).dtype == np.float32 else "float64"
        activation = _ACTIVATIONS.get(self.activation)
        if activation is None:
            raise ValueError(f"The 'activation' parameter of {type(self).__name__} must be a str among "
                             f"{set(_ACTIVATIONS)}. Got {self.activation!r} instead.")
        out_activation = self._out_activation()
        if out_activation not in _OUTPUTS:
            raise ValueError(f"out_activation_ must be one of {sorted(_OUTPUTS)}, got {out_activation!r}")
        dropout = tuple(np.ravel(self.dropout).tolist())
        spec = (sizes, activation, out_activation, dtype, self.backend, dropout)
        if getattr(self, "_net", None) is None or getattr(self, "_net_spec", None) != spec:
            output, loss = _OUTPUTS[out_activation]
            rates = dropout[0] if len(dropout) == 1 else list(dropout)
            self._net = Network(list(sizes), activation=activation, output=output, loss=loss, dtype=dtype,
                                backend=self.backend, seed=0, dropout=rates)
            if any(dropout) and hasattr(self, "_random_state"):  # masks follow random_state; none drawn without
                self._net._set_dropout_seed(int(self._random_state.randint(np.iinfo(np.int32).max)))
            self._net_spec = spec
            self._attach_optimizer(self._net)
        net = self._net
        for i, (layer, W, b) in enumerate(zip(net.layers, coefs, intercepts)):
            W, b = np.asarray(W), np.asarray(b)
            if W.shape != (layer.n_in, layer.n_out):
                raise ValueError(f"coefs_[{i}] must have shape {(layer.n_in, layer.n_out)}, got {W.shape}")
            if b.shape != (layer.n_out,):
                raise ValueError(f"intercepts_[{i}] must have shape {(layer.n_out,)}, got {b.shape}")
            layer.W = W.T  # refuses NaN and infinity, naming the layer
            layer.b = b
        return net

    def _attach_optimizer(self, net):
        """Carry the optimizer's state (momentum, moments, step count) over to a new network of the
        same parameter layout, e.g. after unpickling; partial_fit then continues as before."""
        previous = getattr(self, "_optimizer", None)
        if previous is None:
            return
        # A new optimizer object: the unpickled one's arrays may be read-only memory maps.
        optimizer = type(previous)(**previous.get_config())
        state = optimizer._state_for(net)
        if previous.state and all(np.shape(previous.state.get(name)) == array.shape for name, array in state.items()):
            for name, array in state.items():
                array[...] = previous.state[name]
            optimizer.step_count = previous.step_count
        self._optimizer = optimizer

    def _pull_weights(self, net):
        """coefs_ and intercepts_ from the network: copies, scikit-learn's layout."""
        self.coefs_ = [np.array(layer.W.T, order="C") for layer in net.layers]
        self.intercepts_ = [layer.b.copy() for layer in net.layers]

    def _forward(self, X, net=None):
        """Output activations for validated X (dense or sparse), with `net` or the synced network."""
        if net is None:
            net = self._network()
        if not scipy.sparse.issparse(X):
            return net.forward(X)
        X = X.tocsr()
        return np.vstack([net.forward(X[start:start + _SPARSE_BLOCK_ROWS].toarray())
                          for start in range(0, X.shape[0], _SPARSE_BLOCK_ROWS)])

    def _check_X_predict(self, X):
        check_is_fitted(self)
        # dtype="numeric" as scikit-learn's MLP predicts: arrays of strings are
        # refused here, though fit converts numeric strings as scikit-learn's does.
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False, dtype="numeric")
        return X if X.dtype in (np.float64, np.float32) else X.astype(np.float64)

    # -- fitting --------------------------------------------------------------------------------
    def _initialize(self, y, layer_units, dtype):
        """Fresh fitted state and Glorot-uniform weights drawn like scikit-learn's."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._default_out_activation()
        # scikit-learn's scheme and draw order: per layer, U(±sqrt(factor / (fan_in + fan_out)))
        # for the (fan_in, fan_out) weights, then for the fan_out biases; factor 2 for logistic.
        factor = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(self._random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
            self.intercepts_.append(self._random_state.uniform(-bound, bound, fan_out).astype(dtype))
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [b.copy() for b in self.intercepts_]
        self._optimizer = None
        for name in ("loss_", "loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
            self.__dict__.pop(name, None)
        if self.solver in _STOCHASTIC_SOLVERS:
            self._init_stochastic_state()

    def _init_stochastic_state(self):
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _fit(self, X, y, sample_weight, incremental, hidden):
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
            if np.any(sample_weight < 0):
                raise ValueError("sample_weight must be >= 0: backprop trains on weighted means of the losses "
                                 f"with non-negative weights; got {sample_weight.min():g}")
            sample_weight = sample_weight.astype(np.float64, copy=False)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        layer_units = [X.shape[1]] + hidden + [y.shape[1]]

        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, self._fit_dtype(X))
        else:
            self._check_continuation(y, layer_units)
        net = self._network()
        X = X.astype(net.dtype, copy=False)
        targets = self._network_targets(y, net.dtype)
        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(net, X, y, targets, sample_weight, incremental)
        else:
            self._fit_lbfgs(net, X, targets, sample_weight)
        return self

    def _fit_dtype(self, X):
        """The dtype a cold fit trains in: `dtype`, else X's (float32 or float64), as scikit-learn's."""
        return np.dtype(self.dtype if self.dtype is not None else X.dtype)

    def _check_continuation(self, y, layer_units):
        """Warm starts and partial_fit keep the architecture and the output; refuse what does not fit."""
        current = [np.shape(self.coefs_[0])[0]] + [np.shape(W)[1] for W in self.coefs_]
        if current[-1] != layer_units[-1]:
            raise ValueError(f"y has {layer_units[-1]} outputs, but the fitted network has {current[-1]}")
        if current != layer_units:
            raise ValueError(f"hidden_layer_sizes={self.hidden_layer_sizes!r} does not match the fitted layer "
                             f"widths {current[1:-1]}; warm_start and partial_fit keep the architecture (refit "
                             "with warm_start=False to change it)")
        out_activation = self._out_activation()
        if out_activation != self._default_out_activation():
            raise ValueError(f"out_activation_={out_activation!r} does not suit this fit (it needs "
                             f"{self._default_out_activation()!r}); refit with warm_start=False")
        self.n_outputs_ = layer_units[-1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = out_activation
        if self.solver in _STOCHASTIC_SOLVERS:
            if not hasattr(self, "t_"):
                self.t_ = 0  # weights set by hand
            if not hasattr(self, "loss_curve_"):
                self._init_stochastic_state()  # set by hand, or the previous fit used lbfgs
            if self.early_stopping and getattr(self, "validation_scores_", None) is None:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None

    def _network_targets(self, y, dtype):
        """What backprop's loss takes: class indices for softmax, else float rows."""
        if self._out_activation() == "softmax":
            return np.asarray(y).argmax(axis=1).astype(np.int64)
        return np.asarray(y, dtype=dtype)

    def _loss_scale(self):
        """backprop's mse is ½·Σ_outputs, scikit-learn's reported squared loss ½·mean_outputs."""
        return self.n_outputs_ if self.out_activation_ == "identity" else 1

    def _make_optimizer(self):
        # convention='sklearn': weight decay alpha·W / Σ_batch w (scikit-learn's L2 gradient), and
        # Adam's epsilon added to sqrt(v) before the bias correction.
        if self.solver == "sgd":
            return SGD(lr=self.learning_rate_init, momentum=self.momentum,
                       nesterov=bool(self.nesterovs_momentum and self.momentum > 0), weight_decay=self.alpha,
                       convention="sklearn")
        return Adam(lr=self.learning_rate_init, beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon,
                    weight_decay=self.alpha, convention="sklearn")

    @staticmethod
    def _set_lr(optimizer, lr):
        """Change SGD's learning rate the way scikit-learn's velocity form implies.

        scikit-learn keeps v = μ·v − η·g; backprop (PyTorch's form) keeps
        buf = μ·buf + g and steps −η·buf, so v = −η·buf. Rescaling buf by
        η_old/η_new keeps v, and every later step, identical.
        """
        lr = max(float(lr), np.finfo(np.float64).tiny)
        buffer = optimizer.state.get("momentum_buffer") if optimizer.kind == "sgd" else None
        if buffer is not None and lr != optimizer.lr:
            buffer *= buffer.dtype.type(optimizer.lr / lr)
        optimizer.lr = lr

    # -- the stochastic solvers -----------------------------------------------------------------
    def _fit_stochastic(self, net, X, y, targets, sample_weight, incremental):
        if not incremental or getattr(self, "_optimizer", None) is None:
            self._optimizer = self._make_optimizer()
        optimizer = self._optimizer
        optimizer.weight_decay = self.alpha

        validation = None
        if self.early_stopping:
            # Splitting row indices draws what splitting X, y (and sample_weight) draws.
            stratify = y if (self._classifier and self.n_outputs_ == 1) else None
            train, val = train_test_split(np.arange(X.shape[0]), random_state=self._random_state,
                                          test_size=self.validation_fraction, stratify=stratify)
            if val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                                 "your dataset.")
            validation = (X[val], self._validation_targets(y[val]),
                          None if sample_weight is None else sample_weight[val])
            X, targets = X[train], targets[train]
            sample_weight = None if sample_weight is None else sample_weight[train]

        n_samples = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be "
                              "clipped", UserWarning, stacklevel=4)
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        epochs = 1 if incremental else self.max_iter

        sample_index = np.arange(n_samples)

        def epoch_order(epoch):
            # scikit-learn reshuffles the previous epoch's order with its random state each epoch.
            nonlocal sample_index
            if self.shuffle:
                sample_index = _shuffle(sample_index, random_state=self._random_state)
            return sample_index

        scale = self._loss_scale()

        def end_epoch(logs):
            loss = logs["loss"] / scale + logs.get("l2_penalty", 0.0)
            return self._end_epoch(net, loss, validation, optimizer, n_samples, incremental)

        self.n_iter_ = 0
        diverged = False
        try:
            try:
                # A sparse X is densified a block of whole mini-batches at a time, in the same epoch loop.
                net._fit(X, targets, epochs, batch_size, optimizer, epoch_order, None, 0, False, [_EpochEnd(end_epoch)],
                         sample_weight, None, 0.0, 1, sparse=scipy.sparse.issparse(X))
            except FloatingPointError:
                # The core stopped before the first non-finite step. scikit-learn trains on with
                # NaN weights until a stopping rule or max_iter ends the loop: replay that.
                diverged = True
                stop = self._end_epoch(None, np.nan, validation, optimizer, n_samples, incremental)
                while not stop and self.n_iter_ < epochs:
                    epoch_order(self.n_iter_)  # the random draws of the epochs scikit-learn would run
                    stop = self._end_epoch(None, np.nan, validation, optimizer, n_samples, incremental)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", UserWarning, stacklevel=4)

        self._pull_weights(net)
        if self.early_stopping:
            best = self._best_weights()
            if all(np.isfinite(a).all() for part in best for a in part):
                self.coefs_, self.intercepts_ = best
                return
        if diverged:
            raise ValueError(_NONFINITE_MESSAGE + " backprop stopped before the first non-finite update and "
                             "kept the last finite weights; a smaller learning_rate_init may help.")

    def _end_epoch(self, net, loss, validation, optimizer, n_samples, incremental):
        """scikit-learn's bookkeeping after an epoch; True to stop. `net` is None after divergence."""
        self.n_iter_ += 1
        self.loss_ = loss
        self.t_ += n_samples
        self.loss_curve_.append(loss)
        if self.verbose:
            print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
        self._update_no_improvement_count(net, validation)
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._set_lr(optimizer, self.learning_rate_init / (self.t_ + 1) ** self.power_t)
        if self._no_improvement_count > self.n_iter_no_change:
            what = "Validation score" if self.early_stopping else "Training loss"
            message = (f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
                       "consecutive epochs.")
            if self._trigger_stopping(optimizer, message):
                return True
            self._no_improvement_count = 0
        if incremental:
            return True
        if self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=2)
        return False

    def _trigger_stopping(self, optimizer, message):
        """True to stop; with SGD's adaptive schedule divide the rate by 5 instead, down to 1e-6."""
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(message + " Stopping.")
            return True
        if optimizer.lr <= 1e-6:
            if self.verbose:
                print(message + " Learning rate too small. Stopping.")
            return True
        self._set_lr(optimizer, optimizer.lr / 5.0)
        if self.verbose:
            print(message + " Setting learning rate to %f" % optimizer.lr)
        return False

    def _update_no_improvement_count(self, net, validation):
        if self.early_stopping:
            X_val, y_val, sample_weight_val = validation
            if net is None:  # diverged: scikit-learn's NaN weights give NaN outputs
                output = np.full((X_val.shape[0], self.n_outputs_), np.nan)
            else:
                output = self._forward(X_val, net)
            score = self._score_output(output, y_val, sample_weight_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                if net is None:  # scikit-learn keeps its NaN weights as the best, and raises at the end
                    self._best_coefs = [np.full(np.shape(c), np.nan) for c in self.coefs_]
                    self._best_intercepts = [np.full(np.shape(b), np.nan) for b in self.intercepts_]
                else:
                    self._best_coefs = [np.array(layer.W.T, order="C") for layer in net.layers]
                    self._best_intercepts = [layer.b.copy() for layer in net.layers]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _best_weights(self):
        """The weights early stopping kept (the current ones if none were recorded, e.g. set by hand)."""
        coefs = getattr(self, "_best_coefs", None)
        intercepts = getattr(self, "_best_intercepts", None)
        if coefs is None or intercepts is None:
            return self.coefs_, self.intercepts_
        return [np.array(c) for c in coefs], [np.array(b) for b in intercepts]

    def _score_output(self, output, y_true, sample_weight):
        """scikit-learn's validation score of network outputs: NaN for non-finite float predictions."""
        y_pred = self._prediction(output)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        with np.errstate(over="ignore"):  # huge predictions of a diverging run score -inf, silently
            return self._score_function(y_true, y_pred, sample_weight=sample_weight)

    # -- L-BFGS ---------------------------------------------------------------------------------
    def _fit_lbfgs(self, net, X, targets, sample_weight):
        """scipy's L-BFGS-B on the full-batch loss + alpha/(2·Σw)·Σ‖W‖², from parameters() and
        gradients(flat=True)."""
        if scipy.sparse.issparse(X):
            X = X.toarray()
        params = net.parameters()
        # parameters() is [W1, b1, W2, b2, ...]: 1 where it holds a weight (penalised), 0 for a bias.
        weight_mask = np.concatenate([np.r_[np.ones(layer.W.size), np.zeros(layer.b.size)] for layer in net.layers])
        weight_sum = X.shape[0] if sample_weight is None else float(sample_weight.sum())
        decay = self.alpha / weight_sum

        def penalty():
            weights = params[weight_mask > 0]
            return 0.5 * decay * float(np.dot(weights, weights))

        def loss_and_gradient(x):
            if not np.all(np.isfinite(x)):
                raise FloatingPointError("L-BFGS-B proposed non-finite weights")
            params[...] = x
            loss, grads = net.gradients(X, targets, flat=True, sample_weight=sample_weight)
            return loss + penalty(), (grads + decay * weight_mask * params).astype(np.float64)

        x0 = params.astype(np.float64)
        try:
            result = scipy.optimize.minimize(loss_and_gradient, x0, method="L-BFGS-B", jac=True,
                                             options={"maxfun": self.max_fun, "maxiter": self.max_iter,
                                                      "gtol": self.tol})
        except FloatingPointError as error:
            self._pull_weights(net)
            raise ValueError(f"{_NONFINITE_MESSAGE} ({error})") from error
        params[...] = result.x
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        loss = float(np.asarray(result.fun))
        scale = self._loss_scale()
        if scale != 1:  # minimised ½·Σ_outputs (see MLPRegressor's Notes), reported as ½·mean_outputs
            loss = (loss - penalty()) / scale + penalty()
        self.loss_ = loss
        if self.verbose:
            print(f"L-BFGS-B: {result.message} after {result.nit} iterations, {result.nfev} evaluations, "
                  f"loss = {self.loss_:.8f}")
        self._pull_weights(net)

    # -- pickling ---------------------------------------------------------------------------------
    def __getstate__(self):
        # The network is rebuilt from coefs_ and intercepts_ when next needed, and the optimizer's
        # state (kept in the pickle) attached to it.
        state = dict(super().__getstate__())
        state.pop("_net", None)
        state.pop("_net_spec", None)
        return state

    # -- tags -------------------------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # accepted, densified in blocks of rows (see Notes)
        return tags

    # Methods that need partial_fit: only the stochastic solvers train incrementally.
    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is "
                                 "not stochastic.")
        return True


_COMMON_PARAMETERS = """
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation of the hidden layers ('logistic' is backprop's 'sigmoid').
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'lbfgs' minimises the full-batch loss with SciPy's L-BFGS-B
        (``scipy.optimize.minimize``) on loss and gradients from the core; 'sgd' and
        'adam' train on mini-batches.
    alpha : float >= 0, default=0.0001
        L2 penalty: alpha / (2·Σw) · Σ‖W‖² over the weights (not the
        intercepts), Σw the summed sample weights of the batch (its size
        without sample_weight).
    batch_size : int or 'auto', default='auto'
        Mini-batch size for the stochastic solvers; 'auto' is
        min(200, n_samples). Clipped (with a warning) to n_samples.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Schedule for solver='sgd', applied after each epoch: 'invscaling' sets
        learning_rate_init / (t + 1) ** power_t with t the samples seen so
        far; 'adaptive' divides the rate by 5 each time the stopping rule
        (see n_iter_no_change) fires instead of stopping, until it is
        <= 1e-6.
    learning_rate_init : float > 0, default=0.001
        Step size of 'sgd' and 'adam'.
    power_t : float >= 0, default=0.5
        Exponent of 'invscaling'.
    max_iter : int >= 1, default=200
        Epochs for the stochastic solvers, iterations for 'lbfgs'.
    shuffle : bool, default=True
        Shuffle the samples every epoch (stochastic solvers).
    random_state : int, RandomState instance or None, default=None
        Draws the initial weights, the shuffling orders and the early-stopping
        split, with the same calls as scikit-learn.
    tol : float >= 0, default=1e-4
        Improvement the stopping rule asks for; 'lbfgs' uses it as gtol.
    verbose : bool or int, default=False
        Print the loss after every epoch.
    warm_start : bool, default=False
        Start fit from the current coefs_ and intercepts_ (which may be set
        by hand) instead of new random weights.
    momentum : float in [0, 1], default=0.9
        Momentum of 'sgd' (1 is refused, see Notes).
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for 'sgd' with momentum > 0.
    early_stopping : bool, default=False
        Hold out validation_fraction of the training data and stop when the
        validation score (accuracy for the classifier, R² for the regressor)
        has not improved by tol for n_iter_no_change epochs; the best weights
        are kept. Stochastic solvers only. With sample_weight the held-out
        samples keep their weights and the score is weighted.
    validation_fraction : float in [0, 1), default=0.1
        Held-out share for early stopping.
    beta_1, beta_2 : float in [0, 1), default=0.9, 0.999
        Adam's decay rates for the first and second moment estimates.
    epsilon : float > 0, default=1e-8
        Adam's epsilon, in scikit-learn's placement (added to sqrt(v) before
        bias correction).
    n_iter_no_change : int >= 1 or inf, default=10
        Stop (or, with learning_rate='adaptive', shrink the rate) once the
        training loss, or the validation score with early stopping, has not
        improved by tol for more than this many consecutive epochs.
    max_fun : int >= 1, default=15000
        Maximum number of loss evaluations of 'lbfgs'.
    dtype : {None, 'float32', 'float64'}, default=None
        The precision the network trains and predicts in. None does what
        scikit-learn does: float32 for float32 X, float64 for anything else.
        Fixed when the weights are initialised: afterwards the network
        computes in the dtype of coefs_[0].
    backend : {'native', 'numpy'}, default='native'
        backprop's C++ core, or its pure-NumPy reference implementation.
    dropout : float in [0, 1) or array-like of one rate per hidden layer, default=0.0
        Inverted dropout after each hidden layer's activation while training
        (an extension of scikit-learn's parameters; see backprop.Network).
        With the default 0.0 results are scikit-learn's, bit for bit as
        before; with dropout the masks follow random_state."""

_COMMON_ATTRIBUTES = """
    loss_ : float
        Loss at the end of training: for the stochastic solvers the mean over
        the last epoch of each mini-batch's loss measured before its update
        (scikit-learn's convention), penalty included.
    best_loss_ : float or None
        Smallest loss_ seen ('sgd'/'adam' without early stopping; None with it).
    loss_curve_ : list of float
        loss_ after every epoch ('sgd'/'adam' only).
    validation_scores_ : list of float or None
        Score on the held-out set after every epoch with early stopping, else None.
    best_validation_score_ : float or None
        Best of validation_scores_ with early stopping, else None.
    t_ : int
        Training samples seen by the stochastic solvers.
    coefs_ : list of ndarray of shape (n_in, n_out)
        Weights of each layer, scikit-learn's layout (the transpose of
        backprop's W).
    intercepts_ : list of ndarray of shape (n_out,)
        Biases of each layer.
    n_features_in_ : int
        Number of features seen in fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names seen in fit, when X had string column names.
    n_iter_ : int
        Epochs (stochastic solvers) or iterations ('lbfgs') of the last fit.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        Output activation, in scikit-learn's names."""

_COMMON_NOTES = """
    Training follows scikit-learn 1.9's estimator step for step: the same
    initialisation and random-state calls, shuffling, mini-batches, weighted
    losses, L2 term, learning-rate schedules, stopping rules and early
    stopping. Started from the same weights, loss_ and the weights after an
    epoch agree with scikit-learn's to rounding in float64. How the matching
    is done, and where the two differ:

    - Whole epochs in the core. 'sgd' and 'adam' run all epochs in one
      ``Network.fit`` call with scikit-learn's conventions
      (``convention='sklearn'``: weight decay alpha·W / Σ_batch w, Adam's
      epsilon added to sqrt(v) before the bias correction), the shuffling
      order scikit-learn draws, and the sample weights. loss_, the stopping
      rules, the 'invscaling' and 'adaptive' rates and early stopping's
      scoring and best-weight snapshots run between epochs, in a callback.
    - loss_ includes alpha / (2·Σ_batch w)·Σ‖W‖² at each batch's weights
      before its step, as scikit-learn's does; the core sums it.
    - SGD momentum: scikit-learn's velocity v = μ·v − η·g and backprop's
      (PyTorch's) buffer differ when the rate changes ('invscaling',
      'adaptive'); the buffer is rescaled when the rate changes, so the
      updates stay identical. momentum=1, which scikit-learn accepts, is
      refused: backprop's SGD needs momentum < 1.
    - Log-loss is computed from the output layer's pre-activations (log-sum-
      exp, softplus) rather than from probabilities clipped at machine
      epsilon: it differs only for saturated outputs, where scikit-learn
      caps each sample's loss at -log(eps) ≈ 36 and backprop does not.
    - Divergence. backprop's core never takes a step whose loss or new
      weights are NaN or infinite; scikit-learn trains on with NaN weights.
      The estimator replays what scikit-learn then does: every later epoch
      counts with loss nan (and a validation score computed from NaN
      outputs) until a stopping rule or max_iter ends training. With
      early_stopping the best weights seen are restored and fit returns
      normally (validation_scores_ ends in nan for the regressor; the
      classifier's NaN outputs predict classes_[0], and if that scores
      best, scikit-learn keeps its NaN weights and raises, as this
      estimator then does). Without early_stopping fit raises
      scikit-learn's ValueError ("Solver produced non-finite parameter
      weights"), after the same ConvergenceWarning. Where scikit-learn's
      weights end NaN, these keep the last finite ones. scikit-learn's
      losses can pass through ±inf on the way; here the diverged epoch and
      those after it read nan.
    - sample_weight: negative weights are refused (scikit-learn accepts
      them); a mini-batch whose weights are all 0 takes a step with zero
      gradient, where scikit-learn divides by zero.
    - Sparse X is accepted and densified in blocks of whole mini-batches
      (about 4096 rows) as each epoch visits them, one ``Network.fit`` call
      per block, so the steps are those of dense X; all of it at once for
      'lbfgs'; blocks of rows when predicting.
    - Changing hidden_layer_sizes (or the regressor's loss) between
      warm-started fits raises ValueError instead of failing later.
    - Fitted attributes set by hand on a new estimator are enough to
      predict and partial_fit: coefs_ and intercepts_ (whose shapes give
      the architecture and whose dtype the precision), and for the
      classifier classes_ (``_label_binarizer``, out_activation_ and
      n_outputs_ are derived when absent); t_ and the loss curve start
      afresh when absent."""

class MLPClassifier(ClassifierMixin, _BaseMLP):
    # Built from the shared sections above; a concatenation is no docstring, so assign __doc__.
    __doc__ = ("""Multi-layer perceptron classifier trained by backprop; drop-in for
    :class:`sklearn.neural_network.MLPClassifier`.

    Minimises the (sample-weighted) log-loss with L-BFGS-B, SGD or Adam.
    Binary targets get one logistic output unit (binary cross-entropy),
    multiclass targets a softmax layer (cross-entropy), multilabel indicator
    matrices one logistic unit per label. Labels may be strings or numbers.

    Parameters
    ----------""" + _COMMON_PARAMETERS + """

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,), or list of such for multilabel
        Class labels.""" + _COMMON_ATTRIBUTES + """

    Notes
    -----""" + _COMMON_NOTES + """

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from backprop.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:1]).shape
    (1, 3)
    """)

    _classifier = True

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dtype=None,
                 backend="native", dropout=0.0):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
                         alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
                         learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
                         shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
                         max_fun=max_fun, dtype=dtype, backend=backend, dropout=dropout)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # A new label encoding on a cold fit; warm starts need the same classes, partial_fit a subset.
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return X, self._binarizer().transform(y).astype(bool)

    def _binarizer(self):
        """The LabelBinarizer of classes_; derived from classes_ and the output layer when classes_
        was set by hand without it."""
        binarizer = getattr(self, "_label_binarizer", None)
        if binarizer is not None:
            return binarizer
        n_outputs = np.shape(self.coefs_[-1])[1]
        if n_outputs > 1 and getattr(self, "out_activation_", None) == "logistic":  # multilabel
            return LabelBinarizer().fit(np.vstack([np.zeros(n_outputs, int), np.ones(n_outputs, int)]))
        return LabelBinarizer().fit(self.classes_)

    def _default_out_activation(self):
        return "softmax" if self._binarizer().y_type_ == "multiclass" else "logistic"

    def _out_activation(self):
        return getattr(self, "out_activation_", None) or self._default_out_activation()

    def _validation_targets(self, y_indicator):
        return self._binarizer().inverse_transform(y_indicator)

    def _labels(self, output):
        if output.shape[1] == 1:
            output = output.ravel()
        return self._binarizer().inverse_transform(output)

    _prediction = _labels
    _score_function = staticmethod(accuracy_score)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a multilabel indicator matrix.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights: each mini-batch minimises Σ w·L / Σ w
            (the whole set for 'lbfgs'), and the L2 term is divided by Σ w.

        Returns
        -------
        self : MLPClassifier
        """
        return self._fit(X, y, sample_weight, incremental=False, hidden=self._hidden_layer_sizes())

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over X and y, continuing from the current weights and optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights, as for fit.
        classes : array of shape (n_classes,), default=None
            All classes across the calls; required on the first call (not for
            multilabel y), after which y may hold any subset of them.

        Returns
        -------
        self : MLPClassifier
        """
        hidden = self._hidden_layer_sizes()
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight, incremental=True, hidden=hidden)

    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), or (n_samples, n_labels) for multilabel
        """
        return self._labels(self._forward(self._check_X_predict(X)))

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes); for binary targets the two
        columns are 1 − p and p; for multilabel targets one independent
        probability per label.
        """
        output = self._forward(self._check_X_predict(X))
        if output.shape[1] == 1:
            p = output.ravel()
            return np.vstack([1 - p, p]).T
        return output

    def predict_log_proba(self, X):
        """Logarithm of predict_proba.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes); -inf where a probability
        underflows to 0, as ``np.log(predict_proba(X))``.
        """
        probabilities = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(probabilities, out=probabilities)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def to_onnx(self, path):
        """Write the fitted classifier to `path` as an ONNX model that computes ``predict_proba``.

        Input ``X`` (batch, n_features_in_) and output ``probabilities``
        (batch, n_classes), in the dtype of ``coefs_`` (float32 or float64),
        columns in the order of ``classes_`` (listed in the model's metadata
        as ``backprop.classes``); the label is ``classes_[argmax]``. A binary
        classifier has one logistic output unit, so the graph ends in
        ``Concat(1 − p, p)`` to give predict_proba's two columns; multilabel
        targets get one independent probability per label. Reads only the
        public fitted attributes. Needs the onnx package
        (``pip install "backprop-mlp[onnx]"``); see backprop.onnx_export.
        """
        from .onnx_export import estimator_to_onnx
        check_is_fitted(self)
        estimator_to_onnx(self, path, classifier=True)


class MLPRegressor(RegressorMixin, _BaseMLP):
    # Built from the shared sections above; a concatenation is no docstring, so assign __doc__.
    __doc__ = ("""Multi-layer perceptron regressor trained by backprop; drop-in for
    :class:`sklearn.neural_network.MLPRegressor`.

    Minimises the (sample-weighted) squared error, or half the Poisson
    deviance, with L-BFGS-B, SGD or Adam; one output unit per target.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        'squared_error': half the squared error, identity outputs.
        'poisson': half the Poisson deviance Σ y·log(y/ŷ) − y + ŷ with
        ŷ = exp(z), the log link (backprop's exp output and poisson loss);
        needs y >= 0.""" + _COMMON_PARAMETERS + """

    Attributes
    ----------""" + _COMMON_ATTRIBUTES + """

    Notes
    -----
    Squared loss: scikit-learn reports loss_ = ½·mean over samples and
    outputs, but its gradient is that of ½·Σ_outputs mean_samples (which is
    backprop's 'mse'). The stochastic solvers follow that gradient exactly
    and report loss_ in scikit-learn's convention. For 'lbfgs',
    scikit-learn hands SciPy the ½·mean value with the ½·Σ gradient, a pair
    that disagrees when there are several outputs; here L-BFGS-B minimises
    ½·Σ_outputs mean + penalty (the function scikit-learn's gradient
    belongs to, consistent with its stochastic solvers) and loss_ is
    reported in scikit-learn's convention. With one output nothing differs.

    Poisson loss: computed from the output layer's pre-activations z as
    Σ y·(log y − z) − y + exp(z) (0·log 0 = 0), scikit-learn's
    xlogy(y, y/ŷ) − y + ŷ with ŷ = exp(z) to rounding; δ = exp(z) − y.

    partial_fit exists for 'sgd' and 'adam' only, as for the classifier;
    scikit-learn 1.9's MLPRegressor also offers it with 'lbfgs', where it
    runs a whole L-BFGS fit.
""" + _COMMON_NOTES + """

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from backprop.sklearn import MLPRegressor
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=0.1, random_state=0)
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), solver="lbfgs", random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
    """)

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, dtype=None, backend="native", dropout=0.0):
        self.loss = loss
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
                         alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
                         learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
                         shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
                         max_fun=max_fun, dtype=dtype, backend=backend, dropout=dropout)

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": _SkMLPRegressor._parameter_constraints["loss"],
    }

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for loss='poisson' (it "
                             "models counts or rates, y >= 0).")
        return X, y

    def _default_out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _out_activation(self):
        return getattr(self, "out_activation_", None) or self._default_out_activation()

    def _validation_targets(self, y):
        return y

    @staticmethod
    def _prediction(output):
        return output.ravel() if output.shape[1] == 1 else output

    _score_function = staticmethod(r2_score)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets (>= 0 for loss='poisson').
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights: each mini-batch minimises Σ w·L / Σ w
            (the whole set for 'lbfgs'), and the L2 term is divided by Σ w.

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, sample_weight, incremental=False, hidden=self._hidden_layer_sizes())

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over X and y, continuing from the current weights and optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative sample weights, as for fit.

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, sample_weight, incremental=True, hidden=self._hidden_layer_sizes())

    def predict(self, X):
        """Predicted values.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), or (n_samples, n_outputs) for several outputs
        """
        return self._prediction(self._forward(self._check_X_predict(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def to_onnx(self, path):
        """Write the fitted regressor to `path` as an ONNX model that computes ``predict``.

        Input ``X`` (batch, n_features_in_) and output ``predictions`` in the
        dtype of ``coefs_``: (batch,) for one target, as ``predict`` returns
        it, else (batch, n_outputs_). Reads only the public fitted
        attributes. Needs the onnx package (``pip install "backprop-mlp[onnx]"``);
        see backprop.onnx_export.
        """
        from .onnx_export import estimator_to_onnx
        check_is_fitted(self)
        estimator_to_onnx(self, path, classifier=False)
