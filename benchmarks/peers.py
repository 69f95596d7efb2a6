"""The peers the suite times: backprop (native and NumPy backends), PyTorch, scikit-learn.

Every peer does the same work: the same layer sizes and activations, the
initial weights of the backprop network, the same optimizer and
hyper-parameters, the same batches in the same order, the same dtype and
thread count. Each trainer splits an epoch into ``prepare`` (untimed: hand
over the data and the epoch's shuffled order), ``prime`` (untimed: a few
batches, which wake the peer's threads after a pause) and ``run`` (timed:
the epoch).

Peers whose package is not installed are reported as unavailable, with a
note, and skipped.
"""

from __future__ import annotations

import copy
import importlib
import warnings
from dataclasses import replace

import numpy as np

import backprop as bp

#: The peers in the order the report lists them.
PEER_NAMES = ("native", "numpy", "torch", "sklearn")

LABELS = {
    "native": "backprop native",
    "numpy": "backprop numpy",
    "torch": "PyTorch CPU",
    "sklearn": "sklearn MLP",
    "floor": "BLAS floor",
    "onnxruntime": "onnxruntime",
    "native_plain": "native plain W1",
}

#: Batches of an untimed ``prime`` run.
PRIME_BATCHES = 4

_SKLEARN_ACTIVATIONS = {"relu": "relu", "sigmoid": "logistic", "tanh": "tanh", "identity": "identity"}


def availability():
    """Which peers can run here: {name: (available, note)}; the note says why not, or the version."""
    found = {}
    try:
        from backprop import _core  # noqa: F401  (Network would fall back to NumPy with a warning)
        found["native"] = (True, f"backprop {bp.__version__}, core {bp.build_info().get('isa')}")
    except ImportError as error:
        found["native"] = (False, f"backprop's compiled core cannot be imported ({error})")
    found["numpy"] = (True, f"backprop {bp.__version__}, NumPy {np.__version__}")
    for name, module in (("torch", "torch"), ("sklearn", "sklearn.neural_network")):
        try:
            imported = importlib.import_module(module)
        except ImportError as error:
            found[name] = (False, f"not installed ({error})")
        else:
            version = getattr(imported, "__version__", None) or importlib.import_module(
                module.split(".")[0]).__version__
            found[name] = (True, f"{module.split('.')[0]} {version}")
    return found


def set_threads(n, peers):
    """Run every available peer's math on `n` threads.

    backprop's core through ``bp.set_num_threads``, PyTorch through
    ``torch.set_num_threads`` and NumPy's BLAS (used by the numpy backend,
    scikit-learn and the floor) through threadpoolctl.

    Returns
    -------
    list of str: notes on what could not be limited.
    """
    notes = []
    if "native" in peers:
        bp.set_num_threads(n)
    if "torch" in peers:
        import torch
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        notes.append("threadpoolctl is not installed: NumPy's BLAS threads were not limited "
                     "(set OPENBLAS_NUM_THREADS / OMP_NUM_THREADS yourself)")
    else:
        # Applied for the rest of the process; nothing needs the original limit back.
        threadpool_limits(limits=n, user_api="blas")
    return notes


