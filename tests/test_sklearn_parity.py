"""backprop.sklearn against scikit-learn 1.9 where 1.9 added or defines behaviour: sample weights,
loss='poisson', divergence with and without early stopping, hand-set fitted attributes, and the
whole-epoch training path against one core call per mini-batch.

Tolerances (float64): the stochastic solvers agree with scikit-learn to rtol 1e-9 on loss_curve_,
validation_scores_ and the weights; L-BFGS-B, which amplifies rounding differences over its
iterations, to rtol 1e-7 after 20 iterations.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", minversion="1.7")  # sample_weight in scikit-learn's MLPs
pytest.importorskip("scipy")

import scipy.sparse  # noqa: E402
from sklearn import neural_network as sk_nn  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.preprocessing import LabelBinarizer  # noqa: E402

import backprop as bp  # noqa: E402
import backprop.sklearn as bp_sklearn  # noqa: E402
from backprop._training import SparseSteps  # noqa: E402
from backprop.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

no_convergence_warning = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny problems, one thread


def _data(task, n=90, n_features=5, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    z = X @ rng.normal(size=(n_features, 3))
    if task == "multiclass":
        y = np.array(["ant", "bee", "cat"])[z.argmax(axis=1)]
    elif task == "binary":
        y = np.where(z[:, 0] > 0, 7, -2)
    elif task == "multilabel":
        y = (z > 0).astype(int)
    elif task == "regression":
        y = z[:, 0] + 0.1 * rng.normal(size=n)
    elif task == "multioutput":
        y = z[:, :2] + 0.1 * rng.normal(size=(n, 2))
    elif task == "poisson":
        y = rng.poisson(np.exp(0.3 * z[:, 0])).astype(float)
    elif task == "poisson2":
        y = rng.poisson(np.exp(0.3 * z[:, :2])).astype(float)
    else:
        raise AssertionError(task)
    weights = rng.uniform(0, 3, size=n)
    weights[::7] = 0.0  # zero weights take part too
    return X, y, weights


def _pair(task, **params):
    """(ours, scikit-learn's) estimators with the same parameters."""
    if task in ("regression", "multioutput", "poisson", "poisson2"):
        if task.startswith("poisson"):
            params["loss"] = "poisson"
        return MLPRegressor(**params), sk_nn.MLPRegressor(**params)
    return MLPClassifier(**params), sk_nn.MLPClassifier(**params)


def _assert_same_weights(ours, theirs, rtol, atol=1e-12):
    assert len(ours.coefs_) == len(theirs.coefs_)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def _fit_sklearn(estimator, *args, **kwargs):
    # scikit-learn's own runs may overflow (NumPy RuntimeWarnings) where backprop's core stays silent.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return estimator.fit(*args, **kwargs)


# -- sample_weight ------------------------------------------------------------------------------
STOCHASTIC = {
    "sgd": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True, learning_rate_init=0.05),
    "sgd-invscaling": dict(solver="sgd", momentum=0.5, nesterovs_momentum=False, learning_rate="invscaling",
                           power_t=0.25, learning_rate_init=0.1),
    "adam": dict(solver="adam", learning_rate_init=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-4),
}
TASKS = ["multiclass", "binary", "multilabel", "regression", "multioutput", "poisson"]


@no_convergence_warning
@pytest.mark.parametrize("settings", list(STOCHASTIC))
@pytest.mark.parametrize("task", TASKS)
def test_stochastic_solvers_with_sample_weight_match_sklearn(task, settings):
    """Same random_state and sample weights: same loss curve and weights (a smaller last batch,
    the L2 term divided by each batch's Σw, zero weights included)."""
    X, y, weights = _data(task)
    params = dict(hidden_layer_sizes=(7, 4), activation="tanh", alpha=0.003, batch_size=25, max_iter=6,
                  random_state=3, **STOCHASTIC[settings])
    ours, theirs = _pair(task, **params)
    ours.fit(X, y, sample_weight=weights)
    _fit_sklearn(theirs, X, y, sample_weight=weights)
    assert ours.n_iter_ == theirs.n_iter_ == 6 and ours.t_ == theirs.t_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    _assert_same_weights(ours, theirs, rtol=1e-9)
    unweighted = _pair(task, **params)[0].fit(X, y)
    assert not np.allclose(unweighted.loss_curve_, ours.loss_curve_)  # the weights do change training


