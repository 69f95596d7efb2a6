"""Model files: .npz archives of the parameters plus a JSON header.

Layout of a file (format version 1):
  header   0-d unicode array, JSON: format, format_version, the constructor
           arguments (sizes, activation, output, loss, init, init_std, dtype,
           backend, seed) and the state of the network's random generator
  W0, b0, W1, b1, ...   the parameters, (n_out, n_in) and (n_out,)
Files are read with allow_pickle=False and written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "backprop.Network"
FORMAT_VERSION = 1


def save(network, path):
    """Write `network` to `path` (an .npz file): temp file in the same folder, then rename."""
    path = os.fspath(path)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **network._config(),
              "rng_state": network._rng.bit_generator.state}
    arrays = {"header": np.array(json.dumps(header))}
    for l, layer in enumerate(network.layers):
        arrays[f"W{l}"], arrays[f"b{l}"] = layer.W, layer.b
    folder = os.path.dirname(os.path.abspath(path))
    descriptor, temp_path = tempfile.mkstemp(prefix=".backprop-", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        os.unlink(temp_path)
        raise


def _invalid(path, why):
    return ValueError(f"{path} is not a valid backprop model file: {why}")


def _read(path):
    """(header dict, {name: array}) from the file, or ValueError saying what is wrong."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise _invalid(path, f"it cannot be read as an .npz archive ({error})") from None
    if not isinstance(arrays, dict) or "header" not in arrays:
        raise _invalid(path, "it has no 'header' entry")
    try:
        header = json.loads(str(arrays.pop("header")[()]))
    except (ValueError, TypeError, IndexError) as error:
        raise _invalid(path, f"its header is not JSON ({error})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _invalid(path, f"its header does not name the format {FORMAT!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise _invalid(path, f"format version {header.get('format_version')!r} is not supported "
                             f"(this backprop reads version {FORMAT_VERSION})")
    return header, arrays


def load(path, backend=None):
    """Read a network saved with Network.save.

    Parameters
    ----------
    path : str or os.PathLike
    backend : 'native' or 'numpy', optional
        Overrides the backend recorded in the file.

    Raises
    ------
    ValueError
        When the file is truncated, is not an .npz archive, or its header or
        arrays do not describe a valid network.
    """
    from .network import Network

    path = os.fspath(path)
    header, arrays = _read(path)
    config = {key: header.get(key) for key in
              ("sizes", "activation", "output", "loss", "init", "init_std", "dtype", "backend", "seed")}
    if backend is not None:
        config["backend"] = backend
    try:
        network = Network(**config)
    except (TypeError, ValueError) as error:
        raise _invalid(path, f"its header describes no valid network ({error})") from None

    expected = {}
    for l, layer in enumerate(network.layers):
        expected[f"W{l}"], expected[f"b{l}"] = layer.W, layer.b
    if set(arrays) != set(expected):
        raise _invalid(path, f"it holds arrays {sorted(arrays)}, expected {sorted(expected)}")
    for name, target in expected.items():
        array = arrays[name]
        if array.shape != target.shape or array.dtype != target.dtype:
            raise _invalid(path, f"array {name} is {array.dtype}{array.shape}, expected "
                                 f"{target.dtype}{target.shape}")
        if not np.isfinite(array).all():
            raise _invalid(path, f"array {name} holds NaN or infinity")
    for name, target in expected.items():
        target[...] = arrays[name]
    try:
        network._rng.bit_generator.state = header["rng_state"]
    except (KeyError, TypeError, ValueError) as error:
        raise _invalid(path, f"its random generator state is malformed ({error})") from None
    return network
