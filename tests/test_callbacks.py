"""backprop.callbacks: the protocol, chunked epochs, early stopping, checkpoints, schedules, progress."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

import backprop as bp
from backprop import callbacks as cb
from conftest import assert_unchanged, make_data, snapshot


def net_for(backend, seed=0, loss="cross_entropy"):
    output = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "identity"}[loss]
    return bp.Network([5, 6, 3], activation="tanh", output=output, loss=loss, dtype="float64", backend=backend,
                      seed=seed)


class Recorder(cb.Callback):
    def __init__(self, batch_interval=None, batches=False):
        super().__init__()
        self.batch_interval = batch_interval
        self.events = []
        if batches:
            self.on_batch_end = lambda batch, logs=None: self.events.append(("batch", batch, logs))

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin", dict(self.params)))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.events.append(("train_end", logs))


class EveryBatch(cb.Callback):
    """Asks for batch events by overriding on_batch_end (chunks of ~0.1 s)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_batch_end(self, batch, logs=None):
        self.seen.append((batch, logs["samples"]))


def test_protocol_order_and_params(backend):
    X, y = make_data("cross_entropy", 40, 5, 3)
    net = net_for(backend)
    recorder = Recorder()
    net.fit(X, y, epochs=2, batch_size=16, callbacks=[recorder], validation_data=(X, y))
    kinds = [event[0] for event in recorder.events]
    assert kinds == ["train_begin", "epoch_begin", "epoch_end", "epoch_begin", "epoch_end", "train_end"]
    assert recorder.events[0][1] == {"epochs": 2, "steps": 3, "samples": 40, "batch_size": 16, "validation": True}
    assert recorder.events[2][2] == {k: v[0] for k, v in net.history.history.items()}
    assert recorder.network is net and recorder.model is net


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
@pytest.mark.parametrize("interval", [1, 3])
def test_batch_chunks_train_exactly_like_whole_epochs(backend, loss, interval):
    X, y = make_data(loss, 61, 5, 3, seed=2)
    a, b = net_for(backend, loss=loss), net_for(backend, loss=loss)
    recorder = Recorder(batch_interval=interval, batches=True)
    kwargs = dict(epochs=2, batch_size=4, optimizer=None, validation_data=(X, y), record_grad_norms=True)
    ha = a.fit(X, y, callbacks=[recorder], **{**kwargs, "optimizer": bp.SGD(lr=0.05, momentum=0.9)})
    hb = b.fit(X, y, **{**kwargs, "optimizer": bp.SGD(lr=0.05, momentum=0.9)})
    np.testing.assert_array_equal(a.parameters(), b.parameters())
    for key in hb.history:
        np.testing.assert_allclose(ha[key], hb[key], rtol=1e-12)
    np.testing.assert_allclose(ha.grad_norms, hb.grad_norms, rtol=1e-12)
    first_epoch = [event for event in recorder.events[:recorder.events.index(("epoch_begin", 1))]
                   if event[0] == "batch"]
    assert [event[1] for event in first_epoch] == list(range(interval - 1, 16, interval))  # 16 batches an epoch
    last = first_epoch[-1]
    assert last[2]["samples"] == min(4 * (last[1] + 1), 61)
    if interval == 1:
        assert last[2]["loss"] == pytest.approx(ha["loss"][0], rel=1e-12)


def test_time_based_chunks_cover_the_epoch(backend):
    X, y = make_data("cross_entropy", 300, 5, 3)
    every = EveryBatch()
    net = net_for(backend)
    net.fit(X, y, epochs=1, batch_size=10, callbacks=[every])
    assert every.seen[0] == (0, 10)  # the first chunk is one batch, to measure a step
    assert every.seen[-1] == (29, 300)
    batches = [b for b, _ in every.seen]
    assert batches == sorted(batches)