@no_convergence_warning
@pytest.mark.parametrize("task", ["multiclass", "binary", "regression", "poisson"])
def test_early_stopping_with_sample_weight_matches_sklearn(task):
    """The held-out samples keep their weights: weighted accuracy / R², the same best weights restored."""
    X, y, weights = _data(task, n=120)
    params = dict(hidden_layer_sizes=(8,), solver="adam", learning_rate_init=0.02, max_iter=25,
                  early_stopping=True, validation_fraction=0.25, n_iter_no_change=3, random_state=5)
    ours, theirs = _pair(task, **params)
    ours.fit(X, y, sample_weight=weights)
    _fit_sklearn(theirs, X, y, sample_weight=weights)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=1e-9)
    _assert_same_weights(ours, theirs, rtol=1e-9)


@no_convergence_warning
@pytest.mark.parametrize("task", ["multiclass", "regression", "poisson"])
def test_partial_fit_with_sample_weight_matches_sklearn(task):
    """partial_fit(X, y, sample_weight, classes): scikit-learn's argument order, one epoch per call."""
    X, y, weights = _data(task)
    ours, theirs = _pair(task, hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.05, batch_size=20,
                         random_state=0)
    for k in range(3):
        rows = slice(30 * k, 30 * k + 30)
        args = (X[rows], y[rows], weights[rows]) + ((np.unique(y),) if task == "multiclass" else ())
        ours.partial_fit(*args)
        theirs.partial_fit(*args)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    _assert_same_weights(ours, theirs, rtol=1e-9)


@no_convergence_warning
@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "regression", "poisson"])
def test_lbfgs_with_sample_weight_matches_sklearn(task):
    """L-BFGS-B on Σw·L/Σw + alpha/(2Σw)·Σ‖W‖², from parameters() and gradients(flat=True)."""
    X, y, weights = _data(task)
    params = dict(hidden_layer_sizes=(6,), activation="tanh", solver="lbfgs", alpha=0.01, max_iter=20,
                  random_state=0)
    ours, theirs = _pair(task, **params)
    ours.fit(X, y, sample_weight=weights)
    _fit_sklearn(theirs, X, y, sample_weight=weights)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-7)
    _assert_same_weights(ours, theirs, rtol=1e-7, atol=1e-9)


@no_convergence_warning
@pytest.mark.parametrize("task", ["multiclass", "regression", "poisson"])
def test_lbfgs_integer_weights_equal_repeated_rows(task):
    """Weight k is k copies of the row (0: the row left out): the same loss and gradient at every
    point, so the same L-BFGS-B run to rounding."""
    X, y, _ = _data(task)
    counts = np.random.RandomState(1).randint(0, 4, size=len(y))
    params = dict(hidden_layer_sizes=(6,), activation="tanh", solver="lbfgs", alpha=0.01, max_iter=20,
                  random_state=0)
    weighted = _pair(task, **params)[0].fit(X, y, sample_weight=counts)
    repeated = _pair(task, **params)[0].fit(np.repeat(X, counts, axis=0), np.repeat(y, counts, axis=0))
    assert weighted.n_iter_ == repeated.n_iter_
    assert weighted.loss_ == pytest.approx(repeated.loss_, rel=1e-8)
    _assert_same_weights(weighted, repeated, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("weights, match", [
    (np.r_[-1.0, np.ones(89)], "sample_weight must be >= 0"),
    (np.zeros(90), "at least one non-zero"),
    (np.ones(89), "sample_weight.shape"),
])
def test_bad_sample_weight_is_refused_before_anything_changes(weights, match):
    X, y, _ = _data("regression")
    reg = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2)
    with pytest.raises(ValueError, match=match):
        reg.fit(X, y, sample_weight=weights)
    assert not hasattr(reg, "coefs_")


