"""backprop.sklearn: scikit-learn's estimator checks, agreement with sklearn.neural_network, API use.

Agreement with scikit-learn (installed by the [test] extra) is tested at two
levels: started from the same weights, one or a few epochs give the same
loss_, loss curve and weights to rounding (float64, rtol 1e-9); trained from
the same random_state on real data, test accuracy and R² agree within 0.02.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6")
pytest.importorskip("scipy")

import scipy.sparse  # noqa: E402
from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, load_iris, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import backprop as bp  # noqa: E402
from backprop.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

no_convergence_warning = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny problems, one thread


# -- scikit-learn's estimator checks -------------------------------------------------------------
def _expected_failures(estimator):
    failures = {}
    if estimator.dtype == "float32":
        # Weighted and repeated rows agree to float32 rounding (~3e-7 relative); the checks ask
        # for rtol 1e-7. The float64 instances pass them.
        failures.update({check: "float32 arithmetic: agreement to ~3e-7, the check asks for 1e-7"
                         for check in ("check_sample_weight_equivalence_on_dense_data",
                                       "check_sample_weight_equivalence_on_sparse_data")})
    if isinstance(estimator, MLPRegressor) and estimator.dtype == "float32":
        # check_regressor_multioutput demands float64 predictions; dtype='float32' asks for
        # float32 computation and predictions, so that instance returns float32 by design. The
        # default (dtype=None) returns float64 for float64 X and passes.
        failures["check_regressor_multioutput"] = "dtype='float32' predicts in float32 on purpose"
    return failures


# max_iter is kept small so that the ~60 checks per instance run in about a second; the
# instances cover every solver, both backends, both dtypes and the learning-rate schedules.
@no_convergence_warning
@parametrize_with_checks(
    [
        MLPClassifier(max_iter=50),
        MLPRegressor(max_iter=50),
        MLPClassifier(solver="lbfgs", max_iter=50, backend="numpy"),
        MLPRegressor(solver="lbfgs", max_iter=50),
        MLPClassifier(solver="sgd", learning_rate_init=0.01, max_iter=50, dtype="float32"),
        MLPRegressor(solver="sgd", learning_rate="adaptive", max_iter=50, backend="numpy", dtype="float32"),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- data ------------------------------------------------------------------------------------------
def _data(task, n=100, n_features=6, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    w = rng.normal(size=(n_features, 3))
    z = X @ w
    if task == "multiclass":
        return X, np.array(["ant", "bee", "cat"])[z.argmax(axis=1)]
    if task == "binary":
        return X, np.where(z[:, 0] > 0, 7, -2)
    if task == "multilabel":
        return X, (z > 0).astype(int)
    if task == "regression":
        return X, z[:, 0] + 0.1 * rng.normal(size=n)
    if task == "multioutput":
        return X, z + 0.1 * rng.normal(size=z.shape)
    raise AssertionError(task)


def _classes(task):
    if task in ("regression", "multioutput"):
        return MLPRegressor, sk_nn.MLPRegressor
    return MLPClassifier, sk_nn.MLPClassifier


def _assert_same_weights(ours, theirs, atol):
    assert len(ours.coefs_) == len(theirs.coefs_)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)


# -- agreement with scikit-learn from the same weights ----------------------------------------
@no_convergence_warning
@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_loss_after_one_sgd_epoch_matches_sklearn(task):
    """Same initial weights (copied from scikit-learn), one epoch of SGD: same loss_ and weights.

    batch_size=32 on 100 samples leaves a last batch of 4, whose L2 term differs (alpha/4).
    """
    ours_class, their_class = _classes(task)
    X, y = _data(task)
    params = dict(hidden_layer_sizes=(8,), solver="sgd", alpha=0.01, batch_size=32, learning_rate_init=0.05,
                  momentum=0.9, max_iter=1, random_state=1)
    theirs = their_class(**params).fit(X, y)
    ours = ours_class(**params).fit(X, y)
    start = [c.copy() for c in theirs.coefs_], [b.copy() for b in theirs.intercepts_]
    theirs.set_params(warm_start=True).fit(X, y)
    ours.coefs_, ours.intercepts_ = [c.copy() for c in start[0]], [b.copy() for b in start[1]]
    ours.set_params(warm_start=True).fit(X, y)
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-10)
    _assert_same_weights(ours, theirs, atol=1e-10)


SOLVER_SETTINGS = {
    "sgd-nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True, learning_rate_init=0.05),
    "sgd-invscaling": dict(solver="sgd", momentum=0.5, nesterovs_momentum=False, learning_rate="invscaling",
                           power_t=0.25, learning_rate_init=0.1),
    "sgd-plain": dict(solver="sgd", momentum=0.0, learning_rate_init=0.1),
    "adam": dict(solver="adam", learning_rate_init=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-4),
}


@no_convergence_warning
@pytest.mark.parametrize("settings", list(SOLVER_SETTINGS))
@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "regression", "multioutput"])
def test_epochs_from_hand_set_weights_match_sklearn(task, settings):
    """coefs_ set by hand, warm start, three epochs: same loss curve and weights as scikit-learn.

    Covers the momentum-buffer rescaling when invscaling changes the rate, Adam's epsilon
    placement, the smaller last batch, two hidden layers and every output type.
    """
    ours_class, their_class = _classes(task)
    X, y = _data(task)
    activation = "logistic" if task == "binary" else "tanh"
    params = dict(hidden_layer_sizes=(7, 5), activation=activation, alpha=0.003, batch_size=30, max_iter=1,
                  random_state=4, **SOLVER_SETTINGS[settings])
    ours, theirs = ours_class(**params).fit(X, y), their_class(**params).fit(X, y)
    rng = np.random.default_rng(5)
    coefs = [rng.uniform(-0.6, 0.6, c.shape) for c in theirs.coefs_]
    intercepts = [rng.uniform(-0.3, 0.3, b.shape) for b in theirs.intercepts_]
    for estimator in (ours, theirs):
        estimator.coefs_ = [c.copy() for c in coefs]
        estimator.intercepts_ = [b.copy() for b in intercepts]
        estimator.set_params(warm_start=True, max_iter=3).fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours.n_iter_ == theirs.n_iter_ == 3 and ours.t_ == theirs.t_
    _assert_same_weights(ours, theirs, atol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X) if task not in ("regression", "multioutput")
                               else ours.predict(X),
                               theirs.predict_proba(X) if task not in ("regression", "multioutput")
                               else theirs.predict(X), rtol=1e-9, atol=1e-12)


def _sklearn_early_stopping_takes_string_labels():
    # scikit-learn 1.6-1.8 (1.7 is the newest on Python 3.10) call np.isnan on the predicted labels
    # when scoring for early stopping, a TypeError for string labels (a bug of those versions).
    X = np.arange(20.0).reshape(10, 2)
    try:
        sk_nn.MLPClassifier(hidden_layer_sizes=(2,), max_iter=1, early_stopping=True, validation_fraction=0.3,
                            random_state=0).fit(X, np.array(["a", "b"] * 5))
    except TypeError:
        return False
    return True


@no_convergence_warning
@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_same_random_state_same_training_as_sklearn(task):
    """Initial weights, shuffling and the early-stopping split come from the same random draws."""
    if task == "multiclass" and not _sklearn_early_stopping_takes_string_labels():
        pytest.skip(f"scikit-learn {sklearn.__version__} itself fails on early stopping with string labels "
                    "(a bug of that version): nothing to compare with")
    ours_class, their_class = _classes(task)
    X, y = _data(task, n=120)
    params = dict(hidden_layer_sizes=(10,), solver="adam", learning_rate_init=0.01, max_iter=15,
                  early_stopping=True, validation_fraction=0.2, n_iter_no_change=3, random_state=11)
    ours, theirs = ours_class(**params).fit(X, y), their_class(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=1e-9)
    assert ours.best_loss_ is None and theirs.best_loss_ is None
    _assert_same_weights(ours, theirs, atol=1e-9)  # the best weights, restored


@no_convergence_warning
def test_adaptive_learning_rate_matches_sklearn():
    """learning_rate='adaptive' divides the rate by 5 when the loss stalls; tol=0.05 makes it stall."""
    X, y = _data("multiclass")
    params = dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate="adaptive", learning_rate_init=0.2,
                  tol=0.05, n_iter_no_change=2, max_iter=25, random_state=2)
    ours, theirs = MLPClassifier(**params).fit(X, y), sk_nn.MLPClassifier(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours._optimizer.lr == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    assert ours._optimizer.lr < 0.2 / 5


@no_convergence_warning
def test_lbfgs_matches_sklearn_for_one_output():
    X, y = _data("regression")
    params = dict(hidden_layer_sizes=(5,), solver="lbfgs", alpha=0.01, max_iter=30, random_state=0)
    ours, theirs = MLPRegressor(**params).fit(X, y), sk_nn.MLPRegressor(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)
    assert not hasattr(ours, "loss_curve_") and ours.t_ == 0


# -- comparable results on real data ----------------------------------------------------------
@no_convergence_warning
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_digits_accuracy_comparable_to_sklearn(solver):
    """Same parameters on load_digits: held-out accuracy within 0.02 of scikit-learn's, and >= 0.9."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)
    params = dict(hidden_layer_sizes=(32,), solver=solver, max_iter=40, random_state=0,
                  learning_rate_init=0.01 if solver == "adam" else 0.1)
    ours = MLPClassifier(**params).fit(X_train, y_train).score(X_test, y_test)
    theirs = sk_nn.MLPClassifier(**params).fit(X_train, y_train).score(X_test, y_test)
    assert ours >= 0.9
    assert abs(ours - theirs) <= 0.02


