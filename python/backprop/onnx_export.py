"""ONNX export: a network as a standard ONNX graph that onnxruntime and other runtimes execute.

Needs the ``onnx`` package to build and check the model
(``pip install "backprop-mlp[onnx]"``); running it needs a runtime such as
``onnxruntime``. Nothing here imports either until an export is asked for.

The graph, layer by layer (l = 0 … L−1; W^(l) is (n_out, n_in) as stored)::

    X (batch, n_0) -> Gemm(A=h, B=W^(l), C=b^(l), transB=1) -> activation -> ... -> Y (batch, n_L)

    relu -> Relu     leaky_relu -> LeakyRelu(alpha=0.01)     tanh -> Tanh
    sigmoid -> Sigmoid     softmax -> Softmax(axis=-1)     identity -> (no node)
    gelu -> z·(Erf(z·(1/√2)) + 1)·0.5 (exact; the Gelu operator is opset 20's)
    silu -> z·Sigmoid(z)     elu -> Relu(z) + (Exp(Min(z, 0)) − 1)

onnxruntime has no float64 Erf (nor Gelu): a float64 gelu computes erf from
elementary operators instead, to within a few ulps (see _erf_float64).

A hidden layer with norm='layer' has LayerNormalization(axis=-1,
epsilon=1e-5, scale γ, bias β) between its Gemm and its activation. Dropout is
a training-time operation and has no node: the graph is the inference map.

In float64, leaky_relu becomes PRelu with a float64 slope of 0.01 instead:
LeakyRelu's alpha attribute is a float32, which would change the slope in
the ninth digit.

Weights and biases are initializers in the network's dtype (float32 or
float64), and so are the input and output; the batch dimension is symbolic
(``"batch"``), so one model takes any number of rows. Opset 17 with IR
version 8: every op used here exists in that form since opset 13–16, and
runtimes from onnxruntime 1.12 on load it.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from ._validation import check_bool

__all__ = ["to_onnx", "estimator_to_onnx", "OPSET", "IR_VERSION"]

INSTALL_HINT = 'pip install "backprop-mlp[onnx]"'
OPSET = 17
IR_VERSION = 8  # the IR version of onnx 1.12, the first release with opset 17
INPUT_NAME = "X"
BATCH = "batch"

# backprop activation -> (ONNX op, attributes); identity adds no node.
_OPS = {"relu": ("Relu", {}), "leaky_relu": ("LeakyRelu", {"alpha": 0.01}), "tanh": ("Tanh", {}),
        "sigmoid": ("Sigmoid", {}), "softmax": ("Softmax", {"axis": -1}), "exp": ("Exp", {}),
        "identity": None}
# scikit-learn's activation names -> backprop's (out_activation_ 'exp' is the Poisson loss's).
_SKLEARN_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
                        "softmax": "softmax", "exp": "exp"}


def _import_onnx():
    """The onnx module, or an ImportError naming the extra to install."""
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper  # noqa: F401  (a broken install fails here, not later)
    except ImportError as error:
        raise ModuleNotFoundError(f"ONNX export needs the onnx package, which is not installed: {INSTALL_HINT}",
                                  name="onnx") from error
    return onnx


def _producer_version():
    from . import __version__
    return __version__


# erf(x) for float64 without an Erf operator: the series
#   erf(x) = 2x/√π · e^(−x²) · Σ_n (2x²)^n / (1·3·…·(2n+1))     (all terms positive)
# for |x| < 2.5, and 1 − erfc(x) with erfc's continued fraction
#   erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
# from 2.5 on; 40 terms each keep the error within 3 ulps on [0, ∞).
_ERF_SPLIT = 2.5
_ERF_TERMS = 40


def _erf_float64(node, constant, x, prefix):
    """Nodes computing erf(x) in float64 (see above); returns the output's name."""
    absolute = node("Abs", [x])
    near = node("Min", [absolute, constant(_ERF_SPLIT)])
    # Horner in t = 2x²/s ∈ [0, 1], s = 2·2.5², with coefficients s^n/(2n+1)!! (≥ 1e-17: onnxruntime's
    # optimiser drops additions of constants that are zero in float32, as 1/(2n+1)!! would be).
    scale = 2.0 * _ERF_SPLIT ** 2
    t = node("Mul", [node("Mul", [near, near]), constant(2.0 / scale)])
    series = constant(scale ** _ERF_TERMS / math.prod(range(1, 2 * _ERF_TERMS + 2, 2)))
    for n in range(_ERF_TERMS - 1, -1, -1):
        series = node("Add", [node("Mul", [series, t]), constant(scale ** n / math.prod(range(1, 2 * n + 2, 2)))])
    gauss_near = node("Exp", [node("Neg", [node("Mul", [near, near])])])
    small = node("Mul", [node("Mul", [node("Mul", [near, constant(2.0 / math.sqrt(math.pi))]), gauss_near]), series])
    far = node("Max", [absolute, constant(_ERF_SPLIT)])
    fraction = far
    for k in range(_ERF_TERMS, 0, -1):
        fraction = node("Add", [far, node("Div", [constant(k / 2.0), fraction])])
    gauss_far = node("Exp", [node("Neg", [node("Mul", [far, far])])])
    erfc = node("Div", [node("Mul", [gauss_far, constant(1.0 / math.sqrt(math.pi))]), fraction])
    large = node("Sub", [constant(1.0), erfc])
    magnitude = node("Where", [node("Less", [absolute, constant(_ERF_SPLIT)]), small, large])
    return node("Mul", [node("Sign", [x]), magnitude])


