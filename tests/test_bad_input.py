"""Bad input at every entry point: the right exception, a message that names
the argument, and a network (weights, optimizer, history, random generator)
left exactly as it was."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import assert_unchanged, make_data, snapshot

import backprop as bp

SIZES = [4, 5, 3]
N = 12
BATCH = 4


# -- helpers ------------------------------------------------------------------
def build(backend, loss="cross_entropy", dtype="float64", output=None):
    """A tiny network that has been trained once, so that it has weights,
    an optimizer with state and a history that a failed call must not touch."""
    net = bp.Network(SIZES, activation="tanh", output=output, loss=loss, dtype=dtype, backend=backend,
                     seed=1)
    X, y = make_data(loss, N, SIZES[0], SIZES[-1])
    net.fit(X, y, epochs=1, batch_size=BATCH, optimizer=bp.SGD(lr=0.05, momentum=0.9))
    return net, X, y


class Guard:
    """Everything about a network that a rejected call must leave alone."""

    def __init__(self, net):
        self.net = net
        self.params = snapshot(net)
        self.optimizer = net.optimizer
        self.optimizer_repr = repr(net.optimizer)
        self.state = {k: v.copy() for k, v in net.optimizer.state.items()}
        self.step_count = net.optimizer.step_count
        self.history = net.history
        self.logs = copy.deepcopy(net.history.history)
        self.epochs = list(net.history.epoch)

    def check(self):
        net = self.net
        assert_unchanged(net, self.params)
        assert net.optimizer is self.optimizer
        assert repr(net.optimizer) == self.optimizer_repr
        assert net.optimizer.step_count == self.step_count
        assert set(net.optimizer.state) == set(self.state)
        for key, value in self.state.items():
            np.testing.assert_array_equal(net.optimizer.state[key], value)
        assert net.history is self.history
        assert net.history.history == self.logs
        assert net.history.epoch == self.epochs


def assert_same_weights(a, b):
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(la.W, lb.W)
        np.testing.assert_array_equal(la.b, lb.b)


def assert_trains_like_twin(net, X, y, backend, loss, dtype, output=None):
    """The rejected call consumed no randomness and no optimizer state: one
    more shuffled epoch gives exactly what a twin that never saw it gives."""
    twin, _, _ = build(backend, loss, dtype, output)
    for n in (net, twin):
        n.fit(X, y, epochs=1, batch_size=BATCH, shuffle=True)
    assert_same_weights(net, twin)
    assert net.history.history == twin.history.history
    assert net.optimizer.step_count == twin.optimizer.step_count


def call(net, entry, X, y, optimizer):
    if entry in ("forward", "predict"):
        return getattr(net, entry)(X)
    if entry == "fit":
        return net.fit(X, y, epochs=1, batch_size=BATCH, optimizer=optimizer)
    return getattr(net, entry)(X, y)


def check_rejected(backend, entry, X, y, exc, match, loss="cross_entropy", dtype="float64", output=None):
    """`entry` on (X, y) raises `exc` matching `match` and changes nothing.

    X or y may be callables that receive the network's valid (X, y)."""
    net, X0, y0 = build(backend, loss, dtype, output)
    X = X(X0, y0) if callable(X) else X
    y = y(X0, y0) if callable(y) else y
    guard = Guard(net)
    fresh = bp.Adam(lr=0.01)
    with pytest.raises(exc, match=match):
        call(net, entry, X, y, fresh)
    guard.check()
    assert fresh.state == {} and fresh.step_count == 0
    if entry == "fit":
        assert_trains_like_twin(net, X0, y0, backend, loss, dtype, output)


X_ENTRIES = ["forward", "predict", "evaluate", "gradients", "fit"]
Y_ENTRIES = ["evaluate", "gradients", "fit"]
VALID_X = lambda X, y: X  # noqa: E731
VALID_Y = lambda X, y: y  # noqa: E731


# -- X ------------------------------------------------------------------------
@pytest.mark.parametrize("entry", X_ENTRIES)
@pytest.mark.parametrize("n_features", [3, 5])
def test_wrong_feature_count(backend, entry, n_features):
    check_rejected(backend, entry, np.ones((N, n_features)), VALID_Y, ValueError,
                   rf"\bX\b.*{n_features} features")


@pytest.mark.parametrize("entry", X_ENTRIES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_X(backend, entry, bad):
    def X(X0, y0):
        X = X0.copy()
        X[3, 2] = bad
        return X
    check_rejected(backend, entry, X, VALID_Y, ValueError, r"\bX\b.*(NaN|inf)")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, None])
def test_finiteness_of_a_large_X(bad):
    # Large arrays are checked by one sum (finite sum: every value finite), then
    # by min/max when the sum is not finite: huge finite values whose sum
    # overflows are accepted, a single NaN or ±inf anywhere is refused.
    net = bp.Network([200, 3], dtype="float64", seed=0)
    X = np.full((400, 200), 1e306)  # 80,000 values, their sum overflows float64
    if bad is None:
        assert net.forward(X).shape == (400, 3)
    else:
        X[399, 199] = bad
        with pytest.raises(ValueError, match=r"\bX\b.*(NaN|inf)"):
            net.forward(X)


