"""backprop: feedforward neural networks trained by backpropagation.

The math runs in a C++/Eigen core (``backend="native"``) or in a pure-NumPy
reference implementation (``backend="numpy"``) that computes the same thing.

>>> import backprop as bp
>>> net = bp.Network([64, 32, 10], activation="relu", seed=0)
>>> hist = net.fit(X, y, epochs=10, optimizer=bp.SGD(lr=0.1, momentum=0.9))  # doctest: +SKIP
"""

from . import callbacks, distributed
from ._threads import get_num_threads, set_num_threads
from .history import History
from .network import Dense, Network, load
from .optim import SGD, Adam, AdamW, Optimizer

__version__ = "0.1.0"

__all__ = ["Network", "Dense", "History", "SGD", "Adam", "AdamW", "Optimizer", "load", "callbacks", "distributed",
           "build_info", "set_num_threads", "get_num_threads", "__version__"]


def build_info():
    """How the compiled core in use was built.

    Returns a dict: ``core`` (the module's file), ``isa`` (instruction-set
    level: baseline, avx2, avx512 or native), ``compiler``, ``openmp``
    (version date or None), ``eigen`` and ``simd``; ``core`` is None (with
    ``error``) when the core cannot be imported.
    """
    try:
        from . import _core
    except ImportError as error:
        return {"core": None, "error": str(error)}
    return {"core": _core.__file__, **_core.build_info()}
