"""backprop's benchmark suite: backprop native against its NumPy backend, PyTorch and scikit-learn.

    python -m benchmarks [--quick] [--threads N] [--repeats R] [--data DIR] [--out FILE.json]

Modules: ``workloads`` (W1–W9 and the goals), ``data`` (Fashion-MNIST or
synthetic), ``peers`` (one trainer per peer, and the BLAS floor), ``suite``
(timing), ``limits`` (the arithmetic limit: the fastest single-core GEMM
rate), ``calls`` (W3.1 and W5.1: the cost of one small call), ``threads``
(the thread settings, W7), ``contention`` (W9: busy processes alongside), ``rss`` (peak
memory in fresh processes), ``data_parallel`` (row MPI: W2 over 1 and 2 MPI
processes, and the scaling model), ``report`` (tables, JSON, chart), ``run``
(the command line).
"""
