"""Runs the workloads on the peers and collects every figure in one dict.

Timing rules: each figure is the median of ``repeats`` runs after one
untimed warm-up; within each repetition every peer runs once, in an order
that rotates from one repetition to the next, so drift on a shared machine
(another process, frequency changes) hits all peers alike. Before each timed
run the suite pauses (the previous peer's thread pools stop spinning) and
runs a few untimed batches of the same peer (its own threads wake up). Repetitions are
consecutive epochs: each peer keeps its weights and optimizer state, and
all peers get the same freshly shuffled order for each epoch.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace

import numpy as np

import backprop as bp

from . import calls, contention, custom_loops, data_parallel, estimators, limits, rss, threads as thread_settings
from . import data as bench_data
from .peers import LABELS, make_predictor, make_trainer
from .workloads import TRAINING_KEYS, W1_SIZES, Workload, goals, training_workloads, warmup_rows


_STARTED = time.perf_counter()


def _log(message):
    """Progress on stderr, with the seconds since the suite was imported."""
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def _initial_params(workload):
    """The backprop network's initial weights for `workload`, [(W, b), ...] in its dtype."""
    net = bp.Network(workload.sizes, activation=workload.activation, dtype=workload.dtype,
                     backend="numpy", seed=workload.seed)
    return [(layer.W.copy(), layer.b.copy()) for layer in net.layers]


def _rotated(items, by):
    by %= max(len(items), 1)
    return items[by:] + items[:by]


def _median(values):
    return float(statistics.median(values)) if values else None


def _draw_order(generator, n):
    """(the generator's state before drawing, a permutation of n) for one epoch."""
    state = generator.bit_generator.state
    return state, generator.permutation(n)


def _settle(seconds):
    """Pause so that the thread pools of the peer that ran last stop spinning.

    OpenBLAS's idle workers (and OpenMP's) busy-wait for up to ~0.1 s after
    their last task; measured here, a native forward pass right after a
    NumPy one took 3 times as long as after a 0.2 s pause. Each timed run
    then starts with ``prime``, a few untimed batches of the same peer, so
    its own threads are awake.
    """
    if seconds:
        time.sleep(seconds)


def time_training(workload, X, y, peers, repeats, settle, factory=make_trainer, give_up_after=None,
                  reference="native"):
    """Median epoch time of every peer on `workload`.

    Parameters
    ----------
    workload : Workload
    X, y : arrays with exactly ``workload.n_samples`` rows, in the workload's dtype
    peers : list of peer names, 'floor' included where wanted
    repeats : int
    settle : float, seconds to pause before each timed run (see _settle)
    factory : callable(name, workload, init_params) -> trainer, default peers.make_trainer
    give_up_after : float, optional
        A peer whose timed run takes longer is not run again (its median is
        of the runs it had; a note says so).
    reference : str, the peer that ``ratio_to_native`` divides by

    Returns
    -------
    dict with seconds (median per peer), runs (every time), ratio_to_native,
    samples_per_second, shared_initial_weights, same_batches, notes, failed
    """
    init = _initial_params(workload)
    trainers, failed, stopped = {}, {}, set()
    for name in peers:
        try:
            trainers[name] = factory(name, workload, init)
        except Exception as error:  # a broken peer is reported, not fatal
            failed[name] = f"setup failed: {type(error).__name__}: {error}"
    order_generator = np.random.default_rng(10_000 + workload.seed)

    def run_once(name, X_part, y_part, order, state, timed):
        trainer = trainers[name]
        trainer.prepare(X_part, y_part, order, state)
        if timed:
            _settle(settle)
            trainer.prime()
        started = time.perf_counter()
        trainer.run()
        return time.perf_counter() - started

    times = {name: [] for name in trainers}
    n_warm = warmup_rows(workload)
    plan = [(None, n_warm)] + [(r, workload.n_samples) for r in range(repeats)]
    for repetition, n in plan:
        state, order = _draw_order(order_generator, n)
        for name in _rotated(list(trainers), repetition or 0):
            if name in failed or name in stopped:
                continue
            try:
                seconds = run_once(name, X[:n], y[:n], order, state, repetition is not None)
            except Exception as error:
                failed[name] = f"failed: {type(error).__name__}: {error}"
                continue
            if repetition is not None:
                times[name].append(seconds)
            if repetition not in (None, repeats - 1) and give_up_after is not None and seconds > give_up_after:
                stopped.add(name)
                trainers[name].notes.append(f"not repeated: one epoch took {seconds:.1f} s "
                                            f"(over {give_up_after:g} s)")

    seconds = {name: _median(t) for name, t in times.items() if name not in failed and t}
    native = seconds.get(reference)
    result = {
        "workload": workload.to_dict(),
        "description": workload.describe(),
        "seconds": seconds,
        "runs": {name: times[name] for name in seconds},
        "ratio_to_native": {name: s / native for name, s in seconds.items()} if native else {},
        "samples_per_second": {name: workload.n_samples / s for name, s in seconds.items()},
        "shared_initial_weights": {name: t.shares_initial_weights for name, t in trainers.items()
                                   if name != "floor"},
        "same_batches": {name: t.syncs_order for name, t in trainers.items() if name != "floor"},
        "notes": {name: t.notes for name, t in trainers.items() if t.notes},
        "failed": failed,
    }
    if "sklearn" in seconds:
        result["sklearn_validation_seconds"] = trainers["sklearn"].validation_seconds()
    return result


