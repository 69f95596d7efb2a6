"""Network.save / bp.load: exact round trips, atomic writes, and a ValueError
that names the file for anything that is not a valid model file."""

from __future__ import annotations

import gc
import io
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
from conftest import RTOL, make_data

import backprop as bp

SIZES = [4, 5, 3]
N = 16
LOSSES = ["cross_entropy", "mse", "binary_cross_entropy", "poisson"]
DTYPES = ["float32", "float64"]
HEADER_KEYS = ["format", "format_version", "sizes", "activation", "output", "loss", "init", "init_std",
               "dtype", "backend", "seed", "rng_state", "dropout", "norm", "dropout_seed"]


def trained(backend, loss="cross_entropy", dtype="float64", seed=7, **kwargs):
    """A small network trained a little: weights and rng state are not the initial ones."""
    net = bp.Network(SIZES, activation="tanh", loss=loss, dtype=dtype, backend=backend, seed=seed, **kwargs)
    X, y = make_data(loss, N, SIZES[0], SIZES[-1], seed=1)
    net.fit(X, y, epochs=2, batch_size=5, optimizer=bp.SGD(lr=0.1, momentum=0.9), shuffle=True)
    return net, X, y


def assert_same_weights(a, b):
    for la, lb in zip(a.layers, b.layers):
        assert la.W.dtype == lb.W.dtype and la.b.dtype == lb.b.dtype
        np.testing.assert_array_equal(la.W, lb.W)
        np.testing.assert_array_equal(la.b, lb.b)


def invalid(path):
    """The match for a ValueError that names `path`."""
    return re.escape(str(path))


# -- round trips --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
def test_round_trip_identical_predictions(backend, loss, dtype, tmp_path):
    net, X, y = trained(backend, loss, dtype)
    path = tmp_path / "model.npz"
    net.save(path)
    loaded = bp.load(path)
    assert loaded.backend == backend
    assert loaded.sizes == net.sizes and loaded.activations == net.activations
    assert (loaded.loss, loaded.init, loaded.init_std, loaded.dtype, loaded.seed) == \
        (net.loss, net.init, net.init_std, net.dtype, net.seed)
    assert_same_weights(loaded, net)
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert loaded.evaluate(X, y) == net.evaluate(X, y)


def test_round_trip_with_str_path_and_per_layer_activations(backend, tmp_path):
    net = bp.Network([4, 6, 5, 3], activation=["relu", "leaky_relu"], output="sigmoid", init="normal",
                     init_std=0.3, backend=backend, seed=None)
    path = str(tmp_path / "model.npz")
    net.save(path)
    loaded = bp.load(path)
    assert loaded.activations == ("relu", "leaky_relu", "sigmoid")
    assert (loaded.loss, loaded.init, loaded.init_std, loaded.seed) == ("binary_cross_entropy", "normal", 0.3, None)
    assert_same_weights(loaded, net)
    X = np.random.default_rng(0).normal(size=(7, 4))
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))


@pytest.mark.parametrize("dtype", DTYPES)
def test_load_with_backend_override(backend, dtype, tmp_path):
    other = "native" if backend == "numpy" else "numpy"
    net, X, _ = trained(backend, "cross_entropy", dtype)
    path = tmp_path / "model.npz"
    net.save(path)
    loaded = bp.load(path, backend=other)
    assert loaded.backend == other
    assert_same_weights(loaded, net)
    np.testing.assert_allclose(loaded.forward(X), net.forward(X), rtol=RTOL[dtype], atol=RTOL[dtype])
    same = bp.load(path, backend=backend)
    assert same.backend == backend
    np.testing.assert_array_equal(same.forward(X), net.forward(X))


def test_load_with_bad_backend_override(backend, tmp_path):
    path = tmp_path / "model.npz"
    trained(backend)[0].save(path)
    with pytest.raises(ValueError, match="backend"):
        bp.load(path, backend="cuda")


