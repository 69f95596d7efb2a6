"""Model files: .npz archives of the parameters plus a JSON header.

Layout of a file (format version 2):
  header   0-d unicode array, JSON: format, format_version, the constructor
           arguments (sizes, activation, output, loss, init, init_std, dtype,
           backend, seed, dropout, norm), dropout_seed and the state of the
           network's random generator
  W0, b0, W1, b1, ...   the parameters, (n_out, n_in) and (n_out,)
  gamma0, beta0, ...    LayerNorm's gain and shift (n_out,) of each normalised layer

Version 1 files (written before dropout and LayerNorm existed: the same
without dropout, norm, dropout_seed and gamma/beta) still load.

Files are written atomically: into a temporary file beside the target, renamed
over it when complete. Reading trusts nothing the archive declares: the JSON
header is read first (at most MAX_HEADER_CHARS), then every member's name, and
each .npy header's shape and dtype and the zip entry's size, are checked
against what the header implies before any array is decompressed. Nothing is
unpickled, and a hostile file costs at most about the memory of the model it
declares.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import tempfile
import zipfile

import numpy as np

from . import _npz

FORMAT = "backprop.Network"
FORMAT_VERSION = 2
HEADER_KEYS = ("sizes", "activation", "output", "loss", "init", "init_std", "dtype", "backend", "seed",
               "rng_state")
# What version 2 added to the header; version 1 files lack them (no dropout, no norm).
HEADER_KEYS_2 = ("dropout", "norm", "dropout_seed")
READ_VERSIONS = (1, 2)
# A header holds a few hundred characters (more with long per-layer lists).
MAX_HEADER_CHARS = 1 << 20

# Temporary files are named .backprop-<pid>-<host>-<random>.npz.tmp after their
# writer, so that a later save can tell those of writers that were killed.
_TEMP_NAME = re.compile(r"\.backprop-(\d+)-([0-9a-f]{8})-[^.]+\.[a-z]+\.tmp\Z")


def _as_path(path):
    """`path` (str, bytes or os.PathLike) as a str."""
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"path must be a str, bytes or os.PathLike, got {type(path).__name__}") from None


def save(network, path):
    """Write `network` to `path` (an .npz file): temp file in the same folder, then rename.

    A symbolic link at `path` is followed: its target is replaced, the link
    stays (as np.savez or open() would write through it). Temporary files that
    earlier saves into the folder left behind when their process was killed
    are removed.
    """
    path = os.path.realpath(_as_path(path))
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **network._config(),
              "dropout_seed": network.dropout_seed, "rng_state": network.rng.bit_generator.state}
    arrays = {"header": np.array(json.dumps(header))}
    for l, layer in enumerate(network.layers):
        arrays[f"W{l}"], arrays[f"b{l}"] = layer.W, layer.b
        if layer.gamma is not None:
            arrays[f"gamma{l}"], arrays[f"beta{l}"] = layer.gamma, layer.beta
    write_atomically(path, lambda file: np.savez(file, **arrays), suffix=".npz.tmp")


def write_atomically(path, write, suffix):
    """Call write(file) on a temporary file beside `path` (a real path), then rename it over `path`.

    A failure (or Ctrl-C) at any point leaves `path` as it was and no temporary
    file. The temporary's name carries this process's PID and host, so that a
    later write into the folder removes what a killed writer left behind.
    """
    path = os.path.realpath(_as_path(path))
    folder = os.path.dirname(path)
    _remove_stale_temporaries(folder)
    descriptor, temp_path = tempfile.mkstemp(prefix=f".backprop-{os.getpid()}-{_host_tag()}-", suffix=suffix,
                                             dir=folder)
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


def _host_tag():
    """8 hex digits naming this host: PIDs only mean something on their own host."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _writer_alive(pid):
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # someone else's process, or a PID this OS cannot have
        return True
    return True


def _remove_stale_temporaries(folder):
    """Remove the temporary files of saves into `folder` whose writer is gone.

    Only files written on this host by a process that no longer exists; never
    a live writer's (a PID reused since only keeps a stale file a little longer).
    """
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return
    try:
        names = os.listdir(folder)
    except OSError:
        return
    host = _host_tag()
    for name in names:
        match = _TEMP_NAME.match(name)
        if match and match[2] == host and not _writer_alive(int(match[1])):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))


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


class _InvalidModelFile(ValueError):
    """Raised by load for a file that is not a valid backprop model file."""


def _invalid(path, why):
    return _InvalidModelFile(f"{path} is not a valid backprop model file: {why}")


@contextlib.contextmanager
def _reading(path):
    """Damage found by zipfile, zlib or numpy's .npy reader, as a ValueError naming `path`."""
    try:
        yield
    except _InvalidModelFile:
        raise
    except _npz.ArchiveError as error:
        raise _invalid(path, str(error)) from None
    except Exception as error:  # BadZipFile, zlib.error, EOFError, bad .npy headers, ...
        raise _invalid(path, f"it cannot be read as an .npz archive ({error})") from None


def _members(path, archive):
    with _reading(path):
        return _npz.members(archive)


def _checked_member(path, archive, name, info, accept):
    with _reading(path):
        return _npz.read_member(archive, name, info, accept)


