"""The program every MPI process runs for test_distributed.py.

    mpiexec -n P python distributed_worker.py SCENARIO OUT_DIR

Each rank writes what it computed to OUT_DIR (``<case>-rank<r>.npz`` arrays
and ``rank<r>.json`` outcomes); rank 0 also trains the single-process
reference (``Network.fit`` on the whole data set, no MPI). The assertions
live in test_distributed.py.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from mpi4py import MPI

import backprop as bp

COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()

NETWORKS = {  # loss: (sizes, hidden activation, output)
    "cross_entropy": ([6, 8, 3], "relu", "softmax"),
    "binary_cross_entropy": ([6, 8, 7, 3], "tanh", "sigmoid"),
    "mse": ([6, 5, 2], "leaky_relu", "identity"),
}

OPTIMIZERS = {
    "sgd": lambda: bp.SGD(lr=0.1),
    "momentum": lambda: bp.SGD(lr=0.05, momentum=0.9),
    "nesterov": lambda: bp.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: bp.Adam(lr=0.01),
}


def make_network(loss="cross_entropy", dtype="float64", backend="native", seed=7):
    sizes, activation, output = NETWORKS[loss]
    return bp.Network(sizes, activation=activation, output=output, loss=loss, dtype=dtype, backend=backend,
                      seed=seed)


def make_data(loss, n, seed=0):
    rng = np.random.default_rng(seed)
    sizes = NETWORKS[loss][0]
    X = rng.normal(size=(n, sizes[0]))
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], size=n)
    elif loss == "binary_cross_entropy":
        y = (rng.random((n, sizes[-1])) > 0.5).astype(float)
    else:
        y = rng.normal(size=(n, sizes[-1]))
    return X, y, rng.random(n) * 2


def shard_bounds(n):
    """Uneven contiguous shards: rank r gets a share proportional to r + 1."""
    cumulative = np.cumsum(np.arange(1, SIZE + 1))
    return [0] + [int(round(n * c / cumulative[-1])) for c in cumulative]


def part(array, bounds):
    return None if array is None else array[bounds[RANK]:bounds[RANK + 1]]


# -- equivalence ----------------------------------------------------------------
def equivalence_cases():
    """name -> settings; each trains the same way distributed and (on rank 0) in one process."""
    cases = {}
    for optimizer in OPTIMIZERS:
        for sharded in (False, True):
            cases[f"{optimizer}-{'sharded' if sharded else 'full'}"] = dict(optimizer=optimizer, sharded=sharded)
    cases.update({
        "weighted-validation-full": dict(optimizer="momentum", weighted=True, validation=True,
                                         record_grad_norms=True),
        "weighted-validation-sharded": dict(optimizer="adam", sharded=True, weighted=True, validation=True,
                                            weightless_shard=True),
        "numpy-backend": dict(optimizer="momentum", backend="numpy", validation=True),
        "float32": dict(optimizer="adam", dtype="float32"),
        "bce-sharded": dict(optimizer="sgd", loss="binary_cross_entropy", sharded=True, validation=True),
        "mse-unshuffled": dict(optimizer="nesterov", loss="mse", shuffle=False),
        "batch-smaller-than-ranks": dict(optimizer="sgd", batch_size=2, n=25, shuffle="callable"),
        "full-batch-sharded": dict(optimizer="adam", batch_size=None, sharded=True),
    })
    return cases


def run_equivalence_case(name, out, optimizer, sharded=False, weighted=False, validation=False, backend="native",
                         dtype="float64", loss="cross_entropy", batch_size=16, n=101, epochs=4, shuffle=True,
                         record_grad_norms=False, weightless_shard=False):
    X, y, weights = make_data(loss, n)
    if not weighted:
        weights = None
    elif weightless_shard:
        bounds = shard_bounds(n)
        weights[bounds[SIZE - 1]:bounds[SIZE]] = 0  # the last rank's shard carries no weight
    X_val, y_val, w_val = make_data(loss, 37, seed=1)
    if shuffle == "callable":
        def shuffle(epoch):
            return np.random.default_rng(100 + epoch).permutation(n)
    options = dict(epochs=epochs, batch_size=batch_size, shuffle=shuffle, record_grad_norms=record_grad_norms)
    net = make_network(loss, dtype, backend)
    initial = net.parameters().copy()
    if sharded:
        bounds, val_bounds = shard_bounds(n), shard_bounds(37)
        data = (part(X, bounds), part(y, bounds), part(weights, bounds))
        val = (part(X_val, val_bounds), part(y_val, val_bounds), part(w_val if weighted else None, val_bounds))
    else:
        data, val = (X, y, weights), (X_val, y_val, w_val if weighted else None)
    history = bp.distributed.fit(net, data[0], data[1], sample_weight=data[2], validation_data=val if validation
                                 else None, sharded=sharded, optimizer=OPTIMIZERS[optimizer](), **options)
    arrays = {"params": net.parameters(), "initial": initial}
    record = {"history": history.history, "steps": history.steps}
    if record_grad_norms:
        arrays["grad_norms"] = history.grad_norms
    if RANK == 0:
        reference = make_network(loss, dtype, backend)
        expected = reference.fit(X, y, sample_weight=weights, optimizer=OPTIMIZERS[optimizer](),
                                 validation_data=(X_val, y_val, w_val if weighted else None) if validation else None,
                                 **options)
        arrays["reference_params"] = reference.parameters()
        record["reference_history"] = expected.history
        if record_grad_norms:
            arrays["reference_grad_norms"] = expected.grad_norms
    np.savez(os.path.join(out, f"{name}-rank{RANK}.npz"), **arrays)
    return record


def equivalence(out):
    return {name: run_equivalence_case(name, out, **settings) for name, settings in equivalence_cases().items()}


# -- failures -------------------------------------------------------------------
def outcome(action, net=None):
    """Run action(); what it raised (type and message), how long it took, and the parameters' digest after."""
    before = None if net is None else net.parameters().copy()
    started = time.perf_counter()
    try:
        action()
        error = None
    except Exception as caught:
        error = caught
    result = {"error": None if error is None else type(error).__name__,
              "message": "" if error is None else str(error),
              "seconds": time.perf_counter() - started}
    if net is not None:
        result["unchanged"] = bool(np.array_equal(net.parameters(), before))
        result["params"] = net.parameters().tobytes().hex()
    return result