def _build(onnx, layers, activations, dtype, output_name, tail, doc, metadata):
    """A checked ModelProto: Gemm + activation per layer, then the `tail` nodes.

    layers: [(W (n_out, n_in), b (n_out,)), or (W, b, γ, β) for a layer with
    LayerNorm]; activations: one backprop name per layer, None for no node. tail(helper, numpy_helper, h) builds nodes
    reading h (batch, n_L) and returns (nodes, initializers, output shape).
    The last node writes the graph's output, `output_name`.
    """
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    elem_type = {np.dtype(np.float32): onnx.TensorProto.FLOAT,
                 np.dtype(np.float64): onnx.TensorProto.DOUBLE}[np.dtype(dtype)]
    nodes, initializers = [], []
    current = INPUT_NAME
    counter = iter(range(1 << 30))

    def constant(value, name=None):
        name = name or f"c{next(counter)}"
        initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op, inputs, prefix="t", **attributes):
        """One node with a fresh output name; returns that name."""
        output = f"{prefix}{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    for l, (parameters, activation) in enumerate(zip(layers, activations)):
        W, b = parameters[:2]
        initializers += [numpy_helper.from_array(np.ascontiguousarray(W, dtype=dtype), f"W{l}"),
                         numpy_helper.from_array(np.ascontiguousarray(b, dtype=dtype), f"b{l}")]
        # Z = H·Wᵀ + b with W stored (n_out, n_in), as in Network.layers.
        nodes.append(helper.make_node("Gemm", [current, f"W{l}", f"b{l}"], [f"z{l}"], name=f"dense{l}", transB=1))
        current = f"z{l}"
        if len(parameters) == 4:  # u = γ ⊙ (z − μ)/√(s² + ε) + β over the units of each row
            nodes.append(helper.make_node("LayerNormalization", [current, constant(parameters[2], f"gamma{l}"),
                                                                 constant(parameters[3], f"beta{l}")],
                                          [f"u{l}"], name=f"layer_norm{l}", axis=-1, epsilon=1e-5))
            current = f"u{l}"
        if activation == "gelu":  # z·Φ(z) = z·(erf(z/√2) + 1)·½
            x = node("Mul", [current, constant(1.0 / np.sqrt(2.0))], f"gelu{l}_")
            erf = node("Erf", [x], f"gelu{l}_") if np.dtype(dtype) == np.float32 else \
                _erf_float64(lambda op, inputs: node(op, inputs, f"gelu{l}_"), constant, x, f"gelu{l}_")
            current = node("Mul", [node("Mul", [current, node("Add", [erf, constant(1.0)], f"gelu{l}_")], f"gelu{l}_"),
                                   constant(0.5)], f"gelu{l}_")
        elif activation == "silu":  # z·σ(z)
            current = node("Mul", [current, node("Sigmoid", [current], f"silu{l}_")], f"silu{l}_")
        elif activation == "elu":  # z for z > 0, e^z − 1 for z ≤ 0 (Elu has no float64 kernel in onnxruntime)
            negative = node("Sub", [node("Exp", [node("Min", [current, constant(0.0)], f"elu{l}_")], f"elu{l}_"),
                                    constant(1.0)], f"elu{l}_")
            current = node("Add", [node("Relu", [current], f"elu{l}_"), negative], f"elu{l}_")
        elif activation == "leaky_relu" and np.dtype(dtype) == np.float64:
            # LeakyRelu's alpha is a float32 attribute (0.01 becomes 0.0099999998); PRelu takes
            # the slope as a float64 tensor, so the model computes exactly what backprop does.
            initializers.append(numpy_helper.from_array(np.array(0.01, dtype=dtype), f"slope{l}"))
            nodes.append(helper.make_node("PRelu", [current, f"slope{l}"], [f"a{l}"], name=f"{activation}{l}"))
            current = f"a{l}"
        elif activation is not None and _OPS[activation] is not None:
            op, attributes = _OPS[activation]
            nodes.append(helper.make_node(op, [current], [f"a{l}"], name=f"{activation}{l}", **attributes))
            current = f"a{l}"
    shape = [BATCH, int(layers[-1][0].shape[0])]
    if tail is not None:
        tail_nodes, tail_initializers, shape = tail(helper, numpy_helper, current)
        nodes += tail_nodes
        initializers += tail_initializers
    nodes[-1].output[0] = output_name
    n_in = int(layers[0][0].shape[1])
    graph = helper.make_graph(nodes, "backprop", [helper.make_tensor_value_info(INPUT_NAME, elem_type, [BATCH, n_in])],
                              [helper.make_tensor_value_info(output_name, elem_type, shape)], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="backprop",
                              producer_version=_producer_version(), doc_string=doc)
    model.ir_version = IR_VERSION
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)  # also infers and checks every shape
    return model