def time_prediction(workload, X, peers, repeats, settle):
    """W5: median time of a forward pass over all rows of X per peer, and the floor's.

    A forward pass takes tens of milliseconds, so it is repeated at least 5
    times; each timed call follows an untimed one of the same peer.
    """
    init = _initial_params(workload)
    predictors, notes, failed = {}, {}, {}
    for name in peers:
        try:
            predictors[name], peer_notes = make_predictor(name, workload, init, X)
        except Exception as error:
            failed[name] = f"setup failed: {type(error).__name__}: {error}"
            continue
        if peer_notes:
            notes[name] = peer_notes
    times = {name: [] for name in predictors}
    for repetition in [None] + list(range(max(repeats, 5))):
        for name in _rotated(list(predictors), repetition or 0):
            if repetition is not None:
                _settle(settle)
                predictors[name]()  # wakes this peer's threads, as prime does for training
            started = time.perf_counter()
            predictors[name]()
            if repetition is not None:
                times[name].append(time.perf_counter() - started)
    seconds = {name: _median(t) for name, t in times.items()}
    native = seconds.get("native")
    return {
        "description": (f"forward pass of the W1 network ({'-'.join(map(str, workload.sizes))}) over "
                        f"{X.shape[0]:,} rows, {workload.dtype}; floor: its 3 forward products"),
        "rows": int(X.shape[0]),
        "seconds": seconds,
        "runs": times,
        "ratio_to_native": {name: s / native for name, s in seconds.items()} if native else {},
        "notes": notes,
        "failed": failed,
    }


def _derived(timed):
    """W4 (efficiency of W1 and W2) and W6 (float64 against float32 ratios) from the timed workloads."""
    derived = {}
    efficiency = {}
    for key in ("W1", "W2"):
        seconds = timed.get(key, {}).get("seconds", {})
        if "native" in seconds and "floor" in seconds:
            efficiency[key] = {"native_seconds": seconds["native"], "floor_seconds": seconds["floor"],
                               "efficiency": seconds["floor"] / seconds["native"],
                               "native_over_floor": seconds["native"] / seconds["floor"]}
    if efficiency:
        derived["W4"] = {"description": "BLAS floor (the products of every step, preallocated) / native "
                                        "epoch time", **efficiency}
    comparison = {}
    for key in ("W1", "W2", "W3"):
        single, double = timed.get(key, {}).get("seconds", {}), timed.get(f"W6.{key}", {}).get("seconds", {})
        if "native" not in single or "native" not in double:
            continue
        for peer in ("torch", "numpy", "sklearn"):
            if peer in single and peer in double:
                f32, f64 = single["native"] / single[peer], double["native"] / double[peer]
                comparison[f"{key} native/{peer}"] = {"float32": f32, "float64": f64, "change": f64 / f32 - 1}
    if comparison:
        derived["W6"] = {"description": "native/peer time ratios, float64 against float32", **comparison}
    return derived