# -- loss='poisson' ----------------------------------------------------------------------------
@no_convergence_warning
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("task", ["poisson", "poisson2"])
def test_poisson_matches_sklearn(task, solver):
    """exp output and half the Poisson deviance; one and two outputs."""
    X, y, _ = _data(task)
    params = dict(hidden_layer_sizes=(6,), activation="relu", solver=solver, learning_rate_init=0.01,
                  batch_size=32, max_iter=8, alpha=0.001, random_state=2)
    ours, theirs = _pair(task, **params)
    ours.fit(X, y)
    _fit_sklearn(theirs, X, y)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    rtol = 1e-7 if solver == "lbfgs" else 1e-9
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=rtol)
    if solver != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    _assert_same_weights(ours, theirs, rtol=rtol, atol=1e-10)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=rtol)
    assert ours.predict(X).min() > 0
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=rtol, abs=1e-12)


def test_poisson_refuses_negative_targets():
    X, y, _ = _data("poisson")
    y[3] = -1.0
    reg = MLPRegressor(loss="poisson", max_iter=2)
    with pytest.raises(ValueError, match="negative"):
        reg.fit(X, y)
    assert not hasattr(reg, "coefs_")


def test_poisson_warm_start_keeps_the_loss():
    X, y, _ = _data("regression")
    reg = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, y)
    reg.set_params(loss="poisson", warm_start=True)
    with pytest.raises(ValueError, match="out_activation_='identity'"):
        reg.fit(X, np.abs(y))


# -- divergence ---------------------------------------------------------------------------------
DIVERGING = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=10.0, momentum=0.0, max_iter=30,
                 random_state=0)


def _diverging_data():
    X, y, weights = _data("regression", n=60)
    return X, y * 1e8, weights


@pytest.mark.parametrize("weighted", [False, True])
def test_divergence_with_early_stopping_restores_the_best_weights_like_sklearn(weighted):
    """scikit-learn trains on with NaN weights (scores nan, so the stopping rule never fires), warns at
    max_iter, restores the best weights and returns normally; so does backprop, without the NaN steps."""
    X, y, weights = _diverging_data()
    sample_weight = weights if weighted else None
    ours = MLPRegressor(**DIVERGING, early_stopping=True, n_iter_no_change=5)
    theirs = sk_nn.MLPRegressor(**DIVERGING, early_stopping=True, n_iter_no_change=5)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        ours.fit(X, y, sample_weight=sample_weight)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        _fit_sklearn(theirs, X, y, sample_weight=sample_weight)
    assert ours.n_iter_ == theirs.n_iter_ == 30 and ours.t_ == theirs.t_
    assert np.isnan(ours.validation_scores_[-1]) and np.isnan(theirs.validation_scores_[-1])
    finite = np.isfinite(theirs.validation_scores_)
    np.testing.assert_array_equal(np.isfinite(ours.validation_scores_), finite)
    np.testing.assert_allclose(np.array(ours.validation_scores_)[finite], np.array(theirs.validation_scores_)[finite],
                               rtol=1e-9)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=1e-9)
    # scikit-learn's loss passes through inf before nan; backprop's reads nan from the diverged epoch.
    diverged = np.argmin(np.isfinite(theirs.loss_curve_))
    np.testing.assert_allclose(ours.loss_curve_[:diverged], theirs.loss_curve_[:diverged], rtol=1e-9)
    assert np.all(np.isnan(ours.loss_curve_[diverged:]))
    _assert_same_weights(ours, theirs, rtol=1e-9)
    assert np.all(np.isfinite(ours.predict(X)))


