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
    assert "floor" in workloads["W1"]["seconds"]
    assert set(workloads["W5"]["seconds"]) >= {"numpy", "floor"}
    assert "numpy" in workloads["W5.1"]["microseconds"]
    for key in ("W3", "W6.W3"):
        assert set(workloads[key]["arithmetic_limit"]) >= {"macs", "gmacs_per_second", "seconds"}
    if native:
        assert set(workloads["W4"]) >= {"W1", "W2"}
        assert set(workloads["W4"]["W1"]) >= {"floor_seconds", "native_seconds", "efficiency",
                                              "native_over_floor"}
        assert "W6" in workloads
        assert workloads["W7"]["threads"] == [1]  # --threads 1: nothing to compare
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
    assert ids.count("W9") == 8
    if results["peers"]["native"][0]:  # W9's own goal needs only native; the other one also PyTorch
        assert all(row["status"] != "n/a" for row in results["goals"]
                   if row["id"] == "W9" and "native 1 thread" in row["what"])
    assert all(row["status"] in ("PASS", "MISS", "n/a") for row in results["goals"])
    assert "Goals" in stdout and "instruction-set level" in stdout
    if _installed("matplotlib"):
        assert results["files"]["chart"] and os.path.isfile(results["files"]["chart"])


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
