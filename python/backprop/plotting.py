"""Pictures of training: loss and accuracy curves, per-layer gradient norms.

Needs matplotlib (``pip install "backprop-mlp[plot]"``). Figures are built with
``matplotlib.figure.Figure`` rather than pyplot, so they work under any
backend (Agg on a server included), never open a window by themselves and
never pile up in pyplot's list of open figures. In Jupyter a returned Figure
displays inline; in a script, pass ``path=`` or call ``fig.savefig``. To
draw into your own pyplot layout, pass the Axes to draw into.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_history", "plot_grad_norms"]

INSTALL_HINT = 'pip install "backprop-mlp[plot]"'


def _figure_class():
    """matplotlib's Figure, or an ImportError that says how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ModuleNotFoundError(f"plotting needs matplotlib, which is not installed: {INSTALL_HINT}",
                                  name="matplotlib") from error
    return Figure


def _series(history):
    """{name: (epochs, values)} from a History (or anything with ``history`` and
    ``epochs_of``) or a plain dict of equally long lists (epochs 1, 2, ...)."""
    if hasattr(history, "history") and hasattr(history, "epochs_of"):
        return {key: (history.epochs_of(key), values) for key, values in history.history.items()}
    if isinstance(history, dict):
        lengths = {len(v) for v in history.values()}
        if len(lengths) > 1:
            raise ValueError("every entry of the history dict needs one value per epoch")
        return {key: (list(range(1, len(values) + 1)), values) for key, values in history.items()}
    raise TypeError(f"history must be a backprop History or a dict of lists, got {type(history).__name__}")


def _finish(figure, path):
    if path is not None:
        figure.savefig(path, dpi=120, bbox_inches="tight")
    return figure


def plot_history(history, path=None, axes=None, title=None):
    """Loss and (for classifiers) accuracy per epoch, training and validation.

    Parameters
    ----------
    history : History or dict of lists
        What ``Network.fit`` returns (or ``History.history``): ``loss`` and,
        where recorded, ``val_loss``, ``accuracy``, ``val_accuracy``.
    path : str or os.PathLike, optional
        Also save the figure there (format from the extension: .png, .svg, .pdf).
    axes : matplotlib Axes or sequence of Axes, optional
        Draw into these (one for the loss, a second for the accuracy)
        instead of a new figure.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ModuleNotFoundError
        When matplotlib is not installed (``pip install "backprop-mlp[plot]"``).
    ValueError
        When the history holds no epochs.
    """
    Figure = _figure_class()
    from matplotlib.ticker import MaxNLocator
    records = _series(history)
    if "loss" not in records or not records["loss"][0]:
        raise ValueError("the history holds no epochs to plot; train with Network.fit first")
    has_accuracy = "accuracy" in records or "val_accuracy" in records
    n_panels = 2 if has_accuracy else 1
    if axes is None:
        figure = Figure(figsize=(5.0 * n_panels, 3.8), layout="constrained")
        axes = figure.subplots(1, n_panels, squeeze=False)[0]
    else:
        axes = list(np.atleast_1d(axes))
        if len(axes) < n_panels:
            raise ValueError(f"this history needs {n_panels} Axes (loss and accuracy), got {len(axes)}")
        figure = axes[0].figure
    panels = [("loss", axes[0])] + ([("accuracy", axes[1])] if has_accuracy else [])
    for name, ax in panels:
        for key, label, style in ((name, "training", "-"), (f"val_{name}", "validation", "--")):
            if key in records:
                epochs, values = records[key]
                ax.plot(epochs, values, style, marker="o" if len(epochs) < 30 else None, markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        if name == "loss" and min(min(records.get(k, (0, [1.0]))[1]) for k in ("loss", "val_loss")) > 0:
            ax.set_yscale("log")  # losses span decades; a log scale shows late progress
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        figure.suptitle(title)
    return _finish(figure, path)


def plot_grad_norms(history, path=None, ax=None, title=None, log=True, legend=True):
    """Per-layer gradient norms per epoch: vanishing or exploding gradients at a glance.

    Parameters
    ----------
    history : History or array-like (n_epochs, n_layers)
        A History from ``Network.fit(..., record_grad_norms=True)``, or its
        ``grad_norms`` array: the mean Frobenius norm ‖∂R/∂W‖ of each layer
        over each epoch's mini-batches.
    path : str or os.PathLike, optional
        Also save the figure there.
    ax : matplotlib Axes, optional
        Draw into this Axes instead of a new figure.
    title : str, optional
    log : bool
        Logarithmic y axis (norms of a deep network span many decades).
    legend : bool
        Name the layers in a legend (colours run from dark, the first
        layer, to light, the output layer, either way).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ModuleNotFoundError
        When matplotlib is not installed.
    ValueError
        When no gradient norms were recorded.
    """
    Figure = _figure_class()
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator
    norms = history.grad_norms if hasattr(history, "grad_norms") else history
    if norms is None:
        raise ValueError("no gradient norms were recorded: train with fit(..., record_grad_norms=True)")
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim != 2 or norms.size == 0:
        raise ValueError(f"gradient norms must be a non-empty (n_epochs, n_layers) array, got shape {norms.shape}")
    if ax is None:
        figure = Figure(figsize=(5.5, 3.8), layout="constrained")
        ax = figure.subplots()
    else:
        figure = ax.figure
    epochs = np.arange(1, norms.shape[0] + 1)
    n_layers = norms.shape[1]
    # Colour runs from the first layer (dark) to the output layer (light), so
    # a fan of lines ordered by depth reads as vanishing (or exploding) gradients.
    colours = colormaps["viridis"](np.linspace(0.0, 0.9, n_layers))
    for layer in range(n_layers):
        label = f"layer {layer + 1}" + (" (output)" if layer == n_layers - 1 else "")
        ax.plot(epochs, norms[:, layer], color=colours[layer], label=label)
    if log and np.all(norms > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("mean ‖∂R/∂W‖ per layer")
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend(fontsize="small", ncol=2 if n_layers > 5 else 1)
    if title:
        ax.set_title(title)
    return _finish(figure, path)
