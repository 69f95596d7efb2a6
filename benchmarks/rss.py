"""Peak resident memory of one peer's W1 fit, measured in a fresh process.

    python -m benchmarks.rss PEER --arrays FILE.npz --workload JSON [--threads N]

prints one JSON object. The parent (``measure``) saves the training arrays
to a temporary .npz once and starts one child per peer, so that nothing the
suite itself allocated (other peers, the full data set in two dtypes,
PyTorch in a backprop run) is in the figure. The children run side by side.

In the child: import only what the peer needs, load the arrays (np.load
reads them straight into their final buffers, no temporary copies), build
the model, then reset the kernel's peak-RSS mark (``/proc/self/clear_refs``,
value 5) so that the peak read after the fit is the fit's own. Where the
reset is refused, the peak since process start is used and the figure says
so. Each peer trains the way its users would: backprop's fit with its own
shuffling, PyTorch with a permutation tensor and indexing, scikit-learn's
partial_fit with shuffle=True.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

KIB = 1024


def _status_kib(field):
    """A 'VmRSS'/'VmHWM' line of /proc/self/status in KiB, or None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _rss_bytes():
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * KIB


def _peak_bytes():
    kib = _status_kib("VmHWM")
    if kib is None:  # ru_maxrss is KiB on Linux
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * KIB


def _reset_peak():
    """Set the peak-RSS mark to the current RSS; False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def _random_init(sizes, dtype, seed=0):
    # The figure does not depend on the weights' values; this keeps backprop
    # out of the PyTorch and scikit-learn processes.
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, np.sqrt(2 / n_in), (n_out, n_in)).astype(dtype), np.zeros(n_out, dtype))
            for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def _child(peer, arrays_path, workload_fields, threads):
    """Measure one peer's fit in this (fresh) process; returns the figures as a dict."""
    from .workloads import Workload

    workload = Workload.from_dict(workload_fields)
    dtype = np.dtype(workload.dtype)
    if peer in ("native", "numpy"):
        import backprop as bp
        if peer == "native":
            bp.set_num_threads(threads)
    elif peer == "torch":
        import torch
        torch.set_num_threads(threads)
    elif peer == "sklearn":
        import sklearn.neural_network  # noqa: F401
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=threads, user_api="blas")
    except ImportError:
        pass
    figures = {"peer": peer, "rss_after_imports": _rss_bytes()}

    with np.load(arrays_path) as arrays:
        X, y = arrays["X"], arrays["y"]
    figures["rss_after_data"] = _rss_bytes()
    figures["data_bytes"] = X.nbytes + y.nbytes

    if peer in ("native", "numpy"):
        net = bp.Network(workload.sizes, activation=workload.activation, dtype=workload.dtype,
                         backend=peer, seed=workload.seed)
        optimizer = bp.SGD(lr=workload.lr)
        n_params = net.n_params

        def fit():
            net.fit(X, y, epochs=1, batch_size=workload.batch_size, optimizer=optimizer)
    elif peer == "torch":
        from .peers import TorchTrainer
        trainer = TorchTrainer(workload, _random_init(workload.sizes, dtype))
        n_params = sum(p.numel() for p in trainer.model.parameters())

        def fit():
            trainer.prepare(X, y, np.random.default_rng(0).permutation(X.shape[0]), None)
            trainer.run()
    else:
        import warnings

        from .peers import make_sklearn_model
        model, _, _ = make_sklearn_model(workload, _random_init(workload.sizes, dtype),
                                         X[:workload.batch_size], y[:workload.batch_size])
        model.set_params(shuffle=True)
        n_params = sum(c.size for c in model.coefs_) + sum(b.size for b in model.intercepts_)

        def fit():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.partial_fit(X, y)
    figures["param_bytes"] = n_params * dtype.itemsize
    figures["rss_before_fit"] = _rss_bytes()
    figures["peak_before_fit"] = _peak_bytes()
    figures["peak_reset"] = _reset_peak()
    # After a reset the mark equals the RSS at that moment: the fit's own growth starts there.
    base = _peak_bytes() if figures["peak_reset"] else figures["rss_before_fit"]
    started = time.perf_counter()
    fit()
    figures["fit_seconds"] = time.perf_counter() - started
    figures["peak_after_fit"] = _peak_bytes()
    figures["rss_after_fit"] = _rss_bytes()
    figures["peak_rss"] = max(figures["peak_before_fit"], figures["peak_after_fit"])
    figures["fit_increase"] = figures["peak_after_fit"] - base
    return figures


def native_bound(workload, n_samples, data_bytes, param_bytes):
    """The memory bound for a native fit beyond the input data, in bytes.

    4 × the parameters (weights, gradient, two optimizer moments), one int64
    index permutation of the samples, and "a few" batch-sized buffers, taken
    as 8 × batch × Σ n_l elements (activations, deltas and the gathered batch
    with room to spare). The data themselves are already resident before the
    fit and are not part of the increase.
    """
    itemsize = 4 if workload.dtype == "float32" else 8
    buffers = 8 * workload.batch_size * sum(workload.sizes) * itemsize
    return {"params_x4": 4 * param_bytes, "permutation": 8 * n_samples, "batch_buffers": buffers,
            "total": 4 * param_bytes + 8 * n_samples + buffers, "data_bytes": data_bytes}


def measure(peers, X, y, workload, threads, timeout=600):
    """Run each peer's fit of `workload` on (X, y) in a fresh process.

    The processes run at the same time: each one's peak RSS is its own, and
    their timings are not figures of the suite.

    Returns
    -------
    dict {peer: figures from the child, or {"error": ...}}
    """
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = {}
    with tempfile.TemporaryDirectory(prefix="backprop-bench-") as folder:
        arrays_path = os.path.join(folder, "w1.npz")
        np.savez(arrays_path, X=X, y=y)
        children = {}
        for peer in peers:
            command = [sys.executable, "-m", "benchmarks.rss", peer, "--arrays", arrays_path,
                       "--workload", json.dumps(workload.to_dict()), "--threads", str(threads)]
            children[peer] = subprocess.Popen(command, cwd=repo_root, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        for peer, child in children.items():
            try:
                stdout, stderr = child.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()
                results[peer] = {"error": f"timed out after {timeout} s"}
                continue
            lines = stdout.strip().splitlines()
            if child.returncode != 0 or not lines:
                tail = (stderr.strip().splitlines() or ["no output"])[-1]
                results[peer] = {"error": f"exit status {child.returncode}: {tail}"}
                continue
            results[peer] = json.loads(lines[-1])
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("peer", choices=["native", "numpy", "torch", "sklearn"])
    parser.add_argument("--arrays", required=True, help=".npz holding X and y")
    parser.add_argument("--workload", required=True, help="the workload as JSON (Workload.to_dict)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    figures = _child(args.peer, args.arrays, json.loads(args.workload), args.threads)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