@pytest.mark.parametrize("layout", ["one row", "fortran", "every other column", "reversed rows"])
def test_forward_finds_nonfinite_values_in_any_layout(backend, layout):
    # forward leaves the scan for NaN and ±inf to the backend (the core's for
    # native), which reads X through its strides: a view must be scanned
    # exactly over the values it shows.
    net = bp.Network([4, 3], dtype="float64", seed=0, backend=backend)
    base = np.arange(48, dtype=np.float64).reshape(6, 8)
    view = {"one row": lambda A: A[2:3, :4], "fortran": lambda A: np.asfortranarray(A[:, :4]),
            "every other column": lambda A: A[:, ::2], "reversed rows": lambda A: A[::-1, 4:]}[layout]
    hidden = base.copy()
    hidden[2, 5 if layout == "one row" else 1] = np.nan  # outside the view
    if layout == "fortran":  # a copy: nothing outside it
        hidden = base
    assert np.isfinite(net.forward(view(hidden))).all()
    shown = base.copy()
    shown[2, 2 if layout != "reversed rows" else 7] = np.inf
    with pytest.raises(ValueError, match=r"\bX\b.*(NaN|inf)"):
        net.forward(view(shown))


LARGE_VIEWS = {  # views of a (604, 600) array: X as a caller may hold it, and whether the core scans it
    "rows in runs": (lambda A: A[:, :300], True),
    "columns in runs": (lambda A: A.T[:, :300], True),
    "reversed rows": (lambda A: A[::-1, :300], True),
    "every other row": (lambda A: A[::2, :300], True),
    "every other column": (lambda A: A[:, ::2], False),  # no contiguous run: NumPy's sum decides
}


@pytest.mark.parametrize("layout", list(LARGE_VIEWS) + ["float16"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, None])
def test_large_X_is_scanned_in_any_layout(layout, bad):
    # Large inputs (over 65,536 values) are scanned for NaN and ±inf by the
    # core where their values lie in contiguous runs, by NumPy otherwise:
    # either way one bad value anywhere in X is refused, and nothing around
    # it (NaN everywhere X does not show) is read.
    from backprop import _core
    if layout == "float16":
        X, scanned_by_core = np.zeros((302, 300), np.float16), False
    else:
        view, scanned_by_core = LARGE_VIEWS[layout]
        backing = np.full((604, 600), np.nan)
        view(backing)[...] = 0.0
        X = view(backing)
    assert X.size > 65536 and np.isfinite(X).all()
    assert (_core.all_finite(X) is not None) == scanned_by_core
    net = bp.Network([300, 3], dtype="float64", seed=0)
    y = np.zeros(X.shape[0], dtype=int)
    if bad is None:
        net.evaluate(X, y)
        return
    X[-1, -1] = bad
    with pytest.raises(ValueError, match=r"\bX\b.*(NaN|inf)"):
        net.evaluate(X, y)


@pytest.mark.parametrize("entry", X_ENTRIES)
def test_X_beyond_the_range_of_float32(backend, entry):
    # Finite in float64 but infinite once converted to the network's float32.
    def X(X0, y0):
        X = X0.copy()
        X[0, 0] = 1e39
        return X
    check_rejected(backend, entry, X, VALID_Y, ValueError, r"\bX\b", dtype="float32")


@pytest.mark.parametrize("entry", X_ENTRIES)
def test_empty_X(backend, entry):
    check_rejected(backend, entry, np.empty((0, SIZES[0])), np.empty(0, np.int64), ValueError,
                   r"\bX\b.*empty")


@pytest.mark.parametrize("entry", X_ENTRIES)
@pytest.mark.parametrize("shape", [(SIZES[0],), (N, SIZES[0], 1), ()], ids=["1d", "3d", "0d"])
def test_X_wrong_ndim(backend, entry, shape):
    check_rejected(backend, entry, np.ones(shape), VALID_Y, ValueError, r"\bX\b.*2-D")


@pytest.mark.parametrize("entry", X_ENTRIES)
@pytest.mark.parametrize("make", [
    lambda: np.full((N, SIZES[0]), "a"),
    lambda: np.ones((N, SIZES[0]), complex),
    lambda: np.ones((N, SIZES[0]), object),
    lambda: [["a", "b", "c", "d"]] * N,
], ids=["str", "complex", "object", "list-of-str"])
def test_X_not_real_numbers(backend, entry, make):
    check_rejected(backend, entry, make(), VALID_Y, TypeError, r"\bX\b.*real numbers")


@pytest.mark.parametrize("entry", X_ENTRIES)
def test_X_none(backend, entry):
    check_rejected(backend, entry, None, VALID_Y, TypeError, r"\bX\b.*None")


@pytest.mark.parametrize("entry", X_ENTRIES)
def test_X_ragged(backend, entry):
    check_rejected(backend, entry, [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]], VALID_Y, ValueError, r"\bX\b")


# -- y ------------------------------------------------------------------------
@pytest.mark.parametrize("entry", Y_ENTRIES)
@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "binary_cross_entropy"])
@pytest.mark.parametrize("delta", [-1, 1])
def test_X_y_length_mismatch(backend, entry, loss, delta):
    def y(X0, y0):
        return y0[:-1] if delta < 0 else np.concatenate([y0, y0[:1]])
    check_rejected(backend, entry, VALID_X, y, ValueError, r"\by\b.*\bX\b", loss=loss)


