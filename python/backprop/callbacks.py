"""Training controls for Network.fit: early stopping, checkpoints, learning-rate schedules, progress.

A callback is any object derived from :class:`Callback`; ``fit(callbacks=[...])``
calls its methods in the spirit of Keras::

    on_train_begin(logs)            once, before the first epoch
    on_epoch_begin(epoch, logs)     epoch counts from 0, as in Keras
    on_batch_end(batch, logs)       only for callbacks that ask for batch events
    on_epoch_end(epoch, logs)       logs: the epoch's figures, as History records them
    on_train_end(logs)              once, also after an early stop

``self.network`` (alias ``self.model``) is the network being trained and
``self.params`` holds epochs, steps (batches per epoch), samples and
whether validation runs. Setting ``self.network.stop_training = True``
ends training after the current epoch.

The core trains whole epochs without returning to Python unless a callback
asks for batch events: set ``batch_interval = k`` to be called after every k
batches, or override ``on_batch_end`` alone to be called after chunks of
batches of about 0.1 s. Batch logs hold the running means of the epoch so
far ("loss", "accuracy") and "samples", the samples trained on this epoch.

>>> import backprop as bp
>>> net.fit(X, y, epochs=200, validation_data=(X_val, y_val),                    # doctest: +SKIP
...         callbacks=[bp.callbacks.EarlyStopping(patience=5),
...                    bp.callbacks.ModelCheckpoint("best.npz", save_best_only=True)])
"""

from __future__ import annotations

import contextlib
import math
from functools import reduce

import numpy as np

from ._validation import check_bool, check_choice, check_int, check_real

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "StepDecay",
           "ExponentialDecay", "CosineDecay", "ReduceLROnPlateau", "ProgressBar", "BackupAndRestore"]


class Callback:
    """Base class: every method does nothing.

    Attributes
    ----------
    batch_interval : int or None
        None: no batch events (unless on_batch_end is overridden, then about
        every 0.1 s); k: ``on_batch_end`` after every k-th batch.
    """

    batch_interval = None
    # True for callbacks that write files or draw on the terminal: under
    # backprop.distributed.fit they run on rank 0 only.
    writer = False

    def __init__(self):
        self.network = None
        self.params = {}

    @property
    def model(self):
        """The network being trained (Keras' name for it)."""
        return self.network

    def set_network(self, network):
        self.network = network

    def check(self, params):
        """Refuse a fit this callback cannot serve, before the fit changes anything.

        Called with the params that ``on_train_begin`` will see, plus
        "metrics": the names of the figures each epoch's logs will hold
        (e.g. ``["loss", "accuracy", "lr", "val_loss", "val_accuracy"]``).
        Raise ValueError or TypeError to refuse; the default accepts.
        """

    def get_state(self):
        """What this callback must remember for a fit to resume exactly (BackupAndRestore).

        A dict of numbers, strings, None, lists, dicts and NumPy arrays; the
        default has nothing. ``set_state`` gets it back, after
        ``on_train_begin`` of the resumed fit.
        """
        return {}

    def set_state(self, state):
        """Put back what ``get_state`` returned (see there)."""

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def _close(self):
        """Release what the callback holds when training ends in an exception (not a Keras hook)."""

    @property
    def _wants_batches(self):
        return self.batch_interval is not None or type(self).on_batch_end is not Callback.on_batch_end


