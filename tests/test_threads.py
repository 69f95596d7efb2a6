"""The core's thread team: a fixed split into parts, whoever runs them.

Each phase of a step is split into as many parts as the team size; the
parts are run by the calling thread and the core's worker threads, or by the
calling thread alone when the machine is busy (team.hpp). Results must not
depend on which thread ran which part, and a team may be wider than a
layer or than the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from backprop import _core

# A team of `cap` parts (OMP_NUM_THREADS, above the number of CPUs) on
# networks whose 3-, 5- and 8-unit layers are narrower than the team, so
# some parts of those layers are empty; the 16 → 8 layer's products are
# small enough for the small-matrix kernel (small_gemm.hpp), the others run
# on Eigen's. Every way of running the parts (leader alone, workers always
# woken, the automatic choice) must give the same bits, and the NumPy
# backend the same values.
WIDE_TEAM = """
import json, sys, numpy as np, backprop as bp
from backprop import _core
sizes = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
X, y = rng.normal(size=(2048, sizes[0])), rng.integers(0, sizes[-1], 2048)
runs = {}
for mode in (0, 1, -1):
    _core._set_sharing(mode)
    net = bp.Network(sizes, activation="tanh", dtype="float64", seed=0)
    net.fit(X, y, epochs=2, batch_size=1024, optimizer=bp.SGD(lr=0.05, momentum=0.9))
    loss, grads = net.gradients(X, y)
    runs[mode] = [net.forward(X), loss] + [g for pair in grads for g in pair] + [l.W for l in net.layers]
ref = bp.Network(sizes, activation="tanh", dtype="float64", backend="numpy", seed=0)
ref.fit(X, y, epochs=2, batch_size=1024, optimizer=bp.SGD(lr=0.05, momentum=0.9))
print(json.dumps({
    "threads": bp.get_num_threads(),
    "identical": all(np.array_equal(a, b) for mode in (1, -1) for a, b in zip(runs[0], runs[mode])),
    "gap": max(float(np.max(np.abs(a.W - b.W) / (np.abs(b.W) + 1e-3))) for a, b in zip(net.layers, ref.layers)),
    "forward_gap": float(np.max(np.abs(net.forward(X) - ref.forward(X)))),  # inference splits by samples
}))
"""


@pytest.mark.parametrize("sizes", [[1000, 3, 1000, 5], [1000, 16, 8, 1000, 5]], ids=["narrow", "small-product"])
def test_team_wider_than_layers_and_cpus(sizes):
    threads = 2 * (os.cpu_count() or 1) + 1  # above the core count wherever this runs
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", WIDE_TEAM, json.dumps(sizes)], env=env, capture_output=True,
                         text=True, check=True, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])  # the last line: an editable build may log
    assert result["threads"] == threads
    assert result["identical"]
    assert result["gap"] < 1e-9
    assert result["forward_gap"] < 1e-9


@pytest.fixture
def restore_threads():
    before = bp.get_num_threads()
    yield
    bp.set_num_threads(before)
    _core._set_sharing(-1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_bits_whoever_runs_the_parts(dtype, restore_threads):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(1000, 300)), rng.integers(0, 10, 1000)
    bp.set_num_threads(2)
    results = []
    for mode in (0, 1):
        _core._set_sharing(mode)
        net = bp.Network([300, 256, 256, 10], dtype=dtype, seed=0)  # big enough for a team of 2
        net.fit(X, y, epochs=1, batch_size=64, optimizer=bp.Adam(lr=1e-3))
        results.append([layer.W.copy() for layer in net.layers] + [net.forward(X)])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
