"""What the suite writes: the machine's description, the stdout tables, the JSON file, the bar chart."""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import sys

import numpy as np

import backprop as bp

from . import custom_loops, data_parallel, estimators, limits, threads as thread_settings
from .peers import LABELS, PEER_NAMES, blas_info
from .workloads import TRAINING_KEYS

MIB = 1024 * 1024

# Workloads drawn in the chart, left to right.
CHART_ORDER = ("W1", "W2", "W3", "W8", "W6.W1", "W6.W2", "W6.W3", "W5")


def _cpu():
    """(model name, physical cores) from /proc/cpuinfo; (platform's guess, None) elsewhere."""
    model, cores = None, set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            physical = None
            for line in cpuinfo:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and model is None:
                    model = value
                elif key == "physical id":
                    physical = value
                elif key == "core id":
                    cores.add((physical, value))
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), len(cores) or None


def _version(module):
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return None


def _load_average():
    """The 1-, 5- and 15-minute load averages: how busy the machine was (other processes add noise)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info(threads):
    """The machine, the thread settings and every relevant version, for the JSON file and the header."""
    model, physical_cores = _cpu()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "cpu_model": model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "physical_cores": physical_cores,
        "threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(module) for name, module in
                     (("numpy", "numpy"), ("torch", "torch"), ("sklearn", "sklearn"),
                      ("threadpoolctl", "threadpoolctl"), ("matplotlib", "matplotlib"))},
        "backprop": bp.__version__,
        "build_info": bp.build_info(),
        "blas": blas_info(),
        "environment": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "MKL_NUM_THREADS", "BACKPROP_ISA", "OMP_WAIT_POLICY")
                        if k in os.environ},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_start": _load_average(),
    }
    try:
        info["native_threads"] = bp.get_num_threads()
    except ImportError:
        info["native_threads"] = None
    torch = sys.modules.get("torch")  # only when the suite imported it
    info["torch_threads"] = torch.get_num_threads() if torch is not None else None
    return info


def header_lines(results):
    """The lines above the tables: what ran, where, with which versions."""
    machine, settings = results["machine"], results["settings"]
    build = machine["build_info"]
    versions = machine["versions"]
    blas = ", ".join(f"{b['internal_api']} {b['version']}" for b in machine["blas"]) or "unknown BLAS"
    core = (f"core isa {build.get('isa')} ({build.get('compiler')}, OpenMP {build.get('openmp')}, "
            f"Eigen {build.get('eigen')})" if build.get("core") else f"no core: {build.get('error')}")
    label = {"full": "full run", "quick": "QUICK run (reduced sizes, not the goals' sizes)",
             "smoke": "SMOKE run (tiny sizes, for tests only)"}[settings["mode"]]
    lines = [
        f"backprop benchmark suite: {label}",
        f"instruction-set level of the core: {build.get('isa')}",
        f"machine: {machine['cpu_model']}, {machine['logical_cpus']} logical CPUs "
        f"({machine['usable_cpus']} usable, {machine['physical_cores'] or '?'} physical cores); "
        f"{settings['threads']} thread{'s' if settings['threads'] != 1 else ''} for every peer",
        f"versions: Python {machine['python']}, backprop {machine['backprop']} ({core}), "
        f"NumPy {versions['numpy']} ({blas}), PyTorch {versions['torch'] or '-'}, "
        f"scikit-learn {versions['sklearn'] or '-'}",
        f"data: {results['data']['description']}",
        f"load average (1, 5, 15 min) at start {_format_load(machine['load_average_at_start'])}, "
        f"at end {_format_load(machine.get('load_average_at_end'))}: other processes running alongside make "
        "timings noisy",
        f"timing: median of {settings['repeats']} epoch(s) after an untimed warm-up, peers interleaved; "
        "'× native' = peer time / native time",
    ]
    for name in PEER_NAMES:
        available, note = results["peers"][name]
        if not available:
            lines.append(f"skipped {LABELS[name]}: {note}")
    timed = [w for w in results["workloads"].values() if "same_batches" in w]
    apart = sorted({f"{LABELS[name]} ({w['workload']['key']}: {what})" for w in timed
                    for what, flags in (("initial weights", w["shared_initial_weights"]),
                                        ("batches", w["same_batches"]))
                    for name, shared in flags.items() if not shared})
    if timed:
        lines.append("every peer started from backprop's initial weights and trained on the same batches"
                     if not apart else f"not shared: {', '.join(apart)}")
    return lines


def _format_load(load):
    return "unknown" if not load else " ".join(f"{x:.2f}" for x in load)


def _peer_rows(seconds, samples=None):
    native = seconds.get("native")
    rows = []
    for name in ["native", "native_plain"] + list(PEER_NAMES[1:]) + ["floor"]:
        if name not in seconds:
            continue
        s = seconds[name]
        rate = f"{samples / s:12,.0f}" if samples else " " * 12
        ratio = f"{s / native:9.2f}" if native else " " * 9
        rows.append(f"  {LABELS[name]:<18}{s:10.3f}{rate}{ratio}")
    return rows


def _notes(figures, labels=LABELS):
    lines = []
    for name, failure in figures.get("failed", {}).items():
        lines.append(f"  ! {labels[name]} {failure}")
    for name, notes in figures.get("notes", {}).items():
        for note in notes:
            lines.append(f"  - {labels[name]}: {note}")
    unshared = [LABELS[n] for n, shared in figures.get("shared_initial_weights", {}).items() if not shared]
    if unshared:
        lines.append(f"  - could not share backprop's initial weights: {', '.join(unshared)}")
    if figures.get("sklearn_validation_seconds") is not None:
        lines.append(f"  - sklearn MLP: of its time, {figures['sklearn_validation_seconds']:.3f} s is "
                     "partial_fit's per-call input validation (check X, one-hot y); no validation-set pass")
    return lines


def tables(results):
    """The whole stdout report as a list of lines."""
    lines = header_lines(results) + [""] + limits.rate_lines(results.get("gemm_rates"))
    workloads = results["workloads"]
    column_titles = f"  {'peer':<18}{'median s':>10}{'samples/s':>12}{'× native':>9}"
    for key in TRAINING_KEYS:
        if key not in workloads:
            continue
        figures = workloads[key]
        lines += [f"{key:<6}{figures['description']}", column_titles]
        lines += _peer_rows(figures["seconds"], figures["workload"]["n_samples"]) + _notes(figures)
        if figures.get("arithmetic_limit"):
            lines.append(f"  {limits.limit_line(figures['arithmetic_limit'])}")
        lines.append("")
        if key == "W3" and "W3.1" in workloads:
            lines += call_lines("W3.1", workloads["W3.1"])
    if "W4" in workloads:
        lines.append("W4    efficiency = BLAS floor / native epoch time")
        for key in ("W1", "W2"):
            if key in workloads["W4"]:
                e = workloads["W4"][key]
                lines.append(f"  {key}: floor {e['floor_seconds']:.3f} s, native {e['native_seconds']:.3f} s, "
                             f"efficiency {e['efficiency']:.2f}, native/floor {e['native_over_floor']:.2f}")
        lines.append("")
    if "W5" in workloads:
        figures = workloads["W5"]
        lines += [f"W5    {figures['description']}", column_titles.replace("samples/s", "rows/s")]
        lines += _peer_rows(figures["seconds"], figures["rows"]) + _notes(figures) + [""]
    if "W5.1" in workloads:
        lines += call_lines("W5.1", workloads["W5.1"])
    if "W6" in workloads:
        lines.append("W6    native/peer time ratio, float32 → float64")
        for name, c in workloads["W6"].items():
            if isinstance(c, dict):
                lines.append(f"  {name:<22} {c['float32']:.3f} → {c['float64']:.3f} ({c['change']:+.0%})")
        lines.append("")
    if "W7" in workloads:
        lines += threads_lines(workloads["W7"]) + [""]
    if "W9" in workloads:
        lines += contention_lines(workloads["W9"]) + [""]
    if "E" in workloads:
        lines += estimators.table_lines(workloads["E"])
    if "CL" in workloads:
        lines += custom_loops.report_lines(workloads["CL"])
    if "MPI" in workloads:
        lines += data_parallel.report_lines(workloads["MPI"])
    if "memory" in results:
        lines += memory_lines(results["memory"]) + [""]
    lines += goal_lines(results["goals"])
    return lines


def call_lines(key, figures):
    """W3.1 and W5.1: µs per call of each peer, and its time over native's."""
    micros = figures["microseconds"]
    native = micros.get("native")
    lines = [f"{key:<6}{figures['description']}", f"  {'peer':<18}{'µs/call':>10}{'× native':>9}"]
    lines += [f"  {LABELS[name]:<18}{value:10.1f}" + (f"{value / native:9.2f}" if native else "")
              for name, value in micros.items()]
    lines += [f"  - {LABELS[name]} skipped: {why}" for name, why in figures.get("skipped", {}).items()]
    return lines + [""]


