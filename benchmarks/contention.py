"""W9: W1 and W2 while busy-looping processes hold cores.

Real machines are rarely quiet. The suite starts 1, then 2 helper processes
that spin (``python -c "while True: pass"``) for as long as one load level
lasts, and times, interleaved as everywhere else, backprop native on 1 thread
and on the suite's thread count (its default), and PyTorch on 1 and on that
many threads. The helpers are children of the suite, in its session; they
are killed when the level ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import backprop as bp

from .peers import make_trainer

#: The helper counts W9 runs under.
LOADS = (1, 2)

#: W9's settings: {name: (peer, threads or None for the suite's count)}.
SETTINGS = {
    "native_1": ("native", 1),
    "native_default": ("native", None),
    "torch_1": ("torch", 1),
    "torch_n": ("torch", None),
}

#: A setting whose run takes longer than this is not repeated (a spinning
#: 2-thread team under load can take minutes per epoch).
GIVE_UP_SECONDS = 30.0

_BUSY_LOOP = "while True: pass"


@contextlib.contextmanager
def busy_helpers(count, settle=1.0):
    """`count` busy-looping Python processes for the duration of the block."""
    helpers = []
    try:
        for _ in range(count):
            helpers.append(subprocess.Popen([sys.executable, "-c", _BUSY_LOOP], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(settle)  # let them start spinning
        yield helpers
    finally:
        for helper in helpers:
            helper.kill()
        for helper in helpers:
            helper.wait()


class ThreadedTrainer:
    """A peer's trainer that runs on its own thread count, restoring the suite's after each call."""

    def __init__(self, peer, threads, suite_threads, workload, init_params):
        self.inner = make_trainer(peer, workload, init_params)
        self.peer, self.threads, self.suite_threads = peer, threads or suite_threads, suite_threads
        self.shares_initial_weights = self.inner.shares_initial_weights
        self.notes = self.inner.notes

    @property
    def syncs_order(self):
        return self.inner.syncs_order

    def _set(self, n):
        if self.peer == "native":
            bp.set_num_threads(n)
        else:
            import torch
            torch.set_num_threads(n)

    def _call(self, method, *args):
        self._set(self.threads)
        try:
            return method(*args)
        finally:
            self._set(self.suite_threads)

    def prepare(self, *args):
        self._call(self.inner.prepare, *args)

    def prime(self):
        self._call(self.inner.prime)

    def run(self):
        self._call(self.inner.run)


def settings_for(peers):
    """The W9 settings whose peer is available."""
    return [name for name, (peer, _) in SETTINGS.items() if peer in peers]


def labels(threads):
    """Report labels of the settings, with the suite's thread count filled in."""
    return {"native_1": "native, 1 thread", "native_default": f"native, {threads} (default)",
            "torch_1": "PyTorch, 1 thread", "torch_n": f"PyTorch, {threads} threads"}


def time_contention(workloads, arrays_for, peers, threads, repeats, settle, time_training, log):
    """W9's figures: {"loads": {"1": {"W1": figures, "W2": figures}, "2": ...}, ...}.

    Parameters
    ----------
    workloads : dict {"W1": Workload, "W2": Workload}, already sized for W9
    arrays_for : callable(Workload) -> (X, y)
    peers : list of available peer names
    threads : int, the suite's thread count ("default")
    repeats : int
    settle : float, seconds before each timed run
    time_training : suite.time_training
    log : callable(str), progress
    """
    names = settings_for(peers)

    def factory(name, workload, init):
        peer, n = SETTINGS[name]
        return ThreadedTrainer(peer, n, threads, workload, init)

    result = {"description": (f"W1 and W2 ({next(iter(workloads.values())).n_samples:,} samples each) while 1, "
                              "then 2 busy-looping processes run; native and PyTorch on 1 thread and on "
                              f"{threads}"),
              "settings": {name: {"peer": SETTINGS[name][0], "threads": SETTINGS[name][1] or threads}
                           for name in names},
              "labels": labels(threads), "loads": {}}
    for load in LOADS:
        level = {"load_average_at_start": _load_average()}
        with busy_helpers(load):
            for key, workload in workloads.items():
                log(f"W9: {key} with {load} busy process{'es' if load > 1 else ''}")
                X, y = arrays_for(workload)
                level[key] = time_training(workload, X, y, names, repeats, settle, factory=factory,
                                           give_up_after=GIVE_UP_SECONDS, reference="native_1")
        level["load_average_at_end"] = _load_average()
        result["loads"][str(load)] = level
    return result


def _load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None