@no_convergence_warning
def test_regression_r2_comparable_to_sklearn():
    """make_regression, two outputs, lbfgs and adam: held-out R² within 0.02 of scikit-learn's."""
    X, y = make_regression(n_samples=300, n_features=8, n_targets=2, noise=5.0, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y / 50.0, random_state=0)
    for solver in ("lbfgs", "adam"):
        params = dict(hidden_layer_sizes=(32,), solver=solver, max_iter=200, learning_rate_init=0.01,
                      random_state=0)
        ours = MLPRegressor(**params).fit(X_train, y_train).score(X_test, y_test)
        theirs = sk_nn.MLPRegressor(**params).fit(X_train, y_train).score(X_test, y_test)
        assert ours >= 0.9
        assert abs(ours - theirs) <= 0.02


# -- targets, attributes, loss conventions ----------------------------------------------------
@no_convergence_warning
@pytest.mark.parametrize("task, n_outputs, out_activation", [
    ("multiclass", 3, "softmax"), ("binary", 1, "logistic"), ("multilabel", 3, "logistic"),
    ("regression", 1, "identity"), ("multioutput", 3, "identity")])
def test_fitted_attributes(task, n_outputs, out_activation):
    ours_class, _ = _classes(task)
    X, y = _data(task)
    est = ours_class(hidden_layer_sizes=[9, 4], max_iter=7, batch_size=40, random_state=0).fit(X, y)
    assert [c.shape for c in est.coefs_] == [(6, 9), (9, 4), (4, n_outputs)]
    assert [b.shape for b in est.intercepts_] == [(9,), (4,), (n_outputs,)]
    assert est.n_layers_ == 4 and est.n_outputs_ == n_outputs and est.out_activation_ == out_activation
    assert est.n_features_in_ == 6 and not hasattr(est, "feature_names_in_")
    assert est.n_iter_ == 7 == len(est.loss_curve_) and est.t_ == 7 * 100
    assert est.loss_ == est.loss_curve_[-1] and est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    prediction = est.predict(X)
    if task == "multiclass":
        assert prediction.dtype.kind == "U" and set(prediction) <= {"ant", "bee", "cat"}
        assert list(est.classes_) == ["ant", "bee", "cat"]
    if task == "binary":
        assert list(est.classes_) == [-2, 7] and set(prediction) <= {-2, 7}
    if task == "multilabel":
        assert prediction.shape == (100, 3) and set(np.unique(prediction)) <= {0, 1}
    if task in ("multiclass", "binary", "multilabel"):
        proba = est.predict_proba(X)
        assert proba.shape == (100, 3 if task == "multilabel" else len(est.classes_))
        if task != "multilabel":
            np.testing.assert_allclose(proba.sum(axis=1), 1.0)
            assert np.array_equal(est.classes_[proba.argmax(axis=1)], prediction)
        np.testing.assert_allclose(est.predict_log_proba(X), np.log(proba))
    else:
        assert prediction.shape == ((100,) if n_outputs == 1 else (100, n_outputs))


