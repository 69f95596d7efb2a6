"""backprop's benchmark suite: every workload on every installed peer.

    python -m benchmarks                 # the full suite (about 3½ minutes on 2 cores)
    python -m benchmarks --quick         # a tenth of the samples, 1 repetition (under a minute)
    python benchmarks/run.py --quick     # the same, run as a script

Peers: backprop native, backprop's NumPy backend, PyTorch (CPU) and
scikit-learn's MLPClassifier, each skipped with a note when missing. Prints
the tables and the goals (PASS/MISS) on stdout, progress on stderr, and
writes every figure with the machine's description to a JSON file and a
bar chart (PNG, needs matplotlib) next to it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

if not __package__:
    # Run as a script: import the package from the repository root instead of
    # letting this folder's modules shadow top-level names.
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    sys.path.insert(0, os.path.dirname(_HERE))

from benchmarks import report  # noqa: E402
from benchmarks.data import DataError  # noqa: E402
from benchmarks.peers import LABELS, PEER_NAMES, availability, set_threads  # noqa: E402
from benchmarks.suite import run_suite  # noqa: E402
from benchmarks.workloads import MODES  # noqa: E402

WORKLOAD_IDS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11", "E", "CL", "MPI")
RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def default_threads():
    """2, or fewer when fewer CPUs are usable: the goals' setting."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return max(1, min(2, usable))


def _names(text, allowed, what):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown) or '(none)'}; "
                                         f"choose from {', '.join(allowed)}")
    return names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="a tenth of the samples (6,000 / 3,600), 1 repetition: under a minute on 2 cores")
    size.add_argument("--smoke", action="store_true",
                      help="a few hundred samples: checks that everything runs (the test suite uses it)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repetitions per workload, after one warm-up (default 3; 1 with --quick)")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="threads for every peer (default: 2, or the usable CPUs if fewer)")
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="folder with Fashion-MNIST's IDX files (an error if it cannot be read; default: "
                             "Debian's /usr/share/datasets/fashion-mnist, synthetic data when missing)")
    parser.add_argument("--synthetic", action="store_true", help="use synthetic data even if Fashion-MNIST is there")
    parser.add_argument("--peers", type=lambda t: _names(t, PEER_NAMES, "peer"), default=list(PEER_NAMES),
                        help=f"comma-separated subset of {','.join(PEER_NAMES)} (default: all installed)")
    parser.add_argument("--workloads", type=lambda t: _names(t, WORKLOAD_IDS, "workload"),
                        default=list(WORKLOAD_IDS),
                        help="comma-separated subset of W1..W11 and E (E1-E4, the estimators) and MPI (default: all)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS measurement")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG chart")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="JSON file to write (default: benchmarks/results/<mode>-<time>.json); "
                             "the chart goes beside it as .png")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.data is not None and not args.synthetic and not os.path.isdir(args.data):
        parser.error(f"--data {args.data}: no such folder")
    return args


def main(argv=None):
    """Run the suite with command-line arguments `argv`; returns the exit status."""
    args = parse_args(argv)
    mode = MODES["quick" if args.quick else "smoke" if args.smoke else "full"]
    repeats = args.repeats or (3 if mode.name == "full" else 1)

    found = availability()
    peers = [name for name in args.peers if found[name][0]]
    for name in args.peers:
        if not found[name][0]:
            print(f"note: skipping {LABELS[name]}: {found[name][1]}", file=sys.stderr)
    notes = set_threads(args.threads, peers)

    results = {"settings": {"mode": mode.name, "repeats": repeats, "threads": args.threads,
                            "peers": peers, "requested_peers": args.peers, "workloads": args.workloads,
                            "argv": sys.argv[1:] if argv is None else list(argv)},
               "peers": {name: found[name] for name in PEER_NAMES},
               "machine": report.machine_info(args.threads)}
    try:
        results.update(run_suite(mode, repeats, args.threads, peers, data_path=args.data,
                                 force_synthetic=args.synthetic, selected=set(args.workloads),
                                 measure_memory=not args.no_memory))
    except DataError as error:
        print(f"python -m benchmarks: error: {error}", file=sys.stderr)
        return 2
    results["notes"] = notes
    results["machine"]["load_average_at_end"] = report._load_average()

    # The tables first: a file that cannot be written must not cost the run's figures.
    print("\n".join(report.tables(results)), flush=True)

    out = os.path.abspath(args.out or os.path.join(
        RESULTS_DIR, f"{mode.name}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    chart = os.path.splitext(out)[0] + ".png"
    results["files"] = {"json": out, "chart": None}
    if not args.no_plot:
        try:
            why_not = report.write_chart(results, chart)
        except Exception as error:  # a plotting failure is a note, not a lost run
            why_not = f"the chart failed: {type(error).__name__}: {error}"
        if why_not:
            notes.append(why_not)
        else:
            results["files"]["chart"] = chart
    report.write_json(results, out)

    for note in notes:
        print(f"note: {note}")
    print(f"wrote {out}" + (f" and {results['files']['chart']}" if results["files"]["chart"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