@pytest.mark.parametrize("seed", [7, None])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", LOSSES)
def test_loaded_network_trains_on_identically(backend, loss, dtype, seed, tmp_path):
    net, X, y = trained(backend, loss, dtype, seed=seed)
    path = tmp_path / "model.npz"
    net.save(path)
    loaded = bp.load(path)
    for n in (net, loaded):
        n.fit(X, y, epochs=2, batch_size=5, shuffle=True, optimizer=bp.SGD(lr=0.05, momentum=0.9))
    assert_same_weights(loaded, net)
    assert loaded.history.history == net.history.history


# -- atomic saves -------------------------------------------------------------------
@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["OSError", "KeyboardInterrupt"])
def test_failed_save_leaves_the_old_file_intact(backend, error, tmp_path, monkeypatch):
    old, X, _ = trained(backend, seed=1)
    new, _, _ = trained(backend, seed=2)
    path = tmp_path / "model.npz"
    old.save(path)
    old_bytes = path.read_bytes()

    def failing_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a model")  # fail midway, after writing something
        raise error

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(type(error)):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    np.testing.assert_array_equal(bp.load(path).forward(X), old.forward(X))


def test_failed_save_to_a_new_path_leaves_nothing(backend, tmp_path, monkeypatch):
    net, _, _ = trained(backend)

    def failing_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        net.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


def test_save_overwrites_and_leaves_no_temp_file(backend, tmp_path):
    path = tmp_path / "model.npz"
    first, X, _ = trained(backend, seed=1)
    second, _, _ = trained(backend, seed=2)
    first.save(path)
    second.save(path)
    assert os.listdir(tmp_path) == ["model.npz"]
    np.testing.assert_array_equal(bp.load(path).forward(X), second.forward(X))


def test_saved_file_permissions_follow_the_umask(backend, tmp_path):
    # Like np.savez or open(path, "w"): 0o666 less the umask, not the 0o600 of a temp file.
    previous = os.umask(0o022)
    try:
        trained(backend)[0].save(tmp_path / "model.npz")
    finally:
        os.umask(previous)
    assert os.stat(tmp_path / "model.npz").st_mode & 0o777 == 0o644


# -- files that are not model files ---------------------------------------------------------
def saved(backend, tmp_path, name="model.npz", **kwargs):
    net = bp.Network(SIZES, backend=backend, seed=0, **kwargs)
    path = tmp_path / name
    net.save(path)
    return net, path


@pytest.mark.parametrize("fraction", [0.5, 0.0, 0.1, 0.9, 0.999])
def test_truncated_file(backend, fraction, tmp_path):
    _, path = saved(backend, tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ValueError, match=invalid(cut) + r".*(npz|archive|zip|truncated)"):
        bp.load(cut)


def test_failed_load_closes_the_file(backend, tmp_path):
    _, path = saved(backend, tmp_path)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=invalid(cut)):
            bp.load(cut)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


_EXECUTED = []


def _mark_executed():
    _EXECUTED.append(True)
    return "pwned"


class _Payload:
    """Unpickling this runs _mark_executed."""

    def __reduce__(self):
        return (_mark_executed, ())


