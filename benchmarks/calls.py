"""Per-call costs: what one small call costs, Python and bindings included.

    W5.1  a forward pass of one sample (1 × 784) through the W1 network, beside
          the NumPy backend, PyTorch and onnxruntime running backprop's own
          ONNX export
    W3.1  a ``fit`` call of one 16-row batch on the W3 network (an epoch of
          one step): the fixed cost every ``fit`` pays before and after its
          steps

Each peer answers `calls` calls in a row (after a tenth as many untimed
ones), `repeats` times (at least 5), peers interleaved in a rotating order;
the figure is the median over repetitions of the mean call time, in µs.
Everything a caller pays is timed: argument checks, conversions, the result's
allocation. backprop's core computes steps this small on one thread
(its team grows by one thread per million multiply-adds of a step);
onnxruntime's session is built with one intra-op and one inter-op thread;
PyTorch runs on the suite's threads.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import numpy as np

from .peers import make_network, make_optimizer, make_torch_model
from .workloads import W1_SIZES, Workload

#: Repetitions at least, whatever the suite's --repeats.
MIN_REPEATS = 5


def _time_calls(calls_of, repeats, calls):
    """{name: [mean µs per call, one per repetition]} of each zero-argument callable in `calls_of`."""
    means = {name: [] for name in calls_of}
    names = list(calls_of)
    for repetition in [None] + list(range(max(repeats, MIN_REPEATS))):
        shift = (repetition or 0) % max(len(names), 1)
        for name in names[shift:] + names[:shift]:
            call = calls_of[name]
            for _ in range(max(calls // 10, 1)):
                call()
            started = time.perf_counter()
            for _ in range(calls):
                call()
            if repetition is not None:
                means[name].append((time.perf_counter() - started) / calls * 1e6)
    return means


def _figures(description, means, calls):
    micros = {name: float(statistics.median(m)) for name, m in means.items() if m}
    return {"description": description, "microseconds": micros, "runs": means, "calls_per_run": calls}


def _onnxruntime_call(net, row):
    """onnxruntime's ``run`` on `net` exported by ``Network.to_onnx``, one thread; the model file is removed
    once the session has read it."""
    import onnx  # noqa: F401  (to_onnx needs it; a clear ImportError here)
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    handle, path = tempfile.mkstemp(suffix=".onnx")
    os.close(handle)
    try:
        net.to_onnx(path)
        session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    finally:
        os.remove(path)
    feed = {session.get_inputs()[0].name: row}
    return lambda: session.run(None, feed)


def time_single_sample(X, init, peers, repeats, calls=2000):
    """W5.1: µs per call of a forward pass over one sample through the W1 network, per peer.

    Parameters
    ----------
    X : array, rows of 784 float32 features (the first is used)
    init : [(W, b), ...] the W1 network's initial weights
    peers : peer names; onnxruntime joins when onnx and onnxruntime import
    repeats, calls : int

    Returns
    -------
    dict: description, microseconds {peer: median µs}, runs, calls_per_run, skipped {peer: why}
    """
    row = np.ascontiguousarray(X[:1])
    workload = Workload("W5.1", W1_SIZES, "relu", 1, 1)
    calls_of, skipped = {}, {}
    for name in peers:
        if name in ("native", "numpy"):
            net = make_network(name, workload, init)
            calls_of[name] = lambda net=net: net.forward(row)
        elif name == "torch":
            import torch
            model, tensor = make_torch_model(workload, init), torch.from_numpy(row)

            def torch_forward(model=model, tensor=tensor):
                with torch.inference_mode():
                    return torch.softmax(model(tensor), dim=1)
            calls_of[name] = torch_forward
    try:
        calls_of["onnxruntime"] = _onnxruntime_call(make_network("numpy", workload, init), row)
    except ImportError as error:
        skipped["onnxruntime"] = f"needs onnx and onnxruntime: {error}"
    figures = _figures("forward pass of one sample (1 × 784) through the W1 network, per call, in µs; "
                       "onnxruntime: session.run on the network's ONNX export, 1 thread",
                       _time_calls(calls_of, repeats, calls), calls)
    figures["skipped"] = skipped
    return figures


def time_fit_call(workload, X, y, init, peers, repeats, calls=2000):
    """W3.1: µs per ``net.fit(X16, y16, epochs=1, batch_size=16, optimizer=...)`` call on W3's network.

    The network and its optimizer (the workload's) are made once and reused,
    as a caller training batch by batch would; fit's other arguments are
    its defaults, so each call also shuffles its 16 rows. The call's
    arithmetic (16 samples' forward and backward, about 0.1 M
    multiply-adds) takes about a microsecond at the GEMM rate: the figure is
    the fixed cost of a call.

    Parameters
    ----------
    workload : Workload, W3 (its sizes, activation, batch size, optimizer and dtype)
    X, y : at least ``workload.batch_size`` rows of its inputs
    init : [(W, b), ...] its initial weights
    peers : peer names; 'native' and 'numpy' are timed
    repeats, calls : int
    """
    rows = workload.batch_size
    X_batch, y_batch = np.ascontiguousarray(X[:rows]), np.ascontiguousarray(y[:rows])
    calls_of = {}
    for name in peers:
        if name in ("native", "numpy"):
            net, optimizer = make_network(name, workload, init), make_optimizer(workload)
            calls_of[name] = lambda net=net, optimizer=optimizer: net.fit(
                X_batch, y_batch, epochs=1, batch_size=rows, optimizer=optimizer)
    sizes = "-".join(map(str, workload.sizes))
    return _figures(f"fit call of one {rows}-row batch (epochs=1, batch_size={rows}) on the W3 network "
                    f"({sizes} {workload.activation}, {workload.dtype}), per call, in µs",
                    _time_calls(calls_of, repeats, calls), calls)
