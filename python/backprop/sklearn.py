"""scikit-learn estimators trained by backprop: drop-in ``MLPClassifier`` and ``MLPRegressor``.

They take the constructor parameters of :mod:`sklearn.neural_network`'s
estimators, with the same meanings, and set the same fitted attributes, so
existing code, pipelines and grid searches keep working when the import
changes::

    from backprop.sklearn import MLPClassifier      # was: from sklearn.neural_network import ...

The forward and backward passes and the optimizer steps run in backprop's
core (``backend="native"``, C++/Eigen) or its NumPy reference
(``backend="numpy"``); scikit-learn provides the estimator machinery (input
validation, label encoding, splitting) and SciPy the L-BFGS-B driver.

Training follows scikit-learn's definitions step by step: the same Glorot
initialisation drawn from the same random-state calls, the same shuffling,
mini-batches, learning-rate schedules, stopping rules, early stopping and
reported losses. From the same ``random_state`` both libraries therefore
start from the same weights and visit the samples in the same order;
results agree to rounding (float64) rather than only statistically. The
few differences are listed in the estimators' Notes sections.

Needs scikit-learn >= 1.6 and SciPy: ``pip install "backprop-mlp[sklearn]"``.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

try:
    import scipy.optimize
    import scipy.sparse
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils import check_random_state, column_or_1d, gen_batches
    from sklearn.utils import shuffle as _shuffle
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import type_of_target, unique_labels
    from sklearn.utils.validation import check_is_fitted
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError as _error:  # pragma: no cover - depends on the environment
    raise ImportError(f"backprop.sklearn needs scikit-learn >= 1.6 and SciPy ({_error}); install them with "
                      "pip install \"backprop-mlp[sklearn]\"") from _error

from .network import Network
from .optim import SGD, Adam

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's hidden activation names -> backprop's.
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
# scikit-learn's out_activation_ -> backprop's (output, loss).
_OUTPUTS = {"softmax": ("softmax", "cross_entropy"), "logistic": ("sigmoid", "binary_cross_entropy"),
            "identity": ("identity", "mse")}
_STOCHASTIC_SOLVERS = ("sgd", "adam")
# Rows per block when a sparse X is densified for prediction.
_SPARSE_BLOCK_ROWS = 4096


# -- parameter checks ---------------------------------------------------------
def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def _in_interval(value, low, high, low_closed, high_closed):
    if not _is_real(value) or np.isnan(value):
        return False
    above = low is None or (value >= low if low_closed else value > low)
    below = high is None or (value <= high if high_closed else value < high)
    return above and below and (high is not None or np.isfinite(value))


def _interval_text(kind, low, high, low_closed, high_closed):
    left = "[" if low_closed else "("
    right = "]" if high_closed else ")"
    return (f"{kind} in the range {left}{'-inf' if low is None else low}, "
            f"{'inf' if high is None else high}{right}")


# Real-valued parameters: (low, high, low closed, high closed), as scikit-learn constrains them.
_REAL_PARAMS = {
    "alpha": (0, None, True, False),
    "learning_rate_init": (0, None, False, False),
    "power_t": (0, None, True, False),
    "tol": (0, None, True, False),
    "momentum": (0, 1, True, True),
    "validation_fraction": (0, 1, True, False),
    "beta_1": (0, 1, True, False),
    "beta_2": (0, 1, True, False),
    "epsilon": (0, None, False, False),
}
_CHOICE_PARAMS = {
    "activation": tuple(_ACTIVATIONS),
    "solver": ("lbfgs", "sgd", "adam"),
    "learning_rate": ("constant", "invscaling", "adaptive"),
    "backend": ("native", "numpy"),
}
_BOOL_PARAMS = ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping")


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: validation, initialisation, the solvers.

    The fitted weights live in ``coefs_`` and ``intercepts_`` (NumPy arrays,
    scikit-learn's layout); a ``backprop.Network`` computes with them and
    keeps the optimizer's state between ``partial_fit`` calls. Whatever is
    in ``coefs_``/``intercepts_`` when ``predict`` or a warm-started ``fit``
    runs is what the network computes with, so they may be set by hand like
    scikit-learn's.
    """

    _classifier = False

    def __init__(self, hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
                 learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose,
                 warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction,
                 beta_1, beta_2, epsilon, n_iter_no_change, max_fun, dtype, backend):
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

    # -- validation -------------------------------------------------------------
    def _invalid(self, name, expected, value):
        return ValueError(f"The {name!r} parameter of {type(self).__name__} must be {expected}. "
                          f"Got {value!r} instead.")

    def _check_params(self):
        """Check every hyper-parameter; return the hidden layer sizes as a list of ints.

        Raises ValueError naming the parameter, as scikit-learn does at fit.
        """
        sizes = self.hidden_layer_sizes
        if _is_int(sizes):
            sizes = [sizes]
        elif isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise self._invalid("hidden_layer_sizes", "an int >= 1 or a sequence of ints >= 1", sizes)
        sizes = list(sizes)
        if not all(_is_int(n) and n >= 1 for n in sizes):
            raise self._invalid("hidden_layer_sizes", "an int >= 1 or a sequence of ints >= 1",
                                self.hidden_layer_sizes)
        for name, choices in _CHOICE_PARAMS.items():
            value = getattr(self, name)
            if not isinstance(value, str) or value not in choices:
                raise self._invalid(name, "a str among " + "{" + ", ".join(map(repr, choices)) + "}", value)
        for name, (low, high, low_closed, high_closed) in _REAL_PARAMS.items():
            value = getattr(self, name)
            if not _in_interval(value, low, high, low_closed, high_closed):
                raise self._invalid(name, _interval_text("a float", low, high, low_closed, high_closed), value)
        for name in _BOOL_PARAMS:
            value = getattr(self, name)
            if not _is_bool(value):
                raise self._invalid(name, "an instance of 'bool'", value)
        if not (self.batch_size == "auto" or (_is_int(self.batch_size) and self.batch_size >= 1)):
            raise self._invalid("batch_size", "'auto' or an int in the range [1, inf)", self.batch_size)
        for name in ("max_iter", "max_fun"):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 1):
                raise self._invalid(name, "an int in the range [1, inf)", value)
        if not ((_is_int(self.n_iter_no_change) and self.n_iter_no_change >= 1)
                or (_is_real(self.n_iter_no_change) and self.n_iter_no_change == np.inf)):
            raise self._invalid("n_iter_no_change", "an int in the range [1, inf) or inf", self.n_iter_no_change)
        if not (_is_bool(self.verbose) or (_is_int(self.verbose) and self.verbose >= 0)):
            raise self._invalid("verbose", "a bool or an int in the range [0, inf)", self.verbose)
        if not (self.random_state is None or isinstance(self.random_state, np.random.RandomState)
                or (_is_int(self.random_state) and 0 <= self.random_state < 2 ** 32)):
            raise self._invalid("random_state", "None, an int in the range [0, 2**32 - 1] or a "
                                "numpy.random.RandomState instance", self.random_state)
        if self.dtype is not None:
            try:
                name = np.dtype(self.dtype).name
            except TypeError:
                name = None
            if name not in ("float32", "float64"):
                raise self._invalid("dtype", "None, 'float32' or 'float64'", self.dtype)
        if self.solver == "sgd" and self.momentum == 1:
            raise ValueError(f"The 'momentum' parameter of {type(self).__name__}: momentum=1 (velocity that "
                             "never decays) is not supported by backprop's SGD; use a value in [0, 1).")
        return sizes

    def _fit_dtype(self, X):
        """The dtype a cold fit trains in: `dtype`, else float32 for float32 X, else float64."""
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)

    # -- the network --------------------------------------------------------------
    def _wanted_spec(self):
        """(sizes, hidden activation, output, dtype, backend) the weights call for now."""
        sizes = [self.coefs_[0].shape[0]] + [W.shape[1] for W in self.coefs_]
        activation = _ACTIVATIONS.get(self.activation)
        if activation is None:
            raise self._invalid("activation", "a str among {'identity', 'logistic', 'tanh', 'relu'}",
                                self.activation)
        backend = self.backend if self.backend in _CHOICE_PARAMS["backend"] else "native"
        return (tuple(int(n) for n in sizes), activation, self.out_activation_, self._dtype_name, backend)

    def _ensure_network(self):
        """The backprop.Network, (re)built if the architecture or settings changed,
        holding the current coefs_ and intercepts_."""
        spec = self._wanted_spec()
        if getattr(self, "_net", None) is None or self._net_spec != spec:
            sizes, activation, out_activation, dtype, backend = spec
            output, loss = _OUTPUTS[out_activation]
            self._net = Network(list(sizes), activation=activation, output=output, loss=loss, dtype=dtype,
                                backend=backend, seed=0)
            self._net_spec = spec
            self._optimizer = None  # its state was laid out for the previous network
        self._push_weights(self._net)
        return self._net

    def _push_weights(self, net):
        """Copy coefs_ (n_in, n_out) and intercepts_ into the network's layers (W is n_out x n_in)."""
        if len(self.coefs_) != len(net.layers) or len(self.intercepts_) != len(net.layers):
            raise ValueError(f"coefs_ and intercepts_ must hold one array per layer ({len(net.layers)})")
        for i, (layer, W, b) in enumerate(zip(net.layers, self.coefs_, self.intercepts_)):
            W, b = np.asarray(W), np.asarray(b)
            if W.shape != (layer.n_in, layer.n_out):
                raise ValueError(f"coefs_[{i}] must have shape {(layer.n_in, layer.n_out)}, got {W.shape}")
            if b.shape != (layer.n_out,):
                raise ValueError(f"intercepts_[{i}] must have shape {(layer.n_out,)}, got {b.shape}")
            if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
                raise ValueError(f"coefs_[{i}] or intercepts_[{i}] contains NaN or infinity")
            layer.W = W.T
            layer.b = b

    def _pull_weights(self, net):
        """coefs_ and intercepts_ from the network: copies, scikit-learn's layout."""
        self.coefs_ = [np.ascontiguousarray(layer.W.T) for layer in net.layers]
        self.intercepts_ = [layer.b.copy() for layer in net.layers]

    def _forward(self, X, net=None):
        """Output activations for validated X (dense or sparse), with `net` or the synced network."""
        if net is None:
            net = self._ensure_network()
        if not scipy.sparse.issparse(X):
            return net.forward(X)
        X = X.tocsr()
        return np.vstack([net.forward(X[start:start + _SPARSE_BLOCK_ROWS].toarray())
                          for start in range(0, X.shape[0], _SPARSE_BLOCK_ROWS)])

    def _check_X_predict(self, X):
        check_is_fitted(self)
        # dtype="numeric" as scikit-learn's MLP predicts: arrays of strings are
        # refused here, though fit converts numeric strings as scikit-learn's does.
        X = _validate_data(self, X, accept_sparse=["csr", "csc"], reset=False, dtype="numeric")
        return X if X.dtype in (np.float64, np.float32) else X.astype(np.float64)

    # -- fitting --------------------------------------------------------------------
    def _initialize(self, y, layer_units, dtype):
        """Fresh fitted state and Glorot-uniform weights drawn like scikit-learn's."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if not self._classifier:
            self.out_activation_ = "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"
        # scikit-learn's scheme and draw order: per layer, U(±sqrt(factor / (fan_in + fan_out)))
        # for the (fan_in, fan_out) weights, then for the fan_out biases; factor 2 for logistic.
        factor = 2.0 if self.activation == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(self._random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
            self.intercepts_.append(self._random_state.uniform(-bound, bound, fan_out).astype(dtype))
        self._dtype_name = np.dtype(dtype).name
        self._net = None
        self._optimizer = None
        self._ensure_network()
        self._best_weights = self._snapshot(self._net)
        for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
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

    @staticmethod
    def _snapshot(net):
        return [(layer.W.copy(), layer.b.copy()) for layer in net.layers]

    def _fit(self, X, y, incremental):
        hidden = self._check_params()
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        n_features = X.shape[1]
        layer_units = [n_features] + hidden + [y.shape[1]]

        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, self._fit_dtype(X))
        else:
            if y.shape[1] != self.n_outputs_:
                raise ValueError(f"y has {y.shape[1]} outputs, but the fitted network has {self.n_outputs_}")
            current = [self.coefs_[0].shape[0]] + [W.shape[1] for W in self.coefs_]
            if current != layer_units:
                raise ValueError(f"hidden_layer_sizes={self.hidden_layer_sizes!r} does not match the fitted "
                                 f"layer widths {current[1:-1]}; warm_start and partial_fit keep the "
                                 "architecture (refit with warm_start=False to change it)")
            if self.solver in _STOCHASTIC_SOLVERS and not hasattr(self, "loss_curve_"):
                self._init_stochastic_state()  # the previous fit used lbfgs
            if self.early_stopping and getattr(self, "validation_scores_", None) is None:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
        net = self._ensure_network()
        dtype = net.dtype
        X = X.astype(dtype, copy=False)
        targets = self._network_targets(y, dtype)

        try:
            if self.solver in _STOCHASTIC_SOLVERS:
                self._fit_stochastic(net, X, y, targets, incremental)
            else:
                self._fit_lbfgs(net, X, y, targets)
        except FloatingPointError as error:
            self._pull_weights(net)
            raise ValueError("Solver produced non-finite parameter weights. The input data may contain "
                             "large values and need to be preprocessed (or lower learning_rate_init). "
                             f"backprop stopped before the non-finite update: {error}") from error
        return self

    def _network_targets(self, y, dtype):
        """What backprop's loss takes: class indices for softmax, else float rows."""
        if getattr(self, "out_activation_", None) == "softmax":
            return np.asarray(y).argmax(axis=1).astype(np.int64)
        return np.asarray(y, dtype=dtype)

    def _loss_scale(self):
        """backprop's mse is ½·Σ_outputs, scikit-learn's reported squared loss ½·mean_outputs."""
        return self.n_outputs_ if self.out_activation_ == "identity" else 1

    def _make_optimizer(self):
        if self.solver == "sgd":
            return SGD(lr=self.learning_rate_init, momentum=self.momentum,
                       nesterov=bool(self.nesterovs_momentum and self.momentum > 0))
        return Adam(lr=self.learning_rate_init, beta1=self.beta_1, beta2=self.beta_2, eps=self.epsilon)

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

    def _train_batch(self, net, optimizer, X_batch, t_batch, scale):
        """One update on one mini-batch; returns the batch's loss times its size (scikit-learn's sum)."""
        n = X_batch.shape[0]
        penalty = 0.0
        if self.alpha > 0:
            penalty = 0.5 * self.alpha * sum(float(np.vdot(layer.W, layer.W)) for layer in net.layers)
        # scikit-learn's gradient of alpha/(2·n_batch)·‖W‖² is alpha·W/n_batch: weight decay alpha/n_batch,
        # set per batch so that a smaller last batch gets its own.
        optimizer.weight_decay = self.alpha / n
        if optimizer.kind == "adam":
            # scikit-learn adds epsilon to sqrt(v) before bias correction, backprop to sqrt(v̂) after it:
            # this epsilon makes the two steps identical.
            optimizer.eps = self.epsilon / np.sqrt(1.0 - self.beta_2 ** (optimizer.step_count + 1))
        history = net.fit(X_batch, t_batch, epochs=1, batch_size=n, optimizer=optimizer, shuffle=False)
        return history["loss"][0] * n / scale + penalty

    def _fit_stochastic(self, net, X, y, targets, incremental):
        if not incremental or getattr(self, "_optimizer", None) is None:
            self._optimizer = self._make_optimizer()
        optimizer = self._optimizer

        early_stopping = self.early_stopping
        if early_stopping:
            stratify = y if (self._classifier and self.n_outputs_ == 1) else None
            index = np.arange(X.shape[0])
            train_index, val_index = train_test_split(index, random_state=self._random_state,
                                                      test_size=self.validation_fraction, stratify=stratify)
            if val_index.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the "
                                 "size of your dataset.")
            X_train, t_train = X[train_index], targets[train_index]
            X_val, y_val = X[val_index], self._validation_targets(y[val_index])
        else:
            X_train, t_train = X, targets
        if scipy.sparse.issparse(X_train):
            X_train = X_train.tocsr()

        n_samples = X_train.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be "
                              "clipped", UserWarning, stacklevel=3)
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        scale = self._loss_scale()
        sparse = scipy.sparse.issparse(X_train)
        sample_index = np.arange(n_samples)

        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_index = _shuffle(sample_index, random_state=self._random_state)
                accumulated = 0.0
                for batch in gen_batches(n_samples, batch_size):
                    rows = sample_index[batch] if self.shuffle else batch
                    X_batch = X_train[rows]
                    if sparse:
                        X_batch = X_batch.toarray()
                    accumulated += self._train_batch(net, optimizer, X_batch, t_train[rows], scale)
                self.n_iter_ += 1
                self.loss_ = accumulated / n_samples
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))

                self._update_no_improvement_count(net, early_stopping, X_val if early_stopping else None,
                                                  y_val if early_stopping else None)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    self._set_lr(optimizer, self.learning_rate_init / (self.t_ + 1) ** self.power_t)

                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    message = (f"{what} did not improve more than tol={self.tol:f} for "
                               f"{self.n_iter_no_change} consecutive epochs.")
                    if self._trigger_stopping(optimizer, message):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                                  "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", UserWarning, stacklevel=3)

        if early_stopping:
            for layer, (W, b) in zip(net.layers, self._best_weights):
                layer.W, layer.b = W, b
        self._pull_weights(net)

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

    def _update_no_improvement_count(self, net, early_stopping, X_val, y_val):
        if early_stopping:
            score = self._score_output(self._forward(X_val, net), y_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_weights = self._snapshot(net)
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _fit_lbfgs(self, net, X, y, targets):
        if scipy.sparse.issparse(X):
            X = X.toarray()
        n_samples = X.shape[0]
        alpha = self.alpha
        layers = net.layers
        shapes = [(layer.W.shape, layer.b.shape) for layer in layers]

        def unpack(x):
            at = 0
            for layer, (w_shape, b_shape) in zip(layers, shapes):
                size = w_shape[0] * w_shape[1]
                layer.W = x[at:at + size].reshape(w_shape)
                at += size
                layer.b = x[at:at + b_shape[0]]
                at += b_shape[0]

        def penalty():
            return 0.5 * alpha * sum(float(np.vdot(layer.W, layer.W)) for layer in layers) / n_samples

        def loss_and_gradient(x):
            if not np.all(np.isfinite(x)):
                raise FloatingPointError("L-BFGS-B proposed non-finite weights")
            unpack(x)
            loss, grads = net.gradients(X, targets)
            parts = []
            for layer, (dW, db) in zip(layers, grads):
                parts.append((dW + (alpha / n_samples) * layer.W).ravel())
                parts.append(db)
            return loss + penalty(), np.concatenate(parts).astype(np.float64)

        x0 = np.concatenate([part for layer in layers for part in (layer.W.ravel(), layer.b)]).astype(np.float64)
        result = scipy.optimize.minimize(loss_and_gradient, x0, method="L-BFGS-B", jac=True,
                                         options={"maxfun": self.max_fun, "maxiter": self.max_iter,
                                                  "gtol": self.tol})
        unpack(result.x)
        self.n_iter_ = min(int(result.nit), self.max_iter)
        loss = float(np.asarray(result.fun))
        scale = self._loss_scale()
        if scale != 1:
            extra = penalty()
            loss = (loss - extra) / scale + extra
        self.loss_ = loss
        if self.verbose:
            print(f"L-BFGS-B: {result.message} after {result.nit} iterations, {result.nfev} evaluations, "
                  f"loss = {self.loss_:.8f}")
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status="
                          f"{result.status}): {result.message}. Increase the number of iterations "
                          f"(max_iter={self.max_iter}) or function evaluations (max_fun={self.max_fun}), "
                          "or scale the data.", ConvergenceWarning, stacklevel=3)
        self._pull_weights(net)

    # -- pickling -------------------------------------------------------------------
    def __getstate__(self):
        # The network holds the compiled core's objects, which do not pickle; its weights are
        # coefs_/intercepts_ already. Keep the optimizer's state so partial_fit continues as before.
        state = dict(super().__getstate__())
        state.pop("_net", None)
        optimizer = state.pop("_optimizer", None)
        if optimizer is not None:
            hyper = {"lr": optimizer.lr, "weight_decay": optimizer.weight_decay}
            if optimizer.kind == "sgd":
                hyper.update(momentum=optimizer.momentum, nesterov=optimizer.nesterov)
            else:
                hyper.update(beta1=optimizer.beta1, beta2=optimizer.beta2, eps=optimizer.eps)
            state["_optimizer_snapshot"] = {
                "kind": optimizer.kind, "hyper": hyper, "step_count": int(optimizer.step_count),
                "state": {name: np.array(array) for name, array in optimizer.state.items()}}
        return state

    def __setstate__(self, state):
        snapshot = state.pop("_optimizer_snapshot", None)
        had_network = "_net_spec" in state
        super().__setstate__(state)
        if not had_network:
            return
        self._net = None
        self._ensure_network()
        if snapshot is not None:
            optimizer = (SGD if snapshot["kind"] == "sgd" else Adam)(**snapshot["hyper"])
            if snapshot["state"] and hasattr(optimizer, "_state_for"):
                # backprop has no public way to hand an optimizer saved state for a network yet.
                arrays = optimizer._state_for(self._net)
                for name, array in snapshot["state"].items():
                    if name in arrays and arrays[name].shape == array.shape:
                        arrays[name][...] = array
                optimizer.step_count = snapshot["step_count"]
            self._optimizer = optimizer

    # -- tags -------------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # accepted, densified one mini-batch (or block) at a time
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
        'lbfgs' minimises the full-batch loss with ``scipy.optimize.minimize(
        method="L-BFGS-B")`` on loss and gradients from the core; 'sgd' and
        'adam' train on mini-batches.
    alpha : float >= 0, default=0.0001
        L2 penalty: alpha / (2·n) · Σ‖W‖² over the weights (not the
        intercepts), n the samples in the batch.
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
        Momentum of 'sgd' (1 is not supported, see Notes).
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for 'sgd' with momentum > 0.
    early_stopping : bool, default=False
        Hold out validation_fraction of the training data and stop when the
        validation score (accuracy for the classifier, R² for the regressor)
        has not improved by tol for n_iter_no_change epochs; the best weights
        are kept. Stochastic solvers only.
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
        Fixed when the weights are initialised; warm starts keep it.
    backend : {'native', 'numpy'}, default='native'
        backprop's C++ core, or its pure-NumPy reference implementation."""

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
    Training follows scikit-learn's estimator step for step: the same
    initialisation and random-state calls, shuffling, mini-batches, L2 term,
    learning-rate schedules, stopping rules and early stopping. Started from
    the same weights, loss_ and the weights after an epoch agree with
    scikit-learn's to rounding in float64. How the matching is done, and
    where the two differ:

    - Weight decay. scikit-learn's gradient adds alpha·W / n_batch; each
      mini-batch is trained with backprop's weight_decay = alpha / n_batch,
      so a smaller last batch gets its own decay, as in scikit-learn.
    - loss_ includes alpha / (2·n_batch)·Σ‖W‖² at each batch's weights, as
      scikit-learn's does. The core is therefore called once per
      mini-batch (``Network.fit(..., epochs=1)``) rather than once per
      epoch: exact, and the per-call overhead (tens of microseconds) is
      small next to a batch of the default size.
    - Adam: scikit-learn adds epsilon to sqrt(v) before bias correction and
      backprop to sqrt(v̂) after it; each step uses backprop eps =
      epsilon / sqrt(1 - beta_2**t), which makes the updates identical.
    - SGD momentum: scikit-learn's velocity v = μ·v − η·g and backprop's
      (PyTorch's) buffer differ when the rate changes ('invscaling',
      'adaptive'); the buffer is rescaled when the rate changes, so the
      updates stay identical. momentum=1, which scikit-learn accepts, is
      refused: backprop's SGD needs momentum < 1.
    - Log-loss is computed from the output layer's pre-activations (log-sum-
      exp, softplus) rather than from probabilities clipped at machine
      epsilon: it differs only for saturated outputs, where scikit-learn
      caps each sample's loss at -log(eps) ≈ 36 and backprop does not.
    - A training step whose loss or weights turn NaN or infinite raises
      ValueError at once, keeping the last finite weights; scikit-learn
      raises the same error after training on.
    - Sparse X is accepted and densified one mini-batch (or one block of
      rows when predicting; all of it for 'lbfgs') at a time.
    - ``sample_weight`` (scikit-learn >= 1.7) is not supported: backprop's
      losses and gradients are unweighted batch means.
    - Changing hidden_layer_sizes between warm-started fits raises
      ValueError instead of failing later."""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    # Built from the shared sections above; a concatenation is no docstring, so assign __doc__.
    __doc__ = ("""Multi-layer perceptron classifier trained by backprop; drop-in for
    :class:`sklearn.neural_network.MLPClassifier`.

    Minimises the log-loss with L-BFGS-B, SGD or Adam. Binary targets get
    one logistic output unit (binary cross-entropy), multiclass targets a
    softmax layer (cross-entropy), multilabel indicator matrices one
    logistic unit per label. Labels may be strings or numbers.

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
                 backend="native"):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
                         alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
                         learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
                         shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
                         max_fun=max_fun, dtype=dtype, backend=backend)

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
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
        return X, self._label_binarizer.transform(y).astype(bool)

    def _validation_targets(self, y_indicator):
        return self._label_binarizer.inverse_transform(y_indicator)

    def _score_output(self, output, y_true):
        if not np.all(np.isfinite(output)):
            return np.nan
        return accuracy_score(y_true, self._labels(output))

    def _labels(self, output):
        if self.n_outputs_ == 1:
            output = output.ravel()
        return self._label_binarizer.inverse_transform(output)

    def fit(self, X, y):
        """Fit the network to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a multilabel indicator matrix.

        Returns
        -------
        self : MLPClassifier
        """
        return self._fit(X, y, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, classes=None):
        """One epoch over X and y, continuing from the current weights and optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array of shape (n_classes,), default=None
            All classes across the calls; required on the first call (not for
            multilabel y), after which y may hold any subset of them.

        Returns
        -------
        self : MLPClassifier
        """
        self._check_params()
        if classes is not None:
            classes = unique_labels(classes)
        if getattr(self, "classes_", None) is None:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(np.asarray(self.classes_), classes):
            raise ValueError(f"`classes={classes}` is not the same as on the first call to partial_fit, "
                             f"which was {self.classes_}")
        return self._fit(X, y, incremental=True)

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
        if self.n_outputs_ == 1:
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

    Minimises the squared error with L-BFGS-B, SGD or Adam; identity output
    units, one per target.

    Parameters
    ----------
    loss : {'squared_error'}, default='squared_error'
        Half the squared error. scikit-learn's 'poisson' (exponential output)
        is not available: backprop has no exponential output activation.""" + _COMMON_PARAMETERS + """

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
                 max_fun=15000, dtype=None, backend="native"):
        self.loss = loss
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
                         alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
                         learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
                         shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
                         warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
                         max_fun=max_fun, dtype=dtype, backend=backend)

    def _check_params(self):
        if self.loss == "poisson":
            raise ValueError("The 'loss' parameter of MLPRegressor: 'poisson' is not supported by backprop "
                             "(it needs an exponential output activation); use 'squared_error'.")
        if self.loss != "squared_error":
            raise self._invalid("loss", "a str among {'squared_error'}", self.loss)
        return super()._check_params()

    def _validate_input(self, X, y, incremental, reset):
        X, y = _validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                              dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _validation_targets(self, y):
        return y

    def _score_output(self, output, y_true):
        if not np.all(np.isfinite(output)):
            return np.nan
        return r2_score(y_true, output.ravel() if output.shape[1] == 1 else output)

    def fit(self, X, y):
        """Fit the network to X and y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, incremental=False)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y):
        """One epoch over X and y, continuing from the current weights and optimizer state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self : MLPRegressor
        """
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predicted values.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), or (n_samples, n_outputs) for several outputs
        """
        output = self._forward(self._check_X_predict(X))
        return output.ravel() if output.shape[1] == 1 else output

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