@pytest.mark.parametrize("entry", Y_ENTRIES)
@pytest.mark.parametrize("label", [-1, SIZES[-1], 100], ids=["negative", "n_classes", "large"])
def test_label_out_of_range(backend, entry, label):
    def y(X0, y0):
        y = y0.copy()
        y[5] = label
        return y
    check_rejected(backend, entry, VALID_X, y, ValueError, rf"\by\b.*label {label}\b")


@pytest.mark.parametrize("entry", Y_ENTRIES)
def test_float_labels_out_of_range(backend, entry):
    check_rejected(backend, entry, VALID_X, lambda X0, y0: np.where(np.arange(N) == 2, -1.0, y0.astype(float)),
                   ValueError, r"\by\b.*label")


@pytest.mark.parametrize("entry", Y_ENTRIES)
def test_fractional_labels(backend, entry):
    check_rejected(backend, entry, VALID_X, lambda X0, y0: y0 + 0.5 * (np.arange(N) == 4), ValueError,
                   r"\by\b.*fractional")


@pytest.mark.parametrize("entry", Y_ENTRIES)
def test_bool_labels(backend, entry):
    check_rejected(backend, entry, VALID_X, lambda X0, y0: y0 > 0, TypeError, r"\by\b.*bool")


@pytest.mark.parametrize("entry", Y_ENTRIES)
@pytest.mark.parametrize("loss", ["mse", "binary_cross_entropy"])
@pytest.mark.parametrize("make", [
    lambda y0: y0[:, 0],
    lambda y0: y0[:, :2],
    lambda y0: np.concatenate([y0, y0[:, :1]], axis=1),
    lambda y0: y0[:, :, None],
], ids=["1d", "too-few-columns", "too-many-columns", "3d"])
def test_targets_wrong_shape(backend, entry, loss, make):
    check_rejected(backend, entry, VALID_X, lambda X0, y0: make(y0), ValueError, r"\by\b.*shape", loss=loss)


@pytest.mark.parametrize("entry", Y_ENTRIES)
@pytest.mark.parametrize("bad", [-0.5, 1.5])
def test_bce_targets_outside_unit_interval(backend, entry, bad):
    def y(X0, y0):
        y = y0.copy()
        y[1, 2] = bad
        return y
    check_rejected(backend, entry, VALID_X, y, ValueError, r"\by\b.*\[0, 1\]", loss="binary_cross_entropy")


@pytest.mark.parametrize("entry", Y_ENTRIES)
def test_poisson_targets_negative(backend, entry):
    def y(X0, y0):
        y = y0.copy()
        y[2, 1] = -1.0
        return y
    check_rejected(backend, entry, VALID_X, y, ValueError, r"\by\b.*>= 0.*poisson", loss="poisson")


@pytest.mark.parametrize("entry", Y_ENTRIES)
@pytest.mark.parametrize("make", [
    lambda labels: np.full((N, SIZES[-1]), 0.5),
    lambda labels: np.eye(SIZES[-1])[labels] * 0.9,
    lambda labels: np.eye(SIZES[-1])[labels] * 2 - np.eye(SIZES[-1])[(labels + 1) % SIZES[-1]],
], ids=["sum-1.5", "sum-0.9", "negative"])
def test_probability_rows_not_distributions(backend, entry, make):
    check_rejected(backend, entry, VALID_X, lambda X0, y0: make(y0), ValueError, r"\by\b.*probabilit")


@pytest.mark.parametrize("entry", Y_ENTRIES)
@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "binary_cross_entropy"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_y(backend, entry, loss, bad):
    def y(X0, y0):
        y = y0.astype(float)
        y[(3,) if y.ndim == 1 else (3, 1)] = bad
        return y
    check_rejected(backend, entry, VALID_X, y, ValueError, r"\by\b.*(NaN|inf)", loss=loss)


@pytest.mark.parametrize("entry", Y_ENTRIES)
def test_y_beyond_the_range_of_float32(backend, entry):
    # Finite in float64 but infinite once converted to the network's float32.
    def y(X0, y0):
        y = y0.copy()
        y[0, 0] = -1e39
        return y
    check_rejected(backend, entry, VALID_X, y, ValueError, r"\by\b", loss="mse", dtype="float32")


@pytest.mark.parametrize("entry", Y_ENTRIES)
def test_nonfinite_probability_rows(backend, entry):
    def y(X0, y0):
        y = np.eye(SIZES[-1])[y0]
        y[0, 0] = np.nan
        return y
    check_rejected(backend, entry, VALID_X, y, ValueError, r"\by\b.*(NaN|inf)")


@pytest.mark.parametrize("entry", Y_ENTRIES)
@pytest.mark.parametrize("y, exc", [
    (None, TypeError),
    (np.array(["a"] * N), TypeError),
    (np.ones(N, complex), TypeError),
    (np.array(1), ValueError),
], ids=["none", "str", "complex", "0d"])
def test_y_not_targets(backend, entry, y, exc):
    check_rejected(backend, entry, VALID_X, y, exc, r"\by\b")


