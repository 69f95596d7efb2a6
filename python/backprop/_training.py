"""What Network.fit needs beyond the network itself: weights from classes,
the validation split and schedule, and running an epoch in chunks of batches
between callbacks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ._validation import check_int

# Chunk length that callbacks asking for batch events see, in seconds: long
# enough that calling back into Python costs nothing measurable, short enough
# for a live progress bar.
CHUNK_SECONDS = 0.1


def check_class_weight(class_weight, labels, targets, loss, n_outputs):
    """Per-sample weights (float64) that give sample i the weight of its class."""
    if loss == "cross_entropy" and labels is not None:
        classes, n_classes = labels, n_outputs
    elif loss == "binary_cross_entropy" and n_outputs == 1:
        classes, n_classes = (targets[:, 0] > 0.5).astype(np.int64), 2
    else:
        raise ValueError("class_weight needs class labels: integer labels for cross_entropy, or one 0/1 "
                         "output for binary_cross_entropy; use sample_weight otherwise")
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be a dict, a sequence or 'balanced', got {class_weight!r}")
        counts = np.bincount(classes, minlength=n_classes).astype(np.float64)
        table = np.divide(classes.shape[0], n_classes * counts, out=np.zeros(n_classes), where=counts > 0)
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
    if not weights.sum() > 0:
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


class TrainingRun:
    """Runs fit's epochs on the backend: whole epochs in one call, or chunks
    of batches with callbacks in between when a callback asks for batch events.

    `data` is (X, labels, targets, weights), checked and converted.
    """

    def __init__(self, backend, params, data, batch_size, optimizer, state, record_grad_norms, callbacks):
        self.backend, self.params, self.data = backend, params, data
        self.batch_size, self.optimizer, self.state = batch_size, optimizer, state
        self.record_grad_norms = record_grad_norms
        self.callbacks = callbacks
        self.n_samples = data[0].shape[0]
        self.n_batches = -(-self.n_samples // batch_size)

    def check_order(self, order):
        """An order returned by fit's `shuffle` callable, checked."""
        array = np.asarray(order)
        if array.ndim != 1 or array.shape[0] == 0 or array.dtype.kind not in "iu":
            raise ValueError(f"shuffle(epoch) must return a non-empty 1-D array of integer row indices, got "
                             f"{array.dtype} of shape {array.shape}")
        if array.min() < 0 or array.max() >= self.n_samples:
            raise ValueError(f"shuffle(epoch) returned row indices outside [0, {self.n_samples})")
        return array.astype(np.int64)

    def _steps(self, order):
        started = time.perf_counter()
        result = self.backend.train_epoch(self.params, *self.data, order, self.batch_size, self.optimizer,
                                          self.state, self.record_grad_norms)
        return result, time.perf_counter() - started

    def epoch(self, order, epoch):
        """Train over `order`; returns its EpochTotals (stopped early when a step was not finite)."""
        totals = EpochTotals()
        interval = self.callbacks.batch_interval
        if interval is None:
            totals.add(*self._steps(order))
            return totals
        n_batches = -(-order.shape[0] // self.batch_size)
        chunk = interval or 1  # time-based chunks start with one batch to measure a step
        done = 0
        while done < n_batches:
            stop = min(done + chunk, n_batches)
            result, seconds = self._steps(order[done * self.batch_size:stop * self.batch_size])
            totals.add(result, seconds)
            if totals.status != "completed":
                return totals
            done = stop
            self.callbacks.on_batch_end(epoch, done - 1, totals)
            if not interval:
                per_batch = totals.seconds / done
                chunk = max(1, int(CHUNK_SECONDS / max(per_batch, 1e-9)))
        return totals