def _accept_header(path):
    def accept(shape, dtype):
        if dtype.kind != "U" or shape != ():
            raise _invalid(path, f"its header is not a JSON string (a {dtype} array of shape {shape})")
        if dtype.itemsize // 4 > MAX_HEADER_CHARS:
            raise _invalid(path, f"its header has {dtype.itemsize // 4} characters, more than "
                                 f"{MAX_HEADER_CHARS}")
    return accept


def _accept_parameter(path, name, expected_shape, expected_dtype):
    def accept(shape, dtype):
        if shape != expected_shape:
            raise _invalid(path, f"array {name} has shape {shape}, expected {expected_shape}")
        if dtype != expected_dtype:
            raise _invalid(path, f"array {name} has dtype {dtype}, expected {expected_dtype}")
    return accept


def _read_header(path, archive, members):
    """The header dict, checked for format, version and keys."""
    if "header" not in members:
        raise _invalid(path, "it has no 'header' entry")
    text = _checked_member(path, archive, "header", members["header"], _accept_header(path))
    try:
        header = json.loads(str(text[()]))
    except (ValueError, TypeError) as error:
        raise _invalid(path, f"its header is not JSON ({error})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _invalid(path, f"its header does not name the format {FORMAT!r}")
    version = header.get("format_version")
    if type(version) is not int or version not in READ_VERSIONS:
        raise _invalid(path, f"format version {version!r} is not supported "
                             f"(this backprop reads versions {', '.join(map(str, READ_VERSIONS))})")
    missing = [key for key in HEADER_KEYS + (HEADER_KEYS_2 if version >= 2 else ()) if key not in header]
    if missing:
        raise _invalid(path, f"its header lacks {', '.join(missing)}")
    return header


def _expected_arrays(path, header):
    """{name: shape} of the parameter arrays the header's sizes imply, and their dtype."""
    sizes = header["sizes"]
    if not isinstance(sizes, list) or not all(type(n) is int and n > 0 for n in sizes) or len(sizes) < 2:
        raise _invalid(path, f"its header's sizes {sizes!r} are not a list of positive integers")
    if header["dtype"] not in ("float32", "float64"):
        raise _invalid(path, f"its header's dtype {header['dtype']!r} is not 'float32' or 'float64'")
    norm = header.get("norm")
    expected = {}
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        expected[f"W{l}"], expected[f"b{l}"] = (n_out, n_in), (n_out,)
        if norm is not None and l < len(sizes) - 2:
            expected[f"gamma{l}"], expected[f"beta{l}"] = (n_out,), (n_out,)
    return expected, np.dtype(header["dtype"])


def load(path, network_class, backend=None):
    """Read a network saved with Network.save, as a `network_class` (Network.load passes itself).

    Parameters
    ----------
    path : str, bytes or os.PathLike
    network_class : type
    backend : 'native' or 'numpy', optional (checked by the caller)

    Raises ValueError as Network.load documents.
    """
    path = _as_path(path)
    with _npz.open_regular(path) as file:  # missing or unreadable paths raise OSError as usual
        with _reading(path):
            archive = zipfile.ZipFile(file)
        with archive:
            return _load(path, archive, os.fstat(file.fileno()).st_size, network_class, backend)


def _load(path, archive, file_size, network_class, backend):
    members = _members(path, archive)
    header = _read_header(path, archive, members)
    expected, dtype = _expected_arrays(path, header)
    del members["header"]
    if set(members) != set(expected):
        raise _invalid(path, f"it holds arrays {sorted(members)}, expected {sorted(expected)}")
    for name, shape in expected.items():  # every declaration, before anything is allocated
        with _reading(path):
            _npz.check_stored_size(name, members[name], file_size)
            with _npz.open_member(archive, name, members[name]) as stream:
                found_shape, _, found_dtype = _npz.npy_header(name, stream)
        _accept_parameter(path, name, shape, dtype)(found_shape, found_dtype)

    config = {key: header[key] for key in HEADER_KEYS + HEADER_KEYS_2 if key in header and key != "rng_state"}
    dropout_seed = config.pop("dropout_seed", None)
    if backend is not None:
        config["backend"] = backend
    try:
        network = network_class(**config)
        if dropout_seed is not None:
            network._set_dropout_seed(dropout_seed)
    except (TypeError, ValueError) as error:
        raise _invalid(path, f"its header describes no valid network ({error})") from None
    try:
        network.rng.bit_generator.state = header["rng_state"]
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise _invalid(path, f"its random generator state is malformed ({error})") from None
    for l, layer in enumerate(network.layers):  # a new network: a refusal half-way leaves nothing behind
        stored = [(f"W{l}", layer.W), (f"b{l}", layer.b)]
        if layer.gamma is not None:
            stored += [(f"gamma{l}", layer.gamma), (f"beta{l}", layer.beta)]
        for name, target in stored:
            array = _checked_member(path, archive, name, members[name],
                                    _accept_parameter(path, name, target.shape, dtype))
            if not np.isfinite(array).all():
                raise _invalid(path, f"array {name} holds NaN or infinity")
            target[...] = array
    return network