# -- Network(...) ---------------------------------------------------------------
@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(activation="swish"), ValueError, r"\bactivation\b.*swish"),
    (dict(activation=3), TypeError, r"\bactivation\b"),
    (dict(output="swish"), ValueError, r"\boutput\b.*swish"),
    (dict(loss="hinge"), ValueError, r"\bloss\b.*hinge"),
    (dict(init="orthogonal"), ValueError, r"\binit\b.*orthogonal"),
    (dict(activation="softmax"), ValueError, r"\bactivation\b.*softmax"),
    (dict(sizes=[4, 5, 5, 3], activation=["relu", "softmax"]), ValueError, r"activation\[1\].*softmax"),
    (dict(sizes=[4, 5, 5, 3], activation=["relu"]), ValueError, r"\bactivation\b.*2"),
    (dict(sizes=[4, 5, 5, 3], activation=["relu", "tanh", "relu"]), ValueError, r"\bactivation\b.*3"),
    (dict(sizes=[4, 3], activation=["relu"]), ValueError, r"\bactivation\b"),
    (dict(sizes=[4, 5, 5, 3], activation=["relu", "swish"]), ValueError, r"activation\[1\].*swish"),
    (dict(output="softmax", loss="mse"), ValueError, r"\boutput\b.*\bloss\b"),
    (dict(output="sigmoid", loss="cross_entropy"), ValueError, r"\boutput\b.*\bloss\b"),
    (dict(output="identity", loss="binary_cross_entropy"), ValueError, r"\boutput\b|\bloss\b"),
    (dict(output="exp", loss="mse"), ValueError, r"\boutput\b.*\bloss\b"),
    (dict(output="identity", loss="poisson"), ValueError, r"\boutput\b.*\bloss\b"),
    (dict(activation="exp"), ValueError, r"\bactivation\b.*exp"),
    (dict(sizes=[4, 0, 3]), ValueError, r"sizes\[1\].*>= 1"),
    (dict(sizes=[4, -3, 3]), ValueError, r"sizes\[1\].*-3"),
    (dict(sizes=[0, 3]), ValueError, r"sizes\[0\]"),
    (dict(sizes=[4]), ValueError, r"\bsizes\b.*two"),
    (dict(sizes=[]), ValueError, r"\bsizes\b.*two"),
    (dict(sizes=[4, 2.5, 3]), TypeError, r"sizes\[1\].*integer"),
    (dict(sizes=[4, "3", 3]), TypeError, r"sizes\[1\].*integer"),
    (dict(sizes=[4, True, 3]), TypeError, r"sizes\[1\].*integer"),
    (dict(sizes="43"), TypeError, r"\bsizes\b"),
    (dict(sizes=4), TypeError, r"\bsizes\b"),
    (dict(sizes=None), TypeError, r"\bsizes\b"),
    (dict(dtype="int32"), ValueError, r"\bdtype\b.*int32"),
    (dict(dtype="float16"), ValueError, r"\bdtype\b.*float16"),
    (dict(dtype=np.complex128), ValueError, r"\bdtype\b"),
    (dict(dtype=object()), TypeError, r"\bdtype\b"),
    (dict(backend="cuda"), ValueError, r"\bbackend\b.*cuda"),
    (dict(backend=None), TypeError, r"\bbackend\b"),
    (dict(seed=-1), ValueError, r"\bseed\b.*-1"),
    (dict(seed=1.5), TypeError, r"\bseed\b"),
    (dict(init="normal", init_std=0.0), ValueError, r"\binit_std\b"),
    (dict(init="normal", init_std=-1.0), ValueError, r"\binit_std\b"),
    (dict(init="normal", init_std=float("nan")), ValueError, r"\binit_std\b"),
    (dict(init="normal", init_std=float("inf")), ValueError, r"\binit_std\b"),
    (dict(init="normal", init_std="0.1"), TypeError, r"\binit_std\b"),
])
def test_bad_constructor_argument(backend, kwargs, exc, match):
    kwargs = {"sizes": SIZES, "backend": backend, "seed": 0, **kwargs}
    with pytest.raises(exc, match=match):
        bp.Network(**kwargs)


# -- fit's own arguments -----------------------------------------------------------
@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(epochs=0), ValueError, r"\bepochs\b.*>= 1"),
    (dict(epochs=-1), ValueError, r"\bepochs\b.*-1"),
    (dict(epochs=1.5), TypeError, r"\bepochs\b.*integer"),
    (dict(epochs=True), TypeError, r"\bepochs\b"),
    (dict(epochs=None), TypeError, r"\bepochs\b"),
    (dict(batch_size=0), ValueError, r"\bbatch_size\b.*>= 1"),
    (dict(batch_size=-4), ValueError, r"\bbatch_size\b.*-4"),
    (dict(batch_size="32"), TypeError, r"\bbatch_size\b.*integer"),
    (dict(batch_size=2.0), TypeError, r"\bbatch_size\b"),
    (dict(optimizer="sgd"), TypeError, r"\boptimizer\b"),
    (dict(optimizer=bp.SGD), TypeError, r"\boptimizer\b"),
    (dict(shuffle="yes"), TypeError, r"\bshuffle\b"),
    (dict(shuffle=1), TypeError, r"\bshuffle\b"),
    (dict(shuffle=None), TypeError, r"\bshuffle\b"),
    (dict(verbose=-1), ValueError, r"\bverbose\b"),
    (dict(record_grad_norms="no"), TypeError, r"\brecord_grad_norms\b"),
])
def test_bad_fit_argument(backend, kwargs, exc, match):
    net, X, y = build(backend)
    guard = Guard(net)
    with pytest.raises(exc, match=match):
        net.fit(X, y, **{"epochs": 2, "batch_size": BATCH, "optimizer": bp.Adam(lr=0.01), **kwargs})
    guard.check()
    assert_trains_like_twin(net, X, y, backend, "cross_entropy", "float64")