def arithmetic_limit(figures, rates, threads):
    """A timed workload's limit (``limits.limit``) against native's median epoch, at `rates`(dtype)."""
    workload = Workload.from_dict(figures["workload"])
    return limits.limit(limits.epoch_macs(workload.sizes, workload.n_samples),
                        limits.step_cores(workload.sizes, workload.batch_size, threads), rates(workload.dtype),
                        figures["seconds"].get("native"))


def memory(peers, X, y, workload, threads):
    """Peak RSS of each peer's W1 fit (each in a fresh process) and native's bound."""
    figures = rss.measure(peers, X, y, workload, threads)
    native = figures.get("native", {})
    result = {"workload": workload.to_dict(), "peers": figures}
    if "fit_increase" in native:
        bound = rss.native_bound(workload, X.shape[0], native["data_bytes"], native["param_bytes"])
        result["native_bound"] = bound
        result["native_fit_increase_over_bound"] = native["fit_increase"] / bound["total"]
    return result


def _contention_figure(w9, goal):
    """(figure, note) of a W9 goal: native default's time over native 1 thread, the best fixed native
    setting or PyTorch's best."""
    if w9 is None:
        return None, "not run"
    _, key, busy = goal.key.split(":")
    seconds = w9["loads"].get(busy, {}).get(key, {}).get("seconds", {})
    if "native_default" not in seconds:
        return None, "needs native"
    if goal.peer == "best_fixed":
        if "native_shared" not in seconds:
            return None, "needs --threads ≥ 2"
        return thread_settings.default_over_best_fixed(seconds), ""
    if goal.peer == "native_1":
        other = seconds.get("native_1")
    else:
        other = min([seconds[s] for s in ("torch_1", "torch_n") if s in seconds], default=None)
    if other is None:
        return None, f"needs {'native on 1 thread' if goal.peer == 'native_1' else 'PyTorch'}"
    return seconds["native_default"] / other, ""


def _threads_figure(w7, goal):
    """(figure, note) of a W7 goal: a workload's 2-thread speed-up, or its default over the best fixed
    setting."""
    if w7 is None:
        return None, "not run"
    figures = w7["workloads"].get(goal.key.split(":")[1])
    if figures is None:
        return None, "not run"
    figure = figures.get("speedup") if goal.kind == "speedup" else figures.get("default_over_best_fixed")
    return figure, "" if figure is not None else "needs --threads ≥ 2 and native"