def _penalty(est, n):
    return 0.5 * est.alpha * sum(float(np.sum(c * c)) for c in est.coefs_) / n


@no_convergence_warning
def test_lbfgs_loss_uses_sklearn_conventions():
    """loss_ is ½·mean over samples and outputs (squared error) or the mean log-loss, plus alpha/(2n)·Σ‖W‖²."""
    X, y = _data("multioutput")
    reg = MLPRegressor(hidden_layer_sizes=(6,), solver="lbfgs", alpha=0.5, max_iter=20, random_state=0).fit(X, y)
    expected = 0.5 * np.mean((reg.predict(X) - y) ** 2) + _penalty(reg, len(X))
    assert reg.loss_ == pytest.approx(expected, rel=1e-10)

    X, y = _data("multiclass")
    clf = MLPClassifier(hidden_layer_sizes=(6,), solver="lbfgs", alpha=0.5, max_iter=20, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    expected = -np.mean(np.log(proba[np.arange(len(y)), np.searchsorted(clf.classes_, y)])) + _penalty(clf, len(X))
    assert clf.loss_ == pytest.approx(expected, rel=1e-10)


@no_convergence_warning
def test_feature_names_from_a_dataframe():
    pd = pytest.importorskip("pandas")
    X, y = _data("regression", n=30)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    reg = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(frame, y)
    assert list(reg.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="feature names"):
        reg.predict(X)


@no_convergence_warning
def test_one_class_predicts_it():
    X, _ = _data("binary")
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5).fit(X, np.full(len(X), "only"))
    assert list(clf.predict(X[:3])) == ["only"] * 3


