"""How many threads the native core's matrix products use."""

from __future__ import annotations

from ._validation import check_int


def set_num_threads(n):
    """Use `n` threads in the native core (OpenMP). Default: OMP_NUM_THREADS, else all cores.

    The core never runs more threads than this; NumPy's BLAS keeps its own
    pool (limit it with threadpoolctl if both run at once).
    """
    from . import _core
    _core.set_num_threads(check_int("n", n))


def get_num_threads():
    """The number of threads the native core uses."""
    from . import _core
    return _core.get_num_threads()