def failures(out):
    results = {}
    X, y, _ = make_data("cross_entropy", 60)

    # Bad input on rank 1 only: every rank stops before the first step.
    net = make_network()
    bad_y = y.copy()
    if RANK == 1:
        bad_y[5] = 3  # a network with 3 outputs has classes 0..2
    results["bad-input"] = outcome(lambda: bp.distributed.fit(net, X, bad_y, epochs=2), net)

    # Not a communicator: refused on every rank before any collective.
    net = make_network()
    results["bad-comm"] = outcome(lambda: bp.distributed.fit(net, X, y, comm="world"), net)

    # Arguments that differ between ranks.
    net = make_network()
    results["mismatched-epochs"] = outcome(
        lambda: bp.distributed.fit(net, X, y, epochs=3 if RANK == SIZE - 1 else 2), net)

    # sharded=False, but rank 1 passes other data.
    net = make_network()
    results["different-data"] = outcome(lambda: bp.distributed.fit(net, X + (RANK == 1), y), net)

    # Replicas built with different seeds: refused; broadcast() makes them one.
    net = make_network(seed=7 + (RANK == SIZE - 1))
    results["replicas-differ"] = outcome(lambda: bp.distributed.fit(net, X, y), net)
    results["after-broadcast"] = outcome(lambda: (bp.distributed.broadcast(net),
                                                  bp.distributed.fit(net, X, y, epochs=2)), net)

    # One row whose loss overflows (½‖out‖² > 1e308): it lies in one rank's share of
    # batch 3; every rank stops at that batch, as one process does.
    X_mse, y_mse, _ = make_data("mse", 60)
    X_mse[37] = 1e200
    net = make_network("mse")
    results["nonfinite-loss"] = outcome(lambda: bp.distributed.fit(
        net, X_mse, y_mse, epochs=2, batch_size=16, shuffle=False, optimizer=bp.SGD(lr=0.01)), net)
    if RANK == 0:
        reference = make_network("mse")
        results["nonfinite-loss-reference"] = outcome(lambda: reference.fit(
            X_mse, y_mse, epochs=2, batch_size=16, shuffle=False, optimizer=bp.SGD(lr=0.01)), reference)

    # shuffle(epoch) raises on the last rank in the second epoch.
    def shuffle(epoch):
        if epoch == 1 and RANK == SIZE - 1:
            raise RuntimeError("no order for epoch 1 here")
        return np.arange(60)

    net = make_network()
    results["shuffle-raises"] = outcome(lambda: bp.distributed.fit(net, X, y, epochs=3, shuffle=shuffle), net)

    # shuffle(epoch) gives rank 1 another order: refused before the epoch's first step.
    net = make_network()
    results["different-orders"] = outcome(lambda: bp.distributed.fit(
        net, X, y, shuffle=lambda epoch: np.arange(60)[::-1] if RANK == 1 else np.arange(60)), net)

    # The gradient computation raises on rank 1 at its third step.
    net = make_network()
    if RANK == 1:
        calls = {"n": 0}
        original = net._backend.gradient_sum

        def failing_gradient_sum(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise MemoryError("simulated failure in the gradient of rank 1")
            return original(*args, **kwargs)
        net._backend.gradient_sum = failing_gradient_sum
    results["gradient-raises"] = outcome(lambda: bp.distributed.fit(net, X, y, epochs=2, batch_size=8), net)

    # Saving: only rank 0 writes; a failed save raises everywhere.
    net = make_network()
    bp.distributed.fit(net, X, y, epochs=1)
    results["save"] = outcome(lambda: bp.distributed.save(net, os.path.join(out, f"model-from-rank{RANK}.npz")))
    results["save"]["params"] = net.parameters().tobytes().hex()
    results["save-fails"] = outcome(lambda: bp.distributed.save(net, os.path.join(out, "missing", "model.npz")))
    return results


# -- callbacks, class weights, validation split ---------------------------------
class _Calls(bp.callbacks.Callback):
    """Counts its calls; a writer (rank 0 only) when asked to be."""

    def __init__(self, writer=False):
        super().__init__()
        self.writer = writer
        self.epochs_ended = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_ended += 1


class _StopOnRank(bp.callbacks.Callback):
    """Sets stop_training after `epoch` on one rank only."""

    def __init__(self, rank, epoch):
        super().__init__()
        self.rank, self.epoch = rank, epoch

    def on_epoch_end(self, epoch, logs=None):
        if RANK == self.rank and epoch == self.epoch:
            self.network.stop_training = True


def callback_cases():
    """name -> (make the callbacks, fit options); each also trains in one process on rank 0."""
    schedule = bp.callbacks.LearningRateScheduler(lambda step, lr: 0.1 / (1 + 0.05 * step), per="step")
    return {
        "early-stopping": (lambda: [bp.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1)],
                           dict(epochs=10)),
        "plateau-validation-split-class-weight": (
            lambda: [bp.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=0, min_delta=10.0)],
            dict(epochs=4, validation_split=0.25, class_weight="balanced")),
        "class-weight-sharded": (lambda: [], dict(epochs=3, class_weight="balanced", sharded=True)),
        "step-schedule-batch-events": (lambda: [schedule], dict(epochs=3)),
    }


