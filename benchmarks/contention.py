"""W9: W1 and W2 while busy-looping processes hold cores.

Real machines are rarely quiet. The suite starts 1, then 2 helper processes
that spin (``python -c "while True: pass"``) for as long as one load level
lasts, and times, interleaved as everywhere else, backprop native on 1 thread
and on the suite's thread count (its default), and PyTorch on 1 and on that
many threads; with one busy process also native on the suite's thread count
with sharing forced on, the other fixed setting the default is compared
with (``threads``). The helpers are children of the suite, in its session; they
are killed when the level ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

from .threads import SETTINGS, factory_for, labels

#: The helper counts W9 runs under.
LOADS = (1, 2)

#: The settings (``threads.SETTINGS``) W9 times at every load, and those it adds with one busy process.
EVERY_LOAD = ("native_1", "native_default", "torch_1", "torch_n")
ONE_BUSY = ("native_shared",)

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


def settings_for(peers, load, threads):
    """The W9 settings whose peer is available, for `load` busy processes."""
    names = list(EVERY_LOAD) + (list(ONE_BUSY) if load == 1 and threads > 1 else [])
    return [name for name in names if SETTINGS[name][0] in peers]


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
    result = {"description": (f"W1 and W2 ({next(iter(workloads.values())).n_samples:,} samples each) while 1, "
                              "then 2 busy-looping processes run; native and PyTorch on 1 thread and on "
                              f"{threads}" + (f", and with 1 busy process native on {threads} always sharing"
                                              if threads > 1 else "")),
              "settings": {name: {"peer": SETTINGS[name][0], "threads": SETTINGS[name][1] or threads,
                                  "sharing": "forced" if SETTINGS[name][2] == 1 else "the core decides"}
                           for name in settings_for(peers, 1, threads)},
              "labels": labels(threads), "loads": {}}
    for load in LOADS:
        level = {"load_average_at_start": _load_average()}
        with busy_helpers(load):
            for key, workload in workloads.items():
                log(f"W9: {key} with {load} busy process{'es' if load > 1 else ''}")
                X, y = arrays_for(workload)
                level[key] = time_training(workload, X, y, settings_for(peers, load, threads), repeats, settle,
                                           factory=factory_for(threads),
                                           give_up_after=GIVE_UP_SECONDS, reference="native_1")
        level["load_average_at_end"] = _load_average()
        result["loads"][str(load)] = level
    return result


def _load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None