def threads_lines(w7):
    """W7: each setting's median epoch per workload, the speed-ups and the default over the best fixed."""
    names, labels = w7["settings"], w7["labels"]
    lines = [f"W7    {w7['description']}",
             "  wl   " + "".join(f"{labels[n]:>22}" for n in names)
             + f"{'speed-up':>10}{'shared':>8}{'default/best fixed':>20}"]
    for key, figures in w7["workloads"].items():
        seconds = figures["seconds"]
        cells = "".join(f"{seconds[n]:21.3f}s" if n in seconds else f"{'-':>22}" for n in names)
        ratios = "".join(f"{figures[field]:{width}.2f}" if figures.get(field) else f"{'-':>{width}}"
                         for field, width in (("speedup", 10), ("speedup_shared", 8), ("default_over_best_fixed", 20)))
        lines.append(f"  {key:<5}{cells}{ratios}")
        lines += [f"    {line.strip()}" for line in _notes(figures, labels)]
    if w7["threads_reported"] != w7["threads"]:
        lines.append(f"  bp.get_num_threads() reported {w7['threads_reported']} for {w7['threads']} requested")
    return lines


def contention_lines(w9):
    """W9: each setting's median epoch time per busy-process count and workload, and the two ratios."""
    labels = w9["labels"]
    names = list(w9["settings"])
    lines = [f"W9    {w9['description']}",
             "  busy wl  " + "".join(f"{labels[n]:>20}" for n in names)
             + f"{'default/1 thr':>15}{'default/PyTorch':>17}{'default/best fixed':>20}"]
    for busy, level in w9["loads"].items():
        for key in ("W1", "W2"):
            if key not in level:
                continue
            seconds = level[key]["seconds"]
            cells = "".join(f"{seconds[n]:19.3f}s" if n in seconds else f"{'-':>20}" for n in names)
            default = seconds.get("native_default")
            torch_best = min([seconds[n] for n in ("torch_1", "torch_n") if n in seconds], default=None)
            own = f"{default / seconds['native_1']:15.2f}" if default and "native_1" in seconds else f"{'-':>15}"
            peer = f"{default / torch_best:17.2f}" if default and torch_best else f"{'-':>17}"
            fixed = (thread_settings.default_over_best_fixed(seconds) if "native_shared" in seconds else None)
            fixed = f"{fixed:20.2f}" if fixed else f"{'-':>20}"
            lines.append(f"  {busy:<4} {key:<4}{cells}{own}{peer}{fixed}")
            lines += [f"    {line.strip()}" for line in _notes({"failed": level[key].get("failed", {}),
                                                                 "notes": level[key].get("notes", {})}, labels)]
        lines.append(f"       load average at start {_format_load(level['load_average_at_start'])}, "
                     f"at end {_format_load(level['load_average_at_end'])}")
    return lines