def callbacks_scenario(out):
    results = {}
    X, y, _ = make_data("cross_entropy", 90)
    y[:50] = 0  # unbalanced classes, so 'balanced' weights matter
    for name, (make_callbacks, options) in callback_cases().items():
        options = dict(options, batch_size=8, optimizer=bp.SGD(lr=0.1, momentum=0.5))
        sharded = options.pop("sharded", False)
        net = make_network()
        bounds = shard_bounds(90)
        data = (part(X, bounds), part(y, bounds)) if sharded else (X, y)
        history = bp.distributed.fit(net, *data, sharded=sharded, callbacks=make_callbacks(), **options)
        results[name] = {"history": history.history, "params": net.parameters().tobytes().hex()}
        if RANK == 0:
            reference = make_network()
            options["optimizer"] = bp.SGD(lr=0.1, momentum=0.5)
            expected = reference.fit(X, y, callbacks=make_callbacks(), **options)
            results[name]["reference_history"] = expected.history
            results[name]["reference_params"] = reference.parameters().tobytes().hex()

    # Writers run on rank 0 only; the other callbacks everywhere. ModelCheckpoint saves once per epoch.
    net = make_network()
    saves = []
    original_save = net.save
    net.save = lambda path: saves.append(path) or original_save(path)
    everywhere, writer = _Calls(), _Calls(writer=True)
    checkpoint = bp.callbacks.ModelCheckpoint(os.path.join(out, "checkpoint-{epoch}.npz"))
    bp.distributed.fit(net, X, y, epochs=3, callbacks=[everywhere, writer, checkpoint])
    results["writers"] = {"everywhere": everywhere.epochs_ended, "writer": writer.epochs_ended, "saves": len(saves)}

    # A callback that cannot serve the fit refuses it on every rank before anything changes.
    net = make_network()
    results["refused"] = outcome(lambda: bp.distributed.fit(net, X, y, epochs=2,
                                                            callbacks=[bp.callbacks.EarlyStopping()]), net)
    # BackupAndRestore: every rank crashes (a callback raises) after epoch 2; started again, the fit
    # resumes from rank 0's backup on every rank and ends where an uninterrupted fit ends.
    from backprop import _backup
    writes = []
    original_write = _backup.write
    _backup.write = lambda folder, state: writes.append(1) or original_write(folder, state)
    folder = os.path.join(out, "backup")

    class Crash(bp.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("simulated crash")

    options = dict(epochs=5, batch_size=8, optimizer=bp.SGD(lr=0.1, momentum=0.5), validation_split=0.2)
    net = make_network()
    crashed = outcome(lambda: bp.distributed.fit(net, X, y, callbacks=[
        bp.callbacks.EarlyStopping(monitor="val_loss", patience=10),
        bp.callbacks.BackupAndRestore(folder, save_freq=3), Crash()], **options))
    net = make_network()
    options["optimizer"] = bp.SGD(lr=0.1, momentum=0.5)
    history = bp.distributed.fit(net, X, y, callbacks=[bp.callbacks.EarlyStopping(monitor="val_loss", patience=10),
                                                       bp.callbacks.BackupAndRestore(folder, save_freq=3)], **options)
    _backup.write = original_write
    results["backup"] = {"crashed": crashed["error"], "writes": len(writes), "history": history.history,
                         "params": net.parameters().tobytes().hex(), "left": os.path.exists(folder + "/backup.npz")}
    if RANK == 0:
        reference = make_network()
        options["optimizer"] = bp.SGD(lr=0.1, momentum=0.5)
        reference.fit(X, y, callbacks=[bp.callbacks.EarlyStopping(monitor="val_loss", patience=10)], **options)
        results["backup"]["reference_params"] = reference.parameters().tobytes().hex()

    # stop_training set on one rank stops every rank after that epoch.
    net = make_network()
    history = bp.distributed.fit(net, X, y, epochs=5, callbacks=[_StopOnRank(SIZE - 1, 1)])
    results["stop-on-one-rank"] = {"epochs": len(history.epoch), "params": net.parameters().tobytes().hex()}
    return results


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    bp.set_num_threads(1)
    results = {"equivalence": equivalence, "failures": failures, "callbacks": callbacks_scenario}[scenario](out)
    with open(os.path.join(out, f"rank{RANK}.json"), "w") as file:
        json.dump({"rank": RANK, "size": SIZE, "results": results}, file)


if __name__ == "__main__":
    main()
