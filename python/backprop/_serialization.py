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

import numpy as np

from ._npz import read_npz

FORMAT = "backprop.Network"
FORMAT_VERSION = 1
HEADER_KEYS = ("sizes", "activation", "output", "loss", "init", "init_std", "dtype", "backend", "seed",
               "rng_state")


def save(network, path):
    """Write `network` to `path` (an .npz file): temp file in the same folder, then rename."""
    path = os.fspath(path)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **network._config(),
              "rng_state": network._rng.bit_generator.state}
    arrays = {"header": np.array(json.dumps(header))}
    for l, layer in enumerate(network.layers):
        arrays[f"W{l}"], arrays[f"b{l}"] = layer.W, layer.b
    write_atomically(path, lambda file: np.savez(file, **arrays), suffix=".npz.tmp")


def write_atomically(path, write, suffix):
    """Call write(file) on a temporary file beside `path`, then rename it over `path`.

    A failure (or Ctrl-C) at any point leaves `path` as it was and no temporary file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    descriptor, temp_path = tempfile.mkstemp(prefix=".backprop-", suffix=suffix, dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), _new_file_mode(path))  # mkstemp makes it 0600
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_path, path)
    except BaseException:
        os.unlink(temp_path)
        raise


def _new_file_mode(path):
    """The mode of the file being replaced, else 0666 less the umask, as open() would give."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return 0o666 & ~_umask()


def _umask():
    # Read it without setting it where the kernel tells it: os.umask(0) would
    # briefly change it for every thread of the process.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _invalid(path, why):
    return ValueError(f"{path} is not a valid backprop model file: {why}")


def _read(path):
    """(header dict, {name: array}) from the file, or ValueError saying what is wrong."""
    try:
        arrays = read_npz(path)  # missing or unreadable paths raise OSError as usual
    except ValueError as error:
        raise _invalid(path, f"it cannot be read as an .npz archive ({error})") from None
    if "header" not in arrays:
        raise _invalid(path, "it has no 'header' entry")
    try:
        header = json.loads(str(arrays.pop("header")[()]))
    except (ValueError, TypeError, IndexError) as error:
        raise _invalid(path, f"its header is not JSON ({error})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _invalid(path, f"its header does not name the format {FORMAT!r}")
    version = header.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise _invalid(path, f"format version {version!r} is not supported "
                             f"(this backprop reads version {FORMAT_VERSION})")
    missing = [key for key in HEADER_KEYS if key not in header]
    if missing:
        raise _invalid(path, f"its header lacks {', '.join(missing)}")
    return header, arrays


def _check_arrays(path, sizes, arrays):
    """The arrays must be W0, b0, ... with the shapes `sizes` implies (before building anything)."""
    if not isinstance(sizes, list) or not all(type(n) is int and n > 0 for n in sizes) or len(sizes) < 2:
        raise _invalid(path, f"its header's sizes {sizes!r} are not a list of positive integers")
    expected = {}
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        expected[f"W{l}"], expected[f"b{l}"] = (n_out, n_in), (n_out,)
    if set(arrays) != set(expected):
        raise _invalid(path, f"it holds arrays {sorted(arrays)}, expected {sorted(expected)}")
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise _invalid(path, f"array {name} has shape {arrays[name].shape}, expected {shape}")


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
    from .network import BACKENDS, Network
    from ._validation import check_choice

    if backend is not None:
        check_choice("backend", backend, BACKENDS)
    path = os.fspath(path)
    header, arrays = _read(path)
    _check_arrays(path, header["sizes"], arrays)
    config = {key: header[key] for key in HEADER_KEYS if key != "rng_state"}
    if backend is not None:
        config["backend"] = backend
    try:
        network = Network(**config)
    except (TypeError, ValueError) as error:
        raise _invalid(path, f"its header describes no valid network ({error})") from None

    for l, layer in enumerate(network.layers):
        for name, target in ((f"W{l}", layer.W), (f"b{l}", layer.b)):
            array = arrays[name]
            if array.dtype != target.dtype:
                raise _invalid(path, f"array {name} has dtype {array.dtype}, expected {target.dtype}")
            if not np.isfinite(array).all():
                raise _invalid(path, f"array {name} holds NaN or infinity")
    try:
        network._rng.bit_generator.state = header["rng_state"]
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise _invalid(path, f"its random generator state is malformed ({error})") from None
    for l, layer in enumerate(network.layers):
        layer.W[...], layer.b[...] = arrays[f"W{l}"], arrays[f"b{l}"]
    return network
