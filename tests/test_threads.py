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


@pytest.mark.parametrize("make_optimizer", [
    lambda lr: bp.SGD(lr=lr),
    lambda lr: bp.SGD(lr=lr, momentum=0.9, nesterov=True),
    lambda lr: bp.Adam(lr=lr),
    lambda lr: bp.SGD(lr=lr, clip_value=1.0),  # clipping by value keeps the step inside the backward pass
], ids=["sgd", "nesterov", "adam", "clip-value"])
@pytest.mark.parametrize("mode", [0, 1], ids=["alone", "shared"])
def test_a_nonfinite_update_inside_the_backward_pass_is_undone_exactly(make_optimizer, mode, restore_threads):
    # Each layer's rows are updated in a later phase of the backward pass than
    # the one that computed their gradient; an update that comes out infinite
    # anywhere (lr = 1e39 is inf in float32) must leave every parameter and
    # the optimizer's state exactly as the last finite step left them.
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(256, 300)).astype(np.float32), rng.integers(0, 10, 256)
    bp.set_num_threads(2)
    _core._set_sharing(mode)
    net = bp.Network([300, 256, 256, 10], dtype="float32", seed=0)  # a team of 2 at batch 64
    optimizer = make_optimizer(1e-3)
    net.fit(X, y, epochs=1, batch_size=64, optimizer=optimizer)
    params = net.parameters().copy()
    state = {name: np.array(value, copy=True) for name, value in optimizer.state.items()}
    steps = optimizer.step_count
    optimizer.lr = 1e39
    with pytest.raises(FloatingPointError, match="update"):
        net.fit(X, y, epochs=1, batch_size=64, optimizer=optimizer)
    np.testing.assert_array_equal(net.parameters(), params)
    assert optimizer.step_count == steps
    for name, value in state.items():
        np.testing.assert_array_equal(optimizer.state[name], value)