def _npy_bytes(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@pytest.mark.parametrize("make", [
    lambda: b"",
    lambda: b"this is not a model\n",
    lambda: np.random.default_rng(0).bytes(3000),
    lambda: json.dumps({"format": "backprop.Network", "format_version": 1}).encode(),
    lambda: _npy_bytes(np.arange(20.0)),
    lambda: _npy_bytes(np.array([_Payload()], dtype=object), allow_pickle=True),
    lambda: pickle.dumps(_Payload()),
], ids=["empty", "text", "random", "json", "npy", "npy-object", "pickle"])
def test_file_that_is_not_a_zip(backend, make, tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(make())
    _EXECUTED.clear()
    with pytest.raises(ValueError, match=invalid(path)):
        bp.load(path, backend=backend)
    assert _EXECUTED == []


def test_zip_with_a_corrupt_directory(backend, tmp_path):
    # Every entry of the central directory claims an unknown compression method.
    _, path = saved(backend, tmp_path)
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    assert at > 0
    while at >= 0:
        data[at + 10:at + 12] = struct.pack("<H", 99)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=invalid(path)):
        bp.load(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        bp.load(tmp_path / "nowhere.npz")
    with pytest.raises(FileNotFoundError):
        bp.load(str(tmp_path / "no-folder" / "model.npz"))


# -- tampered files ----------------------------------------------------------------------------
def tampered(backend, tmp_path, change):
    """A valid file of an mse network with non-default settings, rewritten by
    change(header dict, arrays dict); change may return a replacement header
    entry (any array) or None to keep the (modified) dict as JSON."""
    net = bp.Network(SIZES, activation="tanh", output="sigmoid", loss="mse", init="normal", init_std=0.5,
                     dtype="float64", backend=backend, seed=3)
    source = tmp_path / "source.npz"
    net.save(source)
    with np.load(source) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(str(arrays.pop("header")[()]))
    assert set(header) == set(HEADER_KEYS)
    replacement = change(header, arrays)
    if replacement is None:
        replacement = np.array(json.dumps(header))
    if replacement is not _DROP:
        arrays["header"] = replacement
    path = tmp_path / "model.npz"
    np.savez(path, **arrays)
    return path


_DROP = object()


def _set(key, value):
    def change(header, arrays):
        header[key] = value
    return change


def _set_rng(key, value):
    def change(header, arrays):
        header["rng_state"]["state"][key] = value
    return change


def _array(name, make):
    def change(header, arrays):
        arrays[name] = make(arrays[name])
    return change


def _header(value):
    return lambda header, arrays: value


def _remove_array(name):
    def change(header, arrays):
        del arrays[name]
    return change


def _with_nan(a):
    a = a.copy()
    a.flat[1] = np.nan
    return a


def _with_inf(a):
    a = a.copy()
    a.flat[0] = -np.inf
    return a


@pytest.mark.parametrize("key", HEADER_KEYS)
def test_header_missing_a_key(backend, key, tmp_path):
    def change(header, arrays):
        del header[key]
    path = tampered(backend, tmp_path, change)
    with pytest.raises(ValueError, match=invalid(path)):
        bp.load(path)


@pytest.mark.parametrize("change", [
    _set("format", "backprop.Other"),
    _set("format", None),
    _set("format_version", 3),
    _set("format_version", 0),
    _set("format_version", "1"),
    _set("format_version", None),
    _set("sizes", [4, 6, 3]),
    _set("sizes", [5, 5, 3]),
    _set("sizes", [4, 5, 2]),
    _set("sizes", [4, 5, 3, 3]),
    _set("sizes", [4, 0, 3]),
    _set("sizes", "4,5,3"),
    _set("activation", ["softmax"]),
    _set("activation", ["swish"]),
    _set("activation", []),
    _set("output", "softmax"),
    _set("loss", "hinge"),
    _set("init", "orthogonal"),
    _set("init_std", -1.0),
    _set("init_std", "0.5"),
    _set("dtype", "float32"),
    _set("dtype", "int8"),
    _set("dtype", 5),
    _set("backend", "cuda"),
    _set("seed", -5),
    _set("seed", 1.5),
    _set("rng_state", "abc"),
    _set("rng_state", None),
    _set("rng_state", {"bit_generator": "MT19937", "state": {"key": [1, 2], "pos": 0}}),
    _set_rng("state", "x"),
    _set_rng("state", -1),
    _set_rng("inc", 2 ** 200),
], ids=["format-other", "format-null", "version-2", "version-0", "version-str", "version-null",
        "sizes-hidden", "sizes-inputs", "sizes-outputs", "sizes-extra-layer", "sizes-zero", "sizes-str",
        "activation-softmax", "activation-unknown", "activation-empty", "output-softmax", "loss-unknown",
        "init-unknown", "init_std-negative", "init_std-str", "dtype-mismatch", "dtype-int8", "dtype-number",
        "backend-unknown", "seed-negative", "seed-float", "rng-str", "rng-null", "rng-other-generator",
        "rng-state-str", "rng-state-negative", "rng-inc-huge"])
def test_header_with_a_bad_value(backend, change, tmp_path):
    path = tampered(backend, tmp_path, change)
    with pytest.raises(ValueError, match=invalid(path)):
        bp.load(path)


@pytest.mark.parametrize("change", [
    _header(np.array("not json {")),
    _header(np.array("")),
    _header(np.array("[1, 2, 3]")),
    _header(np.array("null")),
    _header(np.array(3.0)),
    _header(np.array(b'{"format": "backprop.Network"}')),
    _header(np.array(["{}", "{}"])),
    _header(np.zeros((0,))),
    _header(_DROP),
], ids=["not-json", "empty", "json-list", "json-null", "number", "bytes", "1d", "empty-array", "no-header"])
def test_header_not_a_json_object(backend, change, tmp_path):
    path = tampered(backend, tmp_path, change)
    with pytest.raises(ValueError, match=invalid(path)):
        bp.load(path)


@pytest.mark.parametrize("change", [
    _array("W0", lambda W: W.T.copy()),
    _array("W0", lambda W: W.ravel()),
    _array("W1", lambda W: W[:, :-1]),
    _array("b0", lambda b: b[:, None]),
    _array("b1", lambda b: np.append(b, 0.0)),
    _array("W0", lambda W: W.astype(np.float32)),
    _array("b1", lambda b: b.astype(np.int64)),
    _array("W1", lambda W: W.astype(np.complex128)),
    _array("W0", lambda W: W.astype("U8")),
    _array("W1", _with_nan),
    _array("b0", _with_inf),
    _remove_array("b1"),
    _remove_array("W0"),
    lambda header, arrays: arrays.update(W2=np.zeros((3, 3)), b2=np.zeros(3)),
    lambda header, arrays: arrays.update(junk=np.zeros(1)),
], ids=["W0-transposed", "W0-flat", "W1-narrow", "b0-2d", "b1-long", "W0-float32", "b1-int", "W1-complex",
        "W0-str", "W1-nan", "b0-inf", "missing-b1", "missing-W0", "extra-layer", "extra-array"])
def test_bad_arrays(backend, change, tmp_path):
    path = tampered(backend, tmp_path, change)
    with pytest.raises(ValueError, match=invalid(path)):
        bp.load(path)


@pytest.mark.parametrize("where", ["W0", "header", "extra"])
def test_pickled_object_array_is_refused_unexecuted(backend, where, tmp_path):
    payload = np.array([_Payload()] * 20, dtype=object).reshape(5, 4)

    def change(header, arrays):
        if where == "header":
            return np.array(_Payload(), dtype=object)
        arrays["pickled" if where == "extra" else where] = payload

    path = tampered(backend, tmp_path, change)
    _EXECUTED.clear()
    with pytest.raises(ValueError, match=invalid(path)):
        bp.load(path)
    assert _EXECUTED == []


def test_a_tampered_copy_of_a_good_file_loads_after_reverting(backend, tmp_path):
    # The rewriting helper itself produces loadable files when it changes nothing.
    path = tampered(backend, tmp_path, lambda header, arrays: None)
    loaded = bp.load(path)
    assert (loaded.loss, loaded.activations, loaded.init, loaded.seed) == ("mse", ("tanh", "sigmoid"), "normal", 3)


# -- hostile archives: memory stays bounded -----------------------------------------------
HUGE = 256 << 20  # bytes a hostile member declares; the model itself is a few hundred bytes


def _zeros_npy(shape, dtype="<f8", nbytes=HUGE):
    """A writer of an .npy member declaring `shape` with `nbytes` of zeros after its header."""
    def write(member):
        np.lib.format.write_array_header_1_0(member, {"descr": dtype, "fortran_order": False, "shape": shape})
        chunk = bytes(1 << 20)
        for _ in range(nbytes >> 20):
            member.write(chunk)
    return write


def _bomb_files(tmp_path):
    """Small files that make a loader that decompresses first read HUGE bytes."""
    _, source = saved("numpy", tmp_path, name="source.npz", dtype="float64")
    files = {}

    def make(label, **kwargs):
        path = tmp_path / f"{label}.npz"
        with zipfile.ZipFile(source) as old, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED,
                                                               compresslevel=1) as new:
            for info in old.infolist():
                if info.filename not in kwargs.get("replace", {}):
                    new.writestr(info.filename, old.read(info))
            for name, write in [*kwargs.get("replace", {}).items(), *kwargs.get("extra", [])]:
                with new.open(name, "w", force_zip64=True) as member:
                    write(member)
        files[label] = path

    make("extra-member", extra=[("junk.npy", _zeros_npy((HUGE // 8,)))])
    make("W0-claims-huge", replace={"W0.npy": _zeros_npy((HUGE // 8 // SIZES[0], SIZES[0]))})
    make("b1-right-shape-long-body", replace={"b1.npy": _zeros_npy((SIZES[2],))})
    make("header-huge", replace={"header.npy": _zeros_npy((), dtype=f"<U{HUGE // 4}")})
    return files


BOUNDED_LOAD = """
import json, resource, sys
import backprop as bp
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
errors = {}
for path in sys.argv[1:]:
    try:
        bp.load(path)
    except ValueError as error:
        errors[path] = str(error)
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
print(json.dumps({"grew_kib": grew, "errors": errors}))
"""


def test_hostile_archives_are_refused_within_bounded_memory(tmp_path):
    files = _bomb_files(tmp_path)
    assert all(path.stat().st_size < 4 << 20 for path in files.values())  # small files ...
    script = tmp_path / "bounded_load.py"
    script.write_text(BOUNDED_LOAD)
    out = subprocess.run([sys.executable, str(script), *map(str, files.values())], capture_output=True,
                         text=True, timeout=300, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    for path in files.values():  # ... each refused, naming the file
        assert str(path) in report["errors"][str(path)]
    assert report["grew_kib"] < (32 << 10), report  # ... without reading what they declare (256 MiB each)


def _zip_with(tmp_path, members, compression=zipfile.ZIP_STORED):
    """A copy of a valid model file whose members are rewritten by members(list of (name, bytes))."""
    _, source = saved("numpy", tmp_path, name="source.npz", dtype="float64")
    with zipfile.ZipFile(source) as archive:
        entries = members([(info.filename, archive.read(info)) for info in archive.infolist()])
    path = tmp_path / "model.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", compression) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return path


@pytest.mark.parametrize("members, compression", [
    (lambda entries: entries + [entries[1]], zipfile.ZIP_STORED),
    (lambda entries: entries + [("notes.txt", b"hello")], zipfile.ZIP_STORED),
    (lambda entries: [(name[:-4] if name == "W0.npy" else name, data) for name, data in entries],
     zipfile.ZIP_STORED),
    (lambda entries: entries, zipfile.ZIP_BZIP2),
    (lambda entries: entries, zipfile.ZIP_LZMA),
], ids=["duplicate-member", "extra-text-member", "member-without-npy-suffix", "bzip2", "lzma"])
def test_archives_np_savez_never_writes_are_refused(members, compression, tmp_path):
    path = _zip_with(tmp_path, members, compression)
    with pytest.raises(ValueError, match=invalid(path)):
        bp.load(path)


def test_deflated_model_files_load(tmp_path):
    # np.savez_compressed's files are model files too.
    path = _zip_with(tmp_path, lambda entries: entries, zipfile.ZIP_DEFLATED)
    net = bp.load(path)
    assert_same_weights(net, bp.load(tmp_path / "source.npz"))


def test_stored_member_larger_than_the_file_is_refused(tmp_path):
    # The central directory says W0 holds 2**40 stored bytes in a file of a few hundred.
    _, path = saved("numpy", tmp_path, dtype="float64")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("W0.npy")
    at = data.find(b"PK\x01\x02")  # the central directory's entries
    while data[at + 46:at + 46 + len(info.filename)] != info.filename.encode():
        at = data.find(b"PK\x01\x02", at + 4)
    data[at + 20:at + 28] = struct.pack("<II", 2**31, 2**31)  # compressed and uncompressed sizes
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=invalid(path) + ".*W0"):
        bp.load(path)


# -- paths, links, and temporaries left by killed writers -----------------------------------
def test_bytes_and_pathlike_paths(backend, tmp_path):
    net, X, _ = trained(backend)
    path = os.fsencode(tmp_path / "model.npz")
    net.save(path)
    np.testing.assert_array_equal(bp.load(path).forward(X), net.forward(X))
    with pytest.raises(TypeError, match="path must be a str, bytes or os.PathLike, got int"):
        net.save(3)
    with pytest.raises(TypeError, match="path must be a str, bytes or os.PathLike, got NoneType"):
        bp.load(None)


def test_save_writes_through_a_symbolic_link(backend, tmp_path):
    net, X, _ = trained(backend)
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "v1.npz"
    bp.Network(SIZES, backend=backend).save(target)
    link = tmp_path / "current.npz"
    link.symlink_to(target)
    net.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    np.testing.assert_array_equal(bp.load(target).forward(X), net.forward(X))
    dangling = tmp_path / "next.npz"
    dangling.symlink_to(tmp_path / "models" / "v2.npz")
    net.save(dangling)  # like open(): creates the target
    assert dangling.is_symlink() and (tmp_path / "models" / "v2.npz").is_file()


INTERRUPTED_SAVE = """
import os, signal, sys, time
import numpy as np
import backprop as bp

def half_a_save(file, **arrays):
    file.write(b"PK half a model")
    file.flush()
    if sys.argv[2] == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    print("writing", flush=True)
    time.sleep(300)

np.savez = half_a_save
bp.Network([4, 3], backend="numpy").save(sys.argv[1])
"""


def _temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def test_save_removes_temporaries_of_killed_writers_only(tmp_path):
    script = tmp_path / "interrupted_save.py"
    script.write_text(INTERRUPTED_SAVE)
    models = tmp_path / "models"
    models.mkdir()
    path = models / "model.npz"
    writing = subprocess.Popen([sys.executable, str(script), str(path), "writing"], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert writing.stdout.readline().strip().endswith("writing")
        live = _temporaries(models)
        assert len(live) == 1
        for _ in range(2):  # each killed writer's save removes the previous one's temporary
            killed = subprocess.run([sys.executable, str(script), str(path), "killed"], timeout=120)
            assert killed.returncode == -9
            assert len(_temporaries(models)) == 2 and live[0] in _temporaries(models)
        other_host = models / ".backprop-999999999-00000000-abcdefgh.npz.tmp"  # a dead PID, but another host's
        other_host.write_bytes(b"PK")
        unrelated = models / "notes.npz.tmp"
        unrelated.write_bytes(b"mine")

        net = bp.Network([4, 3], backend="numpy", seed=1)
        net.save(path)
        assert _temporaries(models) == sorted([*live, other_host.name, unrelated.name])
        np.testing.assert_array_equal(bp.load(path).layers[0].W, net.layers[0].W)
    finally:
        writing.kill()
        writing.wait()
        writing.stdout.close()


# -- format versions and hidden blocks -------------------------------------------------------
def test_norm_and_dropout_round_trip(backend, tmp_path):
    net = bp.Network([4, 6, 5, 3], activation=["gelu", "silu"], norm="layer", dropout=[0.2, 0.1], dtype="float64",
                     backend=backend, seed=5)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 3, 20)
    net.fit(X, y, epochs=2, batch_size=8, optimizer=bp.AdamW(lr=0.01))
    net.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert (loaded.norm, loaded.dropout, loaded.dropout_seed) == ("layer", (0.2, 0.1), net.dropout_seed)
    np.testing.assert_array_equal(loaded.parameters(), net.parameters())
    np.testing.assert_array_equal(loaded.layers[1].gamma, net.layers[1].gamma)
    np.testing.assert_array_equal(loaded.forward(X), net.forward(X))
    # the same dropout masks: equal gradients at the same step
    net.optimizer = None
    np.testing.assert_array_equal(loaded.gradients(X, y, flat=True)[1], net.gradients(X, y, flat=True)[1])


def test_version_1_files_still_load(backend, tmp_path):
    # A version-1 file: the header without what version 2 added, and no gamma/beta arrays.
    path = tampered(backend, tmp_path, lambda header, arrays: _as_version_1(header))
    loaded = bp.load(path)
    assert loaded.norm is None and loaded.dropout == (0.0,) and isinstance(loaded.dropout_seed, int)
    reference = bp.Network(SIZES, activation="tanh", output="sigmoid", loss="mse", init="normal", init_std=0.5,
                           dtype="float64", backend=backend, seed=3)
    np.testing.assert_array_equal(loaded.parameters(), reference.parameters())


def _as_version_1(header):
    header["format_version"] = 1
    for key in ("dropout", "norm", "dropout_seed"):
        del header[key]
