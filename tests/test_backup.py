"""BackupAndRestore: a fit killed at any moment and started again ends exactly as one never interrupted.

- in process: a callback raises at a chosen epoch and batch (a crash), the fit
  is called again with the same backup folder, again and again, and the end
  is compared bit for bit with an uninterrupted fit;
- in a subprocess: a training script is SIGKILLed at random moments and
  started again until it finishes (a few trials here, more with ``-m slow``);
- refusals: a backup of another fit is refused before anything changes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import backprop as bp
from conftest import make_data
from test_bad_input import Guard

HERE = os.path.dirname(os.path.abspath(__file__))


class Crash(Exception):
    """Stands for the process dying."""


class CrashAt(bp.callbacks.Callback):
    """Raises Crash after batch `batch` of epoch `epoch` (batch None: at the epoch's end)."""

    def __init__(self, epoch, batch=None):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None
        self.batch_interval = None if batch is None else 1

    @property
    def _wants_batches(self):
        return self.batch is not None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise Crash()

    def on_epoch_end(self, epoch, logs=None):
        if self.batch is None and epoch == self.epoch:
            raise Crash()


class Counter(bp.callbacks.Callback):
    """A user's callback with state: epochs seen, kept across restarts through get_state/set_state."""

    def on_train_begin(self, logs=None):
        self.seen = 0

    def on_epoch_end(self, epoch, logs=None):
        self.seen += 1

    def get_state(self):
        return {"seen": self.seen}

    def set_state(self, state):
        self.seen = state["seen"]


def _callbacks():
    return [bp.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True),
            bp.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_delta=1e-3),
            bp.callbacks.ExponentialDecay(gamma=0.999, per="step"), Counter()]


def _fit(net, X, y, callbacks, backend):
    return net.fit(X, y, epochs=12, batch_size=16, optimizer=bp.Adam(lr=0.01), validation_split=0.2,
                   callbacks=callbacks, shuffle=True)


def _network(backend, dtype="float64"):
    return bp.Network([5, 7, 3], activation="tanh", backend=backend, dtype=dtype, seed=3)


@pytest.mark.parametrize("save_freq", ["epoch", 3])
def test_a_fit_that_crashes_again_and_again_ends_as_one_never_interrupted(backend, save_freq, tmp_path):
    X, y = make_data("cross_entropy", 150, 5, 3)
    reference = _network(backend)
    counter = Counter()
    expected = _fit(reference, X, y, _callbacks()[:-1] + [counter], backend)

    crashes = [(1, None), (2, 4), (2, 5), (4, None), (5, 0), (7, 2)]
    history, counters = None, []
    for epoch, batch in crashes + [(None, None)]:
        net = _network(backend)  # a new process: a fresh network and fresh callbacks
        callbacks = _callbacks() + [bp.callbacks.BackupAndRestore(tmp_path / "backup", save_freq=save_freq)]
        if epoch is not None:
            callbacks.append(CrashAt(epoch, batch))
        try:
            history = _fit(net, X, y, callbacks, backend)
        except Crash:
            assert (tmp_path / "backup" / "backup.npz").exists() or epoch < 2
            continue
        counters.append(callbacks[3].seen)
        break  # finished (early stopping may end it before a later crash point)
    assert history is not None and len(history.epoch) > 5
    np.testing.assert_array_equal(net.parameters(), reference.parameters())
    assert history.history == expected.history
    assert history.epoch == expected.epoch
    assert net.optimizer.step_count == reference.optimizer.step_count
    assert net.optimizer.lr == reference.optimizer.lr
    assert counters == [counter.seen]
    assert not (tmp_path / "backup" / "backup.npz").exists()  # delete_checkpoint=True