def memory_lines(memory):
    """Peak RSS per peer, and native's increase against the memory bound."""
    workload = memory["workload"]
    lines = [f"Memory: one W1 epoch ({workload['n_samples']:,} samples, batch {workload['batch_size']}) per "
             "peer in a fresh process; MiB",
             f"  {'peer':<18}{'data':>8}{'RSS+data':>10}{'peak RSS':>10}{'fit peak Δ':>12}"]
    for name in PEER_NAMES:
        figures = memory["peers"].get(name)
        if figures is None:
            continue
        if "error" in figures:
            lines.append(f"  {LABELS[name]:<18}failed: {figures['error']}")
            continue
        mark = "" if figures["peak_reset"] else "  (peak since start: reset refused)"
        lines.append(f"  {LABELS[name]:<18}{figures['data_bytes'] / MIB:8.1f}{figures['rss_before_fit'] / MIB:10.1f}"
                     f"{figures['peak_rss'] / MIB:10.1f}{figures['fit_increase'] / MIB:12.2f}{mark}")
    if "native_bound" in memory:
        b = memory["native_bound"]
        lines.append(f"  native bound beyond the data: 4 × parameters {b['params_x4'] / MIB:.2f} + permutation "
                     f"{b['permutation'] / MIB:.2f} + 8 batch buffers {b['batch_buffers'] / MIB:.2f} = "
                     f"{b['total'] / MIB:.2f} MiB; measured {memory['peers']['native']['fit_increase'] / MIB:.2f} "
                     f"MiB ({memory['native_fit_increase_over_bound']:.2f} × bound)")
    return lines