def _write(model, path):
    from ._serialization import write_atomically
    data = model.SerializeToString()
    write_atomically(path, lambda file: file.write(data), suffix=".onnx.tmp")


def to_onnx(network, path, logits=False):
    """Write `network` to `path` as an ONNX model.

    Parameters
    ----------
    network : Network
    path : str or os.PathLike
        Where to write (``.onnx`` by convention); written atomically, like
        ``Network.save``: a failed export leaves an existing file as it was.
    logits : bool
        Leave out a trailing Softmax or Sigmoid, so the model returns the
        last layer's pre-activations (what ``to_torch(logits=True)`` does).
        Other output activations are always kept.

    The model has one input ``X`` (batch, n_features) and one output: ``Y``
    (batch, n_out), what ``network.forward`` returns, or ``logits`` with
    ``logits=True``; both in the network's dtype.

    Raises
    ------
    ModuleNotFoundError
        When the onnx package is not installed.
    TypeError
        When `logits` is not a bool or `path` is not a path.
    """
    logits = check_bool("logits", logits)
    path = os.fspath(path)
    onnx = _import_onnx()
    activations = list(network.activations)
    dropped = logits and activations[-1] in ("softmax", "sigmoid")
    if dropped:
        activations[-1] = None
    layers = [(layer.W, layer.b) + (() if layer.gamma is None else (layer.gamma, layer.beta))
              for layer in network.layers]
    output = "logits" if dropped else "Y"
    doc = (f"backprop Network {' -> '.join(map(str, network.sizes))}, activations {', '.join(network.activations)}, "
           f"loss {network.loss}; output {output!r}: "
           + ("the last layer's pre-activations" if dropped else "what Network.forward returns"))
    metadata = {"backprop.sizes": ",".join(map(str, network.sizes)),
                "backprop.activations": ",".join(network.activations),
                "backprop.loss": network.loss, "backprop.output": "logits" if dropped else "forward"}
    _write(_build(onnx, layers, activations, network.dtype, output, None, doc, metadata), path)


