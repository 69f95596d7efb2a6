"""Thread settings, and W7: W1 and W2 on backprop native under each setting, interleaved.

A setting is a peer, its thread count and, for backprop's core, who decides
whether a step's team shares the work:

    native_1        ``bp.set_num_threads(1)``
    native_default  the suite's thread count with the core's LoadMonitor
                    deciding step by step whether the workers join (what a
                    fresh process does without any call)
    native_shared   the suite's thread count with sharing forced on
                    (``backprop._core._set_sharing(1)``): a fixed setting
    torch_1, torch_n  PyTorch on 1 thread and on the suite's count

The default should be as fast as the better fixed setting (1 thread, or
every thread always sharing) wherever it runs: W7 compares them on an idle
machine, W9 (``contention``) beside busy processes. W7 also gives the
2-thread speed-up over 1 thread.
"""

from __future__ import annotations

import backprop as bp

from .peers import make_trainer

#: {name: (peer, threads or None for the suite's count, sharing: -1 the core decides, 1 always)}.
SETTINGS = {
    "native_1": ("native", 1, -1),
    "native_default": ("native", None, -1),
    "native_shared": ("native", None, 1),
    "torch_1": ("torch", 1, -1),
    "torch_n": ("torch", None, -1),
}

#: The fixed native settings the default is compared with.
FIXED = ("native_1", "native_shared")


def set_native(threads, sharing=-1):
    """backprop's core on `threads` threads; `sharing` 1 makes every team share, -1 lets it decide."""
    from backprop import _core
    bp.set_num_threads(threads)
    _core._set_sharing(sharing)


class ThreadedTrainer:
    """A peer's trainer that runs under one setting, restoring the suite's after each call."""

    def __init__(self, setting, suite_threads, workload, init_params):
        self.peer, threads, self.sharing = SETTINGS[setting]
        self.inner = make_trainer(self.peer, workload, init_params)
        self.threads, self.suite_threads = threads or suite_threads, suite_threads
        self.shares_initial_weights = self.inner.shares_initial_weights
        self.notes = self.inner.notes

    @property
    def syncs_order(self):
        return self.inner.syncs_order

    def _set(self, threads, sharing):
        if self.peer == "native":
            set_native(threads, sharing)
        else:
            import torch
            torch.set_num_threads(threads)

    def _call(self, method, *args):
        self._set(self.threads, self.sharing)
        try:
            return method(*args)
        finally:
            self._set(self.suite_threads, -1)

    def prepare(self, *args):
        self._call(self.inner.prepare, *args)

    def prime(self):
        self._call(self.inner.prime)

    def run(self):
        self._call(self.inner.run)


def factory_for(threads):
    """A ``time_training`` factory whose peer names are setting names."""
    def factory(name, workload, init):
        return ThreadedTrainer(name, threads, workload, init)
    return factory


def labels(threads):
    """Report labels of the settings, with the suite's thread count filled in."""
    return {"native_1": "native, 1 thread", "native_default": f"native, {threads} (default)",
            "native_shared": f"native, {threads} shared", "torch_1": "PyTorch, 1 thread",
            "torch_n": f"PyTorch, {threads} threads"}


def default_over_best_fixed(seconds):
    """native default's time over the faster fixed setting's, or None without both."""
    fixed = [seconds[name] for name in FIXED if name in seconds]
    if "native_default" not in seconds or not fixed:
        return None
    return seconds["native_default"] / min(fixed)


def time_threads(workloads, arrays_for, threads, repeats, settle, time_training, log):
    """W7's figures: each workload's epoch under native_1, native_default and native_shared.

    Parameters
    ----------
    workloads : dict {"W1": Workload, "W2": Workload}
    arrays_for : callable(Workload) -> (X, y)
    threads : int, the suite's thread count
    repeats : int
    settle : float, seconds before each timed run
    time_training : suite.time_training
    log : callable(str), progress

    Returns
    -------
    dict: description, threads, threads_reported (what bp.get_num_threads() says for `threads`: a capped
    request shows here), settings, labels, and per workload time_training's figures (keyed by setting)
    plus speedup (1 thread / default), speedup_shared (1 thread / shared) and default_over_best_fixed.
    With one thread only native_1 runs.
    """
    names = ["native_1"] + (["native_default", "native_shared"] if threads > 1 else [])
    set_native(threads)
    result = {"description": (f"W1 and W2 on backprop native: 1 thread, {threads} threads as set by default "
                              f"(the core decides when to share) and {threads} always sharing")
                             if threads > 1 else "W1 and W2 on backprop native, 1 thread (nothing to compare)",
              "threads": threads, "threads_reported": bp.get_num_threads(), "settings": names,
              "labels": labels(threads), "workloads": {}}
    for key, workload in workloads.items():
        log(f"W7: {key} native, {', '.join(names)}")
        X, y = arrays_for(workload)
        figures = time_training(workload, X, y, names, repeats, settle, factory=factory_for(threads),
                                reference="native_1")
        seconds = figures["seconds"]
        if "native_1" in seconds:
            for name, field in (("native_default", "speedup"), ("native_shared", "speedup_shared")):
                if name in seconds:
                    figures[field] = seconds["native_1"] / seconds[name]
        figures["default_over_best_fixed"] = default_over_best_fixed(seconds)
        result["workloads"][key] = figures
    return result
