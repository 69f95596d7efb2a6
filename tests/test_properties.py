"""Property-based tests (hypothesis): random architectures, dtypes, memory
layouts and bad elements through every public entry point (forward, predict,
evaluate, gradients, fit, train_on_batch, weight and optimizer-state
assignment, bp.load of damaged files).

Oracles: the NumPy backend, the reference, computes the same numbers as the
native core; a layout (Fortran order, negative strides, strided and
misaligned views, read-only arrays, memory maps, lists, other dtypes) gives
what a C-contiguous array of the same values gives; and a refused call raises
the same ValueError or TypeError in both backends, leaving each network
exactly as it was. The default profile (conftest.py) runs 100 examples per
test, ``pytest --hypothesis-profile=long tests/test_properties.py`` 3000.
"""

from __future__ import annotations

import pathlib
import tempfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, note  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import backprop as bp  # noqa: E402
from backprop._architecture import HIDDEN_ACTIVATIONS  # noqa: E402
from conftest import RTOL  # noqa: E402

BACKENDS = ("numpy", "native")
# (output, loss): every pairing the API accepts, with a few outputs for mse.
PAIRINGS = [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"), ("exp", "poisson"),
            ("identity", "mse"), ("tanh", "mse"), ("sigmoid", "mse")]
LAYOUTS = ["C", "fortran", "reversed", "strided", "misaligned", "read-only", "memmap", "list", "int32",
           "float16", "other-float"]


# -- strategies -------------------------------------------------------------------------------
@st.composite
def architectures(draw):
    """Constructor arguments of a small network: 1-3 layers of 1-6 units."""
    n_layers = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 6), min_size=n_layers + 1, max_size=n_layers + 1))
    hidden = draw(st.lists(st.sampled_from(HIDDEN_ACTIVATIONS), min_size=n_layers - 1, max_size=n_layers - 1))
    output, loss = draw(st.sampled_from(PAIRINGS))
    return {"sizes": sizes, "activation": hidden, "output": output, "loss": loss,
            "dtype": draw(st.sampled_from(["float32", "float64"])), "seed": draw(st.integers(0, 2**32 - 1))}


def networks(architecture):
    """The same network (same initial weights) in both backends."""
    return {backend: bp.Network(**architecture, backend=backend) for backend in BACKENDS}


def values(n_rows, n_cols, low=-3.0, high=3.0):
    return hnp.arrays(np.float64, (n_rows, n_cols), elements=st.floats(low, high, width=32))


@st.composite
def data(draw, architecture, max_rows=12):
    """(X values, y) that suit the architecture, y as its loss takes it."""
    sizes, loss = architecture["sizes"], architecture["loss"]
    n = draw(st.integers(1, max_rows))
    X = draw(values(n, sizes[0]))
    if loss == "cross_entropy":
        y = draw(hnp.arrays(np.int64, n, elements=st.integers(0, sizes[-1] - 1)))
    elif loss == "binary_cross_entropy":
        y = draw(values(n, sizes[-1], 0.0, 1.0))
    elif loss == "poisson":  # counts or rates, >= 0
        y = draw(values(n, sizes[-1], 0.0, 3.0))
    else:
        y = draw(values(n, sizes[-1]))
    return X, y


