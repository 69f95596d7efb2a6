"""Time one training epoch of a 784-256-128-10 ReLU network in both backends.

    python benchmarks/epoch_time.py [--samples 60000] [--batch-size 32] [--dtype float32]

Synthetic data of Fashion-MNIST's shape; plain SGD; the backends run
interleaved, and each figure is the median of --repeats epochs after one
warm-up epoch, so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

import backprop as bp

SIZES = [784, 256, 128, 10]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X = rng.random((args.samples, SIZES[0]), dtype=np.float64).astype(args.dtype)
    y = rng.integers(0, SIZES[-1], size=args.samples)
    nets = {name: bp.Network(SIZES, activation="relu", dtype=args.dtype, backend=name, seed=0)
            for name in ("native", "numpy")}
    times = {name: [] for name in nets}
    for repeat in range(args.repeats + 1):
        for name, net in nets.items():
            started = time.perf_counter()
            net.fit(X, y, epochs=1, batch_size=args.batch_size, optimizer=bp.SGD(lr=0.05))
            if repeat:  # the first round warms caches and allocators
                times[name].append(time.perf_counter() - started)

    info = bp.build_info()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, numpy {np.__version__}, "
          f"core: {info.get('compiler')}, SIMD {info.get('simd')}")
    print(f"one epoch, {args.samples} samples, {'-'.join(map(str, SIZES))} relu, SGD, batch {args.batch_size}, "
          f"{args.dtype}; median of {args.repeats}")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in medians.items():
        print(f"  {name:7s} {seconds:8.3f} s   {args.samples / seconds:12,.0f} samples/s")
    print(f"  native / numpy = {medians['native'] / medians['numpy']:.3f}")


if __name__ == "__main__":
    main()