def test_stop_training_ends_after_the_epoch(backend):
    class StopAtSecond(cb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.network.stop_training = True

    X, y = make_data("cross_entropy", 20, 5, 3)
    history = net_for(backend).fit(X, y, epochs=10, callbacks=[StopAtSecond()])
    assert history.epoch == [1, 2]


def test_callbacks_must_be_callbacks(backend):
    X, y = make_data("cross_entropy", 20, 5, 3)
    net = net_for(backend)
    before = snapshot(net)
    with pytest.raises(TypeError, match=r"callbacks\[0\] must be a backprop.callbacks.Callback"):
        net.fit(X, y, callbacks=[print])
    with pytest.raises(TypeError, match="callbacks must be a list"):
        net.fit(X, y, callbacks=cb.EarlyStopping())
    assert_unchanged(net, before)


# -- early stopping -----------------------------------------------------------------------------
def overfitting_run(backend, callbacks, epochs=60):
    """Few noisy training samples, a separate validation set: val_loss turns up after a while."""
    rng = np.random.default_rng(3)
    X, X_val = rng.normal(size=(12, 5)), rng.normal(size=(200, 5))
    y, y_val = rng.integers(0, 3, 12), rng.integers(0, 3, 200)
    net = bp.Network([5, 32, 3], dtype="float64", backend=backend, seed=0)
    history = net.fit(X, y, epochs=epochs, batch_size=12, optimizer=bp.Adam(lr=0.05),
                      validation_data=(X_val, y_val), callbacks=callbacks)
    return net, history, (X_val, y_val)


def test_early_stopping_restores_the_best_weights(backend):
    stopper = cb.EarlyStopping(monitor="val_loss", patience=3)
    net, history, validation = overfitting_run(backend, [stopper])
    val = history["val_loss"]
    best = int(np.argmin(val))
    assert stopper.stopped_epoch == len(val) - 1 < 59 and stopper.best_epoch == best
    assert len(val) == best + 1 + 4  # patience 3: stops at the 4th epoch without improvement
    assert net.evaluate(*validation)["loss"] == pytest.approx(val[best], rel=1e-12)


def test_early_stopping_without_restoring_keeps_the_last_weights(backend):
    stopper = cb.EarlyStopping(patience=2, restore_best_weights=False)
    net, history, validation = overfitting_run(backend, [stopper])
    assert net.evaluate(*validation)["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-12)


def test_early_stopping_modes_and_min_delta(backend):
    stopper = cb.EarlyStopping(monitor="val_accuracy", patience=0, min_delta=0.5)
    _, history, _ = overfitting_run(backend, [stopper])
    assert stopper._monitor.mode == "max" and len(history) == 2  # nothing improves accuracy by 0.5
    assert cb.EarlyStopping(monitor="loss")._monitor.mode == "min"


def test_early_stopping_names_a_missing_figure(backend):
    X, y = make_data("cross_entropy", 20, 5, 3)
    with pytest.raises(ValueError, match="EarlyStopping monitors 'val_loss'.*validation_data"):
        net_for(backend).fit(X, y, epochs=3, callbacks=[cb.EarlyStopping()])


def test_early_stopping_skips_epochs_without_validation(backend):
    stopper = cb.EarlyStopping(patience=0)
    X, y = make_data("cross_entropy", 20, 5, 3)
    net_for(backend).fit(X, y, epochs=4, validation_data=(X, y), validation_freq=2, callbacks=[stopper])
    assert stopper.best_epoch in (1, 3)


# -- checkpoints -------------------------------------------------------------------------------------
def test_model_checkpoint_saves_the_best(backend, tmp_path):
    path = tmp_path / "best.npz"
    checkpoint = cb.ModelCheckpoint(path, save_best_only=True)
    net, history, validation = overfitting_run(backend, [checkpoint], epochs=25)
    best = bp.load(path)
    assert best.evaluate(*validation)["loss"] == pytest.approx(min(history["val_loss"]), rel=1e-12)
    assert checkpoint.best == min(history["val_loss"])


def test_model_checkpoint_formats_the_path_every_epoch(backend, tmp_path):
    X, y = make_data("cross_entropy", 20, 5, 3)
    net = net_for(backend)
    net.fit(X, y, epochs=3, callbacks=[cb.ModelCheckpoint(tmp_path / "m-{epoch:02d}-{loss:.3f}.npz")])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and names[0].startswith("m-01-")
    np.testing.assert_array_equal(bp.load(tmp_path / names[-1]).parameters(), net.parameters())


def test_model_checkpoint_refuses_a_non_path():
    with pytest.raises(TypeError, match="path must be a str"):
        cb.ModelCheckpoint(3)


# -- learning rates ------------------------------------------------------------------------------
def rates_during(backend, schedule, epochs=6):
    X, y = make_data("cross_entropy", 20, 5, 3)
    return net_for(backend).fit(X, y, epochs=epochs, batch_size=5, optimizer=bp.SGD(lr=0.1),
                                callbacks=[schedule])["lr"]


def test_learning_rate_scheduler_per_epoch(backend):
    rates = rates_during(backend, cb.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1)))
    np.testing.assert_allclose(rates, [0.1 / (e + 1) for e in range(6)])