def lay_out(array, layout, dtype, folder, name="array"):
    """(what to pass, the values the network must see as float64): `array` in
    memory layout `layout`, of `dtype` unless the layout is a dtype itself."""
    if layout == "list":
        return array.tolist(), array.astype(np.float64)
    if layout == "int32":
        whole = np.round(array).astype(np.int32)
        return whole, whole.astype(np.float64)
    if layout == "float16":
        half = array.astype(np.float16)
        return half, half.astype(np.float64)
    if layout == "other-float":
        other = np.float64 if np.dtype(dtype) == np.float32 else np.float32
        converted = array.astype(other)
        return converted, converted.astype(np.float64)
    typed = np.ascontiguousarray(array, dtype)
    every = (slice(None),) * typed.ndim
    if layout == "C":
        out = typed
    elif layout == "fortran":
        out = np.asfortranarray(typed)
    elif layout == "reversed":  # negative strides along every axis
        backwards = (slice(None, None, -1),) * typed.ndim
        out = np.ascontiguousarray(typed[backwards])[backwards]
    elif layout == "strided":
        big = np.zeros(tuple(2 * n for n in typed.shape), typed.dtype)
        every_other = (slice(None, None, 2),) * typed.ndim
        big[every_other] = typed
        out = big[every_other]
    elif layout == "misaligned":
        raw = np.zeros(typed.nbytes + 1, np.uint8)
        out = raw[1:].view(typed.dtype).reshape(typed.shape)
        out[every] = typed
    elif layout == "read-only":
        out = typed.copy()
        out.setflags(write=False)
    else:  # a read-only memory map
        path = f"{folder}/{name}.bin"
        writer = np.memmap(path, typed.dtype, "w+", shape=typed.shape)
        writer[every] = typed
        writer.flush()
        del writer
        out = np.memmap(path, typed.dtype, "r", shape=typed.shape)
    return out, typed.astype(np.float64)


def lay_out_targets(y, layout, architecture, folder):
    """lay_out for y: class labels keep an integer dtype (as whole floats for the float layouts)."""
    labels = architecture["loss"] == "cross_entropy"
    return lay_out(y, layout, np.int64 if labels else architecture["dtype"], folder, "y")


def reference_targets(seen, architecture):
    return seen.astype(np.int64) if architecture["loss"] == "cross_entropy" else seen


def snapshot(net):
    """Everything about `net` that a refused call must leave alone."""
    optimizer = net.optimizer
    return {"params": net.parameters().copy(), "rng": repr(net.rng.bit_generator.state), "history": net.history,
            "optimizer": optimizer,
            "state": None if optimizer is None else {k: v.copy() for k, v in optimizer.state.items()},
            "step_count": None if optimizer is None else optimizer.step_count}


def assert_unchanged(net, before):
    np.testing.assert_array_equal(net.parameters(), before["params"])
    assert repr(net.rng.bit_generator.state) == before["rng"]
    assert net.history is before["history"] and net.optimizer is before["optimizer"]
    if before["optimizer"] is not None:
        assert net.optimizer.step_count == before["step_count"]
        assert set(net.optimizer.state) == set(before["state"])
        for name, value in before["state"].items():
            np.testing.assert_array_equal(net.optimizer.state[name], value)


def tolerance(dtype):
    return {"rtol": RTOL[dtype], "atol": 1e-12 if dtype == "float64" else 1e-5}


# -- computing: any layout, both backends, the same numbers ------------------------------------
@given(st.data())
def test_forward_evaluate_and_gradients_take_any_layout(draw):
    architecture = draw.draw(architectures(), "architecture")
    X, y = draw.draw(data(architecture), "data")
    x_layout, y_layout = draw.draw(st.sampled_from(LAYOUTS), "X layout"), draw.draw(st.sampled_from(LAYOUTS), "y layout")
    dtype = architecture["dtype"]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        X_in, X_seen = lay_out(X, x_layout, dtype, folder, "X")
        y_in, y_seen = lay_out_targets(y, y_layout, architecture, folder)
        X_plain, y_plain = np.ascontiguousarray(X_seen, dtype), reference_targets(y_seen, architecture)
        X_before = np.array(X_in, copy=True)
        for backend, net in networks(architecture).items():
            results[backend] = (net.forward(X_in), net.evaluate(X_in, y_in), *net.gradients(X_in, y_in, flat=True))
            assert net.predict(X_in).shape[0] == X.shape[0]
            # The layout changes nothing but where the values are read from.
            plain = (net.forward(X_plain), net.evaluate(X_plain, y_plain), *net.gradients(X_plain, y_plain, flat=True))
            np.testing.assert_allclose(results[backend][0], plain[0], **tolerance(dtype))
            assert results[backend][1]["loss"] == pytest.approx(plain[1]["loss"], rel=RTOL[dtype], abs=1e-6)
            np.testing.assert_allclose(results[backend][3], plain[3], **tolerance(dtype))
        np.testing.assert_array_equal(np.asarray(X_in), X_before)  # inputs are never written
        del X_in, y_in  # close the memory maps before the folder goes
    (out_n, eval_n, loss_n, grads_n), (out_c, eval_c, loss_c, grads_c) = results["numpy"], results["native"]
    np.testing.assert_allclose(out_c, out_n, **tolerance(dtype))
    assert eval_c.keys() == eval_n.keys()
    assert eval_c["loss"] == pytest.approx(eval_n["loss"], rel=RTOL[dtype], abs=1e-6)
    assert loss_c == pytest.approx(loss_n, rel=RTOL[dtype], abs=1e-6)
    np.testing.assert_allclose(grads_c, grads_n, **tolerance(dtype))