# -- callbacks and shuffle orders: refused before anything changes -------------------
class _Refuses(bp.callbacks.Callback):
    """A user's callback that refuses every fit in its check."""

    def check(self, params):
        raise ValueError("this callback refuses fits of " + str(params["samples"]) + " samples")


@pytest.mark.parametrize("make, match", [
    (lambda: bp.callbacks.EarlyStopping(), r"EarlyStopping monitors 'val_loss'.*no validation data"),
    (lambda: bp.callbacks.EarlyStopping(monitor="val_accuracy"), r"'val_accuracy'.*no validation data"),
    (lambda: bp.callbacks.EarlyStopping(monitor="los"), r"monitors 'los', which fit does not report"),
    (lambda: bp.callbacks.ReduceLROnPlateau(), r"ReduceLROnPlateau monitors 'val_loss'"),
    (lambda: bp.callbacks.ModelCheckpoint("m.npz", save_best_only=True), r"ModelCheckpoint monitors 'val_loss'"),
    (lambda: bp.callbacks.ModelCheckpoint("m-{val_loss:.2f}.npz"), r"ModelCheckpoint's path.*KeyError"),
    (lambda: bp.callbacks.ModelCheckpoint("m-{epoch:d}-{1}.npz"), r"ModelCheckpoint's path.*IndexError"),
    (lambda: _Refuses(), r"refuses fits of \d+ samples"),
], ids=["early-stopping", "val-accuracy", "typo", "plateau", "checkpoint-best", "checkpoint-path",
        "checkpoint-index", "user"])
