"""The compiled core: instruction-set levels, threads, reproducibility."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from backprop import _core
from conftest import make_data

LEVEL_CHECK = """
import json, numpy as np, backprop as bp
rng = np.random.default_rng(0)
X, y = rng.normal(size=(300, 20)), rng.integers(0, 4, 300)
nets = [bp.Network([20, 16, 4], dtype="float64", backend=b, seed=0) for b in ("native", "numpy")]
for net in nets:
    net.fit(X, y, epochs=2, batch_size=16, optimizer=bp.Adam(lr=0.01))
print(json.dumps({"isa": bp.build_info()["isa"], "simd": bp.build_info()["simd"], "gap": float(max(
    np.abs(a.W - b.W).max() for a, b in zip(nets[0].layers, nets[1].layers)))}))
"""


@pytest.fixture(scope="module")
def supported_levels():
    if bp.build_info()["isa"] == "native":
        pytest.skip("a -DBACKPROP_NATIVE=ON build has a single level")
    return _core._load().supported_levels()


@pytest.mark.parametrize("level", ["baseline", "avx2", "avx512"])
def test_each_level_computes_the_same(level, supported_levels):
    if level not in supported_levels:
        pytest.skip(f"this CPU cannot run the {level} core")
    env = dict(os.environ, BACKPROP_ISA=level)
    out = subprocess.run([sys.executable, "-c", LEVEL_CHECK], env=env, capture_output=True, text=True,
                         check=True)
    result = json.loads(out.stdout)
    assert result["isa"] == level
    assert result["gap"] < 1e-10
    # What `backprop info` prints: the instruction sets of this level, AVX2 and FMA included.
    simd = result["simd"].split(", ")
    expected = {"baseline": ["SSE2"], "avx2": ["AVX2", "FMA", "AVX"], "avx512": ["AVX512", "AVX2", "FMA"]}[level]
    assert set(expected) <= set(simd), simd
    assert ("AVX512" in simd) == (level == "avx512") and ("AVX" in simd) == (level != "baseline")


def test_best_level_is_default(supported_levels):
    if os.environ.get("BACKPROP_ISA"):
        pytest.skip("BACKPROP_ISA is set")
    assert bp.build_info()["isa"] == supported_levels[-1]


def test_unknown_level_is_refused(supported_levels):
    env = dict(os.environ, BACKPROP_ISA="sse9")
    code = "import warnings, backprop as bp\nwith warnings.catch_warnings(record=True) as w:\n" \
           "    warnings.simplefilter('always')\n    print(bp.Network([2, 2]).backend, w[0].message)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("numpy") and "BACKPROP_ISA" in out.stdout
    # Reinstalling cannot help: the advice is to unset the variable.
    assert "Unset BACKPROP_ISA" in out.stdout and "Reinstall" not in out.stdout


def test_level_the_cpu_lacks_is_refused_with_the_right_advice(supported_levels, monkeypatch):
    # A level this CPU cannot run: one beyond every level it supports.
    monkeypatch.setattr(_core, "LEVELS", (*_core.LEVELS, "avx10"))
    monkeypatch.setenv("BACKPROP_ISA", "avx10")
    with pytest.raises(ImportError, match="BACKPROP_ISA=avx10 but this CPU supports only") as error:
        _core._load()
    assert error.value.advice.startswith("Unset BACKPROP_ISA")


def test_build_info_fields():
    info = bp.build_info()
    assert {"core", "isa", "compiler", "openmp", "eigen", "simd"} <= set(info)


@pytest.fixture
def restore_threads():
    before = bp.get_num_threads()
    yield
    bp.set_num_threads(before)


def test_set_num_threads(restore_threads):
    bp.set_num_threads(1)
    assert bp.get_num_threads() == 1
    with pytest.raises(ValueError, match="n must be >= 1"):
        bp.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an integer"):
        bp.set_num_threads("2")
    assert bp.get_num_threads() == 1


def train(threads, dtype="float64"):
    bp.set_num_threads(threads)
    X, y = make_data("cross_entropy", 600, 64, 10)
    net = bp.Network([64, 256, 256, 10], dtype=dtype, seed=0)  # big enough to use a team of threads
    net.fit(X, y, epochs=2, batch_size=32, optimizer=bp.SGD(lr=0.01, momentum=0.9))
    return [layer.W.copy() for layer in net.layers], net.forward(X)


@pytest.mark.parametrize("threads", [1, 2])
def test_training_is_reproducible(threads, restore_threads):
    first, second = train(threads), train(threads)
    for a, b in zip(first[0], second[0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[1], second[1])


def test_thread_counts_agree(restore_threads):
    # Splitting products between threads changes Eigen's blocking, so only the
    # last bits may differ.
    one, two = train(1), train(2)
    for a, b in zip(one[0], two[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(one[1], two[1], rtol=1e-12, atol=1e-14)


FORK_CHECK = """
import multiprocessing as mp, numpy as np, backprop as bp

