"""The file of BackupAndRestore: everything the rest of a fit depends on.

One ``backup.npz`` in the backup folder, written atomically (temporary file,
then rename: a process killed at any moment leaves the previous backup or the
new one, never half of one), read with ``allow_pickle=False``. Member
"header" holds JSON (positions, figures, configurations, random-generator
state, callbacks' plain values); every array (parameters, optimizer state,
the epoch's order, arrays of callbacks' states) is a member of its own,
named in the header.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ._npz import read_npz
from ._serialization import write_atomically

FILE_NAME = "backup.npz"
FORMAT = "backprop-backup"
FORMAT_VERSION = 1


def _split(value, arrays):
    """`value` with every ndarray inside (dicts and lists) replaced by {"__array__": name}; arrays[name] = it."""
    if isinstance(value, np.ndarray):
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {"__array__": name}
    if isinstance(value, dict):
        return {str(k): _split(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split(v, arrays) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _join(value, arrays):
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return arrays[value["__array__"]]
        return {k: _join(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_join(v, arrays) for v in value]
    return value


def write(folder, state):
    """Write `state` (dicts, lists, numbers, strings, None and ndarrays) to folder/backup.npz, atomically."""
    os.makedirs(folder, exist_ok=True)
    arrays = {}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "state": _split(state, arrays)}
    try:
        text = json.dumps(header, allow_nan=True)
    except TypeError as error:
        raise TypeError(f"a callback's get_state() returned something a backup cannot hold ({error}); use "
                        "numbers, strings, None, lists, dicts and NumPy arrays") from None
    arrays["header"] = np.array(text)
    write_atomically(os.path.join(folder, FILE_NAME), lambda file: np.savez(file, **arrays), suffix=".npz.tmp")


def path_of(folder):
    return os.path.join(folder, FILE_NAME)


def read(folder):
    """The state in folder/backup.npz, or None when there is none. ValueError for anything but a backup."""
    path = path_of(folder)
    if not os.path.lexists(path):
        return None
    try:
        arrays = read_npz(path)  # a regular file, every array's size checked before it is read
        header = json.loads(str(arrays.pop("header")[()]))
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError("no backprop backup header")
        if header.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {header.get('format_version')!r}, this backprop reads "
                             f"{FORMAT_VERSION}")
        return _join(header["state"], arrays)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a valid backprop backup: {error}") from None


def remove(folder):
    try:
        os.unlink(path_of(folder))
    except FileNotFoundError:
        pass