# -- scikit-learn estimators (backprop.sklearn) ------------------------------------------
def _estimator_layers(estimator):
    """(layers as (W (n_out, n_in), b), hidden activation, output activation, dtype) from the
    public fitted attributes coefs_, intercepts_, activation and out_activation_."""
    name = type(estimator).__name__
    coefs = getattr(estimator, "coefs_", None)
    intercepts = getattr(estimator, "intercepts_", None)
    if coefs is None or intercepts is None:
        raise ValueError(f"this {name} is not fitted yet (no coefs_ / intercepts_): call fit before to_onnx")
    if len(coefs) == 0 or len(coefs) != len(intercepts):
        raise ValueError(f"{name}.coefs_ and intercepts_ must hold one array per layer, "
                         f"got {len(coefs)} and {len(intercepts)}")
    arrays = [(np.asarray(W), np.asarray(b)) for W, b in zip(coefs, intercepts)]
    dtype = np.float32 if all(W.dtype == np.float32 and b.dtype == np.float32 for W, b in arrays) else np.float64
    layers, n_in = [], getattr(estimator, "n_features_in_", None)
    for i, (W, b) in enumerate(arrays):
        if W.ndim != 2 or W.dtype.kind not in "biuf" or (n_in is not None and W.shape[0] != n_in):
            raise ValueError(f"{name}.coefs_[{i}] must be a 2-D real array with {n_in or 'n_features'} rows, "
                             f"got shape {W.shape} and dtype {W.dtype}")
        if b.shape != (W.shape[1],) or b.dtype.kind not in "biuf":
            raise ValueError(f"{name}.intercepts_[{i}] must be a real array of shape {(W.shape[1],)}, "
                             f"got {b.shape} and dtype {b.dtype}")
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise ValueError(f"{name}.coefs_[{i}] or intercepts_[{i}] contains NaN or infinity")
        layers.append((W.T.astype(dtype), b.astype(dtype)))  # scikit-learn stores W as (n_in, n_out)
        n_in = W.shape[1]
    hidden = _SKLEARN_ACTIVATIONS.get(estimator.activation) if isinstance(estimator.activation, str) else None
    if hidden is None or hidden in ("softmax", "exp"):
        raise ValueError(f"{name}.activation must be 'identity', 'logistic', 'tanh' or 'relu', "
                         f"got {estimator.activation!r}")
    out_activation = getattr(estimator, "out_activation_", None)
    output = _SKLEARN_ACTIVATIONS.get(out_activation) if isinstance(out_activation, str) else None
    if output is None:
        raise ValueError(f"{name}.out_activation_ must be one of {', '.join(map(repr, _SKLEARN_ACTIVATIONS))}, "
                         f"got {out_activation!r}")
    return layers, hidden, output, dtype


def _binary_probabilities(dtype):
    """Tail turning the one logistic column p into predict_proba's two columns [1 − p, p]."""
    def tail(helper, numpy_helper, p):
        nodes = [helper.make_node("Sub", ["one", p], ["p_negative"], name="negative_class"),
                 helper.make_node("Concat", ["p_negative", p], ["both"], name="both_classes", axis=1)]
        return nodes, [numpy_helper.from_array(np.ones((1, 1), dtype=dtype), "one")], [BATCH, 2]
    return tail


def _single_target(helper, numpy_helper, y):
    """Tail reshaping (batch, 1) to (batch,), as MLPRegressor.predict returns one target."""
    nodes = [helper.make_node("Reshape", [y, "flat_shape"], ["flat"], name="flatten")]
    return nodes, [numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat_shape")], [BATCH]


def estimator_to_onnx(estimator, path, classifier):
    """Write a fitted backprop.sklearn estimator as an ONNX model (see MLPClassifier.to_onnx).

    Only the public fitted attributes are read (coefs_, intercepts_,
    activation, out_activation_), so hand-set ones export too. The
    classifier's output ``probabilities`` is predict_proba's (columns in
    the order of ``classes_``); the regressor's ``predictions`` is
    predict's ((batch,) for one target, else (batch, n_outputs)).
    """
    path = os.fspath(path)
    layers, hidden, output, dtype = _estimator_layers(estimator)
    onnx = _import_onnx()
    activations = [hidden] * (len(layers) - 1) + [output]
    n_out = layers[-1][0].shape[0]
    if classifier:
        name = "probabilities"
        tail = _binary_probabilities(dtype) if output == "sigmoid" and n_out == 1 else None
    else:
        name = "predictions"
        tail = _single_target if n_out == 1 else None
    kind = type(estimator).__name__
    sizes = [layers[0][0].shape[1]] + [W.shape[0] for W, _ in layers]
    doc = (f"backprop.sklearn.{kind} {' -> '.join(map(str, sizes))}, activation {estimator.activation!r}, "
           f"out_activation_ {estimator.out_activation_!r}; output {name!r}: what "
           f"{'predict_proba' if classifier else 'predict'} returns")
    metadata = {"backprop.estimator": kind, "backprop.sizes": ",".join(map(str, sizes)),
                "backprop.activation": estimator.activation, "backprop.out_activation": estimator.out_activation_}
    classes = getattr(estimator, "classes_", None)
    if classifier and classes is not None:
        metadata["backprop.classes"] = json.dumps(np.asarray(classes).tolist(), default=str)
    _write(_build(onnx, layers, activations, dtype, name, tail, doc, metadata), path)