@no_convergence_warning
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sparse_input_same_as_dense(solver):
    X, y = _data("multiclass")
    X[np.abs(X) < 0.8] = 0.0
    params = dict(hidden_layer_sizes=(8,), solver=solver, max_iter=10, random_state=0)
    dense = MLPClassifier(**params).fit(X, y)
    sparse = MLPClassifier(**params).fit(scipy.sparse.csc_matrix(X), y)
    _assert_same_weights(dense, sparse, atol=1e-12)
    np.testing.assert_allclose(sparse.predict_proba(scipy.sparse.csr_array(X)), dense.predict_proba(X))


@no_convergence_warning
def test_dtype_and_backend():
    X, y = _data("multiclass")
    params = dict(hidden_layer_sizes=(8,), solver="sgd", max_iter=5, random_state=0)
    assert MLPClassifier(**params).fit(X.astype(np.float32), y).coefs_[0].dtype == np.float32  # like sklearn
    assert MLPClassifier(**params, dtype="float64").fit(X.astype(np.float32), y).coefs_[0].dtype == np.float64
    single = MLPClassifier(**params, dtype="float32").fit(X, y)
    assert single.coefs_[0].dtype == np.float32 and single.predict_proba(X).dtype == np.float32
    native = MLPClassifier(**params, backend="native").fit(X, y)
    numpy = MLPClassifier(**params, backend="numpy").fit(X, y)
    _assert_same_weights(native, numpy, atol=1e-10)
    np.testing.assert_allclose(single.predict_proba(X), native.predict_proba(X), atol=1e-4)


@no_convergence_warning
def test_partial_fit_is_one_epoch_and_keeps_optimizer_state():
    X, y = _data("multiclass")
    params = dict(hidden_layer_sizes=(8,), solver="sgd", momentum=0.9, random_state=0, batch_size=25)
    ours, theirs = MLPClassifier(**params), sk_nn.MLPClassifier(**params)
    for _ in range(3):
        ours.partial_fit(X, y, classes=["ant", "bee", "cat"])
        theirs.partial_fit(X, y, classes=["ant", "bee", "cat"])
    assert ours.n_iter_ == 1 and ours.t_ == 300
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    _assert_same_weights(ours, theirs, atol=1e-9)
    ours.partial_fit(X[y != "cat"], y[y != "cat"])  # a subset of the classes is fine
    reg = MLPRegressor(hidden_layer_sizes=(4,), solver="adam", random_state=0)
    X, y = _data("regression")
    reg.partial_fit(X, y).partial_fit(X, y)
    assert len(reg.loss_curve_) == 2 and reg._optimizer.step_count == 2


