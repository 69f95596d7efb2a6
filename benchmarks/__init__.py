"""backprop's benchmark suite (issue 3): backprop native against its NumPy backend, PyTorch and scikit-learn.

    python -m benchmarks [--quick] [--threads N] [--repeats R] [--data DIR] [--out FILE.json]

Modules: ``workloads`` (W1–W8 and the goals), ``data`` (Fashion-MNIST or
synthetic), ``peers`` (one trainer per peer, and the BLAS floor), ``suite``
(timing), ``rss`` (peak memory in fresh processes), ``data_parallel`` (row
MPI: W2 over 1 and 2 MPI processes, and the scaling model), ``report``
(tables, JSON, chart), ``run`` (the command line).
"""