def test_dropout_without_a_seed_resumes_with_the_same_masks(tmp_path):
    """seed=None draws a fresh dropout key per process: the backup carries it, so the resumed fit goes on
    with the masks the interrupted one used."""
    X, y = make_data("cross_entropy", 90, 5, 3)
    first = bp.Network([5, 16, 3], dtype="float64", dropout=0.3)
    first.parameters()[...] = np.random.default_rng(1).normal(scale=0.3, size=first.n_params)
    start = first.parameters().copy()
    reference = bp.Network([5, 16, 3], dtype="float64", dropout=0.3)
    reference._set_dropout_seed(first.dropout_seed)
    reference.parameters()[...] = start
    expected = reference.fit(X, y, epochs=4, batch_size=16, shuffle=False, optimizer=bp.SGD(lr=0.1))
    with pytest.raises(Crash):
        first.fit(X, y, epochs=4, batch_size=16, shuffle=False, optimizer=bp.SGD(lr=0.1),
                  callbacks=[bp.callbacks.BackupAndRestore(tmp_path), CrashAt(1)])
    second = bp.Network([5, 16, 3], dtype="float64", dropout=0.3)  # another key
    assert second.dropout_seed != first.dropout_seed
    second.parameters()[...] = start
    history = second.fit(X, y, epochs=4, batch_size=16, shuffle=False, optimizer=bp.SGD(lr=0.1),
                         callbacks=[bp.callbacks.BackupAndRestore(tmp_path)])
    assert second.dropout_seed == first.dropout_seed
    np.testing.assert_array_equal(second.parameters(), reference.parameters())
    assert history.history == expected.history


def test_backup_kept_with_delete_checkpoint_false_and_a_finished_fit_resumes_to_its_end(tmp_path):
    X, y = make_data("cross_entropy", 60, 5, 3)
    net = _network("native")
    backup = bp.callbacks.BackupAndRestore(tmp_path, delete_checkpoint=False)
    first = net.fit(X, y, epochs=3, callbacks=[backup])
    assert (tmp_path / "backup.npz").exists()
    again = _network("native")
    second = again.fit(X, y, epochs=3, callbacks=[bp.callbacks.BackupAndRestore(tmp_path)])
    assert second.history == first.history  # nothing left to train: the History of the whole run
    np.testing.assert_array_equal(again.parameters(), net.parameters())
    assert not (tmp_path / "backup.npz").exists()


@pytest.mark.parametrize("change, match", [
    (dict(sizes=[5, 8, 3]), "its sizes is"),
    (dict(dtype="float32"), "its dtype is"),
    (dict(optimizer=bp.SGD(lr=0.1)), "its optimizer is 'Adam'"),
    (dict(rows=50), "its samples is"),
    (dict(batch_size=8), "its batch_size is"),
    (dict(callbacks=[bp.callbacks.EarlyStopping(monitor="loss")]), "its callbacks is"),
], ids=["sizes", "dtype", "optimizer", "rows", "batch", "callbacks"])
def test_a_backup_of_another_fit_is_refused_before_anything_changes(change, match, tmp_path):
    X, y = make_data("cross_entropy", 60, 5, 3)
    net = _network("native")
    net.fit(X, y, epochs=2, batch_size=16, optimizer=bp.Adam(lr=0.01),
            callbacks=[bp.callbacks.BackupAndRestore(tmp_path, delete_checkpoint=False)])
    before = (tmp_path / "backup.npz").read_bytes()
    other = bp.Network(change.get("sizes", [5, 7, 3]), activation="tanh", dtype=change.get("dtype", "float64"),
                       seed=3)
    other.fit(X, y, epochs=1, batch_size=16, optimizer=bp.Adam(lr=0.01))
    guard = Guard(other)
    rows = change.get("rows", 60)
    with pytest.raises(ValueError, match=match):
        other.fit(X[:rows], y[:rows], epochs=3, batch_size=change.get("batch_size", 16),
                  optimizer=change.get("optimizer", bp.Adam(lr=0.01)),
                  callbacks=change.get("callbacks", []) + [bp.callbacks.BackupAndRestore(tmp_path)])
    guard.check()
    assert (tmp_path / "backup.npz").read_bytes() == before