# -- scikit-learn tooling: clone, pickle, Pipeline, GridSearchCV, cross_val_score --------------
@no_convergence_warning
def test_pickle_and_deepcopy_keep_predictions_and_optimizer_state():
    X, y = _data("multiclass")
    est = MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", momentum=0.9, random_state=0)
    pickle.loads(pickle.dumps(est))  # unfitted
    for _ in range(2):
        est.partial_fit(X, y, classes=np.unique(y))
    restored = pickle.loads(pickle.dumps(est))
    copied = copy.deepcopy(est)
    np.testing.assert_array_equal(restored.predict_proba(X), est.predict_proba(X))
    for other in (restored, copied):
        other.partial_fit(X, y)
    est.partial_fit(X, y)  # momentum carries on identically after the round trip
    _assert_same_weights(restored, est, atol=0)
    _assert_same_weights(copied, est, atol=0)
    adam = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(*_data("regression"))
    assert pickle.loads(pickle.dumps(adam))._optimizer.step_count == adam._optimizer.step_count == 3


def test_clone_keeps_parameters_only():
    est = MLPRegressor(hidden_layer_sizes=(3,), alpha=0.1, dtype="float32", backend="numpy", random_state=0)
    cloned = clone(est)
    assert cloned.get_params() == est.get_params()
    extensions = {"dtype", "backend", "dropout"}
    assert set(MLPClassifier().get_params()) == set(sk_nn.MLPClassifier().get_params()) | extensions
    assert set(MLPRegressor().get_params()) == set(sk_nn.MLPRegressor().get_params()) | extensions


@no_convergence_warning
def test_docstrings_and_their_examples():
    import doctest

    import backprop.sklearn

    for estimator_class in (MLPClassifier, MLPRegressor):
        for section in ("Parameters", "Attributes", "Notes", "Examples", "learning_rate_init", "dtype", "backend",
                        "dropout"):
            assert section in estimator_class.__doc__
    result = doctest.testmod(backprop.sklearn)
    assert result.attempted > 0 and result.failed == 0


@no_convergence_warning
def test_pipeline_grid_search_and_cross_validation():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(solver="lbfgs", max_iter=200, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)],
                               "mlpclassifier__alpha": [1e-4, 1.0]}, cv=3).fit(X, y)
    assert grid.best_score_ > 0.9 and grid.best_estimator_.score(X, y) > 0.9
    X, y = make_regression(n_samples=120, n_features=4, noise=1.0, random_state=0)
    scores = cross_val_score(make_pipeline(StandardScaler(), MLPRegressor(solver="lbfgs", random_state=0)),
                             X, y / 100.0, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.9


def test_verbose_prints_progress(capsys):
    X, y = _data("regression")
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, verbose=True, random_state=0).fit(X, y)
    assert "Iteration 2, loss = " in capsys.readouterr().out


# -- bad hyper-parameters and bad input -----------------------------------------------------
BAD_PARAMETERS = [
    ("hidden_layer_sizes", 0), ("hidden_layer_sizes", [10, -1]), ("hidden_layer_sizes", "10"),
    ("hidden_layer_sizes", [2.5]), ("activation", "softmax"), ("activation", None), ("solver", "newton"),
    ("alpha", -1.0), ("alpha", np.inf), ("batch_size", 0), ("batch_size", "all"), ("learning_rate", "fast"),
    ("learning_rate_init", 0.0), ("power_t", -0.5), ("max_iter", 0), ("max_iter", 2.0), ("shuffle", "yes"),
    ("random_state", -1), ("random_state", "seed"), ("tol", -1e-3), ("verbose", -1), ("warm_start", 1),
    ("momentum", 1.5), ("nesterovs_momentum", None), ("early_stopping", "no"), ("validation_fraction", 1.0),
    ("beta_1", 1.0), ("beta_2", -0.1), ("epsilon", 0.0), ("n_iter_no_change", 0), ("max_fun", 0),
    ("dtype", "int32"), ("dtype", "float16"), ("backend", "cuda"),
]