def train():
    net = bp.Network([64, 256, 256, 10], seed=1)
    X, y = np.random.default_rng(1).random((512, 64)), np.arange(512) % 10
    net.fit(X, y, epochs=1, batch_size=64)
    return net.layers[0].W

def child(queue):
    queue.put((bp.get_num_threads(), train()))

if __name__ == "__main__":
    train()  # the parent starts the core's worker threads first
    queue = mp.get_context("fork").Queue()
    process = mp.get_context("fork").Process(target=child, args=(queue,))
    process.start()
    threads, W = queue.get(timeout=60)
    process.join()
    print(threads == bp.get_num_threads(), np.array_equal(W, train()))
"""


def test_forked_child_trains_like_its_parent(tmp_path):
    # The worker threads do not survive fork(); the child starts its own and
    # gets the parent's thread count and the same bits.
    script = tmp_path / "fork_check.py"
    script.write_text(FORK_CHECK)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True True"


def test_core_refuses_what_it_cannot_keep_alive():
    model = _core.Model([4, 3], ["softmax"], "cross_entropy")
    params = np.zeros(model.n_params)
    X = np.zeros((5, 4))
    with pytest.raises(ValueError, match="labels must be a NumPy array"):
        model.evaluate(params, X, labels=[0, 1, 2, 0, 1])
    config = _core.OptimizerConfig()
    config.momentum = 0.9
    with pytest.raises(ValueError, match="first must be a NumPy array"):
        model.train_epoch(params, model.dataset(X, np.zeros(5, np.int64)), np.arange(5), 2, config,
                          [0.0] * model.n_params, None, np.zeros(1, np.int64), False)


def test_core_reads_read_only_parameters():
    model = _core.Model([4, 3], ["identity"], "mse")
    params = np.arange(model.n_params, dtype=np.float64)
    params.setflags(write=False)
    assert model.forward(params, np.ones((2, 4))).shape == (2, 3)


def test_core_refuses_sizes_whose_parameter_count_overflows():
    with pytest.raises(ValueError, match="overflows"):
        _core.Model([1, 2**61, 6], ["relu", "softmax"], "cross_entropy")


def _misaligned(array):
    raw = np.zeros(array.nbytes + 1, np.uint8)
    out = raw[1:].view(array.dtype).reshape(array.shape)
    out[...] = array
    return out


def _train(model, params, X, labels, targets, weights, order, batch_size, config, first, second, step,
           record_grad_norms):
    """Model.train_epoch on a data set made from X, labels, targets and weights."""
    data = model.dataset(X, labels, targets, weights)
    return model.train_epoch(params, data, order, batch_size, config, first, second, step, record_grad_norms)


def _train_epoch_arguments(model, dtype=np.float64):
    """Arguments of a valid Adam train_epoch call on 6 samples, by name."""
    config = _core.OptimizerConfig()
    config.kind = _core.OptimizerKind.adam
    n = model.n_params
    return {"params": np.zeros(n, dtype), "X": np.ones((6, 4), dtype), "labels": np.arange(6) % 3,
            "targets": None, "weights": None, "order": np.arange(6), "batch_size": 2, "config": config,
            "first": np.zeros(n, dtype), "second": np.zeros(n, dtype), "step": np.zeros(1, np.int64),
            "record_grad_norms": False}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["params", "X", "first", "second", "labels", "order", "step", "weights"])
def test_core_refuses_misaligned_buffers(name, dtype):
    """Eigen and the core load elements through typed pointers: a buffer at an
    address that is no multiple of the element size is refused by name."""
    model = _core.Model([4, 3], ["softmax"], "cross_entropy")
    arguments = _train_epoch_arguments(model, dtype)
    _train(model, **arguments)  # valid as given
    arguments = _train_epoch_arguments(model, dtype)
    arguments[name] = _misaligned(np.ones(6) if name == "weights" else arguments[name])
    with pytest.raises(ValueError, match=rf"^{name} must be aligned to \d bytes"):
        _train(model, **arguments)
    if name in ("params", "X"):
        other = {"params": np.zeros(model.n_params, dtype), "X": np.ones((6, 4), dtype)}
        other[name] = _misaligned(other[name])
        with pytest.raises(ValueError, match=rf"^{name} must be aligned"):
            model.forward(other["params"], other["X"])
        with pytest.raises(ValueError, match=rf"^{name} must be aligned"):
            model.gradients(other["params"], other["X"], np.arange(6) % 3)


def test_core_refuses_steps_that_would_overflow_its_counter():
    model = _core.Model([4, 3], ["softmax"], "cross_entropy")
    for start, allowed in [(2**63 - 1, False), (2**63 - 4, False), (2**63 - 5, True)]:
        arguments = _train_epoch_arguments(model)  # 3 steps of 2 samples
        arguments["step"][0] = start
        if allowed:
            _train(model, **arguments)
            assert arguments["step"][0] == start + 3
        else:
            with pytest.raises(ValueError, match="3 more step"):
                _train(model, **arguments)
            assert arguments["step"][0] == start and not arguments["params"].any()
    arguments = _train_epoch_arguments(model)
    arguments["step"][0] = 2**63 - 2
    with pytest.raises(ValueError, match="1 more step"):
        model.optimizer_step(arguments["params"], np.ones(model.n_params), arguments["config"],
                             arguments["first"], arguments["second"], arguments["step"], 1.0)


def test_core_data_sets_belong_to_their_model_and_dtype():
    model = _core.Model([4, 3], ["softmax"], "cross_entropy")
    arguments = _train_epoch_arguments(model)
    data = model.dataset(arguments["X"], arguments["labels"])
    with pytest.raises(ValueError, match="data set has dtype float64, params float32"):
        model.train_epoch(arguments["params"].astype(np.float32), data, arguments["order"], 2,
                          arguments["config"], arguments["first"].astype(np.float32),
                          arguments["second"].astype(np.float32), arguments["step"], False)
    other = _core.Model([5, 3], ["softmax"], "cross_entropy")
    with pytest.raises(ValueError, match="another shape"):
        other.gradient_sum(np.zeros(other.n_params), data, np.arange(2), np.zeros(other.n_params))
    with pytest.raises(ValueError, match=r"rows holds 6, outside \[0, 6\)"):
        model.gradient_sum(arguments["params"], data, np.array([0, 6]), np.zeros(model.n_params))
    out = np.zeros(model.n_params)
    out.setflags(write=False)
    with pytest.raises(ValueError, match="out must be writeable"):
        model.gradient_sum(arguments["params"], data, np.arange(2), out)


def test_core_reuses_its_buffers_safely_across_calls_and_threads():
    """One model, many calls of different sizes from two threads at once: each result is what a fresh
    model computes (the model's reused buffers are never shared by two calls)."""
    import threading
    sizes, activations = [20, 30, 5], ["tanh", "softmax"]
    model, fresh = (_core.Model(sizes, activations, "cross_entropy") for _ in range(2))
    rng = np.random.default_rng(0)
    params = rng.normal(size=model.n_params)
    batches = [rng.normal(size=(n, 20)) for n in (1, 7, 300, 2000, 3, 64)]
    labels = [rng.integers(0, 5, len(X)) for X in batches]
    expected = [(fresh.forward(params, X), fresh.gradients(params, X, y)) for X, y in zip(batches, labels)]
    failures = []

    def work():
        for _ in range(20):
            for (X, y), (out, (loss, grads, accuracy)) in zip(zip(batches, labels), expected):
                got_loss, got_grads, _ = model.gradients(params, X, y)
                if not (np.array_equal(model.forward(params, X), out) and got_loss == loss
                        and np.array_equal(got_grads, grads)):
                    failures.append(len(X))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
