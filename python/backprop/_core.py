"""Loads the compiled core built for the best instruction set this CPU runs.

The wheel carries one extension module per level (``_core_baseline``,
``_core_avx2`` = x86-64-v3, ``_core_avx512`` = x86-64-v4), or a single
``_core_native`` from a ``-DBACKPROP_NATIVE=ON`` build. The baseline module
reports what the CPU supports. ``BACKPROP_ISA=baseline|avx2|avx512`` forces a
lower level, e.g. to test each level on one machine.
"""

from __future__ import annotations

import importlib
import os

LEVELS = ("baseline", "avx2", "avx512")  # worst to best


def _forced_level_error(message):
    # Reinstalling cannot help here: the caller's warning gives this advice instead.
    error = ImportError(message)
    error.advice = "Unset BACKPROP_ISA to use the best level this CPU supports."
    return error


def _load():
    try:
        return importlib.import_module("backprop._core_native")
    except ImportError:
        pass
    try:
        baseline = importlib.import_module("backprop._core_baseline")
    except ImportError as error:
        raise ImportError(f"backprop's compiled core is missing ({error}); did you build it with "
                          "`pip install .`?") from error
    supported = [level for level in baseline.supported_levels() if level in LEVELS]
    forced = os.environ.get("BACKPROP_ISA", "").strip().lower()
    if forced:
        if forced not in LEVELS:
            raise _forced_level_error(f"BACKPROP_ISA must be one of {', '.join(LEVELS)}, got {forced!r}")
        if forced not in supported:
            raise _forced_level_error(f"BACKPROP_ISA={forced} but this CPU supports only {', '.join(supported)}")
        supported = supported[:supported.index(forced) + 1]
    for level in reversed(supported):
        try:
            return importlib.import_module(f"backprop._core_{level}")
        except ImportError:
            continue  # a build without this level
    return baseline


_module = _load()
Model = _module.Model
Dataset = _module.Dataset
OptimizerConfig = _module.OptimizerConfig
OptimizerKind = _module.OptimizerKind
all_finite = _module.all_finite
build_info = _module.build_info
set_num_threads = _module.set_num_threads
get_num_threads = _module.get_num_threads
supported_levels = _module.supported_levels
_set_sharing = _module._set_sharing
__file__ = _module.__file__
