"""The arithmetic limit: how long a workload's matrix products take at the machine's GEMM rate.

The rate is that of the fastest single-core 1024 × 1024 product measured in
the run, per dtype, among NumPy's BLAS, PyTorch's ``torch.mm`` and
backprop's own core (a ``Network([1024, 1024])`` forward pass of 1024 rows;
its bias add is 0.1 % of the work). No single library stands for the
hardware: on an AVX-512 Zen 5 core OpenBLAS reached 66 G multiply-adds/s in
float32 where backprop's Eigen kernel reached 116 G/s, so a limit taken from
OpenBLAS alone would make every ratio look better than it is. Each
candidate's rate is the best of ``TIMINGS`` timings after a warm-up.

A workload's limit is its multiply-adds over (rate × cores), where cores is
what the core's team uses for the workload's steps: about one thread per
million multiply-adds of a step, at most the suite's threads
(``team_size_for`` in cpp/backprop/team.hpp), so W3 counts one core and
W1/W2 two on the 2-thread suite. Only the products are counted: activations,
the loss, the optimizer update, gathers and Python cost time the limit
leaves out, which is why it is a limit.
"""

from __future__ import annotations

import time

import numpy as np

import backprop as bp

#: Side of the square product the rate is measured on.
GEMM_SIZE = 1024

#: Timings per candidate after the warm-up; the rate is the best.
TIMINGS = 5

#: Multiply-adds per step per thread of the core's team (team_size_for).
MACS_PER_THREAD = 1.0e6


def macs_per_sample(sizes):
    """Multiply-adds of one sample's forward products through layers of widths `sizes`."""
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def epoch_macs(sizes, n_samples):
    """Multiply-adds of one epoch's products: forward and weight gradients of every layer, input
    gradients of layers 2..L (the batch's own gradient is not needed)."""
    return n_samples * (3 * macs_per_sample(sizes) - sizes[0] * sizes[1])


def step_cores(sizes, batch_size, threads):
    """Threads the core's team uses for a training step of `batch_size` rows, at most `threads`."""
    wanted = int(3 * batch_size * macs_per_sample(sizes) / MACS_PER_THREAD)
    return min(threads, max(1, wanted))


def _best_seconds(call, repeats):
    call()  # warm-up: pages, code, thread pools
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def _numpy_seconds(a, repeats):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # BLAS on its own threads would overstate one core's rate
        raise RuntimeError("threadpoolctl is needed to hold NumPy's BLAS to one thread") from None
    out = np.empty_like(a)
    with threadpool_limits(limits=1, user_api="blas"):
        return _best_seconds(lambda: np.matmul(a, a, out=out), repeats)


def _torch_seconds(a, repeats):
    import torch
    tensor = torch.from_numpy(a)
    out = torch.empty_like(tensor)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _best_seconds(lambda: torch.mm(tensor, tensor, out=out), repeats)
    finally:
        torch.set_num_threads(previous)


def _native_seconds(a, repeats):
    from backprop import _core  # noqa: F401  (without it Network would fall back to NumPy)
    n = a.shape[0]
    net = bp.Network([n, n], output="identity", loss="mse", dtype=a.dtype.name, seed=0)
    previous = bp.get_num_threads()
    bp.set_num_threads(1)
    try:
        return _best_seconds(lambda: net.forward(a), repeats)
    finally:
        bp.set_num_threads(previous)


#: The candidates, in the order they run: {name: seconds(a, repeats) of a @ a on one thread}.
CANDIDATES = {"native": _native_seconds, "numpy": _numpy_seconds, "torch": _torch_seconds}


def gemm_rate(dtype, n=GEMM_SIZE, repeats=TIMINGS):
    """The single-core GEMM rate of `dtype`: every candidate's, and the fastest.

    Returns
    -------
    dict: candidates {name: multiply-adds per second}, unavailable {name: why}, fastest (name),
    multiply_adds_per_second (the fastest's rate), size n
    """
    a = np.random.default_rng(0).random((n, n)).astype(dtype)
    candidates, unavailable = {}, {}
    for name, seconds_of in CANDIDATES.items():
        try:
            candidates[name] = n ** 3 / seconds_of(a, repeats)
        except Exception as error:  # a missing library costs its candidate, not the run
            unavailable[name] = f"{type(error).__name__}: {error}"
    fastest = max(candidates, key=candidates.get) if candidates else None
    return {"size": n, "candidates": candidates, "unavailable": unavailable, "fastest": fastest,
            "multiply_adds_per_second": candidates[fastest] if fastest else None}


class Rates:
    """Each dtype's GEMM rate, measured the first time a workload asks for it."""

    def __init__(self, log=None):
        self.measured = {}
        self._log = log

    def __call__(self, dtype):
        if dtype not in self.measured:
            if self._log:
                self._log(f"single-core {GEMM_SIZE} × {GEMM_SIZE} GEMM rates, {dtype} (the arithmetic limit)")
            self.measured[dtype] = gemm_rate(dtype)
        return self.measured[dtype]


def limit(macs, cores, rate, native_seconds=None):
    """The limit of `macs` multiply-adds on `cores` cores at `rate` (a ``gemm_rate`` result).

    Returns
    -------
    dict: macs, cores, gmacs_per_second (one core's), rate_source, seconds, and native_over_limit
    when `native_seconds` is given; None when no candidate could be measured.
    """
    per_second = rate["multiply_adds_per_second"]
    if not per_second:
        return None
    figures = {"macs": int(macs), "cores": int(cores), "gmacs_per_second": per_second / 1e9,
               "rate_source": rate["fastest"], "seconds": macs / (per_second * cores)}
    if native_seconds is not None:
        figures["native_over_limit"] = native_seconds / figures["seconds"]
    return figures


def rate_lines(measured):
    """The report's lines: each dtype's candidates and which set the limit."""
    if not measured:
        return []
    lines = [f"GEMM  single-core {GEMM_SIZE} × {GEMM_SIZE} product, best of {TIMINGS} after a warm-up, "
             "G multiply-adds/s: the fastest sets the arithmetic limit"]
    for dtype, rate in measured.items():
        cells = ", ".join(f"{name} {value / 1e9:.1f}" for name, value in rate["candidates"].items())
        missing = "".join(f"; {name} not measured ({why})" for name, why in rate["unavailable"].items())
        lines.append(f"  {dtype}: {cells or 'none measured'}{missing}"
                     + (f" → {rate['fastest']}" if rate["fastest"] else ""))
    return lines + [""]


def limit_line(figures):
    """'arithmetic limit: …' for one workload's limit dict."""
    native = f", native {figures['native_over_limit']:.2f} × it" if "native_over_limit" in figures else ""
    cores = f"{figures['cores']} core{'s' if figures['cores'] != 1 else ''}"
    return (f"arithmetic limit: {figures['macs'] / 1e6:,.0f} M multiply-adds on {cores} at "
            f"{figures['gmacs_per_second']:.1f} G/s each ({figures['rate_source']} GEMM) = "
            f"{figures['seconds'] * 1e3:.2f} ms{native}")
