"""ONNX export: Network.to_onnx and the scikit-learn estimators' to_onnx, run in onnxruntime.

Every exported model runs in onnxruntime on random inputs of several batch
sizes and must give what backprop computes: ``forward`` (or the logits), the
estimators' ``predict_proba`` / ``predict``, and scikit-learn's own
estimators' outputs for the same fitted attributes. Tolerances: float32
rtol = atol = 1e-6 (Gemm sums in another order: a few ulps of 6e-8 over
widths ≤ 9); float64 rtol 1e-12, atol 1e-14 (a few ulps of 1e-16).
Needs onnx and onnxruntime (the [test] extra installs both); the last tests
run without them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_unchanged, snapshot

import backprop as bp

TOL = {"float32": dict(rtol=1e-6, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-14)}
BATCH_SIZES = (1, 3, 64, 257)
HIDDEN = ["relu", "leaky_relu", "tanh", "sigmoid", "identity", "gelu", "silu", "elu"]
# (output, loss) pairs a Network can have: softmax and sigmoid classifiers, and mse with any output.
OUTPUTS = [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"), ("identity", "mse"),
           ("relu", "mse"), ("leaky_relu", "mse"), ("tanh", "mse"), ("sigmoid", "mse"), ("gelu", "mse"),
           ("silu", "mse"), ("elu", "mse")]
# onnxruntime's float64 LayerNormalization is not as exact as its other kernels (it differs from
# the two-pass mean and variance by up to ~4e-12 relative on these layers): float64 rtol 1e-10 there.
NORM_TOL = {"float32": TOL["float32"], "float64": dict(rtol=1e-10, atol=1e-12)}
MISSING = ('is not installed, so the ONNX export tests cannot run: pip install "backprop-mlp[onnx]" onnxruntime '
           '(the [test] extra has both)')


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx", reason=f"onnx {MISSING}")


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime", reason=f"onnxruntime {MISSING}")


def run_model(ort, path, X):
    """The model's single output for X (rows), computed by onnxruntime on the CPU."""
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: X})
    return output


def inputs(n_in, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, n_in)).astype(dtype) for n in BATCH_SIZES]


