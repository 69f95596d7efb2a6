"""The native core across process boundaries: interpreter exit with daemon
threads still inside the core, and forkserver children."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("backprop._native_backend")

DAEMON_AT_EXIT = """
import sys, threading, time
import numpy as np
import backprop as bp

def fitting():
    net = bp.Network([64, 256, 256, 10], seed=0)
    X, y = np.random.default_rng(0).random((2000, 64)), np.arange(2000) % 10
    while True:
        net.fit(X, y, epochs=1000, batch_size=32)

def forwarding():
    net = bp.Network([64, 256, 256, 10], seed=0)
    X = np.random.default_rng(0).random((2000, 64))
    while True:
        net.forward(X)

for _ in range(2):
    threading.Thread(target=fitting if sys.argv[1] == "fit" else forwarding, daemon=True).start()
time.sleep(0.4)
print("main thread done", flush=True)
"""


@pytest.mark.parametrize("entry", ["fit", "forward"])
def test_interpreter_exits_cleanly_with_daemon_threads_in_the_core(entry, tmp_path):
    """Python ends daemon threads that retake the GIL during finalization with
    a forced unwind; it must not end the process with SIGABRT or SIGSEGV."""
    script = tmp_path / "daemon_at_exit.py"
    script.write_text(DAEMON_AT_EXIT)
    for _ in range(3):  # the crash did not show on every run
        out = subprocess.run([sys.executable, str(script), entry], capture_output=True, text=True, timeout=120)
        assert "terminate called" not in out.stderr
        assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
        assert "main thread done" in out.stdout


FORKSERVER_CHECK = """
import json, multiprocessing as mp
import numpy as np
import backprop as bp

def train(queue):
    net = bp.Network([64, 256, 256, 10], seed=1)  # large enough for a team of threads
    X, y = np.random.default_rng(1).random((512, 64)), np.arange(512) % 10
    net.fit(X, y, epochs=1, batch_size=64)
    queue.put((bp.get_num_threads(), bool(np.isfinite(net.layers[0].W).all())))

if __name__ == "__main__":
    threads = bp.get_num_threads()
    train(mp.Queue())  # the parent's OpenMP pool exists before the forkserver starts
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["backprop._native_backend"])
    queue = context.Queue()
    children = []
    for _ in range(2):
        child = context.Process(target=train, args=(queue,))
        child.start()
        children.append(queue.get(timeout=120))
        child.join()
    print(json.dumps({"parent": threads, "children": children}))
"""


def test_forkserver_children_keep_all_threads_with_a_preloaded_core(tmp_path):
    """The forkserver imports the core but never trains: its children inherit
    no OpenMP pool, so they need not fall back to one thread as forked children do."""
    script = tmp_path / "forkserver_check.py"
    script.write_text(FORKSERVER_CHECK)
    env = dict(os.environ, OMP_NUM_THREADS="2")  # a team of two even on a single CPU
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                         check=True, cwd=tmp_path, env=env)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["parent"] == 2 and report["children"] == [[2, True]] * 2