def test_divergence_without_early_stopping_raises_like_sklearn():
    X, y, _ = _diverging_data()
    ours, theirs = MLPRegressor(**DIVERGING), sk_nn.MLPRegressor(**DIVERGING)
    with pytest.warns(ConvergenceWarning), pytest.raises(ValueError, match="non-finite parameter weights") as error:
        ours.fit(X, y)
    with pytest.warns(ConvergenceWarning), pytest.raises(ValueError, match="non-finite parameter weights"):
        _fit_sklearn(theirs, X, y)
    assert str(error.value).startswith(bp_sklearn._NONFINITE_MESSAGE)
    assert ours.n_iter_ == theirs.n_iter_ == 30
    assert all(np.all(np.isfinite(c)) for c in ours.coefs_ + ours.intercepts_)  # the last finite weights


def test_classifier_divergence_scores_nan_outputs_as_sklearn_does():
    """scikit-learn's NaN outputs predict classes_[0] (accuracy, not nan, is the score); here that
    constant prediction scores best, so scikit-learn keeps its NaN weights as the best and raises.
    backprop replays the same scores, stops at the same epoch and raises the same error."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 5))
    y = np.array(list("abc"))[(X @ rng.normal(size=(5, 3))).argmax(axis=1)]
    params = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1e30, momentum=0.0, max_iter=40,
                  random_state=0, early_stopping=True, n_iter_no_change=3, validation_fraction=0.25)
    ours, theirs = MLPClassifier(**params), sk_nn.MLPClassifier(**params)
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        ours.fit(X, y)
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        _fit_sklearn(theirs, X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 40
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-12)
    assert ours.best_validation_score_ == theirs.best_validation_score_
    assert all(np.all(np.isfinite(c)) for c in ours.coefs_)


def test_grid_search_over_learning_rates_with_early_stopping_scores_every_candidate():
    """A diverging candidate no longer aborts the search: it is scored like the others."""
    from sklearn.model_selection import GridSearchCV

    X, y, _ = _diverging_data()
    search = GridSearchCV(MLPRegressor(**{**DIVERGING, "max_iter": 8}, early_stopping=True),
                          {"learning_rate_init": [1e-3, 10.0]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_ == {"learning_rate_init": 1e-3}


# -- fitted attributes set by hand -------------------------------------------------------------
def _hand_set(estimator, task, coefs, intercepts, classes, dtype=np.float64, with_private=False):
    estimator.coefs_ = [c.astype(dtype) for c in coefs]
    estimator.intercepts_ = [b.astype(dtype) for b in intercepts]
    estimator.n_layers_ = len(coefs) + 1
    estimator.n_outputs_ = coefs[-1].shape[1]
    estimator.n_features_in_ = coefs[0].shape[0]
    estimator.out_activation_ = {"multiclass": "softmax", "binary": "logistic", "multilabel": "logistic",
                                 "regression": "identity", "poisson": "exp"}[task]
    if classes is not None:
        estimator.classes_ = classes
    if with_private:  # what scikit-learn needs beyond the public attributes
        if classes is not None:
            estimator._label_binarizer = LabelBinarizer().fit(
                classes if task != "multilabel" else np.eye(len(classes), dtype=int))
        estimator.t_, estimator.loss_curve_, estimator._no_improvement_count, estimator.best_loss_ = 0, [], 0, np.inf
    return estimator


@no_convergence_warning
@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "regression", "poisson"])
def test_hand_set_attributes_are_enough_to_predict_and_partial_fit(task):
    X, y, weights = _data(task)
    rng = np.random.default_rng(4)
    n_outputs = {"multiclass": 3, "multilabel": 3}.get(task, 1)
    coefs = [rng.uniform(-0.5, 0.5, (5, 6)), rng.uniform(-0.5, 0.5, (6, n_outputs))]
    intercepts = [rng.uniform(-0.2, 0.2, 6), rng.uniform(-0.2, 0.2, n_outputs)]
    classes = {"multiclass": np.array(["ant", "bee", "cat"]), "binary": np.array([-2, 7]),
               "multilabel": np.arange(3)}.get(task)
    params = dict(hidden_layer_sizes=(6,), activation="tanh", solver="sgd", learning_rate_init=0.05,
                  batch_size=30, random_state=0)
    ours, theirs = _pair(task, **params)
    _hand_set(ours, task, coefs, intercepts, classes)
    _hand_set(theirs, task, coefs, intercepts, classes, with_private=True)
    np.testing.assert_allclose(ours.predict(X) if classes is None else ours.predict_proba(X),
                               theirs.predict(X) if classes is None else theirs.predict_proba(X), rtol=1e-12)
    if classes is not None:
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    ours.partial_fit(X, y, weights)
    theirs.partial_fit(X, y, weights)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    _assert_same_weights(ours, theirs, rtol=1e-9)


def test_hand_set_float32_weights_compute_in_float32():
    X, _, _ = _data("regression")
    rng = np.random.default_rng(0)
    reg = _hand_set(MLPRegressor(activation="relu"), "regression",
                    [rng.normal(size=(5, 4)), rng.normal(size=(4, 1))], [np.zeros(4), np.zeros(1)], None,
                    dtype=np.float32)
    assert reg.predict(X).dtype == np.float32
    reg.coefs_ = [c.astype(np.float64) for c in reg.coefs_]  # changing the dtype rebuilds the network
    assert reg.predict(X).dtype == np.float64


def test_hand_set_attributes_are_checked():
    X, _, _ = _data("regression")
    rng = np.random.default_rng(0)
    reg = _hand_set(MLPRegressor(), "regression", [rng.normal(size=(5, 4)), rng.normal(size=(4, 1))],
                    [np.zeros(4), np.zeros(2)], None)
    with pytest.raises(ValueError, match=r"intercepts_\[1\] must have shape \(1,\)"):
        reg.predict(X)
    reg.intercepts_[1] = np.array([np.nan])
    with pytest.raises(ValueError, match="NaN"):
        reg.predict(X)


# -- one fit call per training run against one per mini-batch ---------------------------------
@no_convergence_warning
@pytest.mark.parametrize("settings", ["sgd", "sgd-invscaling", "adam"])
@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_sparse_blocks_train_exactly_like_dense(monkeypatch, task, settings):
    """Dense X trains all epochs in one core call per epoch; sparse X, densified one mini-batch per
    block (one core call per batch), takes the same steps in the same epoch loop: same numbers, and
    what scikit-learn computes, with 40 of the 100 rows weighing 0."""
    X, y, weights = _data(task, n=100)
    X[np.abs(X) < 0.3] = 0.0
    weights[:40] = 0.0
    params = dict(hidden_layer_sizes=(7,), activation="relu", alpha=0.01, batch_size=16, max_iter=5,
                  random_state=1, **STOCHASTIC[settings])
    whole, theirs = _pair(task, **params)
    per_batch = _pair(task, **params)[0]
    whole.fit(X, y, sample_weight=weights)
    monkeypatch.setattr(SparseSteps, "SPARSE_BLOCK_ROWS", 1)  # one mini-batch per block
    calls = []
    original = bp.Network._fit
    monkeypatch.setattr(bp.Network, "_fit", lambda net, *a, **k: calls.append(1) or original(net, *a, **k))
    per_batch.fit(scipy.sparse.csr_matrix(X), y, sample_weight=weights)
    assert len(calls) == 1  # one fit, not one per block
    np.testing.assert_allclose(whole.loss_curve_, per_batch.loss_curve_, rtol=1e-10)
    _assert_same_weights(whole, per_batch, rtol=1e-10)
    _fit_sklearn(theirs, X, y, sample_weight=weights)
    np.testing.assert_allclose(whole.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    _assert_same_weights(whole, theirs, rtol=1e-9)


# -- input checks as scikit-learn's --------------------------------------------------------------
@no_convergence_warning
def test_predict_refuses_numeric_strings_like_sklearn():
    X, y, _ = _data("multiclass")
    ours, theirs = _pair("multiclass", hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    ours.fit(X, y)
    _fit_sklearn(theirs, X, y)
    for estimator in (ours, theirs):
        with pytest.raises(ValueError, match="dtype='numeric' is not compatible with arrays of bytes/strings"):
            estimator.predict(X.astype(str))
