"""How many threads the native core's matrix products use."""

from __future__ import annotations

from ._validation import check_int


def set_num_threads(n):
    """Use at most `n` threads in the native core, for every Python thread.

    Without it the core follows OpenMP's limit: ``OMP_NUM_THREADS``, a
    ``threadpoolctl.threadpool_limits`` in force, else the number of CPUs;
    `n` above that limit is capped to it. Small networks use fewer threads
    than allowed, since they cannot amortise the synchronisation. NumPy's
    BLAS keeps its own pool.
    """
    from . import _core
    _core.set_num_threads(check_int("n", n))


def get_num_threads():
    """The most threads the native core will use from the calling thread."""
    from . import _core
    return _core.get_num_threads()
