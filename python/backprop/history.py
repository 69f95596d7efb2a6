"""History: the per-epoch figures of one call to Network.fit."""

from __future__ import annotations

import numpy as np


class History:
    """Per-epoch training figures.

    Attributes
    ----------
    history : dict of str -> list of float
        "loss" (training loss per sample, averaged over the epoch, each batch's
        measured before its update), "lr" (the optimizer's rate at the end of the
        epoch) and, as they apply, "accuracy", "val_loss", "val_accuracy" (only
        on the epochs that validated: see epochs_of).
    epoch : list of int
        1-based epoch numbers.
    seconds : list of float
        Wall time of each epoch's training.
    grad_norms : ndarray (n_epochs, n_layers) or None
        Mean Frobenius norm of ∂R/∂W per layer and epoch, when fit was called
        with record_grad_norms=True: small values in early layers show
        vanishing gradients, growing ones exploding gradients.
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.seconds = []
        self._grad_norms = []
        self._epochs_of = {}

    def _append(self, epoch, logs, grad_norms, seconds):
        self.epoch.append(epoch)
        self.seconds.append(seconds)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
            self._epochs_of.setdefault(key, []).append(epoch)
        if grad_norms is not None:
            self._grad_norms.append(np.asarray(grad_norms, dtype=np.float64))

    def get_state(self):
        """Everything recorded so far, for a backup (BackupAndRestore)."""
        return {name: value for name, value in vars(self).items() if name != "_grad_norms"} | \
            {"_grad_norms": [norms.tolist() for norms in self._grad_norms]}

    def set_state(self, state):
        """Put back what get_state returned."""
        for name, value in state.items():
            setattr(self, name, value)
        self._grad_norms = [np.asarray(norms, dtype=np.float64) for norms in self._grad_norms]

    def epochs_of(self, key):
        """The epochs (from 1) at which `key` was recorded: every epoch, or the validated ones."""
        return list(self._epochs_of[key])

    @property
    def grad_norms(self):
        return np.vstack(self._grad_norms) if self._grad_norms else None

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def __len__(self):
        return len(self.epoch)

    def __repr__(self):
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items())
        return f"History({len(self)} epochs{': ' + last if last else ''})"

    def plot(self, path=None, axes=None, title=None):
        """Loss and accuracy per epoch, training and validation (matplotlib).

        See backprop.plotting.plot_history; per-layer gradient norms are
        drawn by backprop.plotting.plot_grad_norms.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Also save the figure there (.png, .svg, .pdf, ...).
        axes : matplotlib Axes or sequence of two, optional
            Draw into these instead of a new figure.
        title : str, optional

        Returns
        -------
        matplotlib.figure.Figure

        Raises
        ------
        ModuleNotFoundError
            When matplotlib is missing: ``pip install "backprop-mlp[plot]"``.
        """
        from .plotting import plot_history
        return plot_history(self, path=path, axes=axes, title=title)