class CallbackList:
    """The callbacks of one fit, called in order."""

    def __init__(self, callbacks, network, is_writer=True):
        if callbacks is None:
            callbacks = []
        if isinstance(callbacks, Callback) or not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of backprop.callbacks.Callback, got "
                            f"{type(callbacks).__name__}")
        for i, callback in enumerate(callbacks):
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks[{i}] must be a backprop.callbacks.Callback, got "
                                f"{type(callback).__name__}")
            if callback.batch_interval is not None:
                check_int(f"callbacks[{i}].batch_interval", callback.batch_interval)
        # Every callback is checked; a writer is called only where the fit may write (rank 0). A backup
        # (BackupAndRestore) is taken after every other callback has acted on the epoch or batch.
        self._all = sorted(callbacks, key=lambda c: isinstance(c, BackupAndRestore))
        self.callbacks = [c for c in self._all if is_writer or not c.writer]
        self.network = network
        self._batching = [c for c in self.callbacks if c._wants_batches]
        self._last_logs = None

    @property
    def batch_interval(self):
        """None: no batch events; 0: chunks of about 0.1 s; k: chunks of k batches."""
        if not self._batching:
            return None
        intervals = [c.batch_interval for c in self._batching if c.batch_interval is not None]
        return reduce(math.gcd, intervals) if intervals else 0

    def attach(self, loop):
        """Give the backups the epoch loop whose position they save and restore."""
        for callback in self._all:
            if isinstance(callback, BackupAndRestore):
                callback._loop = loop

    def restore(self):
        """Resume from a backup, if a BackupAndRestore holds one (after on_train_begin)."""
        for callback in self._all:
            if isinstance(callback, BackupAndRestore):
                callback._restore()

    def check(self, params):
        """Each callback's check of the fit (Callback.check), before anything changes."""
        for callback in self._all:
            callback.set_network(self.network)
            callback.check(dict(params))

    def on_train_begin(self, **params):
        for callback in self.callbacks:
            callback.set_network(self.network)
            callback.params = dict(params)
            callback.on_train_begin(None)

    def on_epoch_begin(self, epoch):
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, None)

    def on_batch_end(self, epoch, batch, totals):
        logs = {"loss": totals.loss_sum / totals.samples, "samples": totals.samples}
        if self.network.is_classifier:
            logs["accuracy"] = totals.n_correct / (totals.samples * self.network._units_per_sample)
        for callback in self._batching:
            k = callback.batch_interval
            if k is None or (batch + 1) % k == 0:
                callback.on_batch_end(batch, dict(logs))

    def on_epoch_end(self, epoch, logs):
        self._last_logs = logs
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)

    def on_train_end(self, history):
        for callback in self.callbacks:
            callback.on_train_end(self._last_logs)

    @contextlib.contextmanager
    def closing(self):
        """Lets callbacks release what they hold (a progress bar) when training ends in an exception."""
        try:
            yield
        except BaseException:
            for callback in self.callbacks:
                callback._close()
            raise


# -- monitoring a figure -------------------------------------------------------------------------
class _Monitor:
    """Tracks the best value of one figure of the epoch logs."""

    def __init__(self, owner, monitor, mode, min_delta):
        self.owner = owner
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be the name of a figure such as 'val_loss', got {type(monitor).__name__}")
        self.monitor = monitor
        mode = check_choice("mode", mode, ("auto", "min", "max"))
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.mode = mode
        self.min_delta = abs(check_real("min_delta", min_delta))

    def check(self, params):
        """Refuse up front a figure the fit will never report."""
        if self.monitor not in params["metrics"]:
            if self.monitor.startswith("val_") and not params["validation"]:
                raise ValueError(f"{type(self.owner).__name__} monitors {self.monitor!r}, but the fit has no "
                                 "validation data: give validation_data or validation_split, or monitor "
                                 "another figure")
            raise ValueError(f"{type(self.owner).__name__} monitors {self.monitor!r}, which fit does not report "
                             f"(it reports {', '.join(map(repr, params['metrics']))})")

    def value(self, callback, logs):
        """The monitored figure in `logs`, None on an epoch that skipped validation; ValueError if never there."""
        if self.monitor in logs:
            return float(logs[self.monitor])
        if self.monitor.startswith("val_") and callback.params.get("validation"):
            return None  # validation_freq skipped this epoch
        raise ValueError(f"{type(self.owner).__name__} monitors {self.monitor!r}, which fit does not report "
                         f"(it reports {', '.join(map(repr, logs))}); give validation_data or validation_split "
                         "for val_ figures, or monitor another")

    def improves(self, value, best):
        if best is None:
            return True
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta


class EarlyStopping(Callback):
    """Stop training when a figure has stopped improving; by default keep the best weights.

    Parameters
    ----------
    monitor : str
        A key of the epoch logs: 'val_loss' (default), 'val_accuracy', 'loss', ...
    min_delta : float >= 0
        A change smaller than this is no improvement.
    patience : int >= 0
        Epochs without improvement before stopping.
    mode : 'auto', 'min' or 'max'
        Whether smaller or larger is better; 'auto' is 'max' for accuracies.
    baseline : float, optional
        Training stops unless the figure improves on this within `patience` epochs.
    restore_best_weights : bool
        At the end of training, put back the parameters of the best epoch.
    start_from_epoch : int >= 0
        Epochs of warm-up that never count.

    Attributes
    ----------
    best, best_epoch (from 0), stopped_epoch (from 0; None when training ran to the end).
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", baseline=None,
                 restore_best_weights=True, start_from_epoch=0, verbose=0):
        super().__init__()
        self._monitor = _Monitor(self, monitor, mode, min_delta)
        self.monitor = monitor
        self.patience = check_int("patience", patience, minimum=0)
        self.baseline = None if baseline is None else check_real("baseline", baseline)
        self.restore_best_weights = check_bool("restore_best_weights", restore_best_weights)
        self.start_from_epoch = check_int("start_from_epoch", start_from_epoch, minimum=0)
        self.verbose = check_int("verbose", verbose, minimum=0)

    def check(self, params):
        self._monitor.check(params)

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best = self.baseline
        self.best_epoch = None
        self.best_weights = None
        self.stopped_epoch = None
        self._last_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        value = self._monitor.value(self, logs)
        if value is None or epoch < self.start_from_epoch:
            return
        if self._monitor.improves(value, self.best):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.network.parameters().copy()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.network.stop_training = True
            if self.verbose:
                print(f"Epoch {epoch + 1}: early stopping ({self.monitor} best {self.best:.6g} at epoch "
                      f"{(self.best_epoch or 0) + 1})", flush=True)

    _STATE = ("wait", "best", "best_epoch", "best_weights", "stopped_epoch", "_last_epoch")

    def get_state(self):
        return {name: getattr(self, name) for name in self._STATE}

    def set_state(self, state):
        for name in self._STATE:
            setattr(self, name, state[name])

    def on_train_end(self, logs=None):
        if self.best_weights is not None and self.best_epoch != self._last_epoch:
            self.network.parameters()[...] = self.best_weights
            if self.verbose:
                print(f"Restored the weights of epoch {self.best_epoch + 1}", flush=True)


class ModelCheckpoint(Callback):
    """Save the network after epochs with ``Network.save`` (atomic: a crash never leaves half a file).

    Parameters
    ----------
    path : str or os.PathLike
        The .npz file. May hold ``{epoch}`` (from 1) and log keys, e.g.
        ``"model-{epoch:03d}-{val_loss:.3f}.npz"``, formatted each epoch.
    monitor : str
        The figure deciding what "best" is (save_best_only).
    save_best_only : bool
        Save only when `monitor` improves; otherwise after every epoch.
    mode : 'auto', 'min' or 'max'
    """

    writer = True

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto", verbose=0):
        super().__init__()
        import os
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self.path = os.fspath(path)
        self.monitor = monitor
        self._monitor = _Monitor(self, monitor, mode, 0.0)
        self.save_best_only = check_bool("save_best_only", save_best_only)
        self.verbose = check_int("verbose", verbose, minimum=0)
        self.best = None

    def check(self, params):
        if self.save_best_only:
            self._monitor.check(params)
        try:  # every name in the path must be a figure of every epoch's logs
            self.path.format(epoch=1, **{name: 0.0 for name in params["metrics"]})
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"ModelCheckpoint's path {self.path!r} cannot be formatted with the epoch and the "
                             f"figures every epoch reports ({', '.join(params['metrics'])}): "
                             f"{type(error).__name__}: {error}") from None

    def get_state(self):
        return {"best": self.best}

    def set_state(self, state):
        self.best = state["best"]

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            value = self._monitor.value(self, logs)
            if value is None or not self._monitor.improves(value, self.best):
                return
            self.best = value
        path = self.path.format(epoch=epoch + 1, **logs)
        self.network.save(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved {path}", flush=True)


# -- learning rates --------------------------------------------------------------------------------
class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate from a schedule, before each epoch or each step.

    Parameters
    ----------
    schedule : callable
        ``schedule(index, lr) -> new lr``: index is the epoch (from 0, as in
        Keras) with ``per='epoch'``, or the optimizer's step count (steps
        taken so far, across fits) with ``per='step'``; lr the current rate.
    per : 'epoch' or 'step'
        Per step calls back into Python after every batch (slower on tiny
        networks; per epoch costs nothing).
    """

    def __init__(self, schedule, per="epoch", verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be callable as schedule(index, lr), got {type(schedule).__name__}")
        self.schedule = schedule
        self.per = check_choice("per", per, ("epoch", "step"))
        self.verbose = check_int("verbose", verbose, minimum=0)
        self.batch_interval = 1 if self.per == "step" else None

    @property
    def _wants_batches(self):
        return self.per == "step"

    def _set(self, index):
        optimizer = self.network.optimizer
        lr = self.schedule(index, optimizer.lr)
        try:
            optimizer.lr = lr
        except (TypeError, ValueError) as error:
            raise ValueError(f"the learning-rate schedule returned {lr!r} at {self.per} {index}: {error}") from None
        if self.verbose:
            print(f"{self.per} {index}: learning rate {optimizer.lr:.6g}", flush=True)

    def on_train_begin(self, logs=None):
        if self.per == "step":
            self._set(self.network.optimizer.step_count)

    def on_epoch_begin(self, epoch, logs=None):
        if self.per == "epoch":
            self._set(epoch)

    def on_batch_end(self, batch, logs=None):
        self._set(self.network.optimizer.step_count)


class _DecaySchedule(LearningRateScheduler):
    """A schedule of the initial rate: the optimizer's rate when training first starts, or `initial_lr`."""

    def __init__(self, per, initial_lr, verbose):
        super().__init__(self._rate, per=per, verbose=verbose)
        self.initial_lr = None if initial_lr is None else check_real("initial_lr", initial_lr)

    def on_train_begin(self, logs=None):
        if self.initial_lr is None:
            self.initial_lr = self.network.optimizer.lr
        super().on_train_begin(logs)

    def get_state(self):
        return {"initial_lr": self.initial_lr}

    def set_state(self, state):
        self.initial_lr = state["initial_lr"]

    def _rate(self, index, lr):
        raise NotImplementedError


class StepDecay(_DecaySchedule):
    """lr = initial · gamma^⌊index / step_size⌋ (PyTorch's StepLR)."""

    def __init__(self, step_size, gamma=0.1, per="epoch", initial_lr=None, verbose=0):
        super().__init__(per, initial_lr, verbose)
        self.step_size = check_int("step_size", step_size)
        self.gamma = check_real("gamma", gamma)
        if not self.gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")

    def _rate(self, index, lr):
        return self.initial_lr * self.gamma ** (index // self.step_size)


class ExponentialDecay(_DecaySchedule):
    """lr = initial · gamma^index (PyTorch's ExponentialLR)."""

    def __init__(self, gamma, per="epoch", initial_lr=None, verbose=0):
        super().__init__(per, initial_lr, verbose)
        self.gamma = check_real("gamma", gamma)
        if not self.gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")

    def _rate(self, index, lr):
        return self.initial_lr * self.gamma ** index


class CosineDecay(_DecaySchedule):
    """Linear warm-up to the initial rate over `warmup` epochs or steps, then a cosine down to `min_lr`.

    lr = initial · (index + 1) / warmup during warm-up, then
    min_lr + (initial − min_lr) · ½(1 + cos(π · t)), t = (index − warmup) / (total − warmup),
    held at min_lr after `total`.
    """

    def __init__(self, total, warmup=0, min_lr=0.0, per="epoch", initial_lr=None, verbose=0):
        super().__init__(per, initial_lr, verbose)
        self.total = check_int("total", total)
        self.warmup = check_int("warmup", warmup, minimum=0)
        if self.warmup >= self.total:
            raise ValueError(f"warmup ({warmup}) must be smaller than total ({total})")
        self.min_lr = check_real("min_lr", min_lr)
        if not self.min_lr >= 0:
            raise ValueError(f"min_lr must be >= 0, got {min_lr}")

    def _rate(self, index, lr):
        if index < self.warmup:
            return self.initial_lr * (index + 1) / self.warmup
        t = min((index - self.warmup) / (self.total - self.warmup), 1.0)
        rate = self.min_lr + (self.initial_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
        return max(rate, np.finfo(np.float64).tiny)  # optimizers need lr > 0


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when a figure has not improved for `patience` epochs.

    Parameters
    ----------
    monitor, mode, min_delta : as for EarlyStopping (min_delta default 1e-4)
    factor : float in (0, 1)
    patience : int >= 0
    cooldown : int >= 0
        Epochs to wait after a reduction before counting again.
    min_lr : float >= 0
        The rate never goes below this.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=1e-4, cooldown=0,
                 min_lr=0.0, verbose=0):
        super().__init__()
        self._monitor = _Monitor(self, monitor, mode, min_delta)
        self.monitor = monitor
        self.factor = check_real("factor", factor)
        if not 0 < self.factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.patience = check_int("patience", patience, minimum=0)
        self.cooldown = check_int("cooldown", cooldown, minimum=0)
        self.min_lr = check_real("min_lr", min_lr)
        self.verbose = check_int("verbose", verbose, minimum=0)
        self.best, self.wait, self.cooldown_left = None, 0, 0

    def check(self, params):
        self._monitor.check(params)

    def get_state(self):
        return {"best": self.best, "wait": self.wait, "cooldown_left": self.cooldown_left}

    def set_state(self, state):
        self.best, self.wait, self.cooldown_left = state["best"], state["wait"], state["cooldown_left"]

    def on_epoch_end(self, epoch, logs=None):
        value = self._monitor.value(self, logs)
        if value is None:
            return
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.wait = 0
        if self._monitor.improves(value, self.best):
            self.best, self.wait = value, 0
            return
        if self.cooldown_left > 0:
            return
        self.wait += 1
        if self.wait > self.patience:
            optimizer = self.network.optimizer
            new = max(optimizer.lr * self.factor, self.min_lr)
            if new < optimizer.lr and new > 0:
                optimizer.lr = new
                if self.verbose:
                    print(f"Epoch {epoch + 1}: learning rate reduced to {new:.6g}", flush=True)
            self.cooldown_left, self.wait = self.cooldown, 0


# -- progress ----------------------------------------------------------------------------------------
class ProgressBar(Callback):
    """One progress bar per epoch (samples, samples/s, loss and accuracy so far), then the epoch's figures.

    Parameters
    ----------
    kind : 'auto', 'tqdm', 'plain' or 'off'
        See backprop.progress.progress_bar.
    file : text stream, optional
        Default ``sys.stderr``.
    """

    writer = True

    def __init__(self, kind="auto", file=None):
        super().__init__()
        from .progress import KINDS
        self.kind = check_choice("kind", kind, KINDS)
        self.file = file
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self._open(epoch)

    def _open(self, epoch):
        from .progress import progress_bar
        self._bar = progress_bar(total=self.params["samples"], desc=f"Epoch {epoch + 1}/{self.params['epochs']}",
                                 unit="sample", file=self.file, kind=self.kind)
        self._shown = 0

    def on_batch_end(self, batch, logs=None):
        if self._bar is None:  # an epoch resumed from a backup: it began before the restart
            self._open(self.network.history.epoch[-1] if self.network.history.epoch else 0)
        self._bar.update(logs["samples"] - self._shown)
        self._shown = logs["samples"]
        self._bar.set_postfix({k: v for k, v in logs.items() if k != "samples"})

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is None:
            self._open(epoch)
        self._bar.update(self.params["samples"] - self._shown)
        self._bar.set_postfix({k: v for k, v in logs.items() if k != "lr"})
        self._bar.close()
        self._bar = None

    def _close(self):
        if self._bar is not None:  # training stopped inside an epoch
            self._bar.close()
            self._bar = None


# -- backups -----------------------------------------------------------------------------------------
class BackupAndRestore(Callback):
    """Back the fit up as it goes; a fit started again with the same callback resumes it exactly.

    The backup holds everything the rest of the fit depends on: parameters,
    the optimizer's state, step count and hyper-parameters (a schedule may
    have changed the rate), the network's random generator and the key of
    its dropout masks, the epoch, its
    order and the batches done of it with their running sums, every other
    callback's state (``get_state``/``set_state``: EarlyStopping's best value,
    wait and best weights, ReduceLROnPlateau's, schedules', ModelCheckpoint's
    best, your own callbacks'), whether a callback asked to stop, and the
    History so far. It is written atomically, so a process killed at any
    moment (SIGKILL included) leaves the previous backup or the new one.

    A fit that starts with this callback and finds a backup restores all of
    that after ``on_train_begin`` and goes on: run again until it finishes, a
    fit killed any number of times ends with parameters and History figures
    bit-identical to a fit never interrupted, for the same thread count (the
    History returned covers the whole run; only its ``seconds`` differ). An
    epoch resumed in the middle does not call ``on_epoch_begin`` again.

    Parameters
    ----------
    backup_dir : str or os.PathLike
        Folder of the backup (``backup.npz``), created when needed. One fit
        per folder.
    save_freq : 'epoch' or int >= 1
        Back up after every epoch, or also after every `save_freq` batches
        (the core then returns to Python that often).
    delete_checkpoint : bool
        Remove the backup when the fit ends normally (not on an exception).

    A backup of another architecture, dtype, optimizer kind, data shape or
    list of callbacks that keep state, or a file that is no valid backup, is
    refused by fit with ValueError before anything changes.

    Under ``backprop.distributed.fit`` rank 0 writes the backup and every
    rank reads it (the folder must be the same file system for all ranks);
    the replicas are compared after restoring.
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        super().__init__()
        import os
        if not isinstance(backup_dir, (str, bytes, os.PathLike)):
            raise TypeError(f"backup_dir must be a str or os.PathLike, got {type(backup_dir).__name__}")
        self.backup_dir = os.fsdecode(os.fspath(backup_dir))
        if save_freq != "epoch":
            if isinstance(save_freq, str):
                raise ValueError(f"save_freq must be 'epoch' or a number of batches, got {save_freq!r}")
            save_freq = check_int("save_freq", save_freq)
        self.save_freq = save_freq
        self.batch_interval = None if save_freq == "epoch" else save_freq
        self.delete_checkpoint = check_bool("delete_checkpoint", delete_checkpoint)
        self._loop = None
        self._backup = None

    @property
    def _wants_batches(self):
        return self.save_freq != "epoch"

    def _identity(self, params):
        """What a backup must share with the fit that resumes it."""
        network, optimizer = self._loop.network, self._loop.steps.optimizer
        return {"sizes": list(network.sizes), "activations": list(network.activations), "loss": network.loss,
                "dtype": network.dtype.name, "optimizer": type(optimizer).__name__,
                "samples": params["samples"], "batch_size": params["batch_size"],
                "callbacks": [type(c).__name__ for c in self._stateful()]}

    def _stateful(self):
        """The fit's other callbacks that keep state (override get_state), in order: what a backup holds."""
        return [c for c in self._loop.callbacks._all
                if c is not self and type(c).get_state is not Callback.get_state]

    def check(self, params):
        from . import _backup
        self._backup = _backup.read(self.backup_dir)
        if self._backup is None:
            return
        saved, expected = self._backup.get("identity", {}), self._identity(params)
        for key, value in expected.items():
            if saved.get(key) != value:
                raise ValueError(f"the backup in {self.backup_dir} is of another fit: its {key} is "
                                 f"{saved.get(key)!r}, this fit's {value!r}; remove it (or give another "
                                 "backup_dir) to start afresh")

    def _restore(self):
        """Put the network, optimizer, callbacks, History and the loop where the backup left them."""
        state, self._backup = self._backup, None
        if state is None:
            return
        loop = self._loop
        network, optimizer, steps = loop.network, loop.steps.optimizer, loop.steps
        network.parameters()[...] = state["parameters"]
        for name, value in state["optimizer"]["config"].items():
            setattr(optimizer, name, value)
        for name, value in state["optimizer"]["state"].items():
            optimizer.state[name][...] = value
        optimizer.step_count = state["optimizer"]["step_count"]
        network.rng.bit_generator.state = state["rng"]
        if network.dropout_seed != state["dropout_seed"]:  # drawn afresh in a new process when seed=None
            network._set_dropout_seed(state["dropout_seed"])
        network.stop_training = state["stop_training"]
        network.history.set_state(state["history"])
        for callback, callback_state in zip(self._stateful(), state["callbacks"]):
            callback.set_state(callback_state)
        position = state["position"]
        loop.epoch, loop.batches_done = position["epoch"], position["batches_done"]
        loop.order = position["order"]
        if position["totals"] is not None:
            from ._training import EpochTotals
            loop.totals = EpochTotals(**position["totals"])
        steps.after_restore()

    def _save(self):
        if not self._loop.steps.is_writer:
            return
        from . import _backup
        loop = self._loop
        network, optimizer = loop.network, loop.steps.optimizer
        totals = None if loop.totals is None else vars(loop.totals)
        state = {
            "identity": self._identity(loop.params),
            "parameters": network.parameters(),
            "optimizer": {"config": optimizer.get_config(), "step_count": optimizer.step_count,
                          "state": dict(optimizer.state)},
            "rng": network.rng.bit_generator.state,
            "dropout_seed": network.dropout_seed,
            "stop_training": bool(network.stop_training),
            "history": network.history.get_state(),
            "callbacks": [c.get_state() for c in self._stateful()],
            "position": {"epoch": loop.epoch, "batches_done": loop.batches_done, "order": loop.order,
                         "totals": totals},
        }
        _backup.write(self.backup_dir, state)

    def on_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch" and (batch + 1) % self.save_freq == 0:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._save()

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and self._loop.steps.is_writer:
            from . import _backup
            _backup.remove(self.backup_dir)
