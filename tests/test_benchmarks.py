"""The benchmark suite runs end to end and writes the JSON it documents.

Runs ``python -m benchmarks --smoke`` (a few hundred synthetic samples, one
repetition, one thread) in a subprocess. No timing is checked: figures live
in the benchmark's output, never in assertions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [pytest.mark.slow,  # heavy: runs the benchmark suite
              pytest.mark.skipif(not os.path.isfile(os.path.join(REPO_ROOT, "benchmarks", "run.py")),
                                              reason="needs the repository's benchmarks/ folder")]


def _installed(module):
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--synthetic", "--threads", "1",
                           "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out) as file:
        return json.load(file), done.stdout, out


def test_json_describes_machine_and_settings(smoke_run):
    results, _, _ = smoke_run
    machine = results["machine"]
    for key in ("cpu_model", "logical_cpus", "threads", "python", "versions", "backprop", "build_info", "blas"):
        assert key in machine
    assert "isa" in machine["build_info"] or "error" in machine["build_info"]
    assert results["settings"]["mode"] == "smoke"
    assert results["settings"]["threads"] == 1
    assert results["data"]["source"] == "synthetic"


def test_json_holds_every_workload(smoke_run):
    results, _, _ = smoke_run
    workloads = results["workloads"]
    native = results["peers"]["native"][0]
    timed = ["W1", "W2", "W3", "W8", "W6.W1", "W6.W2", "W6.W3"]
    for key in timed:
        figures = workloads[key]
        assert set(figures) >= {"workload", "seconds", "runs", "ratio_to_native", "same_batches",
                                "shared_initial_weights"}
        expected_peers = {"numpy"} | ({"native"} if native else set())
        expected_peers |= {p for p, m in (("torch", "torch"), ("sklearn", "sklearn")) if _installed(m)}
        assert set(figures["seconds"]) >= expected_peers
        assert all(figures["same_batches"].values())
        assert all(figures["shared_initial_weights"].values())
    for key in ("W10", "W11"):  # W1 with dropout, with LayerNorm: scikit-learn's MLP has neither
        assert "sklearn" not in workloads[key]["seconds"] and "numpy" in workloads[key]["seconds"]
        assert workloads[key]["workload"]["dropout"] or workloads[key]["workload"]["norm"] == "layer"
        if native:  # their cost goals divide by plain W1 timed in the same rotation
            assert workloads[key]["seconds"]["native_plain"] > 0
            cost = next(g for g in results["goals"] if g["id"] == key)
            assert cost["measured"] == pytest.approx(workloads[key]["seconds"]["native"]
                                                     / workloads[key]["seconds"]["native_plain"])
    assert "floor" in workloads["W1"]["seconds"]
    assert set(workloads["W5"]["seconds"]) >= {"numpy", "floor"}
    assert "numpy" in workloads["W5.1"]["microseconds"]
    assert "numpy" in workloads["W3.1"]["microseconds"]
    for figures in (workloads["W5.1"], workloads["W3.1"]):
        assert all(value > 0 for value in figures["microseconds"].values())
    if _installed("onnx") and _installed("onnxruntime"):
        assert workloads["W5.1"]["microseconds"]["onnxruntime"] > 0
    else:
        assert "onnxruntime" in workloads["W5.1"]["skipped"]
    if native:
        assert workloads["W3.1"]["microseconds"]["native"] > 0
        assert set(workloads["W4"]) >= {"W1", "W2"}
        assert set(workloads["W4"]["W1"]) >= {"floor_seconds", "native_seconds", "efficiency",
                                              "native_over_floor"}
        assert "W6" in workloads
        w7 = workloads["W7"]
        assert w7["settings"] == ["native_1"]  # --threads 1: nothing to compare
        for key in ("W1", "W2"):
            assert w7["workloads"][key]["seconds"]["native_1"] > 0
            assert w7["workloads"][key]["default_over_best_fixed"] is None
        for busy in ("1", "2"):  # W9: under 1 and 2 busy processes the suite started and stopped
            level = workloads["W9"]["loads"][busy]
            assert set(level) >= {"W1", "W2", "load_average_at_start", "load_average_at_end"}
            for key in ("W1", "W2"):
                assert set(level[key]["seconds"]) >= {"native_1", "native_default"}


def test_json_reports_memory_and_goals(smoke_run):
    results, stdout, out = smoke_run
    memory = results["memory"]
    for peer, figures in memory["peers"].items():
        assert "error" not in figures, (peer, figures)
        assert set(figures) >= {"data_bytes", "param_bytes", "rss_before_fit", "peak_rss", "fit_increase"}
    if results["peers"]["native"][0]:
        assert set(memory["native_bound"]) >= {"params_x4", "permutation", "batch_buffers", "total"}
    ids = [row["id"] for row in results["goals"]]
    assert ids.count("W6") == 6 and {"W1", "W2", "W3", "W4", "W5", "W7", "W8", "W10", "W11", "mem"} <= set(ids)
    assert ids.count("W7") == 4 and ids.count("W9") == 10
    if results["peers"]["native"][0]:  # W9's own goal needs only native; the other one also PyTorch
        assert all(row["status"] != "n/a" for row in results["goals"]
                   if row["id"] == "W9" and "native 1 thread" in row["what"])
    assert all(row["status"] in ("PASS", "MISS", "n/a") for row in results["goals"])
    assert "Goals" in stdout and "instruction-set level" in stdout
    if _installed("matplotlib"):
        assert results["files"]["chart"] and os.path.isfile(results["files"]["chart"])


def _limit_is_complete(limit, threads):
    assert set(limit) >= {"macs", "cores", "gmacs_per_second", "rate_source", "seconds", "native_over_limit"}
    assert limit["macs"] > 0 and limit["seconds"] > 0 and limit["native_over_limit"] > 0
    assert 1 <= limit["cores"] <= threads


def test_json_holds_the_arithmetic_limits(smoke_run):
    """Every training workload and E1–E4 against its limit, at the fastest GEMM rate the run measured."""
    results, stdout, _ = smoke_run
    rates = results["gemm_rates"]
    assert set(rates) == {"float32", "float64"}
    for rate in rates.values():
        assert "numpy" in rate["candidates"] and all(value > 0 for value in rate["candidates"].values())
        assert rate["multiply_adds_per_second"] == max(rate["candidates"].values())
        assert rate["candidates"][rate["fastest"]] == rate["multiply_adds_per_second"]
        if results["peers"]["native"][0]:
            assert "native" in rate["candidates"]
    if not results["peers"]["native"][0]:
        return
    workloads = results["workloads"]
    for key in ("W1", "W2", "W3", "W8", "W6.W1", "W6.W2", "W6.W3", "W10", "W11"):
        limit = workloads[key]["arithmetic_limit"]
        _limit_is_complete(limit, 1)
        dtype = workloads[key]["workload"]["dtype"]
        assert limit["gmacs_per_second"] == rates[dtype]["multiply_adds_per_second"] / 1e9
    assert workloads["W1"]["arithmetic_limit"]["macs"] == 512 * (3 * (784 * 256 + 256 * 128 + 128 * 10) - 784 * 256)
    if _installed("sklearn"):
        for row in workloads["E"]["rows"].values():
            _limit_is_complete(row["arithmetic_limit"], 1)
    limit_rows = [row for row in results["goals"] if "arithmetic limit" in row["what"]]
    assert {row["id"] for row in limit_rows} >= {"W1", "W2", "W3"} | ({"E1", "E2", "E3", "E4"}
                                                                      if _installed("sklearn") else set())
    assert all(row["status"] != "n/a" for row in limit_rows)
    assert stdout.count("arithmetic limit: ") >= 9 and "GEMM  single-core 1024 × 1024" in stdout


@pytest.fixture(scope="module")
def two_thread_run(tmp_path_factory):
    """W7 and W9 compare thread settings: a smoke run on 2 threads, native only."""
    out = tmp_path_factory.mktemp("bench") / "smoke2.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--synthetic", "--threads", "2",
                           "--peers", "native", "--workloads", "W7,W9", "--no-memory", "--no-plot",
                           "--out", str(out)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out) as file:
        return json.load(file), done.stdout


def test_json_compares_the_thread_settings(two_thread_run):
    """W7: 1 thread, the default and forced sharing on W1 and W2; W9 adds forced sharing beside 1 busy process."""
    results, stdout = two_thread_run
    if not results["peers"]["native"][0]:
        assert "W7" not in results["workloads"]
        return
    w7 = results["workloads"]["W7"]
    assert w7["settings"] == ["native_1", "native_default", "native_shared"]
    for key in ("W1", "W2"):
        figures = w7["workloads"][key]
        assert all(figures["seconds"][name] > 0 for name in w7["settings"])
        assert figures["speedup"] > 0 and figures["speedup_shared"] > 0 and figures["default_over_best_fixed"] > 0
    w9 = results["workloads"]["W9"]
    for key in ("W1", "W2"):
        assert set(w9["loads"]["1"][key]["seconds"]) == {"native_1", "native_default", "native_shared"}
        assert "native_shared" not in w9["loads"]["2"][key]["seconds"]
    rows = {(row["id"], row["what"]): row for row in results["goals"]}
    for key in ("W1", "W2"):
        for what in (f"native speed-up, n threads over 1 ({key})",
                     f"native default / best fixed setting ({key}, idle)"):
            assert rows[("W7", what)]["measured"] > 0
        assert rows[("W9", f"native default / best fixed setting ({key}, 1 busy)")]["measured"] > 0
    assert "W7    W1 and W2 on backprop native" in stdout and "default/best fixed" in stdout


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_data_folder_that_cannot_be_read_is_an_error(folder, tmp_path):
    # It used to fall back to synthetic data silently, timing something else than asked.
    path = tmp_path / folder
    if folder == "empty":
        path.mkdir()
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--threads", "1", "--peers", "numpy",
                           "--workloads", "W3", "--no-memory", "--no-plot", "--data", str(path),
                           "--out", str(tmp_path / "out.json")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"--data {path}" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.json").exists()


def test_json_holds_the_estimator_rows(smoke_run):
    """E1–E4: both libraries' MLPClassifier fitted on the same data; the same final loss."""
    results, stdout, _ = smoke_run
    if not _installed("sklearn"):
        assert "E" not in results["workloads"]
        return
    rows = results["workloads"]["E"]["rows"]
    assert list(rows) == ["E1", "E2", "E3", "E4"]
    for row in rows.values():
        assert set(row["seconds"]) == {"backprop", "sklearn"}
        assert row["speedup"] == row["seconds"]["sklearn"] / row["seconds"]["backprop"]
        assert row["n_iter"]["backprop"] == row["n_iter"]["sklearn"] == row["epochs"]
        assert abs(row["loss"]["backprop"] - row["loss"]["sklearn"]) <= 1e-4 * abs(row["loss"]["sklearn"])
    assert {"E1", "E2", "E3", "E4"} <= {goal["id"] for goal in results["goals"]}
    assert "E1–E4" in stdout