def blas_info():
    """NumPy's BLAS libraries as threadpoolctl sees them (empty without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: entry.get(k) for k in ("internal_api", "version", "num_threads", "architecture",
                                       "threading_layer")}
            for entry in threadpool_info() if entry.get("user_api") == "blas"]


# -- backprop -------------------------------------------------------------------------------------

def make_optimizer(workload):
    """The backprop optimizer for `workload` (a fresh one: its state starts at zero)."""
    if workload.optimizer == "adam":
        return bp.Adam(lr=workload.lr)
    return bp.SGD(lr=workload.lr)


def make_network(backend, workload, init_params):
    """A backprop Network for `workload` holding `init_params` [(W, b), ...]."""
    net = bp.Network(workload.sizes, activation=workload.activation, output="softmax",
                     loss="cross_entropy", dtype=workload.dtype, backend=backend, seed=workload.seed,
                     dropout=workload.dropout, norm=workload.norm)
    for layer, (W, b) in zip(net.layers, init_params):
        layer.W, layer.b = W, b
    return net


class BackpropTrainer:
    """backprop's own fit, one epoch per run, on either backend.

    The network shuffles with its own seeded generator; ``prepare`` sets that
    generator to the state the suite drew the epoch's order from, so fit
    visits the rows in exactly the order the other peers get.
    """

    shares_initial_weights = True

    def __init__(self, backend, workload, init_params):
        self.workload = workload
        self.net = make_network(backend, workload, init_params)
        self.optimizer = make_optimizer(workload)
        self.syncs_order = True
        self.notes = []
        self._checked_sync = False
        self._state_after_fit = None

    def prepare(self, X, y, order, rng_state):
        self.X, self.y = X, y
        generator = getattr(self.net, "rng", None)
        if generator is None or type(generator.bit_generator).__name__ != rng_state["bit_generator"]:
            self._lose_sync("the network's shuffling generator is not reachable")
            return
        generator.bit_generator.state = rng_state
        self._state_after_fit = None
        if not self._checked_sync:
            # fit draws its order as generator.permutation(n). Check once that
            # this gives the shared order, and (in run) that fit drew exactly
            # that: if the package changes how it shuffles, say so rather than
            # silently compare different batches.
            self._checked_sync = True
            expected = copy.deepcopy(generator)
            if not np.array_equal(expected.permutation(X.shape[0]), order):
                self._lose_sync("fit's shuffling order differs from the shared one")
            self._state_after_fit = expected.bit_generator.state

    def _lose_sync(self, reason):
        if self.syncs_order:
            self.syncs_order = False
            self.notes.append(f"{reason}: it trains on its own shuffled order (same work, other batches)")

    def prime(self):
        # shuffle=False draws nothing from the generator prepare has set.
        rows = PRIME_BATCHES * self.workload.batch_size
        self.net.fit(self.X[:rows], self.y[:rows], epochs=1, batch_size=self.workload.batch_size,
                     optimizer=self.optimizer, shuffle=False)

    def run(self):
        self.net.fit(self.X, self.y, epochs=1, batch_size=self.workload.batch_size,
                     optimizer=self.optimizer, shuffle=True)
        if self._state_after_fit is not None and self.net.rng.bit_generator.state != self._state_after_fit:
            self._lose_sync("fit drew its shuffling order differently")


# -- PyTorch --------------------------------------------------------------------------------------

def make_torch_model(workload, init_params):
    """nn.Sequential of Linear layers, [LayerNorm], the hidden activation and [Dropout], holding `init_params`."""
    import torch
    from torch import nn

    dtype = getattr(torch, workload.dtype)
    activation = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[workload.activation]
    layers = []
    for l, (W, b) in enumerate(init_params):
        linear = nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W)))
            linear.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        layers.append(linear)
        if l < len(init_params) - 1:
            if workload.norm:
                layers.append(nn.LayerNorm(W.shape[0], dtype=dtype))
            layers.append(activation())
            if workload.dropout:
                layers.append(nn.Dropout(workload.dropout))
    return nn.Sequential(*layers)


def _tensor(array):
    # torch.from_numpy shares memory but warns on read-only arrays.
    import torch
    return torch.from_numpy(array if array.flags.writeable else array.copy())


class TorchTrainer:
    """A plain PyTorch training loop: gather the batch by indexing, forward, backward, step.

    No DataLoader (its worker and collation overhead is not what is being
    compared); the model stays in training mode throughout.
    """

    shares_initial_weights = True
    syncs_order = True

    def __init__(self, workload, init_params):
        import torch

        self.workload = workload
        self.model = make_torch_model(workload, init_params)
        self.model.train()
        if workload.optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=workload.lr, betas=(0.9, 0.999),
                                              eps=1e-8, weight_decay=0.0)
        else:
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=workload.lr, momentum=0.0,
                                             weight_decay=0.0)
        self.loss_fn = torch.nn.CrossEntropyLoss()  # mean over the batch, like backprop
        self.notes = []

    def prepare(self, X, y, order, rng_state):
        self.X, self.y, self.order = _tensor(X), _tensor(y), _tensor(order)

    def prime(self):
        self._train(self.order[:PRIME_BATCHES * self.workload.batch_size])

    def run(self):
        self._train(self.order)

    def _train(self, order):
        model, optimizer, loss_fn = self.model, self.optimizer, self.loss_fn
        X, y, batch = self.X, self.y, self.workload.batch_size
        for first in range(0, order.shape[0], batch):
            index = order[first:first + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[index]), y[index])
            loss.backward()
            optimizer.step()


# -- scikit-learn ---------------------------------------------------------------------------------

def make_sklearn_model(workload, init_params, X_first, y_first):
    """An MLPClassifier for `workload`, initialised by partial_fit on one batch, then holding `init_params`.

    scikit-learn builds its weights on the first partial_fit; that call
    trains one step, whose weights are then overwritten (coefs_ is Wᵀ) and
    whose optimizer state is dropped.

    Returns
    -------
    (MLPClassifier, list of str notes, bool: whether it holds `init_params`)
    """
    from sklearn.neural_network import MLPClassifier

    kwargs = dict(hidden_layer_sizes=tuple(workload.sizes[1:-1]),
                  activation=_SKLEARN_ACTIVATIONS[workload.activation], solver=workload.optimizer,
                  learning_rate_init=workload.lr, batch_size=workload.batch_size, alpha=0.0,
                  shuffle=False, max_iter=1, early_stopping=False, random_state=workload.seed)
    if workload.optimizer == "sgd":
        kwargs.update(learning_rate="constant", momentum=0.0, nesterovs_momentum=False)
    else:
        kwargs.update(beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    model = MLPClassifier(**kwargs)
    n_classes = workload.sizes[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(X_first, y_first, classes=np.arange(n_classes))
    notes = []
    try:
        for coef, intercept, (W, b) in zip(model.coefs_, model.intercepts_, init_params):
            coef[...] = W.T
            intercept[...] = b
    except (AttributeError, ValueError) as error:
        notes.append(f"could not take backprop's initial weights ({error}); it starts from its own")
        return model, notes, False
    # partial_fit keeps an existing optimizer; dropping it makes the next call
    # start one afresh (zero moments, step 0), as the other peers do.
    if hasattr(model, "_optimizer"):
        del model._optimizer
    return model, notes, True


class SklearnTrainer:
    """MLPClassifier.partial_fit: one pass over the data per call, i.e. one epoch.

    partial_fit cannot take an index order, so ``prepare`` hands it the rows
    already permuted (copied outside the timed region) with shuffle=False:
    the same batches in the same order, but without the per-batch gather
    the other peers pay. No early stopping, so no validation pass per epoch;
    partial_fit does re-validate X and one-hot encode y on every call, which
    the suite times separately (``validation_seconds``).
    """

    syncs_order = True

    def __init__(self, workload, init_params):
        self.workload = workload
        self.init_params = init_params
        self.model = None
        self.notes = ["gets each epoch's rows pre-permuted (no per-batch gather)"]
        self.shares_initial_weights = True

    def prepare(self, X, y, order, rng_state):
        if self.model is None:
            first = order[:self.workload.batch_size]
            self.model, notes, self.shares_initial_weights = make_sklearn_model(
                self.workload, self.init_params, X[first], y[first])
            self.notes += notes
        self.X, self.y = X[order], y[order]

    def prime(self):
        rows = PRIME_BATCHES * self.workload.batch_size
        self._partial_fit(self.X[:rows], self.y[:rows])

    def run(self):
        self._partial_fit(self.X, self.y)

    def _partial_fit(self, X, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning and friends: not what is measured
            self.model.partial_fit(X, y)

    def validation_seconds(self, repeats=3):
        """Median time of what partial_fit does to its inputs before training (check X, encode y)."""
        import time
        try:
            validate = self.model._validate_input
        except AttributeError:
            return None
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            validate(self.X, self.y, True, False)
            times.append(time.perf_counter() - started)
        return float(np.median(times))


# -- the floor: NumPy's BLAS doing only the matrix products ----------------------------------------

class BlasFloor:
    """Exactly the matrix products of one epoch's training steps, nothing else.

    Per step of B rows, with preallocated operands and outputs
    (``np.matmul(..., out=...)``): the forward products Z = A·Wᵀ of every
    layer, the weight gradients Δᵀ·A of every layer, and the input
    gradients Δ·W of layers 2..L (layer 1's would be the gradient with
    respect to the data, which training does not need). An epoch is
    ⌊n/B⌋ full steps plus one step of the remaining rows, as in fit.
    """

    shares_initial_weights = True
    syncs_order = True

    def __init__(self, workload, init_params):
        self.workload = workload
        self.dtype = np.dtype(workload.dtype)
        self.weights = [np.ascontiguousarray(W, self.dtype) for W, _ in init_params]
        self.notes = []
        self._buffers = {}

    def _step_buffers(self, rows):
        """Operands and outputs for one step of `rows` rows (random values; the timing ignores them)."""
        if rows not in self._buffers:
            rng = np.random.default_rng(rows)
            sizes = self.workload.sizes
            activations = [rng.random((rows, n), dtype=np.float64).astype(self.dtype) for n in sizes[:-1]]
            deltas = [rng.standard_normal((rows, n)).astype(self.dtype) for n in sizes[1:]]
            outputs = [np.empty((rows, n), self.dtype) for n in sizes[1:]]
            weight_grads = [np.empty_like(W) for W in self.weights]
            input_grads = [np.empty((rows, n), self.dtype) for n in sizes[1:-1]]
            self._buffers[rows] = (activations, deltas, outputs, weight_grads, input_grads)
        return self._buffers[rows]

    def prepare(self, X, y, order, rng_state):
        n, batch = order.shape[0], self.workload.batch_size
        self.plan = [(batch, n // batch)] + ([(n % batch, 1)] if n % batch else [])
        for rows, _ in self.plan:
            self._step_buffers(rows)

    def prime(self):
        self._products([(self.workload.batch_size, min(PRIME_BATCHES, self.plan[0][1]))])

    def run(self):
        self._products(self.plan)

    def _products(self, plan):
        matmul, weights = np.matmul, self.weights
        for rows, steps in plan:
            activations, deltas, outputs, weight_grads, input_grads = self._buffers[rows]
            layers = range(len(weights))
            for _ in range(steps):
                for l in layers:
                    matmul(activations[l], weights[l].T, out=outputs[l])
                for l in layers:
                    matmul(deltas[l].T, activations[l], out=weight_grads[l])
                for l in layers[1:]:
                    matmul(deltas[l], weights[l], out=input_grads[l - 1])

    def predictor(self, X):
        """The forward products of a prediction over all rows of X, as a callable."""
        rows = X.shape[0]
        inputs = [X] + [np.random.default_rng(l).random((rows, W.shape[1])).astype(self.dtype)
                        for l, W in enumerate(self.weights[1:])]
        outputs = [np.empty((rows, W.shape[0]), self.dtype) for W in self.weights]

        def forward_products():
            for A, W, Z in zip(inputs, self.weights, outputs):
                np.matmul(A, W.T, out=Z)
        return forward_products


# -- construction ---------------------------------------------------------------------------------

def make_trainer(name, workload, init_params):
    """The trainer of peer `name` ('native', 'numpy', 'torch', 'sklearn', 'floor' or 'native_plain')."""
    if name in ("native", "numpy"):
        return BackpropTrainer(name, workload, init_params)
    if name == "native_plain":  # W10/W11 without their dropout or LayerNorm, timed beside them: what those cost
        return BackpropTrainer("native", replace(workload, dropout=0.0, norm=None), init_params)
    if name == "torch":
        return TorchTrainer(workload, init_params)
    if name == "sklearn":
        return SklearnTrainer(workload, init_params)
    if name == "floor":
        return BlasFloor(workload, init_params)
    raise ValueError(f"unknown peer {name!r}")


def make_predictor(name, workload, init_params, X):
    """A callable computing the network's output probabilities for every row of X on peer `name`.

    Returns
    -------
    (callable, list of str notes)
    """
    if name in ("native", "numpy"):
        net = make_network(name, workload, init_params)
        return (lambda: net.forward(X)), []
    if name == "torch":
        import torch
        model = make_torch_model(workload, init_params)
        X_tensor = _tensor(X)

        def torch_forward():
            with torch.inference_mode():
                return torch.softmax(model(X_tensor), dim=1)
        return torch_forward, []
    if name == "sklearn":
        rows = min(workload.batch_size, X.shape[0])
        y_first = np.arange(rows) % workload.sizes[-1]
        model, notes, _ = make_sklearn_model(workload, init_params, X[:rows], y_first)
        notes.append("predict_proba re-validates X on every call")
        return (lambda: model.predict_proba(X)), notes
    if name == "floor":
        return BlasFloor(workload, init_params).predictor(X), []
    raise ValueError(f"unknown peer {name!r}")