def test_callback_refuses_the_fit_before_anything_changes(backend, make, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net, X, y = build(backend)
    guard = Guard(net)
    fresh = bp.SGD(lr=0.5, momentum=0.5)
    with pytest.raises(ValueError, match=match):
        net.fit(X, y, epochs=2, batch_size=BATCH, optimizer=fresh, callbacks=[make()])
    guard.check()
    assert fresh.state == {} and fresh.step_count == 0
    assert list(tmp_path.iterdir()) == []
    assert_trains_like_twin(net, X, y, backend, "cross_entropy", "float64")


@pytest.mark.parametrize("bad, match", [
    (lambda n: np.arange(n) + 1, r"outside \[0, \d+\)"),
    (lambda n: -np.ones(n, np.int64), r"outside"),
    (lambda n: np.zeros((n, 1), np.int64), r"1-D array"),
    (lambda n: np.linspace(0, n - 1, n), r"integer row indices"),
    (lambda n: np.array([], np.int64), r"non-empty"),
], ids=["past-end", "negative", "2-D", "float", "empty"])
@pytest.mark.parametrize("bad_epoch", [0, 2])
def test_bad_shuffle_order_is_refused_before_that_epoch_changes_anything(backend, bad, match, bad_epoch):
    """A bad order for the first epoch leaves the network as it was; for a later epoch, the network,
    optimizer and History hold exactly the epochs before it (a fit of that many epochs)."""
    net, X, y = build(backend)
    n = X.shape[0]
    began = []

    class Began(bp.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            began.append(epoch)

    def shuffle(epoch):
        return bad(n) if epoch == bad_epoch else np.random.default_rng(epoch).permutation(n)

    twin, _, _ = build(backend)
    guard = Guard(net)
    twin_optimizer = bp.SGD(lr=0.5, momentum=0.5)
    if bad_epoch:
        twin.fit(X, y, epochs=bad_epoch, batch_size=BATCH, optimizer=twin_optimizer, shuffle=shuffle)
    optimizer = bp.SGD(lr=0.5, momentum=0.5)
    with pytest.raises(ValueError, match=match):
        net.fit(X, y, epochs=4, batch_size=BATCH, optimizer=optimizer, shuffle=shuffle, callbacks=[Began()])
    assert began == list(range(bad_epoch))  # the bad epoch never began
    if not bad_epoch:
        guard.check()
        assert optimizer.state == {} and optimizer.step_count == 0
        return
    assert_same_weights(net, twin)
    assert optimizer.step_count == twin_optimizer.step_count
    np.testing.assert_array_equal(optimizer.state["momentum_buffer"], twin_optimizer.state["momentum_buffer"])
    assert net.history.history == twin.history.history


def _with_labels(X, y, label):
    y = y.copy()
    y[0] = label
    return X, y


@pytest.mark.parametrize("make, match", [
    (lambda X, y: X, r"validation_data.*pair"),
    (lambda X, y: (X,), r"validation_data.*pair"),
    (lambda X, y: (X, y, y, y), r"validation_data.*pair"),
    (lambda X, y: (X, y, -np.ones(len(y))), r"validation_data\[2\].*>= 0"),
    (lambda X, y: {"X": X, "y": y}, r"validation_data.*pair"),
    (lambda X, y: (X[:, :3], y), r"validation_data\[0\].*features"),
    (lambda X, y: (np.where(X > 1, np.nan, X), y), r"validation_data\[0\].*NaN"),
    (lambda X, y: (X, y[:-1]), r"validation_data\[1\]"),
    (lambda X, y: _with_labels(X, y, SIZES[-1]), r"validation_data\[1\].*label"),
    (lambda X, y: _with_labels(X, y, -1), r"validation_data\[1\].*label"),
], ids=["array", "single", "quadruple", "weights", "dict", "features", "nan", "length", "label-high", "label-negative"])
def test_bad_validation_data(backend, make, match):
    net, X, y = build(backend)
    guard = Guard(net)
    fresh = bp.SGD(lr=0.5, momentum=0.5)
    with pytest.raises(ValueError, match=match):
        net.fit(X, y, epochs=2, batch_size=BATCH, optimizer=fresh, validation_data=make(X, y))
    guard.check()
    assert fresh.state == {} and fresh.step_count == 0
    assert_trains_like_twin(net, X, y, backend, "cross_entropy", "float64")


# -- optimizers -----------------------------------------------------------------
@pytest.mark.parametrize("make, exc, match", [
    (lambda: bp.SGD(lr=0), ValueError, r"\blr\b.*> 0"),
    (lambda: bp.SGD(lr=-1), ValueError, r"\blr\b"),
    (lambda: bp.SGD(lr=float("nan")), ValueError, r"\blr\b"),
    (lambda: bp.SGD(lr=float("inf")), ValueError, r"\blr\b"),
    (lambda: bp.SGD(lr="0.1"), TypeError, r"\blr\b"),
    (lambda: bp.SGD(lr=True), TypeError, r"\blr\b"),
    (lambda: bp.SGD(lr=None), TypeError, r"\blr\b"),
    (lambda: bp.SGD(lr=0.1, momentum=1.0), ValueError, r"\bmomentum\b"),
    (lambda: bp.SGD(lr=0.1, momentum=-0.1), ValueError, r"\bmomentum\b"),
    (lambda: bp.SGD(lr=0.1, momentum=float("nan")), ValueError, r"\bmomentum\b"),
    (lambda: bp.SGD(lr=0.1, nesterov=True), ValueError, r"\bnesterov\b.*momentum"),
    (lambda: bp.SGD(lr=0.1, momentum=0.0, nesterov=True), ValueError, r"\bnesterov\b.*momentum"),
    (lambda: bp.SGD(lr=0.1, momentum=0.9, nesterov="yes"), TypeError, r"\bnesterov\b"),
    (lambda: bp.SGD(lr=0.1, weight_decay=-1), ValueError, r"\bweight_decay\b"),
    (lambda: bp.Adam(lr=0), ValueError, r"\blr\b"),
    (lambda: bp.Adam(lr=-1e-3), ValueError, r"\blr\b"),
    (lambda: bp.Adam(beta1=1.0), ValueError, r"\bbeta1\b"),
    (lambda: bp.Adam(beta1=-0.1), ValueError, r"\bbeta1\b"),
    (lambda: bp.Adam(beta2=-0.1), ValueError, r"\bbeta2\b"),
    (lambda: bp.Adam(beta2=1.0), ValueError, r"\bbeta2\b"),
    (lambda: bp.Adam(eps=0), ValueError, r"\beps\b"),
    (lambda: bp.Adam(eps=-1e-8), ValueError, r"\beps\b"),
    (lambda: bp.Adam(weight_decay=-1), ValueError, r"\bweight_decay\b"),
    (lambda: bp.Adam(beta1="0.9"), TypeError, r"\bbeta1\b"),
])
def test_bad_optimizer_argument(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


# -- assigning weights ------------------------------------------------------------
def _reference_forward(net, X):
    """tanh hidden layers, identity output, in float64 from the layers' weights."""
    a = np.asarray(X, np.float64)
    for l, layer in enumerate(net.layers):
        a = a @ layer.W.astype(np.float64).T + layer.b.astype(np.float64)
        if l < len(net.layers) - 1:
            a = np.tanh(a)
    return a


def _mse_net(backend, dtype="float64"):
    return bp.Network(SIZES, activation="tanh", loss="mse", dtype=dtype, backend=backend, seed=2)


@pytest.mark.parametrize("attribute, value, exc, match", [
    ("W", np.ones((4, 5)), ValueError, r"layers\[0\]\.W.*shape"),
    ("W", np.ones(20), ValueError, r"layers\[0\]\.W.*shape"),
    ("W", np.ones((5, 4, 1)), ValueError, r"layers\[0\]\.W.*shape"),
    ("W", 1.0, ValueError, r"layers\[0\]\.W.*shape"),
    ("b", np.ones((5, 1)), ValueError, r"layers\[0\]\.b.*shape"),
    ("b", np.ones(4), ValueError, r"layers\[0\]\.b.*shape"),
    ("b", np.ones(6), ValueError, r"layers\[0\]\.b.*shape"),
    ("W", np.full((5, 4), np.nan), ValueError, r"layers\[0\]\.W.*(NaN|finite)"),
    ("W", np.where(np.eye(5, 4) > 0, np.inf, 0.0), ValueError, r"layers\[0\]\.W.*(NaN|finite)"),
    ("b", np.array([0, 0, np.nan, 0, 0]), ValueError, r"layers\[0\]\.b.*(NaN|finite)"),
    ("W", np.ones((5, 4), complex), TypeError, r"layers\[0\]\.W"),
    ("W", np.full((5, 4), "1"), TypeError, r"layers\[0\]\.W"),
    ("b", None, TypeError, r"layers\[0\]\.b"),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bad_weight_assignment(backend, dtype, attribute, value, exc, match):
    net = _mse_net(backend, dtype)
    X = np.random.default_rng(0).normal(size=(3, 4))
    before, out = snapshot(net), net.forward(X)
    view = getattr(net.layers[0], attribute)
    with pytest.raises(exc, match=match):
        setattr(net.layers[0], attribute, value)
    assert_unchanged(net, before)
    assert getattr(net.layers[0], attribute) is view
    np.testing.assert_array_equal(net.forward(X), out)


@pytest.mark.parametrize("attribute", ["W", "b"])
def test_assigning_weights_beyond_float32_range(backend, attribute):
    # 1e39 is finite in float64 but infinite once cast to the network's float32.
    net = _mse_net(backend, "float32")
    before = snapshot(net)
    shape = getattr(net.layers[0], attribute).shape
    with pytest.raises(ValueError, match=rf"layers\[0\]\.{attribute}"):
        setattr(net.layers[0], attribute, np.full(shape, 1e39))
    assert_unchanged(net, before)
    assert all(np.isfinite(layer.W).all() and np.isfinite(layer.b).all() for layer in net.layers)


def test_assigning_float64_weights_to_float32_network(backend):
    net = _mse_net(backend, "float32")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(6, 4))
    before = net.forward(X)
    W_view, b_view = net.layers[0].W, net.layers[0].b
    W, b = rng.normal(size=(5, 4)), rng.normal(size=5)
    net.layers[0].W = W
    net.layers[0].b = b
    assert net.layers[0].W is W_view and net.layers[0].b is b_view
    assert net.layers[0].W.dtype == np.float32 and net.layers[0].b.dtype == np.float32
    np.testing.assert_array_equal(net.layers[0].W, W.astype(np.float32))
    np.testing.assert_array_equal(net.layers[0].b, b.astype(np.float32))
    out = net.forward(X)
    assert out.dtype == np.float32
    assert not np.allclose(out, before)
    np.testing.assert_allclose(out, _reference_forward(net, X), rtol=1e-5, atol=1e-5)
    # Integers are real numbers too, and are converted the same way.
    net.layers[1].W = np.ones((3, 5), np.int64)
    assert net.layers[1].W.dtype == np.float32
    np.testing.assert_allclose(net.forward(X), _reference_forward(net, X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_in_place_weight_writes_reach_forward(backend, dtype):
    net = _mse_net(backend, dtype)
    rng = np.random.default_rng(6)
    X = rng.normal(size=(6, 4))
    before = net.forward(X)
    net.layers[0].W[...] = rng.normal(size=(5, 4))
    after_W = net.forward(X)
    assert not np.allclose(after_W, before)
    net.layers[1].b[1] += 3.0
    after_b = net.forward(X)
    np.testing.assert_allclose(after_b[:, 1] - after_W[:, 1], 3.0, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(after_b[:, [0, 2]], after_W[:, [0, 2]])
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(after_b, _reference_forward(net, X), rtol=tol, atol=tol)


# -- the caller's arrays ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "binary_cross_entropy"])
def test_fit_never_modifies_X_or_y(backend, loss, dtype):
    X, y = make_data(loss, N, SIZES[0], SIZES[-1], seed=3)
    X = X.astype(dtype)  # the network's own dtype: handed to the backend without a copy
    if loss != "cross_entropy":
        y = y.astype(dtype)
    X_copy, y_copy = X.copy(), y.copy()
    net = bp.Network(SIZES, activation="tanh", loss=loss, dtype=dtype, backend=backend, seed=0)
    net.fit(X, y, epochs=3, batch_size=BATCH, optimizer=bp.SGD(lr=0.1, momentum=0.9, weight_decay=0.01),
            validation_data=(X, y))
    net.fit(X, y, epochs=1, batch_size=None, optimizer=bp.Adam(lr=0.01))
    net.forward(X), net.predict(X), net.evaluate(X, y), net.gradients(X, y)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)
    assert X.dtype == X_copy.dtype and y.dtype == y_copy.dtype


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "binary_cross_entropy"])
def test_read_only_inputs(backend, loss, dtype):
    X, y = make_data(loss, N, SIZES[0], SIZES[-1], seed=4)
    X = X.astype(dtype)
    if loss != "cross_entropy":
        y = y.astype(dtype)
    writable = bp.Network(SIZES, activation="tanh", loss=loss, dtype=dtype, backend=backend, seed=0)
    writable.fit(X.copy(), y.copy(), epochs=2, batch_size=BATCH, optimizer=bp.SGD(lr=0.1))
    X.setflags(write=False)
    y.setflags(write=False)
    net = bp.Network(SIZES, activation="tanh", loss=loss, dtype=dtype, backend=backend, seed=0)
    net.fit(X, y, epochs=2, batch_size=BATCH, optimizer=bp.SGD(lr=0.1), validation_data=(X, y))
    assert_same_weights(net, writable)
    np.testing.assert_array_equal(net.forward(X), writable.forward(X))
    net.predict(X), net.evaluate(X, y), net.gradients(X, y)


# -- divergence --------------------------------------------------------------------------
# lr=1e6 makes the loss overflow after a few finite steps in both dtypes; the
# larger rates make a single step overflow the weights themselves.
@pytest.mark.parametrize("dtype, lr", [
    ("float32", 1e6), ("float64", 1e6), ("float32", 1e36), ("float64", 1e308),
])
def test_diverging_fit_raises_and_keeps_weights_finite(backend, dtype, lr):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 4))
    y = rng.normal(size=(16, 3)) * 1e3
    net = bp.Network(SIZES, activation="tanh", loss="mse", dtype=dtype, backend=backend, seed=0)
    with pytest.raises(FloatingPointError, match=r"epoch \d+.*batch \d+"):
        net.fit(X, y, epochs=50, batch_size=4, optimizer=bp.SGD(lr=lr))
    for layer in net.layers:
        assert np.isfinite(layer.W).all() and np.isfinite(layer.b).all()
    assert np.isfinite(net.forward(X)).all()


# -- optimizer state assigned by the user --------------------------------------------------------
def misaligned(array):
    """A writeable copy of `array` at an address that is not a multiple of its element size."""
    raw = np.zeros(array.nbytes + 1, np.uint8)
    out = raw[1:].view(array.dtype)
    out[...] = array
    assert not out.flags.aligned and out.flags.writeable
    return out


@pytest.mark.parametrize("entry", ["fit", "train_on_batch"])
@pytest.mark.parametrize("name, value, exc, match", [
    ("momentum_buffer", lambda n: np.zeros(n + 1), ValueError, r"optimizer.state\['momentum_buffer'\] must have shape"),
    ("momentum_buffer", lambda n: np.zeros((n, 1)), ValueError, r"optimizer.state\['momentum_buffer'\] must have shape"),
    ("momentum_buffer", lambda n: np.zeros(n, complex), TypeError, r"optimizer.state\['momentum_buffer'\].*real numbers"),
    ("momentum_buffer", lambda n: ["a"] * n, TypeError, r"optimizer.state\['momentum_buffer'\].*real numbers"),
    ("momentum_buffer", lambda n: None, TypeError, r"optimizer.state\['momentum_buffer'\].*real numbers"),
])
def test_bad_optimizer_state_is_refused_before_anything_changes(backend, entry, name, value, exc, match):
    net, X, y = build(backend)
    guard = Guard(net)
    bad = net.optimizer.state[name] = value(net.n_params)
    with pytest.raises(exc, match=match):
        if entry == "fit":
            net.fit(X, y, epochs=1, batch_size=BATCH)
        else:
            net.train_on_batch(X, y)
    assert_unchanged(net, guard.params)
    assert net.history is guard.history and net.optimizer is guard.optimizer
    assert net.optimizer.state[name] is bad and net.optimizer.step_count == guard.step_count


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", [
    lambda a: misaligned(a),
    lambda a: np.repeat(a, 2)[::2],                       # strided
    lambda a: a.astype(np.float32 if a.dtype == np.float64 else np.float64),  # the other dtype
    lambda a: _read_only(a),
], ids=["misaligned", "strided", "other-dtype", "read-only"])
def test_assigned_optimizer_state_the_core_cannot_use_as_is_is_copied(make, dtype):
    """Adam's m and v assigned by the user, unaligned, strided, read-only or in
    the other dtype: both backends train on a usable copy, to the same result."""
    X, y = make_data("cross_entropy", 24, 4, 3)
    results = []
    for backend in ("numpy", "native"):
        net = bp.Network(SIZES, dtype=dtype, backend=backend, seed=0)
        optimizer = bp.Adam(lr=0.01)
        net.fit(X, y, epochs=1, batch_size=8, optimizer=optimizer)
        reference = {name: a.copy() for name, a in optimizer.state.items()}
        for name in ("m", "v"):
            optimizer.state[name] = make(reference[name])
        net.fit(X, y, epochs=2, batch_size=8, shuffle=False)
        for name in ("m", "v"):
            state = optimizer.state[name]
            assert state.dtype == net.dtype and state.flags.aligned and state.flags.c_contiguous
            assert state.flags.writeable
        results.append((net.parameters().copy(), optimizer.state["m"].copy()))
    tolerance = 1e-10 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=tolerance, atol=tolerance)


def _read_only(array):
    array = array.copy()
    array.setflags(write=False)
    return array
