"""Progress bars for long loops: tqdm when it is installed, a plain fallback otherwise.

>>> with progress_bar(total=1000, desc="Epoch 1/5", unit="sample") as bar:   # doctest: +SKIP
...     bar.update(500)
...     bar.set_postfix(loss=0.31, accuracy=0.9)

Both kinds show the count, the rate (``unit``/s) and the postfix figures; the
plain bar redraws one line in a terminal and, when the output is a file or a
pipe, prints a single line when it closes, so logs stay readable.
"""

from __future__ import annotations

import sys
import time

__all__ = ["progress_bar", "PlainProgressBar", "KINDS"]

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
        from tqdm import tqdm
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