def evaluate_goals(results):
    """The goals table: each goal with its measured figure and PASS, MISS or n/a."""
    rows = []
    workloads = results["workloads"]
    for goal in goals():
        figure, note = None, ""
        if goal.kind in ("ratio", "floor", "limit", "dtype", "latency", "call_ratio", "cost") \
                and goal.key not in workloads:
            note = "not run"
        elif goal.kind == "limit":
            figure = (workloads[goal.key].get("arithmetic_limit") or {}).get("native_over_limit")
            note = "" if figure is not None else "needs native"
        elif goal.kind == "dtype":
            single, double = workloads.get(goal.key[3:], {}).get("seconds", {}), workloads[goal.key]["seconds"]
            figure = double["native"] / single["native"] if "native" in single and "native" in double else None
            note = "" if figure is not None else f"needs native {goal.key[3:]} and {goal.key}"
        elif goal.kind == "latency":
            figure = workloads[goal.key]["microseconds"].get("native")
            note = "" if figure is not None else "needs native"
        elif goal.kind == "call_ratio":
            micros = workloads[goal.key]["microseconds"]
            figure = micros["native"] / micros[goal.peer] if "native" in micros and goal.peer in micros else None
            note = "" if figure is not None else f"needs native and {LABELS[goal.peer]}"
        elif goal.kind == "contention":
            figure, note = _contention_figure(workloads.get("W9"), goal)
        elif goal.kind == "cost":  # native time of a W1 variant over plain W1's, timed in the same rotation
            variant = workloads[goal.key]["seconds"]
            plain = variant.get("native_plain")
            figure = variant["native"] / plain if "native" in variant and plain else None
            note = "" if figure is not None else "needs native"
        elif goal.kind == "ratio":
            seconds = workloads.get(goal.key, {}).get("seconds", {})
            if "native" in seconds and goal.peer in seconds:
                figure = seconds["native"] / seconds[goal.peer]
            else:
                note = f"needs native and {LABELS[goal.peer]}"
        elif goal.kind == "floor":
            seconds = workloads.get(goal.key, {}).get("seconds", {})
            if "native" in seconds and "floor" in seconds:
                figure = seconds["native"] / seconds["floor"]
            else:
                note = "needs native"
        elif goal.kind in ("speedup", "threads"):
            figure, note = _threads_figure(workloads.get("W7"), goal)
        elif goal.kind == "memory":
            figure = results.get("memory", {}).get("native_fit_increase_over_bound")
            if figure is None:
                note = "needs native" if "memory" in results else "not measured"
        if figure is None:
            status = "n/a"
        elif goal.at_least:
            status = "PASS" if figure >= goal.bound else "MISS"
        else:
            status = "PASS" if figure <= goal.bound else "MISS"
        rows.append({"id": goal.goal_id, "workload": goal.key, "what": goal.text,
                     "goal": f"{'≥' if goal.at_least else '≤'} {goal.bound:.3g}", "bound": goal.bound,
                     "measured": figure, "status": status, "note": note})
    return rows