OPTIMIZERS = {"sgd": lambda: bp.SGD(lr=0.05), "momentum": lambda: bp.SGD(lr=0.05, momentum=0.9, nesterov=True),
              "adam": lambda: bp.Adam(lr=0.01, weight_decay=1e-3)}


@given(st.data())
def test_training_takes_any_layout(draw):
    """fit on any layout trains exactly as on a C-contiguous copy (the batches
    are gathered either way), and the core as the NumPy backend does."""
    architecture = draw.draw(architectures(), "architecture")
    X, y = draw.draw(data(architecture, max_rows=20), "data")
    x_layout, y_layout = draw.draw(st.sampled_from(LAYOUTS), "X layout"), draw.draw(st.sampled_from(LAYOUTS), "y layout")
    optimizer = draw.draw(st.sampled_from(sorted(OPTIMIZERS)), "optimizer")
    batch_size = draw.draw(st.integers(1, 8), "batch_size")
    dtype = architecture["dtype"]
    trained = {}
    with tempfile.TemporaryDirectory() as folder:
        X_in, X_seen = lay_out(X, x_layout, dtype, folder, "X")
        y_in, y_seen = lay_out_targets(y, y_layout, architecture, folder)
        X_plain, y_plain = np.ascontiguousarray(X_seen, dtype), reference_targets(y_seen, architecture)
        for backend in BACKENDS:
            runs = []
            for X_fit, y_fit in ((X_in, y_in), (X_plain, y_plain)):
                net = bp.Network(**architecture, backend=backend)
                try:
                    outcome = net.fit(X_fit, y_fit, epochs=2, batch_size=batch_size,
                                      optimizer=OPTIMIZERS[optimizer]()).history
                except FloatingPointError as error:  # diverged: the same way on both layouts
                    outcome = str(error)
                runs.append((net.parameters().copy(), outcome))
            np.testing.assert_array_equal(runs[0][0], runs[1][0])
            assert runs[0][1] == runs[1][1]
            trained[backend] = runs[0]
        del X_in, y_in
    converged = all(isinstance(outcome, dict) for _, outcome in trained.values())
    if dtype == "float64" and converged:  # float32 trajectories may part by rounding across a ReLU's kink
        np.testing.assert_allclose(trained["native"][0], trained["numpy"][0], rtol=1e-8, atol=1e-10)


# -- bad elements: refused alike, nothing changed ------------------------------------------------
def _trained_pair(architecture, X, y):
    nets = networks(architecture)
    for net in nets.values():
        net.fit(X, y, epochs=1, batch_size=4, optimizer=bp.Adam(lr=0.01))
    return nets


BAD_ELEMENTS = [np.nan, np.inf, -np.inf, 1e39, "1.5", "x", None, 1 + 2j, [1.0]]


