"""Progress bars for long loops: tqdm when it is installed, a plain fallback otherwise.

>>> with progress_bar(total=1000, desc="Epoch 1/5", unit="sample") as bar:   # doctest: +SKIP
...     bar.update(500)
...     bar.set_postfix(loss=0.31, accuracy=0.9)

Both kinds show the count, the rate (``unit``/s) and the postfix figures; the
plain bar redraws one line in a terminal and, when the output is a file or a
pipe, prints a single line when it closes, so logs stay readable.
"""

from __future__ import annotations

import re
import sys
import time

__all__ = ["progress_bar", "PlainProgressBar", "fit_with_progress", "KINDS"]

# Progress redraws per epoch: each is one call to Network.fit on a slice.
UPDATES_PER_EPOCH = 25

#: what progress_bar's ``kind`` accepts
KINDS = ("auto", "tqdm", "plain", "off")


def _format_value(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


class PlainProgressBar:
    """A dependency-free progress bar with tqdm's small API (update, set_postfix, close).

    Parameters
    ----------
    total : int
        Count that completes the bar.
    desc : str
        Text in front of the bar.
    unit : str
        Name of what is counted; the rate is shown as ``unit/s``.
    file : text stream, optional
        Default ``sys.stderr``, like tqdm.
    disable : bool
        Draw nothing at all.
    width : int
        Characters of the bar itself.
    min_interval : float
        Seconds between redraws in a terminal (redrawing on every update
        would cost more than a fast training step).
    """

    def __init__(self, total, desc="", unit="it", file=None, disable=False, width=24, min_interval=0.1):
        self.total = max(int(total), 0)
        self.desc = desc
        self.unit = unit
        self.file = sys.stderr if file is None else file
        self.disable = disable
        self.width = width
        self.min_interval = min_interval
        self.n = 0
        self.postfix = ""
        self.closed = False
        self._started = time.perf_counter()
        self._last_draw = 0.0
        self._interactive = _isatty(self.file)

    @property
    def elapsed(self):
        """Seconds since the bar was created."""
        return time.perf_counter() - self._started

    def update(self, n=1):
        """Advance by `n`; redraw (in a terminal, at most every min_interval seconds)."""
        self.n += n
        if self._interactive and not self.disable:
            now = time.perf_counter()
            if now - self._last_draw >= self.min_interval or self.n >= self.total:
                self._last_draw = now
                self._write("\r" + self.line())

    def set_postfix(self, ordered_dict=None, **values):
        """Figures shown after the bar, e.g. ``set_postfix({"loss": 0.25, "accuracy": 0.9})``.

        Like tqdm's: a dict keeps its order, keyword arguments follow it.
        """
        items = dict(ordered_dict or {}, **values)
        self.postfix = ", ".join(f"{key}={_format_value(value)}" for key, value in items.items())

    def set_postfix_str(self, text):
        """Free text shown after the bar."""
        self.postfix = str(text)

    def line(self):
        """The bar as one line of text."""
        fraction = min(self.n / self.total, 1.0) if self.total else 1.0
        filled = int(round(fraction * self.width))
        rate = self.n / max(self.elapsed, 1e-9)
        parts = [f"{self.desc}: " if self.desc else "",
                 f"{fraction:4.0%} |{'#' * filled}{'.' * (self.width - filled)}| ",
                 f"{self.n}/{self.total} [{self.elapsed:.2f}s, {rate:,.0f} {self.unit}/s]"]
        if self.postfix:
            parts.append(f" {self.postfix}")
        return "".join(parts)

    def close(self):
        """Draw the final state and end the line."""
        if self.closed:
            return
        self.closed = True
        if not self.disable:
            self._write(("\r" if self._interactive else "") + self.line() + "\n")

    def _write(self, text):
        self.file.write(text)
        self.file.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _tqdm_class():
    try:
        from tqdm import tqdm  # type: ignore[import-untyped]
    except ImportError:
        return None
    return tqdm


def progress_bar(total, desc="", unit="it", file=None, kind="auto"):
    """A progress bar: tqdm's when installed (``kind='auto'``), else a PlainProgressBar.

    Parameters
    ----------
    total : int
    desc : str
    unit : str
        What is counted; rates are shown as ``unit/s``.
    file : text stream, optional
        Default ``sys.stderr``.
    kind : 'auto', 'tqdm', 'plain' or 'off'
        'auto' is tqdm when it is installed and `file` is a terminal, else
        the plain bar (one line per bar in a log file); 'tqdm' insists on tqdm (ImportError naming the ``[progress]`` extra
        when it is missing); 'off' returns a bar that draws nothing.

    Returns
    -------
    An object with ``update(n)``, ``set_postfix(**values)``, ``close()``,
    usable as a context manager.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}")
    stream = sys.stderr if file is None else file
    # tqdm redraws with carriage returns, which fill a log file or a pipe with
    # every intermediate state: 'auto' uses it only in a terminal.
    if kind == "tqdm" or (kind == "auto" and _isatty(stream)):
        tqdm = _tqdm_class()
        if tqdm is not None:
            return tqdm(total=total, desc=desc, unit=unit, file=stream, leave=True, dynamic_ncols=True)
        if kind == "tqdm":
            raise ModuleNotFoundError('progress bars with tqdm need it installed: pip install "backprop-mlp[progress]"')
    return PlainProgressBar(total, desc=desc, unit=unit, file=file, disable=(kind == "off"))


def fit_with_progress(network, X, y, epochs=1, batch_size=32, optimizer=None, validation_data=None,
                      record_grad_norms=False, progress="auto", file=None):
    """Network.fit with a progress bar per epoch showing loss, accuracy and samples/s.

    Trains exactly as ``network.fit(X, y, epochs, batch_size, optimizer,
    shuffle=True, validation_data=validation_data)`` would: the same
    shuffling order from the network's seeded generator and the same
    mini-batches, hence the same weights. Each epoch is run as a few calls
    of ``fit(shuffle=False)`` on consecutive slices of the shuffled data that
    start on batch boundaries (the optimizer's state carries over between
    calls), and the bar advances after each slice.

    Parameters
    ----------
    network : Network
    X, y, epochs, batch_size, optimizer, validation_data, record_grad_norms
        As for Network.fit.
    progress : 'auto', 'tqdm', 'plain' or 'off'
        The kind of bar (see progress_bar).
    file : text stream, optional
        Where the bars go; default ``sys.stderr``.

    Returns
    -------
    History, also stored as ``network.history``.

    Raises
    ------
    ValueError, TypeError
        Bad input, checked before any training.
    FloatingPointError
        As Network.fit, naming the epoch and batch of the whole epoch.
    """
    from .history import History

    # Check everything once, up front: a bad label in a late slice must not
    # stop training half-way, and converted arrays make the slices' checks cheap.
    X, labels, targets, epochs, batch_size, optimizer, validation = network._check_fit_arguments(
        X, y, epochs, batch_size, optimizer, validation_data)
    y = labels if labels is not None else targets
    n = X.shape[0]
    if validation is not None:
        X_val, val_labels, val_targets = validation
        validation = (X_val, val_labels if val_labels is not None else val_targets)
    if progress not in KINDS:
        raise ValueError(f"progress must be one of {', '.join(map(repr, KINDS))}; got {progress!r}")

    n_batches = -(-n // batch_size)
    chunk = -(-n_batches // UPDATES_PER_EPOCH) * batch_size  # slices start on batch boundaries
    history = History()
    for epoch in range(1, epochs + 1):
        # The draw fit(shuffle=True) makes, from the same generator.
        order = network._rng.permutation(n)
        X_epoch, y_epoch = X[order], y[order]
        sums = {"loss": 0.0, "accuracy": 0.0}
        norm_sum = 0.0
        seconds = 0.0
        bar = progress_bar(total=n, desc=f"Epoch {epoch}/{epochs}", unit="sample", file=file, kind=progress)
        try:
            for start in range(0, n, chunk):
                stop = min(start + chunk, n)
                started = time.perf_counter()
                try:
                    part = network.fit(X_epoch[start:stop], y_epoch[start:stop], epochs=1, batch_size=batch_size,
                                       optimizer=optimizer, shuffle=False, record_grad_norms=record_grad_norms)
                except FloatingPointError as error:
                    raise FloatingPointError(_whole_epoch_message(str(error), epoch, start // batch_size,
                                                                  n_batches)) from None
                seconds += time.perf_counter() - started
                for key in sums:
                    if key in part:
                        sums[key] += part[key][0] * (stop - start)
                if record_grad_norms:
                    norm_sum = norm_sum + part.grad_norms[0] * -(-(stop - start) // batch_size)
                logs = {key: value / stop for key, value in sums.items() if key in part}
                bar.update(stop - start)
                bar.set_postfix(logs)  # a dict keeps its order; the bar shows samples/s itself
            if validation is not None:
                logs.update({f"val_{k}": v for k, v in network.evaluate(*validation).items()})
                bar.set_postfix(logs)
        finally:
            bar.close()
        history._append(epoch, logs, norm_sum / n_batches if record_grad_norms else None, seconds)
    network.history = history
    return history


def _whole_epoch_message(message, epoch, batch_offset, n_batches):
    """Network.fit's divergence message, renumbered from the slice to the whole epoch."""
    match = re.search(r"batch (\d+) of \d+", message)
    batch = f"batch {int(match.group(1)) + batch_offset} of {n_batches}" if match else "a batch"
    return re.sub(r"at epoch \d+, batch \d+ of \d+", f"at epoch {epoch}, {batch}", message) \
        if match else f"{message} (epoch {epoch})"