def test_learning_rate_scheduler_per_step_matches_a_manual_loop(backend):
    X, y = make_data("cross_entropy", 20, 5, 3)
    schedule = cb.LearningRateScheduler(lambda step, lr: 0.2 * 0.9 ** step, per="step")
    a = net_for(backend)
    a.fit(X, y, epochs=2, batch_size=5, shuffle=False, optimizer=bp.SGD(lr=1.0), callbacks=[schedule])
    b = net_for(backend)
    optimizer = bp.SGD(lr=1.0)
    for step in range(8):
        optimizer.lr = 0.2 * 0.9 ** step
        rows = slice(5 * (step % 4), 5 * (step % 4) + 5)
        b.train_on_batch(X[rows], y[rows], optimizer)
    np.testing.assert_allclose(a.parameters(), b.parameters(), rtol=1e-12)


def test_decay_schedules(backend):
    np.testing.assert_allclose(rates_during(backend, cb.StepDecay(step_size=2, gamma=0.5)),
                               [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    np.testing.assert_allclose(rates_during(backend, cb.ExponentialDecay(gamma=0.5)),
                               [0.1 * 0.5 ** e for e in range(6)])
    cosine = rates_during(backend, cb.CosineDecay(total=5, warmup=2, min_lr=0.01))
    expected = [0.05, 0.1] + [0.01 + 0.09 * 0.5 * (1 + math.cos(math.pi * t / 3)) for t in range(3)] + [0.01]
    np.testing.assert_allclose(cosine, expected)


def test_bad_schedule_values_are_named(backend):
    with pytest.raises(ValueError, match="schedule returned -1"):
        rates_during(backend, cb.LearningRateScheduler(lambda epoch, lr: -1))
    with pytest.raises(TypeError, match="schedule must be callable"):
        cb.LearningRateScheduler(0.1)
    with pytest.raises(ValueError, match="warmup"):
        cb.CosineDecay(total=3, warmup=3)


def test_reduce_lr_on_plateau(backend):
    plateau = cb.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=1e-3)
    _, history, _ = overfitting_run(backend, [plateau], epochs=30)
    rates = history["lr"]
    assert rates[0] == 0.05 and min(rates) < 0.05
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))
    assert min(rates) >= 1e-3


# -- progress -------------------------------------------------------------------------------------
def test_progress_bar_callback_draws_one_line_per_epoch(backend):
    X, y = make_data("cross_entropy", 100, 5, 3)
    out = io.StringIO()
    net_for(backend).fit(X, y, epochs=2, batch_size=10, validation_data=(X, y),
                         callbacks=[cb.ProgressBar(kind="plain", file=out)])
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2: 100%") and "100/100" in lines[0]
    assert "val_loss=" in lines[1] and "accuracy=" in lines[1]


def test_progress_bar_closes_on_divergence():
    out = io.StringIO()
    net = bp.Network([2, 1], output="identity", backend="numpy", seed=0)
    with pytest.raises(FloatingPointError, match=r"at epoch 1, batch \d+ of 25;"):
        net.fit(np.ones((100, 2)) * 1e3, np.ones((100, 1)), batch_size=4, optimizer=bp.SGD(lr=1e30),
                callbacks=[cb.ProgressBar(kind="plain", file=out)])
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1