@st.composite
def spoiled(draw, array, what):
    """`array` with one element replaced by something that is no usable number, or in a wrong shape."""
    how = draw(st.sampled_from(["element", "shape"]), f"how {what} is spoiled")
    if how == "element":
        bad = draw(st.sampled_from(BAD_ELEMENTS), f"bad element of {what}")
        spoilt = array.astype(object)
        spoilt[tuple(draw(st.integers(0, n - 1)) for n in array.shape)] = bad
        if all(isinstance(v, (float, int, np.floating, np.integer)) for v in spoilt.ravel()):
            spoilt = spoilt.astype(np.float64)
        elif all(isinstance(v, (str, float, int)) for v in spoilt.ravel()) and draw(st.booleans()):
            spoilt = spoilt.astype(str)  # numeric strings next to a real one
        return spoilt
    shapes = [array.shape[:-1] + (array.shape[-1] + 1,), array.shape + (1,), (0,) + array.shape[1:], ()]
    if array.ndim == 2:
        shapes.append(array.shape[:1])
    return np.zeros(draw(st.sampled_from(shapes), f"shape of {what}"))


ENTRIES = ["forward", "predict", "evaluate", "gradients", "fit", "train_on_batch"]


def call(net, entry, X, y):
    if entry in ("forward", "predict"):
        return getattr(net, entry)(X)
    if entry == "fit":
        return net.fit(X, y, epochs=1, batch_size=3)
    return getattr(net, entry)(X, y)


@given(st.data())
def test_bad_elements_are_refused_alike_and_change_nothing(draw):
    architecture = draw.draw(architectures(), "architecture")
    X, y = draw.draw(data(architecture), "data")
    entry = draw.draw(st.sampled_from(ENTRIES), "entry point")
    spoil_X = entry in ("forward", "predict") or draw.draw(st.booleans(), "spoil X (else y)")
    if spoil_X:
        X = draw.draw(spoiled(X, "X"))
    elif architecture["loss"] == "cross_entropy" and draw.draw(st.booleans(), "bad class label"):
        y = y.copy()
        y[draw.draw(st.integers(0, len(y) - 1))] = draw.draw(
            st.sampled_from([-1, architecture["sizes"][-1], 2**62]), "label")
    else:
        y = draw.draw(spoiled(y, "y"))
    nets = _trained_pair(architecture, *draw.draw(data(architecture), "training data"))
    outcomes = []
    for backend, net in nets.items():
        before = snapshot(net)
        try:
            call(net, entry, X, y)
        except (ValueError, TypeError) as error:
            outcomes.append((type(error), str(error)))
            assert_unchanged(net, before)
        else:
            outcomes.append(None)
    note(f"outcomes: {outcomes}")
    assert outcomes[0] == outcomes[1]
    if outcomes[0] is None:  # accepted: only a value that is still a usable number (1e39 in float64)
        assert architecture["dtype"] == "float64"


# -- state the user assigns: weights, optimizer state, step count -----------------------------
@given(st.data())
def test_assigned_weights_are_converted_or_refused_alike(draw):
    architecture = draw.draw(architectures(), "architecture")
    layer = draw.draw(st.integers(0, len(architecture["sizes"]) - 2), "layer")
    attribute = draw.draw(st.sampled_from(["W", "b"]), "attribute")
    nets = networks(architecture)
    shape = getattr(nets["numpy"].layers[layer], attribute).shape
    value = draw.draw(values(*shape) if attribute == "W" else values(1, *shape).map(lambda a: a[0]), "value")
    layout = draw.draw(st.sampled_from(LAYOUTS), "layout")
    spoil = draw.draw(st.booleans(), "spoil")
    outcomes = []
    with tempfile.TemporaryDirectory() as folder:
        given_value, seen = lay_out(value, layout, architecture["dtype"], folder)
        if spoil:
            given_value = draw.draw(spoiled(np.asarray(seen), "value"))
        for net in nets.values():
            before = snapshot(net)
            try:
                setattr(net.layers[layer], attribute, given_value)
            except (ValueError, TypeError) as error:
                outcomes.append((type(error), str(error)))
                assert_unchanged(net, before)
            else:
                outcomes.append(None)
                expected = np.asarray(given_value, np.float64).astype(architecture["dtype"])
                np.testing.assert_array_equal(getattr(net.layers[layer], attribute), expected)
        del given_value
    assert outcomes[0] == outcomes[1]
    assert spoil or outcomes[0] is None


