"""E1–E4: ``backprop.sklearn.MLPClassifier.fit`` against scikit-learn's, end to end.

    E1, E2  Fashion-MNIST (784 features, float32 as loaded; synthetic stand-in of
            the same shape when missing), solver 'sgd' / 'adam'
    E3, E4  the digits shipped with backprop (1,797 × 64, scaled to [0, 1],
            float64), solver 'sgd' / 'adam'

Every row fits ``MLPClassifier(hidden_layer_sizes=(256, 128), solver=...,
max_iter=10, random_state=0)`` with scikit-learn's other defaults (batches of
200, learning_rate_init 0.001), from each library, on the same data, in this
process, under the suite's thread limit. A figure is one whole ``fit``:
input validation, initialisation and 10 epochs (one epoch in smoke mode);
the two libraries alternate. Fashion-MNIST fits take tens of seconds, so
they run once per library; the digits fits take the median of
``max(repeats, 3)``. The goal is scikit-learn's time / backprop's: ≥ 4 on
Fashion-MNIST, ≥ 3 on the digits. Both fits run the same computation
(same initial weights, batches and updates), so their final loss_ is
reported side by side as a check.

Each row also gets backprop's distance to its arithmetic limit (``limits``):
the fit's multiply-adds at the run's fastest single-core GEMM rate of the
row's dtype, on the cores the core's team uses for a step of the batch
(scikit-learn's ``batch_size="auto"``: min(200, rows)). Counted: every
epoch's products (forward and weight gradients of every layer, input
gradients of layers 2..L: ``limits.epoch_macs``). Not counted, though in the
timed fit: input validation, initialisation, the activations, loss and
optimizer update, and the per-epoch bookkeeping (loss_curve_, the
convergence check); no validation pass runs, since scikit-learn's
``early_stopping`` is off by default. The goal for the stochastic solvers
('sgd', 'adam') is ≤ 1.2 × the limit, float32 (E1, E2) and float64 (E3, E4).
"""

from __future__ import annotations

import os
import statistics
import time
import warnings

import numpy as np

from . import limits

HIDDEN = (256, 128)
EPOCHS = 10
GOALS = {"fashion": 4.0, "digits": 3.0}
LIMIT_GOAL = 1.2
#: scikit-learn's batch_size="auto": min(AUTO_BATCH, rows).
AUTO_BATCH = 200
LIBRARIES = ("backprop", "sklearn")


def _rows(mode, dataset):
    """[(key, data key, description, solver, X, y)] for `mode`."""
    from backprop.datasets import load_digits

    X_digits, y_digits = load_digits()
    fashion = (dataset.X[:mode.pixel_samples], dataset.y[:mode.pixel_samples])
    digits = (X_digits / 16.0, y_digits)
    described = {"fashion": f"{dataset.source} {fashion[0].shape[0]:,} × 784 float32",
                 "digits": "digits 1,797 × 64 float64"}
    rows = []
    for data_key, (X, y) in (("fashion", fashion), ("digits", digits)):
        for solver in ("sgd", "adam"):
            key = f"E{len(rows) + 1}"
            rows.append((key, data_key, described[data_key], solver, X, y))
    return rows


def _estimators():
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    from backprop.sklearn import MLPClassifier as BackpropMLP
    return {"backprop": BackpropMLP, "sklearn": SklearnMLP}


