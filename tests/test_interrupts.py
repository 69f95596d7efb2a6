"""Ctrl-C is never lost: many interrupts of fits of many lengths, on one and two threads, with a
busy process beside them.

Each trial runs in a subprocess that interrupts its own fit (``_thread.interrupt_main`` from a timer,
as a signal handler would) after a random delay and reports how long the KeyboardInterrupt took to
arrive; the subprocess has a deadline, so a lost interrupt fails the test instead of hanging it.
Epochs range from well under the core's 20-ms polling interval (where an interrupt can only be seen
between two core calls) to well over it (where the core's poll sees it); custom loops of
``train_on_batch`` and ``gradients`` too.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

TRIALS = """
import _thread, json, signal, sys, threading, time
import numpy as np
import backprop as bp
# A process started in the background by a shell without job control inherits SIGINT ignored, and
# then _thread.interrupt_main() does nothing: install Python's handler, as an interactive session has.
signal.signal(signal.SIGINT, signal.default_int_handler)
threads, trials, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
bp.set_num_threads(threads)
rng = np.random.default_rng(seed)
# (sizes, rows): epochs of about 0.2 ms, 3 ms, 20 ms and 100 ms on one core here.
SHAPES = [([8, 8, 3], 64), ([32, 64, 10], 600), ([64, 256, 256, 10], 1200), ([256, 512, 512, 10], 2500)]
KINDS = ["fit", "fit", "fit", "train_on_batch", "gradients"]
late = []
for trial in range(trials):
    sizes, rows = SHAPES[trial % len(SHAPES)]
    kind = KINDS[trial % len(KINDS)]
    X = rng.normal(size=(rows, sizes[0])); y = rng.integers(0, sizes[-1], rows)
    net = bp.Network(sizes, dtype="float64", seed=trial)
    delay = float(rng.uniform(0.01, 0.3))
    timer = threading.Timer(delay, _thread.interrupt_main)
    started = time.perf_counter()
    timer.start()
    try:
        if kind == "fit":
            net.fit(X, y, epochs=10**5, batch_size=32)  # minutes: bounded by the deadline
        else:
            for _ in range(10**6):
                if kind == "train_on_batch":
                    net.train_on_batch(X[:32], y[:32])
                else:
                    net.apply_gradients(net.gradients(X[:32], y[:32], flat=True)[1])
        raise SystemExit(f"trial {trial}: the loop ended without KeyboardInterrupt")
    except KeyboardInterrupt:
        waited = time.perf_counter() - started - delay
    timer.join()
    late.append(waited)
print(json.dumps({"late": late}))
"""


def _run(tmp_path, threads, trials, seed, busy):
    script = tmp_path / "trials.py"
    script.write_text(TRIALS)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        done = subprocess.run([sys.executable, str(script), str(threads), str(trials), str(seed)],
                              capture_output=True, text=True, timeout=60 + 5 * trials)
    except subprocess.TimeoutExpired:
        pytest.fail(f"an interrupt was lost: {trials} interrupted fits on {threads} thread(s) did not all stop "
                    "before the deadline")
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["late"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_every_interrupt_stops_the_fit(tmp_path, threads, busy):
    late = _run(tmp_path, threads, trials=10, seed=threads + 2 * busy, busy=busy)
    assert len(late) == 10
    # Seen within the polling interval and one step, plus what a busy machine adds; never lost.
    assert max(late) < 5.0, late


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_every_interrupt_stops_the_fit_many_times(tmp_path, threads):
    late = _run(tmp_path, threads, trials=100, seed=10 + threads, busy=True)
    assert len(late) == 100 and max(late) < 5.0, late