@pytest.mark.parametrize("estimator_class", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("name, value", BAD_PARAMETERS)
def test_bad_hyper_parameters_raise_at_fit_naming_them(estimator_class, name, value):
    """Declared with scikit-learn's _parameter_constraints: the same error and message as scikit-learn's."""
    task = "multiclass" if estimator_class is MLPClassifier else "regression"
    X, y = _data(task, n=20)
    est = estimator_class(**{name: value})  # like scikit-learn, the constructor accepts anything
    with pytest.raises(ValueError, match=rf"\b{name}\b") as ours:
        est.fit(X, y)
    assert not hasattr(est, "coefs_")
    if name in ("dtype", "backend") or value == [2.5]:
        return  # backprop's own parameters; scikit-learn fails on [2.5] with a TypeError from NumPy
    with pytest.raises(ValueError) as theirs:
        _classes(task)[1](**{name: value}).fit(X, y)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("params, match", [
    (dict(solver="sgd", momentum=1.0), "'momentum' parameter.*not supported"),
    (dict(loss="huber"), "'loss' parameter.*('poisson', 'squared_error'|'squared_error', 'poisson')"),
])
def test_unsupported_settings_raise(params, match):
    X, y = _data("regression", n=20)
    with pytest.raises(ValueError, match=match):
        MLPRegressor(**params).fit(X, y)


@no_convergence_warning
def test_bad_input():
    X, y = _data("multiclass", n=30)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(bad, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(X, np.linspace(0, 1, len(X)))
    clf.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :4])
    with pytest.raises(ValueError, match="classes"):
        clf.set_params(warm_start=True).fit(X[y != "ant"], y[y != "ant"])
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        clf.set_params(hidden_layer_sizes=(5,)).fit(X, y)
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="not the same"):
        MLPClassifier(max_iter=2).partial_fit(X, y, classes=np.unique(y)).partial_fit(X, y, classes=["ant"])
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=np.unique(y))
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPRegressor(early_stopping=True, validation_fraction=0.01).fit(*_data("regression", n=30))


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_strings_are_refused_at_predict_as_scikit_learn_does(task):
    """scikit-learn's fit converts numeric strings but its predict, predict_proba
    and score refuse them; so do ours, with the same message."""
    X, y = _data(task, n=30)
    outcomes = []
    for module in (sk_nn, bp.sklearn):
        estimator_class = module.MLPClassifier if task == "multiclass" else module.MLPRegressor
        with pytest.warns(ConvergenceWarning):
            model = estimator_class(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X.astype(str), y)
        methods = ["predict", "score"] + (["predict_proba"] if task == "multiclass" else [])
        for method in methods:
            arguments = (X.astype(str), y) if method == "score" else (X.astype(str),)
            with pytest.raises(ValueError, match="dtype='numeric' is not compatible with arrays of bytes/strings") as error:
                getattr(model, method)(*arguments)
            outcomes.append((method, str(error.value)))
        assert model.predict(X.astype(np.float32)).shape[0] == len(X)  # numbers of any dtype are fine
        assert model.predict(X.astype(np.int64)).shape[0] == len(X)
    half = len(outcomes) // 2
    assert outcomes[:half] == outcomes[half:]


@no_convergence_warning
def test_dropout_extension():
    """dropout=0.0 is the default (the parity tests check it keeps scikit-learn's results); a rate trains
    with dropout, reproducibly from random_state, and predicts without it."""
    X, y = load_iris(return_X_y=True)
    kwargs = dict(hidden_layer_sizes=(16, 8), max_iter=30, random_state=0, backend="numpy")
    plain = MLPClassifier(**kwargs).fit(X, y)
    dropped = MLPClassifier(dropout=[0.3, 0.1], **kwargs).fit(X, y)
    again = MLPClassifier(dropout=[0.3, 0.1], **kwargs).fit(X, y)
    assert MLPClassifier().dropout == 0.0 and MLPRegressor().dropout == 0.0
    assert dropped._net.dropout == (0.3, 0.1)
    assert not np.array_equal(plain.coefs_[0], dropped.coefs_[0])
    for a, b in zip(dropped.coefs_, again.coefs_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dropped.predict_proba(X), dropped.predict_proba(X))  # inference is deterministic
    with pytest.raises(ValueError, match="dropout"):
        MLPRegressor(dropout=1.0).fit(X, y)