def _fit_seconds(estimator_class, params, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: 10 epochs on purpose
        started = time.perf_counter()
        estimator = estimator_class(**params).fit(X, y)
        seconds = time.perf_counter() - started
    return seconds, estimator


def time_estimators(mode, dataset, repeats, settle):
    """Fit times of both libraries' MLPClassifier on E1–E4.

    Returns
    -------
    dict: description, rows {key: {data, solver, epochs, seconds {library: s}, runs, speedup (sklearn /
    backprop), goal, loss {library: final loss_}, n_iter}}, load_average before and after; or
    {"skipped": reason} when scikit-learn or backprop.sklearn cannot be imported.
    """
    try:
        classes = _estimators()
    except ImportError as error:
        return {"skipped": f"needs scikit-learn: {error}"}
    epochs = 1 if mode.name == "smoke" else EPOCHS
    result = {"description": f"MLPClassifier(hidden_layer_sizes={HIDDEN}, max_iter={epochs}, random_state=0) "
                             "fit end to end; speed-up = sklearn time / backprop time",
              "load_average_before": list(os.getloadavg()), "rows": {}}
    rows = _rows(mode, dataset)
    # Untimed warm-up: loads code, starts thread pools.
    for estimator_class in classes.values():
        _fit_seconds(estimator_class, dict(hidden_layer_sizes=HIDDEN, max_iter=1, random_state=0),
                     rows[2][4][:400], rows[2][5][:400])
    for key, data_key, described, solver, X, y in rows:
        params = dict(hidden_layer_sizes=HIDDEN, solver=solver, max_iter=epochs, random_state=0)
        repetitions = 1 if data_key == "fashion" else max(repeats, 3)
        runs = {library: [] for library in LIBRARIES}
        fitted = {}
        for repetition in range(repetitions):
            for library in (LIBRARIES if repetition % 2 == 0 else LIBRARIES[::-1]):
                if settle:
                    time.sleep(settle)
                seconds, fitted[library] = _fit_seconds(classes[library], params, X, y)
                runs[library].append(seconds)
        seconds = {library: float(statistics.median(times)) for library, times in runs.items()}
        result["rows"][key] = {
            "data": described, "solver": solver, "epochs": epochs, "repetitions": repetitions,
            "seconds": seconds, "runs": runs, "speedup": seconds["sklearn"] / seconds["backprop"],
            "goal": GOALS[data_key], "data_key": data_key,
            "loss": {library: float(est.loss_) for library, est in fitted.items()},
            "n_iter": {library: int(est.n_iter_) for library, est in fitted.items()},
            "sizes": [X.shape[1], *HIDDEN, len(np.unique(y))], "rows": int(X.shape[0]),
            "batch_size": min(AUTO_BATCH, X.shape[0]), "dtype": np.dtype(X.dtype).name,
        }
    result["load_average_after"] = list(os.getloadavg())
    return result


def add_arithmetic_limits(figures, rates, threads):
    """Give every row its ``arithmetic_limit`` (``limits.limit``) against backprop's fit time.

    Parameters
    ----------
    figures : time_estimators' result (left alone when skipped)
    rates : callable(dtype) -> ``limits.gemm_rate`` result
    threads : int, the suite's thread count
    """
    for row in figures.get("rows", {}).values():
        macs = limits.epoch_macs(row["sizes"], row["rows"]) * row["n_iter"]["backprop"]
        cores = limits.step_cores(row["sizes"], row["batch_size"], threads)
        row["arithmetic_limit"] = limits.limit(macs, cores, rates(row["dtype"]), row["seconds"]["backprop"])


def table_lines(figures):
    """The report's lines for E1–E4."""
    if "skipped" in figures:
        return [f"E1–E4 skipped: {figures['skipped']}", ""]
    lines = [f"E1–E4 {figures['description']}",
             f"  {'row':<5}{'data':<38}{'solver':<7}{'backprop s':>11}{'sklearn s':>11}{'speed-up':>9}"
             f"{'goal':>7}   final loss_ backprop / sklearn"]
    for key, row in figures["rows"].items():
        loss = row["loss"]
        lines.append(f"  {key:<5}{row['data']:<38}{row['solver']:<7}{row['seconds']['backprop']:>11.3f}"
                     f"{row['seconds']['sklearn']:>11.3f}{row['speedup']:>9.2f}{'≥ ' + format(row['goal'], 'g'):>7}"
                     f"   {loss['backprop']:.6f} / {loss['sklearn']:.6f}")
        if row.get("arithmetic_limit"):
            lines.append(f"       {limits.limit_line(row['arithmetic_limit'])}")
    before, after = figures["load_average_before"], figures["load_average_after"]
    lines.append(f"  load average (1, 5, 15 min) before {', '.join(f'{v:.2f}' for v in before)}, after "
                 f"{', '.join(f'{v:.2f}' for v in after)}")
    return lines + [""]


def goal_rows(figures):
    """Rows for the goals table, in evaluate_goals' format."""
    if not figures or "skipped" in figures:
        return []
    rows = []
    for key, row in figures["rows"].items():
        figure = row["speedup"]
        rows.append({"id": key, "workload": key, "bound": row["goal"], "measured": figure,
                     "what": f"sklearn / backprop fit, {row['data_key']}, {row['solver']}",
                     "goal": f"≥ {row['goal']:g}", "status": "PASS" if figure >= row["goal"] else "MISS",
                     "note": "" if row["epochs"] == EPOCHS else f"{row['epochs']} epoch(s) only"})
    for key, row in figures["rows"].items():
        figure = (row.get("arithmetic_limit") or {}).get("native_over_limit")
        status = "n/a" if figure is None else "PASS" if figure <= LIMIT_GOAL else "MISS"
        notes = [] if row["epochs"] == EPOCHS else [f"{row['epochs']} epoch(s) only"]
        rows.append({"id": key, "workload": key, "bound": LIMIT_GOAL, "measured": figure,
                     "what": f"backprop fit / arithmetic limit, {row['dtype']}, {row['solver']}",
                     "goal": f"≤ {LIMIT_GOAL:g}", "status": status,
                     "note": "; ".join(notes + ([] if figure is not None else ["no GEMM rate measured"]))})
    return rows