def test_json_holds_the_data_parallel_row(smoke_run):
    results, stdout, _ = smoke_run
    row = results["workloads"]["MPI"]
    if not _installed("mpi4py"):
        assert "mpi4py" in row["skipped"]
        return
    assert set(row["processes"]) == {"1", "2", "2-tcp"}
    for figures in row["processes"].values():
        assert set(figures) >= {"epoch_seconds", "allreduce_ms_per_step", "steps"}, figures
        assert figures["threads"] == 1
    assert "fit_epoch_seconds" in row["processes"]["1"] and "bare_allreduce_ms" in row["processes"]["2-tcp"]
    assert row["fit_2_threads_epoch_seconds"] > 0
    assert set(row["ratios"]) == {"MPI.1", "MPI.2", "MPI.3"}
    assert set(row["tcp_model"]) == {"bandwidth_gbit", "predicted_epoch_seconds", "measured_epoch_seconds"}
    assert row["gradient_bytes"] == 235_146 * 4
    assert "MPI   W2 data-parallel" in stdout and "over TCP" in stdout
    assert {"MPI.1", "MPI.2", "MPI.3"} <= {goal["id"] for goal in results["goals"]}


def test_json_holds_the_custom_loop_row(smoke_run):
    """CL: Network.fit, the two hand-written loops and (with PyTorch) its loop, on the same rows."""
    results, stdout, _ = smoke_run
    if not results["peers"]["native"][0]:
        assert "CL" not in results["workloads"]
        return
    row = results["workloads"]["CL"]
    expected = {"fit", "train_on_batch", "gradients_apply"} | ({"torch"} if _installed("torch") else set())
    assert set(row["seconds"]) == expected
    assert all(len(values) >= 3 for values in row["all_seconds"].values())
    assert {"CL.1", "CL.2"} <= set(row["ratios"])
    assert "CL    W2 by hand-written loops" in stdout
    assert {"CL.1", "CL.2", "CL.3", "CL.4"} <= {goal["id"] for goal in results["goals"]}