# -- Network.to_onnx ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output,loss", OUTPUTS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_model_computes_forward(ort, hidden, output, loss, dtype, tmp_path):
    net = bp.Network([6, 9, 8, 4], activation=hidden, output=output, loss=loss, dtype=dtype, seed=1)
    path = tmp_path / "net.onnx"
    net.to_onnx(path)
    for X in inputs(6, dtype):
        Y = run_model(ort, path, X)
        assert Y.dtype == net.dtype and Y.shape == (X.shape[0], 4)
        np.testing.assert_allclose(Y, net.forward(X), **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("hidden", ["gelu", "silu", "elu", "tanh"])
def test_layer_norm_and_dropout_export_the_inference_map(onnx, ort, hidden, dtype, tmp_path):
    net = bp.Network([6, 9, 8, 4], activation=hidden, norm="layer", dropout=[0.5, 0.2], dtype=dtype, seed=1)
    net.parameters()[...] += np.random.default_rng(2).normal(scale=0.3, size=net.n_params).astype(dtype)
    path = tmp_path / "net.onnx"
    net.to_onnx(path)
    ops = [node.op_type for node in onnx.load(os.fspath(path)).graph.node]
    assert ops.count("LayerNormalization") == 2 and "Dropout" not in ops
    for X in inputs(6, dtype):
        np.testing.assert_allclose(run_model(ort, path, X), net.forward(X), **NORM_TOL[dtype])


def test_float64_gelu_is_exact_over_its_range(ort, tmp_path):
    """float64 erf from elementary operators (onnxruntime has no float64 Erf): within a few ulps of the
    core from -40 to 40 (where gelu is small, the core's 1 + erf(z/√2) itself loses ~1e-16 absolute)."""
    net = bp.Network([1, 1, 1], activation="gelu", output="identity", loss="mse", dtype="float64")
    net.layers[0].W, net.layers[0].b = [[1.0]], [0.0]
    net.layers[1].W, net.layers[1].b = [[1.0]], [0.0]
    net.to_onnx(tmp_path / "gelu.onnx")
    X = np.concatenate([np.linspace(-40, 40, 8001), [0.0, -0.0, 2.5 * np.sqrt(2), -2.5 * np.sqrt(2)]])[:, None]
    np.testing.assert_allclose(run_model(ort, tmp_path / "gelu.onnx", X), net.forward(X), rtol=1e-14, atol=4e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output,loss", OUTPUTS)
def test_logits_option(ort, output, loss, dtype, tmp_path):
    net = bp.Network([5, 7, 3], activation="tanh", output=output, loss=loss, dtype=dtype, seed=2)
    net.to_onnx(tmp_path / "logits.onnx", logits=True)
    # logits=True drops only a trailing softmax or sigmoid: compare with a twin whose output is
    # identity (the pre-activations), or with the network itself for other outputs.
    dropped = output in ("softmax", "sigmoid")
    twin = bp.Network([5, 7, 3], activation="tanh", output="identity", loss="mse", dtype=dtype) if dropped else net
    for twin_layer, layer in zip(twin.layers, net.layers):
        twin_layer.W, twin_layer.b = layer.W, layer.b
    for X in inputs(5, dtype, seed=3):
        np.testing.assert_allclose(run_model(ort, tmp_path / "logits.onnx", X), twin.forward(X), **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_per_layer_activations_numpy_backend_and_trained_weights(ort, dtype, tmp_path):
    X, y = np.random.default_rng(4).normal(size=(60, 7)), np.arange(60) % 3
    net = bp.Network([7, 10, 9, 8, 3], activation=["sigmoid", "leaky_relu", "relu"], dtype=dtype,
                     backend="numpy", seed=5)
    net.fit(X, y, epochs=3, batch_size=8, optimizer=bp.Adam(lr=0.01))
    net.to_onnx(str(tmp_path / "trained.onnx"))
    for X in inputs(7, dtype, seed=6):
        np.testing.assert_allclose(run_model(ort, tmp_path / "trained.onnx", X), net.forward(X), **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_graph_is_standard_and_holds_the_exact_weights(onnx, dtype, tmp_path):
    net = bp.Network([4, 6, 5, 2], activation=["leaky_relu", "identity"], output="softmax", dtype=dtype, seed=7)
    net.to_onnx(tmp_path / "net.onnx")
    model = onnx.load(tmp_path / "net.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert model.producer_name == "backprop" and model.producer_version == bp.__version__
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)] and model.ir_version == 8
    # leaky_relu: LeakyRelu in float32; in float64 PRelu with a float64 slope (LeakyRelu's alpha is float32).
    leaky = "LeakyRelu" if dtype == "float32" else "PRelu"
    assert [node.op_type for node in model.graph.node] == ["Gemm", leaky, "Gemm", "Gemm", "Softmax"]
    assert all(attribute.i == 1 for node in model.graph.node if node.op_type == "Gemm"
               for attribute in node.attribute if attribute.name == "transB")
    (X,), (Y,) = model.graph.input, model.graph.output
    assert (X.name, Y.name) == ("X", "Y")
    for value in (X, Y):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch" and not dims[0].HasField("dim_value")
        assert value.type.tensor_type.elem_type == onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    assert [d.dim_value for d in X.type.tensor_type.shape.dim[1:]] == [4]
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for l, layer in enumerate(net.layers):
        assert weights[f"W{l}"].dtype == net.dtype
        np.testing.assert_array_equal(weights[f"W{l}"], layer.W)  # (n_out, n_in), bit for bit
        np.testing.assert_array_equal(weights[f"b{l}"], layer.b)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["backprop.sizes"] == "4,6,5,2" and props["backprop.output"] == "forward"


def test_export_leaves_the_network_as_it_was(onnx, backend, tmp_path):
    net = bp.Network([3, 4, 2], backend=backend, seed=0)
    before = snapshot(net)
    net.to_onnx(tmp_path / "a.onnx")
    net.to_onnx(tmp_path / "b.onnx", logits=True)
    assert_unchanged(net, before)


def test_overwrites_atomically_and_keeps_the_mode(onnx, tmp_path):
    path = tmp_path / "net.onnx"
    bp.Network([3, 2], seed=0).to_onnx(path)
    os.chmod(path, 0o640)
    bp.Network([3, 5, 2], seed=1).to_onnx(path)
    assert os.listdir(tmp_path) == ["net.onnx"] and os.stat(path).st_mode & 0o777 == 0o640
    assert len(onnx.load(path).graph.node) == 4


def test_failed_export_leaves_the_old_file_and_no_temporary(onnx, tmp_path, monkeypatch):
    path = tmp_path / "net.onnx"
    bp.Network([3, 2], seed=0).to_onnx(path)
    old = path.read_bytes()

    def failing_fsync(descriptor):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        bp.Network([3, 5, 2], seed=1).to_onnx(path)
    monkeypatch.undo()
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["net.onnx"]


@pytest.mark.parametrize("logits", ["yes", 1, None])
def test_bad_logits(onnx, logits, tmp_path):
    with pytest.raises(TypeError, match="logits must be True or False"):
        bp.Network([3, 2], seed=0).to_onnx(tmp_path / "net.onnx", logits=logits)
    assert os.listdir(tmp_path) == []


def test_bad_paths(onnx, tmp_path):
    net = bp.Network([3, 2], seed=0)
    with pytest.raises(TypeError, match="PathLike"):
        net.to_onnx(3)
    with pytest.raises(FileNotFoundError):
        net.to_onnx(tmp_path / "no such folder" / "net.onnx")
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError):
        net.to_onnx(tmp_path / "folder")
    assert os.listdir(tmp_path) == ["folder"] and os.listdir(tmp_path / "folder") == []


# -- scikit-learn estimators -------------------------------------------------------------
@pytest.fixture(scope="module")
def sklearn():
    return pytest.importorskip("sklearn", minversion="1.6", reason="scikit-learn >= 1.6 is not installed: "
                               'pip install "backprop-mlp[sklearn]"')


def classification(kind, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, 5))
    if kind == "binary":
        return X, np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    if kind == "multiclass":
        return X, np.digitize(X[:, 0], [-0.5, 0.5])
    return X, (X[:, :3] > 0).astype(int)  # multilabel, 3 labels


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_classifier_model_computes_predict_proba(sklearn, ort, onnx, kind, activation, dtype, tmp_path):
    from backprop.sklearn import MLPClassifier
    X, y = classification(kind)
    clf = MLPClassifier(hidden_layer_sizes=(8, 6), activation=activation, max_iter=20, random_state=0,
                        dtype=dtype).fit(X, y)
    clf.to_onnx(tmp_path / "clf.onnx")
    output = onnx.load(tmp_path / "clf.onnx").graph.output[0]
    assert output.name == "probabilities"
    for X_new in inputs(5, dtype, seed=1):
        P = run_model(ort, tmp_path / "clf.onnx", X_new)
        expected = clf.predict_proba(X_new)
        assert P.dtype == np.dtype(dtype) and P.shape == expected.shape
        np.testing.assert_allclose(P, expected, **TOL[dtype])
        if kind != "multilabel":
            np.testing.assert_array_equal(clf.classes_[P.argmax(axis=1)], clf.predict(X_new))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_regressor_model_computes_predict(sklearn, ort, n_outputs, dtype, tmp_path):
    from backprop.sklearn import MLPRegressor
    rng = np.random.default_rng(2)
    X = rng.normal(size=(70, 4))
    y = X @ rng.normal(size=(4, n_outputs))
    reg = MLPRegressor(hidden_layer_sizes=(7,), max_iter=30, random_state=0, dtype=dtype).fit(X, y[:, 0] if
                                                                                            n_outputs == 1 else y)
    reg.to_onnx(tmp_path / "reg.onnx")
    for X_new in inputs(4, dtype, seed=3):
        predictions = run_model(ort, tmp_path / "reg.onnx", X_new)
        expected = reg.predict(X_new)
        assert predictions.shape == expected.shape  # (batch,) for one target, like predict
        np.testing.assert_allclose(predictions, expected, **TOL[dtype])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("case", ["binary", "multiclass", "multilabel", "regression", "poisson"])
def test_hand_set_attributes_of_a_scikit_learn_fit_export_what_scikit_learn_computes(sklearn, ort, case, tmp_path):
    # Fitted attributes copied from scikit-learn's own estimator, with nothing fitted by backprop:
    # the model must compute scikit-learn's predict_proba / predict (float64).
    from sklearn import neural_network as sk_nn

    from backprop import sklearn as bp_sklearn
    if case == "poisson" and tuple(int(part) for part in sklearn.__version__.split(".")[:2]) < (1, 7):
        pytest.skip(f"scikit-learn {sklearn.__version__} has no Poisson loss (new in 1.7) to compare with")
    if case in ("regression", "poisson"):
        rng = np.random.default_rng(4)
        X = rng.normal(size=(60, 5))
        y = np.exp(X[:, 0] / 2) if case == "poisson" else X[:, 0] - X[:, 1]
        loss = {"loss": "poisson"} if case == "poisson" else {}
        reference = sk_nn.MLPRegressor(hidden_layer_sizes=(6,), activation="tanh", max_iter=30, random_state=0,
                                       **loss).fit(X, y)
        ours, method = bp_sklearn.MLPRegressor(activation="tanh"), "predict"
    else:
        X, y = classification(case)
        reference = sk_nn.MLPClassifier(hidden_layer_sizes=(6,), activation="relu", max_iter=30,
                                        random_state=0).fit(X, y)
        ours, method = bp_sklearn.MLPClassifier(activation="relu"), "predict_proba"
    for name in ("coefs_", "intercepts_", "n_layers_", "n_outputs_", "out_activation_", "n_features_in_",
                 "classes_"):
        if hasattr(reference, name):
            setattr(ours, name, getattr(reference, name))
    ours.to_onnx(tmp_path / "model.onnx")
    for X_new in inputs(5, "float64", seed=5):
        np.testing.assert_allclose(run_model(ort, tmp_path / "model.onnx", X_new),
                                   getattr(reference, method)(X_new), **TOL["float64"])


def test_estimator_errors(sklearn, onnx, tmp_path):
    from sklearn.exceptions import NotFittedError

    from backprop.sklearn import MLPClassifier, MLPRegressor
    with pytest.raises(NotFittedError):
        MLPClassifier().to_onnx(tmp_path / "model.onnx")
    reg = MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0)
    with pytest.warns(sklearn.exceptions.ConvergenceWarning):
        reg.fit(np.random.default_rng(0).normal(size=(20, 2)), np.arange(20.0))
    reg.out_activation_ = "softplus"
    with pytest.raises(ValueError, match="out_activation_ must be one of .*'softplus'"):
        reg.to_onnx(tmp_path / "model.onnx")
    reg.out_activation_ = "identity"
    reg.coefs_ = [reg.coefs_[0], reg.coefs_[1].T]
    with pytest.raises(ValueError, match=r"coefs_\[1\] must be a 2-D real array with 3 rows"):
        reg.to_onnx(tmp_path / "model.onnx")
    assert os.listdir(tmp_path) == []


# -- without onnx ------------------------------------------------------------------------
def test_without_onnx_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ModuleNotFoundError
    with pytest.raises(ModuleNotFoundError, match=r'pip install "backprop-mlp\[onnx\]"') as info:
        bp.Network([3, 2], seed=0).to_onnx(tmp_path / "net.onnx")
    assert info.value.name == "onnx" and os.listdir(tmp_path) == []


def test_importing_backprop_does_not_import_onnx():
    code = "import sys, backprop, backprop.onnx_export, backprop.cli; print('onnx' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