def test_what_is_not_a_backup_is_refused(tmp_path):
    X, y = make_data("cross_entropy", 20, 5, 3)
    (tmp_path / "backup.npz").write_bytes(b"not a zip")
    net = _network("native")
    guard_params = net.parameters().copy()
    with pytest.raises(ValueError, match="not a valid backprop backup"):
        net.fit(X, y, callbacks=[bp.callbacks.BackupAndRestore(tmp_path)])
    np.testing.assert_array_equal(net.parameters(), guard_params)
    os.unlink(tmp_path / "backup.npz")
    os.mkfifo(tmp_path / "backup.npz")
    with pytest.raises(ValueError, match="a FIFO"):
        net.fit(X, y, callbacks=[bp.callbacks.BackupAndRestore(tmp_path)])


@pytest.mark.parametrize("bad, exc", [(dict(save_freq=0), ValueError), (dict(save_freq="batch"), ValueError),
                                      (dict(save_freq=1.5), TypeError), (dict(delete_checkpoint="yes"), TypeError),
                                      (dict(backup_dir=3), TypeError)])
def test_bad_arguments(bad, exc, tmp_path):
    with pytest.raises(exc):
        bp.callbacks.BackupAndRestore(**{"backup_dir": tmp_path, **bad})


# -- killed for real ------------------------------------------------------------------
TRAIN = """
import json, sys
import numpy as np
import backprop as bp
folder, save_freq = sys.argv[1], sys.argv[2]
save_freq = save_freq if save_freq == "epoch" else int(save_freq)
bp.set_num_threads(1)
rng = np.random.default_rng(0)
X = rng.normal(size=(6000, 40)); y = rng.integers(0, 4, 6000)
net = bp.Network([40, 128, 4], dtype="float64", seed=1)
callbacks = [bp.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True),
             bp.callbacks.CosineDecay(total=600, warmup=50, per="step")]
if folder != "-":
    callbacks.append(bp.callbacks.BackupAndRestore(folder, save_freq=save_freq))
history = net.fit(X, y, epochs=8, batch_size=32, optimizer=bp.SGD(lr=0.05, momentum=0.9), validation_split=0.25,
                  callbacks=callbacks)
print(json.dumps({"params": net.parameters().tobytes().hex(), "history": history.history}))
"""


def _run_killed(script, folder, save_freq, rng, max_delay):
    """Start the script, SIGKILL it after a random delay, again and again until it finishes; its output."""
    kills = 0
    while True:
        process = subprocess.Popen([sys.executable, str(script), str(folder), str(save_freq)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = process.communicate(timeout=rng.uniform(0.1, max_delay))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.communicate()
            kills += 1
            assert kills < 200, "the fit never finished"
            continue
        assert process.returncode == 0, stderr[-3000:]
        return json.loads(stdout), kills


def _killed_trials(tmp_path, trials):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    done = subprocess.run([sys.executable, str(script), "-", "epoch"], capture_output=True, text=True, timeout=300,
                          check=True)
    expected = json.loads(done.stdout)
    started = time.perf_counter()
    # How long an uninterrupted run takes here, so that kills land anywhere in it.
    subprocess.run([sys.executable, str(script), "-", "epoch"], capture_output=True, timeout=300, check=True)
    duration = time.perf_counter() - started
    rng = np.random.default_rng(trials)
    total_kills = 0
    for trial in range(trials):
        save_freq = "epoch" if trial % 2 == 0 else int(rng.integers(1, 30))
        folder = tmp_path / f"backup{trial}"
        got, kills = _run_killed(script, folder, save_freq, rng, 1.5 * duration)
        total_kills += kills
        assert got == expected, f"trial {trial} (save_freq={save_freq}, {kills} kills) ended elsewhere"
        assert not (folder / "backup.npz").exists()
    assert total_kills > 0


def test_a_fit_killed_at_random_moments_resumes_exactly(tmp_path):
    _killed_trials(tmp_path, trials=2)


@pytest.mark.slow
def test_a_fit_killed_at_random_moments_resumes_exactly_many_times(tmp_path):
    _killed_trials(tmp_path, trials=12)
