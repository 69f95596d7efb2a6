"""Row "CL": W2's epoch trained by a hand-written loop, against Network.fit and PyTorch's own loop.

    python -m benchmarks --workloads CL [--quick]

One thread everywhere, float32, plain SGD, the same order of rows. Each loop
takes its batch as a user would, ``X[order[i:i + B]]``:

- ``fit``: ``Network.fit`` over the epoch (the core gathers the rows);
- ``train_on_batch``: ``net.train_on_batch(X_b, y_b)`` per batch;
- ``gradients + apply``: ``net.gradients(X_b, y_b, flat=True)`` then
  ``net.apply_gradients(g)`` per batch;
- ``PyTorch loop``: ``zero_grad``, ``cross_entropy(model(X_b), y_b)``,
  ``backward``, ``step`` per batch, the same network and initial weights.

Loops run interleaved, `repeats` times each after a warm-up; the figure is
the median epoch time. Goals: train_on_batch ≤ 1.10 × fit, gradients + apply
≤ 1.20 × fit, both ≤ 0.75 × PyTorch's loop.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import backprop as bp

from .peers import availability

LOOPS = ("fit", "train_on_batch", "gradients_apply", "torch")
LABELS = {"fit": "Network.fit", "train_on_batch": "train_on_batch loop", "gradients_apply": "gradients + apply",
          "torch": "PyTorch loop"}
GOALS = (("CL.1", "train_on_batch", "fit", 1.10), ("CL.2", "gradients_apply", "fit", 1.20),
         ("CL.3", "train_on_batch", "torch", 0.75), ("CL.4", "gradients_apply", "torch", 0.75))


def _backprop_loops(workload, init):
    def network():
        net = bp.Network(workload.sizes, activation=workload.activation, dtype=workload.dtype)
        net.parameters()[...] = init
        return net

    def fit(X, y, order):
        network().fit(X, y, batch_size=workload.batch_size, shuffle=lambda epoch: order,
                      optimizer=bp.SGD(lr=workload.lr))

    def train_on_batch(X, y, order):
        net, optimizer, B = network(), bp.SGD(lr=workload.lr), workload.batch_size
        for first in range(0, order.shape[0], B):
            rows = order[first:first + B]
            net.train_on_batch(X[rows], y[rows], optimizer=optimizer)

    def gradients_apply(X, y, order):
        net, optimizer, B = network(), bp.SGD(lr=workload.lr), workload.batch_size
        for first in range(0, order.shape[0], B):
            rows = order[first:first + B]
            _, grads = net.gradients(X[rows], y[rows], flat=True)
            net.apply_gradients(grads, optimizer=optimizer)

    return {"fit": fit, "train_on_batch": train_on_batch, "gradients_apply": gradients_apply}


def _torch_loop(workload, init):
    import torch
    from torch import nn

    layers, at = [], 0
    for i, (n_in, n_out) in enumerate(zip(workload.sizes[:-1], workload.sizes[1:])):
        linear = nn.Linear(n_in, n_out)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(init[at:at + n_in * n_out].reshape(n_out, n_in)))
            linear.bias.copy_(torch.from_numpy(init[at + n_in * n_out:at + n_in * n_out + n_out]))
        at += n_in * n_out + n_out
        layers.append(linear)
        if i < len(workload.sizes) - 2:
            layers.append(nn.ReLU() if workload.activation == "relu" else nn.Sigmoid())
    template = nn.Sequential(*layers)

    def loop(X, y, order):
        import copy
        model = copy.deepcopy(template)
        optimizer = torch.optim.SGD(model.parameters(), lr=workload.lr)
        X_t, y_t, B = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64)), workload.batch_size
        order_t = torch.from_numpy(order)
        for first in range(0, order.shape[0], B):
            rows = order_t[first:first + B]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(X_t[rows]), y_t[rows])
            loss.backward()
            optimizer.step()

    return loop


def time_custom_loops(workload, X, y, repeats, settle=None):
    """Median epoch seconds of each loop (see the module's docstring), and their ratios."""
    rng = np.random.default_rng(workload.seed)
    init = bp.Network(workload.sizes, activation=workload.activation, dtype=workload.dtype,
                      seed=workload.seed).parameters().copy()
    loops = _backprop_loops(workload, init)
    available = availability()
    threads_before = bp.get_num_threads()
    bp.set_num_threads(1)
    torch_threads = None
    if available.get("torch", (False,))[0]:
        import torch
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        loops["torch"] = _torch_loop(workload, init)
    try:
        warm = min(X.shape[0], 4 * workload.batch_size)
        for run in loops.values():
            run(X[:warm], y[:warm], np.arange(warm, dtype=np.int64))
        seconds = {name: [] for name in loops}
        for repeat in range(repeats):
            order = rng.permutation(X.shape[0])
            names = list(loops)
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:  # rotate who goes first
                if settle:
                    settle()
                started = time.perf_counter()
                loops[name](X, y, order)
                seconds[name].append(time.perf_counter() - started)
    finally:
        bp.set_num_threads(threads_before)
        if torch_threads is not None:
            import torch
            torch.set_num_threads(torch_threads)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    ratios = {goal_id: median[a] / median[b] for goal_id, a, b, _ in GOALS if a in median and b in median}
    return {"description": f"W2 by hand-written loops, 1 thread: {workload.describe()}", "seconds": median,
            "all_seconds": seconds, "ratios": ratios, "load_average": list(_load_average())}


def _load_average():
    try:
        import os
        return os.getloadavg()
    except OSError:
        return ()


def report_lines(figures):
    seconds = figures["seconds"]
    lines = [f"CL    {figures['description']}", f"  {'loop':<22}{'epoch s':>10}{'× fit':>8}{'× PyTorch':>11}"]
    for name in LOOPS:
        if name in seconds:
            torch_ratio = f"{seconds[name] / seconds['torch']:11.2f}" if "torch" in seconds else f"{'-':>11}"
            lines.append(f"  {LABELS[name]:<22}{seconds[name]:10.3f}{seconds[name] / seconds['fit']:8.2f}{torch_ratio}")
    if figures.get("load_average"):
        lines.append("  load average at the end: " + " ".join(f"{v:.2f}" for v in figures["load_average"]))
    return lines + [""]


def goal_rows(figures):
    """Rows for the goals table, in evaluate_goals' format."""
    if not figures:
        return []
    rows = []
    for goal_id, loop, against, bound in GOALS:
        figure = figures["ratios"].get(goal_id)
        rows.append({"id": goal_id, "workload": "CL", "bound": bound, "measured": figure,
                     "what": f"{LABELS[loop]} / {LABELS[against]}", "goal": f"≤ {bound:g}",
                     "status": "n/a" if figure is None else "PASS" if figure <= bound else "MISS",
                     "note": "" if figure is not None else f"needs {LABELS[against]}"})
    return rows
