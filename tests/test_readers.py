"""Every reader of the package is safe on any file.

Devices (``/dev/zero`` never ends), FIFOs (opening one blocks until a writer
comes) and sockets are refused with ValueError before anything is read, by
``bp.load``, ``datasets.load_npz``, ``load_idx``, ``load_csv``,
``load_fashion_mnist``, the command line's data loading and
BackupAndRestore. Each call runs in a subprocess with a deadline, so a reader
that blocks fails the test instead of hanging it. Data archives cost at most
the memory their arrays declare.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from backprop import datasets

READERS = {
    "bp.load": "bp.load(path)",
    "load_npz": "bp.datasets.load_npz(path)",
    "load_idx": "bp.datasets.load_idx(path)",
    "load_csv": "bp.datasets.load_csv(path)",
    "cli": "from backprop import cli; cli.load_data(path)",
    "backup": "bp.callbacks.BackupAndRestore(os.path.dirname(path)).check({'samples': 1})",
}

CALL = """
import os, sys
import backprop as bp
import backprop.datasets
path = sys.argv[1]
try:
    {call}
except ValueError as error:
    print("ValueError:", error)
except Exception as error:
    print(type(error).__name__ + ":", error)
"""


def _outcome(call, path, timeout=60):
    """What `call` raised for `path`, from a subprocess that must finish within `timeout` seconds."""
    try:
        done = subprocess.run([sys.executable, "-c", CALL.format(call=call), str(path)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{call} on {path} did not return within {timeout} s (it blocks or reads forever)")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.fixture(scope="module")
def special_files(tmp_path_factory):
    """name -> path: a FIFO, a socket and a character device, each under every name a reader wants."""
    folder = tmp_path_factory.mktemp("special")
    files = {}
    for kind in ("fifo", "socket", "device"):
        sub = folder / kind
        sub.mkdir()
        for name in ("model.npz", "backup.npz", "data.csv", "train-images-idx3-ubyte"):
            path = sub / name
            if kind == "fifo":
                os.mkfifo(path)
            elif kind == "socket":
                server = socket.socket(socket.AF_UNIX)
                server.bind(str(path))
                server.close()  # the socket file stays
            else:
                os.symlink("/dev/zero", path)  # a link to a device: links are followed, the device refused
        files[kind] = sub
    return files


@pytest.mark.parametrize("kind, what", [("fifo", "a FIFO"), ("socket", "a socket"),
                                        ("device", "a character device")])
@pytest.mark.parametrize("reader", list(READERS))
def test_non_regular_files_are_refused_before_reading(special_files, kind, what, reader):
    name = {"load_csv": "data.csv", "load_idx": "train-images-idx3-ubyte", "backup": "backup.npz",
            "cli": "model.npz"}.get(reader, "model.npz")
    outcome = _outcome(READERS[reader], special_files[kind] / name)
    error = "CLIError:" if reader == "cli" else "ValueError:"  # the command line's one-line error
    assert outcome.startswith(error) and what in outcome and "regular file" in outcome, outcome


def test_dev_zero_itself_is_refused_at_once():
    for call in ("bp.load(path)", "bp.datasets.load_npz(path)", "bp.datasets.load_idx(path)"):
        outcome = _outcome(call, "/dev/zero", timeout=30)
        assert outcome.startswith("ValueError:") and "a character device" in outcome, outcome


def test_fashion_mnist_folder_of_fifos_is_refused(special_files):
    folder = special_files["fifo"]
    outcome = _outcome("bp.datasets.load_fashion_mnist(path)", folder)
    assert outcome.startswith(("ValueError:", "FileNotFoundError:")), outcome


# -- data archives: memory bounded by what they declare -------------------------------------------
HUGE = 256 << 20


def _zeros_npy(shape, body_bytes, dtype="<f8"):
    def write(member):
        np.lib.format.write_array_header_1_0(member, {"descr": dtype, "fortran_order": False, "shape": shape})
        chunk = bytes(1 << 20)
        for _ in range(body_bytes >> 20):
            member.write(chunk)
        member.write(bytes(body_bytes & ((1 << 20) - 1)))
    return write


def _archive(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, write in members:
            with archive.open(name, "w", force_zip64=True) as member:
                write(member)
    return path


BOUNDED = """
import json, resource, sys
import backprop as bp
import backprop.datasets
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
results = {}
for path in sys.argv[1:]:
    try:
        X, y = bp.datasets.load_npz(path)
        results[path] = ["loaded", list(X.shape)]
    except ValueError as error:
        results[path] = ["ValueError", str(error)]
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
print(json.dumps({"grew_kib": grew, "results": results}))
"""


def test_data_archives_cost_at_most_what_they_declare(tmp_path):
    X = np.zeros((10, 3))
    good_X = _zeros_npy((10, 3), X.nbytes)
    good_y = _zeros_npy((10,), 80, dtype="<i8")
    files = {
        # y declares 10 numbers, its zip entry holds 256 MiB: refused before decompressing
        "long-body": _archive(tmp_path / "long-body.npz", [("X.npy", good_X), ("y.npy", _zeros_npy((10,), HUGE))]),
        # a 256 MiB member beside X and y: never decompressed
        "junk": _archive(tmp_path / "junk.npz", [("X.npy", good_X), ("y.npy", good_y),
                                                  ("junk.npy", _zeros_npy((HUGE // 8,), HUGE))]),
    }
    assert all(path.stat().st_size < 4 << 20 for path in files.values())
    script = tmp_path / "bounded.py"
    script.write_text(BOUNDED)
    done = subprocess.run([sys.executable, str(script), *map(str, files.values())], capture_output=True, text=True,
                          timeout=300, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    long_body = report["results"][str(files["long-body"])]
    assert long_body[0] == "ValueError" and "holds 268435456 bytes of data, its shape (10,) needs 80" in long_body[1]
    assert report["results"][str(files["junk"])] == ["loaded", [10, 3]]
    assert report["grew_kib"] < (32 << 10), report


def test_data_archives_refuse_object_arrays(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, X=np.zeros((2, 2)), y=np.array([1, "a"], dtype=object))
    with pytest.raises(ValueError, match="holds no plain data|pickle|Object arrays"):
        datasets.load_npz(path)
