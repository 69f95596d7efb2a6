"""The one epoch loop, and what it needs beyond the network: weights from
classes, the validation split and schedule.

`EpochLoop` owns the epochs of every fit: each epoch's order, the logs,
validation, History, the verbose line, every callback call and the rule that
a rejected fit changes nothing. What differs between fits is the step
strategy it is given:

- `LocalSteps`: the core trains chunks of batches of a data set it checked
  once (Network.fit);
- `SparseSteps`: the same, with a sparse X densified a block of whole batches
  at a time (the scikit-learn estimators);
- `backprop.distributed`'s data-parallel steps: each rank's core computes the
  gradient of its share, one Allreduce sums them, the core applies the step.

A step strategy has ``n_samples``, ``batch_size``, ``n_batches``,
``is_writer`` (False on ranks that must not print or write files), and the
methods ``begin()`` (the fit starts changing the network), ``run(order,
epoch, first_batch)`` (train the batches of `order`, a part of the epoch's
order starting at batch `first_batch`; returns the sums of EpochTotals.add),
``agree_order(order, error, epoch)``, ``validate(validation)``,
``end_epoch(epoch, stop)`` (True to stop), ``new_history()``,
``record(history, totals)`` and ``describe(history, totals)`` (the
verbose line's note).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ._validation import check_int
from .history import History

# Chunk length that callbacks asking for batch events see, in seconds: long
# enough that calling back into Python costs nothing measurable, short enough
# for a live progress bar.
CHUNK_SECONDS = 0.1


def class_indices(labels, targets, loss, n_outputs):
    """(each sample's class, the number of classes) for class weights."""
    if loss == "cross_entropy" and labels is not None:
        return labels, n_outputs
    if loss == "binary_cross_entropy" and n_outputs == 1:
        return (targets[:, 0] > 0.5).astype(np.int64), 2
    raise ValueError("class_weight needs class labels: integer labels for cross_entropy, or one 0/1 "
                     "output for binary_cross_entropy; use sample_weight otherwise")


def check_class_weight(class_weight, labels, targets, loss, n_outputs, counts=None, require_weight=True):
    """Per-sample weights (float64) that give sample i the weight of its class.

    `counts`: the samples of each class over the whole data set, for 'balanced' when these rows are
    one shard of it (default: counted here). `require_weight`: refuse weights that are all 0.
    """
    classes, n_classes = class_indices(labels, targets, loss, n_outputs)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be a dict, a sequence or 'balanced', got {class_weight!r}")
        if counts is None:
            counts = np.bincount(classes, minlength=n_classes)
        counts = np.asarray(counts, dtype=np.float64)
        table = np.divide(counts.sum(), n_classes * counts, out=np.zeros(n_classes), where=counts > 0)
    elif isinstance(class_weight, dict):
        table = np.ones(n_classes)
        for key, value in class_weight.items():
            k = check_int("class_weight key", key, minimum=0)
            if k >= n_classes:
                raise ValueError(f"class_weight names class {k}, outside [0, {n_classes})")
            table[k] = value
    else:
        table = np.asarray(class_weight, dtype=np.float64)
        if table.shape != (n_classes,):
            raise ValueError(f"class_weight must hold one weight per class ({n_classes}), got shape {table.shape}")
    if not (np.all(np.isfinite(table)) and table.min() >= 0):
        raise ValueError("class_weight must hold finite weights >= 0")
    weights = table[classes]
    if require_weight and not weights.sum() > 0:
        raise ValueError("class_weight gives every sample weight 0")
    return weights


def split_point(n_samples, validation_split):
    """Rows kept for training when the last `validation_split` of them validate (Keras: floor)."""
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
    n_train = int(math.floor(n_samples * (1.0 - validation_split)))
    if n_train < 1 or n_train >= n_samples:
        raise ValueError(f"validation_split={validation_split} of {n_samples} samples leaves "
                         f"{n_train} for training and {n_samples - n_train} for validation; both need one")
    return n_train


def split_validation(data, n_train):
    """(training part, validation part) of a tuple of row-aligned arrays (None entries stay None)."""
    return (tuple(None if a is None else a[:n_train] for a in data),
            tuple(None if a is None else a[n_train:] for a in data))


def validation_schedule(validation_freq):
    """A test `due(epoch)` (epochs from 1) for validation_freq: every k-th epoch, or the listed ones."""
    if isinstance(validation_freq, (list, tuple, set, frozenset, range)):
        epochs = {check_int("validation_freq entries", e) for e in validation_freq}
        return epochs.__contains__
    k = check_int("validation_freq", validation_freq)
    return lambda epoch: epoch % k == 0


def nonfinite_message(status, where):
    what = "loss" if status == "nonfinite_loss" else "update (gradient or new weights)"
    return (f"the training {what} became NaN or infinite {where}; training stopped before that update, so the "
            "weights are those of the last finite step. Try a smaller learning rate.")


@dataclass
class EpochTotals:
    """The sums of one epoch's steps (see NumpyBackend.train_epoch for their meaning)."""

    status: str = "completed"
    batches: int = 0
    samples: int = 0
    loss_sum: float = 0.0
    n_correct: float = 0.0
    penalty_sum: float = 0.0
    grad_norm_sums: list = field(default_factory=list)
    seconds: float = 0.0

    def add(self, result, seconds):
        seconds = result.get("seconds", seconds)  # a data-parallel step reports the ranks' mean
        self.status = result["status"]
        self.batches += result["batches"]
        self.samples += result["samples"]
        self.loss_sum += result["loss_sum"]
        self.n_correct += result["n_correct"]
        self.penalty_sum += result.get("penalty_sum", 0.0)
        norms = result["weight_grad_norm_sums"]
        self.grad_norm_sums = [a + b for a, b in zip(self.grad_norm_sums, norms)] if self.grad_norm_sums \
            else list(norms)
        self.seconds += seconds


def check_order(order, n_samples):
    """An order returned by fit's `shuffle` callable, checked: int64 row indices in [0, n_samples)."""
    array = np.asarray(order)
    if array.ndim != 1 or array.shape[0] == 0 or array.dtype.kind not in "iu":
        raise ValueError(f"shuffle(epoch) must return a non-empty 1-D array of integer row indices, got "
                         f"{array.dtype} of shape {array.shape}")
    if array.min() < 0 or array.max() >= n_samples:
        raise ValueError(f"shuffle(epoch) returned row indices outside [0, {n_samples})")
    return array.astype(np.int64)


class LocalSteps:
    """Steps of one process: the backend trains whole chunks of batches of a data set checked once."""

    is_writer = True

    def __init__(self, network, data, batch_size, optimizer, record_grad_norms):
        X, labels, targets, weights = data
        self.network, self.optimizer, self.record_grad_norms = network, optimizer, record_grad_norms
        self.n_samples = X.shape[0]
        self.batch_size = min(batch_size, self.n_samples)
        self.n_batches = -(-self.n_samples // self.batch_size)
        self.data = self._prepare(data)
        self.state = None

    def _prepare(self, data):
        return self.network._backend.prepare(*data)

    def begin(self):
        self.state = self.optimizer._state_for(self.network)

    def run(self, order, epoch=None, first_batch=0):
        network = self.network
        return network._backend.train_epoch(network._params, self.data, order, self.batch_size, self.optimizer,
                                            self.state, self.record_grad_norms)

    @staticmethod
    def agree_order(order, error, epoch):
        if error is not None:
            raise error
        return order

    def validate(self, validation):
        return self.network._evaluate_checked(*validation)

    @staticmethod
    def end_epoch(epoch, stop):
        return stop

    @staticmethod
    def after_restore():
        pass

    @staticmethod
    def new_history():
        return History()

    @staticmethod
    def record(history, totals):
        pass

    @staticmethod
    def describe(history, totals):
        return ""


class SparseSteps(LocalSteps):
    """LocalSteps for a scipy.sparse X: the rows of each chunk densified a block of whole batches at a
    time (about SPARSE_BLOCK_ROWS rows), so the batches, and the training, are those of the dense X."""

    SPARSE_BLOCK_ROWS = 4096

    def _prepare(self, data):
        X, labels, targets, weights = data
        return X.tocsr(), labels, targets, weights

    def run(self, order, epoch=None, first_batch=0):
        X, labels, targets, weights = self.data
        backend, params = self.network._backend, self.network._params
        block = max(1, self.SPARSE_BLOCK_ROWS // self.batch_size) * self.batch_size
        totals = EpochTotals()
        for start in range(0, order.shape[0], block):
            rows = order[start:start + block]
            dense = backend.prepare(X[rows].toarray(), *(None if a is None else a[rows]
                                                         for a in (labels, targets, weights)))
            result = backend.train_epoch(params, dense, np.arange(rows.shape[0], dtype=np.int64), self.batch_size,
                                         self.optimizer, self.state, self.record_grad_norms)
            totals.add(result, 0.0)
            if totals.status != "completed":
                break
        return {"status": totals.status, "batches": totals.batches, "samples": totals.samples,
                "loss_sum": totals.loss_sum, "n_correct": totals.n_correct, "penalty_sum": totals.penalty_sum,
                "weight_grad_norm_sums": totals.grad_norm_sums}


class EpochLoop:
    """The epochs of one fit, run by a step strategy (see the module's docstring).

    Constructing it checks every callback's view of the fit and
    `check_first_order` the first epoch's order from a `shuffle` callable;
    neither changes anything. `run` trains.
    """

    def __init__(self, network, steps, *, epochs, shuffle, validation, validate_on, verbose, callbacks,
                 record_grad_norms):
        self.network, self.steps, self.epochs = network, steps, epochs
        self.shuffle, self.validation, self.validate_on = shuffle, validation, validate_on
        self.verbose, self.callbacks, self.record_grad_norms = verbose, callbacks, record_grad_norms
        optimizer = steps.optimizer
        metrics = ["loss"] + (["accuracy"] if network.is_classifier else [])
        if optimizer.convention == "sklearn" and optimizer.weight_decay:
            metrics.append("l2_penalty")
        metrics.append("lr")
        if validation is not None:
            metrics += ["val_" + name for name in metrics if name in ("loss", "accuracy")]
        self.params = {"epochs": epochs, "steps": steps.n_batches, "samples": steps.n_samples,
                       "batch_size": steps.batch_size, "validation": validation is not None, "metrics": metrics}
        # Where training stands (the epoch, its order and the batches done of it, and their totals): read
        # by BackupAndRestore, and set by it when a fit resumes from a backup.
        self.epoch, self.order, self.batches_done, self.totals = 0, None, 0, None
        callbacks.attach(self)
        callbacks.check(self.params)
        self.first_order = None

    def check_first_order(self):
        """Draw and check the first epoch's order from a `shuffle` callable now, before anything changes
        (a collective under distributed.fit: every rank calls it)."""
        if callable(self.shuffle):
            self.first_order = self._order(0)

    def _order(self, epoch):
        """The epoch's order, checked (and agreed between ranks) before the epoch's first step."""
        n = self.steps.n_samples
        order, error = None, None
        if self.shuffle is True:
            order = self.network.rng.permutation(n)
        elif self.shuffle is False:
            order = np.arange(n, dtype=np.int64)
        else:
            try:
                order = check_order(self.shuffle(epoch), n)
            except Exception as caught:  # on one rank of several, every rank must hear of it
                error = caught
        return self.steps.agree_order(order, error, epoch)

    def run(self):
        """Train; returns the History (also ``network.history``)."""
        network, steps, callbacks = self.network, self.steps, self.callbacks
        # Everything is checked: from here on the network changes.
        network.optimizer = steps.optimizer
        steps.begin()
        history = network.history = steps.new_history()
        network.stop_training = False
        callbacks.on_train_begin(**{k: v for k, v in self.params.items() if k != "metrics"})
        with callbacks.closing():
            callbacks.restore()  # a backup puts the fit where it was: epoch, order, batches done, states
            stop = network.stop_training
            for epoch in range(self.epoch, self.epochs):
                if stop:
                    break
                if self.order is None:  # a new epoch (else one resumed from a backup, already begun)
                    self.order = (self.first_order if epoch == 0 and self.first_order is not None
                                  else self._order(epoch))
                    callbacks.on_epoch_begin(epoch)
                logs = self._epoch(self.order, epoch, history)
                self.epoch, self.order, self.batches_done, self.totals = epoch + 1, None, 0, None
                callbacks.on_epoch_end(epoch, logs)
                stop = steps.end_epoch(epoch, network.stop_training)
        callbacks.on_train_end(history)
        return history

    def _epoch(self, order, epoch, history):
        network, steps = self.network, self.steps
        totals = self._train(order, epoch)
        if totals.status != "completed":
            raise FloatingPointError(nonfinite_message(
                totals.status, f"at epoch {epoch + 1}, batch {totals.batches + 1} of {steps.n_batches}"))
        logs = {"loss": totals.loss_sum / totals.samples}
        if network.is_classifier:
            logs["accuracy"] = totals.n_correct / (totals.samples * network._units_per_sample)
        optimizer = steps.optimizer
        if optimizer.convention == "sklearn" and optimizer.weight_decay:
            logs["l2_penalty"] = 0.5 * optimizer.weight_decay * totals.penalty_sum / totals.samples
        logs["lr"] = optimizer.lr
        if self.validation is not None and self.validate_on(epoch + 1):
            logs.update({f"val_{k}": v for k, v in steps.validate(self.validation).items()})
        norms = np.asarray(totals.grad_norm_sums) / totals.batches if self.record_grad_norms else None
        history._append(epoch + 1, logs, norms, totals.seconds)
        steps.record(history, totals)
        if self.verbose and steps.is_writer:
            figures = " - ".join(f"{k}: {v:.4g}" if k == "lr" else f"{k}: {v:.4f}" for k, v in logs.items())
            try:
                print(f"Epoch {epoch + 1}/{self.epochs} - {totals.seconds:.2f}s "
                      f"({steps.n_samples / max(totals.seconds, 1e-9):,.0f} samples/s{steps.describe(history, totals)}) - "
                      f"{figures}", flush=True)
            except OSError:  # stdout went away: stop printing, but train on (and never strand other ranks)
                self.verbose = 0
        return logs

    def _train(self, order, epoch):
        """Train over `order`; its EpochTotals (stopped early when a step was not finite): whole in one
        call, or in chunks of batches with callbacks in between when a callback asks for batch events."""
        steps = self.steps
        totals, done = self.totals or EpochTotals(), self.batches_done  # a resumed epoch goes on from there
        interval = self.callbacks.batch_interval
        if interval is None:
            if done < steps.n_batches:
                totals.add(*self._timed(order[done * steps.batch_size:], epoch, done))
            return totals
        chunk = interval or 1  # time-based chunks start with one batch to measure a step
        while done < steps.n_batches:
            stop = min(done + chunk, steps.n_batches)
            totals.add(*self._timed(order[done * steps.batch_size:stop * steps.batch_size], epoch, done))
            if totals.status != "completed":
                return totals
            done = stop
            self.batches_done, self.totals = done, totals
            self.callbacks.on_batch_end(epoch, done - 1, totals)
            if not interval:
                per_batch = totals.seconds / done
                chunk = max(1, int(CHUNK_SECONDS / max(per_batch, 1e-9)))
        return totals

    def _timed(self, order, epoch, first_batch):
        started = time.perf_counter()
        result = self.steps.run(order, epoch, first_batch)
        return result, time.perf_counter() - started