def run_suite(mode, repeats, threads, peers, data_path=None, force_synthetic=False, selected=None,
              measure_memory=True):
    """Every workload of `mode` on every peer in `peers`.

    Parameters
    ----------
    mode : workloads.Mode
    repeats : int
    threads : int
    peers : list of available peer names
    data_path : str, optional, Fashion-MNIST folder
    force_synthetic : bool
    selected : set of str, optional
        Workload ids to run ("W1" … "W9", "E" for E1–E4, "CL", "MPI"); default all.
    measure_memory : bool

    Returns
    -------
    dict: data, workloads {key: figures}, memory, goals
    """
    selected = set(selected or ["W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11", "E", "CL",
                                "MPI"])
    workloads = training_workloads(mode)
    started = time.perf_counter()
    dataset = bench_data.load(data_path, force_synthetic, n_train=mode.pixel_samples,
                              n_test=mode.predict_rows)
    _log(f"data: {dataset.description}")
    inputs = {("pixels", "float32"): (dataset.X, dataset.y)}
    inputs[("pooled64", "float32")] = (bench_data.pool_to_64(dataset.X[:mode.pooled_samples]),
                                       dataset.y[:mode.pooled_samples])

    def arrays_for(workload):
        key = (workload.inputs, workload.dtype)
        if key not in inputs:
            X, y = inputs[(workload.inputs, "float32")]
            inputs[key] = (X.astype(workload.dtype), y)
        X, y = inputs[key]
        return X[:workload.n_samples], y[:workload.n_samples]

    w3_inputs = "the first rows' central 24×24 pixels averaged over 3×3 blocks (8×8 = 64)"
    results = {"data": {"source": dataset.source, "description": dataset.description, "w3_inputs": w3_inputs},
               "workloads": {}}
    # The floor runs beside every SGD workload: W4 needs it beside W1 and W2;
    # elsewhere it costs little and shows the efficiency all the same.
    wanted = {"W1": {"W1", "W4"}, "W2": {"W2", "W4"}, "W3": {"W3"}, "W8": {"W8"},
              "W6.W1": {"W6"}, "W6.W2": {"W6"}, "W6.W3": {"W6"}, "W10": {"W10"}, "W11": {"W11"}}
    for key, workload in workloads.items():
        if not wanted[key] & selected:
            continue
        _log(f"{key}: {workload.describe()}")
        # scikit-learn's MLP has neither dropout nor LayerNorm: it sits out W10 and W11, where native
        # also trains plain W1 in the same rotation (their cost goals divide by it).
        workload_peers = [p for p in peers if not (workload.regularized and p == "sklearn")]
        if workload.regularized and "native" in peers:
            workload_peers.append("native_plain")
        with_floor = workload_peers + ["floor"] if workload.optimizer == "sgd" else workload_peers
        X, y = arrays_for(workload)
        results["workloads"][key] = time_training(workload, X, y, with_floor, repeats, mode.settle_seconds)

    results["workloads"].update(_derived(results["workloads"]))

    rates = limits.Rates(_log)
    for key in TRAINING_KEYS:
        if key in results["workloads"]:
            figures = results["workloads"][key]
            figures["arithmetic_limit"] = arithmetic_limit(figures, rates, threads)
    calls_per_run = 2000 if mode.name == "full" else 200
    if "W3" in selected:
        _log("W3.1: fit call of one batch")
        X, y = arrays_for(workloads["W3"])
        results["workloads"]["W3.1"] = calls.time_fit_call(workloads["W3"], X, y, _initial_params(workloads["W3"]),
                                                           peers, repeats, calls=calls_per_run)
    if "W5" in selected:
        w5 = Workload("W5", W1_SIZES, "relu", 32, mode.predict_rows)
        _log(f"W5: predict {mode.predict_rows:,} rows")
        results["workloads"]["W5"] = time_prediction(w5, dataset.X_test, peers + ["floor"], repeats,
                                                     mode.settle_seconds)
        _log("W5.1: forward of one sample")
        results["workloads"]["W5.1"] = calls.time_single_sample(dataset.X_test, _initial_params(w5), peers,
                                                                repeats, calls=calls_per_run)
    if "W7" in selected and "native" in peers:
        results["workloads"]["W7"] = thread_settings.time_threads(
            {key: workloads[key] for key in ("W1", "W2")}, arrays_for, threads, repeats, mode.settle_seconds,
            time_training, _log)
    if "W9" in selected and "native" in peers:
        under_load = {key: replace(workloads[key], n_samples=mode.contention_samples) for key in ("W1", "W2")}
        results["workloads"]["W9"] = contention.time_contention(under_load, arrays_for, peers, threads, repeats,
                                                                mode.settle_seconds, time_training, _log)
    if "E" in selected and "sklearn" in peers:
        _log("E1-E4: backprop.sklearn.MLPClassifier.fit against scikit-learn's")
        results["workloads"]["E"] = estimators.time_estimators(mode, dataset, repeats, mode.settle_seconds)
        estimators.add_arithmetic_limits(results["workloads"]["E"], rates, threads)
    if "CL" in selected and "native" in peers:
        _log("CL: W2 by hand-written loops against Network.fit and PyTorch's loop, 1 thread")
        X, y = arrays_for(workloads["W2"])
        results["workloads"]["CL"] = custom_loops.time_custom_loops(workloads["W2"], X, y, max(repeats, 3),
                                                                     lambda: _settle(mode.settle_seconds))
    if "MPI" in selected:
        _log("MPI: W2 data-parallel on 1 and 2 processes")
        X, y = arrays_for(workloads["W2"])
        results["workloads"]["MPI"] = data_parallel.measure(workloads["W2"], X, y, repeats)
    results["gemm_rates"] = rates.measured
    if measure_memory:
        _log("memory: W1 fit per peer, each in a fresh process")
        X, y = arrays_for(workloads["W1"])
        results["memory"] = memory(peers, X, y, workloads["W1"], threads)
    results["goals"] = (evaluate_goals(results) + estimators.goal_rows(results["workloads"].get("E"))
                        + custom_loops.goal_rows(results["workloads"].get("CL"))
                        + data_parallel.goal_rows(results["workloads"].get("MPI")))
    results["elapsed_seconds"] = time.perf_counter() - started
    return results