@given(st.data())
def test_assigned_optimizer_state_and_step_count_are_used_or_refused_alike(draw):
    architecture = draw.draw(architectures(), "architecture")
    X, y = draw.draw(data(architecture), "data")
    nets = _trained_pair(architecture, X, y)  # Adam, so state "m" and "v"
    name = draw.draw(st.sampled_from(["m", "v", "step_count"]), "what is assigned")
    if name == "step_count":
        value = draw.draw(st.one_of(st.integers(-2**64, 2**64), st.sampled_from([2**63 - 2, 2**63 - 1, 1.5, "3",
                                                                                  None, True])), "value")
    else:
        layout = draw.draw(st.sampled_from([layout for layout in LAYOUTS if layout != "memmap"]), "layout")
        state = np.abs(nets["numpy"].optimizer.state[name])  # a usable value in any layout
        value, _ = lay_out(state[None, :], layout, architecture["dtype"], None)
        value = value[0]
        if draw.draw(st.booleans(), "spoil"):
            value = draw.draw(spoiled(np.asarray(state), "state"))
    outcomes = []
    for net in nets.values():
        before = snapshot(net)
        optimizer = net.optimizer
        try:  # a step count is checked when assigned, state arrays when a step would use them
            if name == "step_count":
                optimizer.step_count = value
            else:
                optimizer.state[name] = value
        except (ValueError, TypeError) as error:
            outcomes.append(("assignment", type(error), str(error)))
            assert_unchanged(net, before)
            continue
        try:
            net.train_on_batch(X, y)
        except (ValueError, TypeError, FloatingPointError) as error:  # FloatingPointError: e.g. a huge m
            outcomes.append(("step", type(error), str(error)))
            np.testing.assert_array_equal(net.parameters(), before["params"])
            assert net.history is before["history"] and net.optimizer is optimizer
            assert optimizer.step_count == (value if name == "step_count" else before["step_count"])
        else:
            outcomes.append(None)
            state = optimizer.state
            assert all(state[k].dtype == net.dtype and state[k].flags.aligned for k in ("m", "v"))
    note(f"outcomes: {outcomes}")
    assert outcomes[0] == outcomes[1]


# -- model files: hostile bytes never crash the loader ---------------------------------------------
@given(st.data())
def test_damaged_model_files_raise_value_error_or_load_unchanged(draw):
    architecture = draw.draw(architectures(), "architecture")
    net = bp.Network(**architecture, backend="numpy")
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/model.npz"
        net.save(path)
        original = bytearray(pathlib.Path(path).read_bytes())
        damage = draw.draw(st.sampled_from(["flip", "truncate", "splice"]), "damage")
        data = bytearray(original)
        if damage == "flip":
            for _ in range(draw.draw(st.integers(1, 4), "flips")):
                at = draw.draw(st.integers(0, len(data) - 1))
                data[at] ^= draw.draw(st.integers(1, 255))
        elif damage == "truncate":
            data = data[:draw.draw(st.integers(0, len(data) - 1), "length")]
        else:
            at = draw.draw(st.integers(0, len(data)), "where")
            data[at:at] = draw.draw(st.binary(min_size=1, max_size=64), "inserted bytes")
        pathlib.Path(path).write_bytes(bytes(data))
        try:
            loaded = bp.load(path)
        except ValueError as error:
            assert path in str(error)
        else:  # the damage missed everything the loader reads: the same network
            np.testing.assert_array_equal(loaded.parameters(), net.parameters())
            assert loaded._config() == net._config()