def goal_lines(goal_rows):
    """The goals table: measured figure next to its goal, PASS/MISS."""
    lines = ["Goals", f"  {'id':<7}{'figure':<58}{'measured':>9}  {'goal':<9}status"]
    for row in goal_rows:
        measured = f"{row['measured']:9.3f}" if row["measured"] is not None else f"{'-':>9}"
        note = f"  ({row['note']})" if row["note"] else ""
        lines.append(f"  {row['id']:<7}{row['what']:<58}{measured}  {row['goal']:<9}{row['status']}{note}")
    return lines


def _plain(value):
    """JSON-ready copy: NumPy scalars and arrays to Python numbers and lists, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def write_json(results, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as file:
        json.dump(_plain(results), file, indent=1, ensure_ascii=False)
        file.write("\n")


def write_chart(results, path):
    """Bar chart of peer time / native time per workload (log scale).

    Returns
    -------
    str or None: why no chart was written (matplotlib missing, nothing to draw), None when written.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart"
    workloads = results["workloads"]
    keys = [k for k in CHART_ORDER if workloads.get(k, {}).get("ratio_to_native")]
    peers = [p for p in list(PEER_NAMES[1:]) + ["floor"]
             if any(p in workloads[k]["ratio_to_native"] for k in keys)]
    if not keys or not peers:
        return "nothing to draw (no native timings)"
    figure, axes = plt.subplots(figsize=(1.3 * len(keys) + 3, 4.5))
    width = 0.8 / len(peers)
    for i, peer in enumerate(peers):
        ratios = [workloads[k]["ratio_to_native"].get(peer, np.nan) for k in keys]
        positions = np.arange(len(keys)) + (i - (len(peers) - 1) / 2) * width
        axes.bar(positions, ratios, width, label=LABELS[peer])
    axes.axhline(1.0, color="black", linewidth=1, label="backprop native")
    axes.set_yscale("log")
    axes.set_xticks(np.arange(len(keys)), [k + "\nfloat64" if k.startswith("W6.") else k for k in keys])
    axes.set_ylabel("time / backprop native time (log)")
    machine, settings = results["machine"], results["settings"]
    axes.set_title(f"backprop {settings['mode']} run: {machine['cpu_model']}, {settings['threads']} threads, "
                   f"isa {machine['build_info'].get('isa')}", fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return None
