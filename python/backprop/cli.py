"""The ``backprop`` command-line tool (also ``python -m backprop``).

::

    backprop                          train on the shipped digits with the defaults
    backprop train [options]          train, show progress, print a summary, save
    backprop predict MODEL DATA       predictions, one line per sample (--out FILE)
    backprop evaluate MODEL DATA      loss and accuracy
    backprop info [MODEL]             the model's summary (without one: the build)
    backprop bench [ARGS...]          python -m benchmarks --quick, in a source checkout
    mpiexec -n 4 backprop train ...   train data-parallel on 4 processes (backprop.distributed);
                                      rank 0 prints and saves

DATA is ``digits`` (the shipped UCI digits, scaled to [0, 1]),
``fashion-mnist`` (from where Debian's package installs it), a folder of
Fashion-MNIST/MNIST IDX files, a CSV file (``.csv``, ``.csv.gz``, ``.txt``:
features and a label column) or an ``.npz`` archive with arrays ``X`` and
``y``. Features are used as they are: scale them beforehand.

Every error ends in one line on stderr and a non-zero exit status (2 for bad
arguments, 1 otherwise, 130 on Ctrl-C), never a traceback; set
``BACKPROP_TRACEBACK=1`` to see one.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ._validation import holds_whole_numbers

__all__ = ["main", "build_parser", "load_data", "Dataset"]

DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}
# Weight decay when --weight-decay is not given: L2 off, AdamW's decoupled decay at PyTorch's default.
DEFAULT_WEIGHT_DECAY = {"sgd": 0.0, "adam": 0.0, "adamw": 1e-2}


class CLIError(Exception):
    """A problem to report to the user in one line, without a traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse, but bad arguments end in one line instead of the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- argument types -------------------------------------------------------------
def _number(convert, accept, expected):
    """An argparse type: `convert` the text, keep it if `accept`, else say `expected`."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value
    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: np.isfinite(v) and v > 0, "a number > 0")
_fraction = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
_non_negative_float = _number(float, lambda v: np.isfinite(v) and v >= 0, "a number >= 0")


def _layers(text):
    """'256,128' -> [256, 128]; '' or 'none' -> [] (no hidden layer)."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return []
    try:
        widths = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected hidden-layer widths separated by commas, such as 256,128; got {text!r}") from None
    if any(width < 1 for width in widths):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return widths


def _activation(text):
    """'relu' or one name per hidden layer, 'relu,tanh'."""
    from ._architecture import HIDDEN_ACTIVATIONS

    names = [name.strip() for name in text.split(",")]
    for name in names:
        if name not in HIDDEN_ACTIVATIONS:
            raise argparse.ArgumentTypeError(f"unknown activation {name!r}; choose from "
                                             f"{', '.join(HIDDEN_ACTIVATIONS)}")
    return names[0] if len(names) == 1 else names


# -- data -----------------------------------------------------------------------
class Dataset:
    """Features and targets read for the tool, with an optional held-out part.

    Attributes
    ----------
    name : str
    X : ndarray (n_samples, n_features)
    y : ndarray or None (None when the file holds features only)
    X_test, y_test : ndarray or None
        A separate test set that comes with the data (Fashion-MNIST).
    """

    def __init__(self, name, X, y, X_test=None, y_test=None):
        self.name, self.X, self.y, self.X_test, self.y_test = name, X, y, X_test, y_test


def load_data(spec, label_column=-1, features_only_ok=False):
    """Read DATA as the tool understands it (see the module docstring).

    Parameters
    ----------
    spec : str or None
        None or 'digits', 'fashion-mnist', a folder of IDX files, a CSV
        (.csv, .csv.gz, .txt, .txt.gz) or .npz file.
    label_column : int
        Which CSV column holds the labels (negative counts from the end).
    features_only_ok : bool
        Accept an .npz file without ``y`` (for predict).

    Returns
    -------
    Dataset

    Raises
    ------
    CLIError, OSError, ValueError
    """
    from . import datasets

    if spec is None or spec == "digits":
        X, y = datasets.load_digits()
        return Dataset("digits", X / 16.0, y)
    if spec == "fashion-mnist" or os.path.isdir(spec):
        (X, y), (X_test, y_test) = datasets.load_fashion_mnist(None if spec == "fashion-mnist" else spec)
        return Dataset(spec, X, y, X_test, y_test)
    if not os.path.exists(spec):
        raise CLIError(f"{spec}: no such file or folder")
    lower = spec.lower()
    if lower.endswith(".npz"):
        try:
            X, y = datasets.load_npz(spec, require_labels=not features_only_ok)
        except ValueError as error:
            raise CLIError(_one_line(error)) from None
        return Dataset(spec, X, y)
    if lower.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
        try:
            X, y = datasets.load_csv(spec, label_column=label_column)
        except UnicodeDecodeError:
            raise CLIError(f"{spec}: not a text file") from None
        return Dataset(spec, X, y)
    raise CLIError(f"{spec}: cannot tell the format; use .csv, .csv.gz, .npz, a folder of IDX files, "
                   "'digits' or 'fashion-mnist'")


def _check_labels(name, y):
    """y as a numeric array, or a CLIError for text labels."""
    y = np.asarray(y)
    if y.dtype.kind in "OUS":
        examples = ", ".join(repr(str(v)) for v in np.unique(y.ravel())[:3])
        raise CLIError(f"{name}: the labels are text ({examples}, ...); the command-line tool needs "
                       "class numbers 0..K-1 or numeric targets")
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.dtype.kind not in "iuf":
        raise CLIError(f"{name}: the labels must be numbers, got dtype {y.dtype}")
    if y.ndim not in (1, 2) or y.shape[0] == 0:
        raise CLIError(f"{name}: the labels must be a 1-D array (or one row of targets per sample), "
                       f"got shape {y.shape}")
    return y


def _targets_for_training(name, y, loss):
    """(loss, n_outputs, y) for training: class labels for cross_entropy, rows otherwise."""
    y = _check_labels(name, y)
    whole = holds_whole_numbers(y)
    if loss == "auto":
        loss = "cross_entropy" if (y.ndim == 1 and whole) else "mse"
    if loss == "cross_entropy":
        if y.ndim == 2:
            return loss, y.shape[1], y  # rows of class probabilities
        if not whole:
            raise CLIError(f"{name}: cross_entropy needs whole-number class labels")
        y = y.astype(np.int64)
        if y.min() < 0:
            raise CLIError(f"{name}: class labels must be 0..K-1, found {y.min()}")
        return loss, max(int(y.max()) + 1, 2), y
    y = y.reshape(-1, 1) if y.ndim == 1 else y
    return loss, y.shape[1], y.astype(np.float64)


def _targets_for_network(name, y, network):
    """y shaped for `network`'s loss: labels stay 1-D, mse/bce targets become rows."""
    y = _check_labels(name, y)
    if network.loss != "cross_entropy" and y.ndim == 1:
        y = y.reshape(-1, 1)
    return y


def _split(n, fraction, seed):
    """(train, test) index arrays: a seeded random `fraction` held out."""
    n_test = int(round(n * fraction))
    if fraction > 0 and n_test == 0:
        n_test = 1
    if n_test >= n:
        raise CLIError(f"--test-fraction {fraction} leaves no training samples out of {n}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _check_features(data_name, X, network, model_name):
    X = np.asarray(X)
    if X.ndim != 2:
        raise CLIError(f"{data_name}: the features must be a 2-D array, got shape {X.shape}")
    if X.shape[1] != network.sizes[0]:
        raise CLIError(f"{data_name} has {X.shape[1]} features per sample but {model_name} expects "
                       f"{network.sizes[0]}")
    return X


def _writable_target(path, option):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"{option} {path}: the folder {folder} does not exist")


def _one_line(error):
    return " ".join(str(error).split())


# -- commands -------------------------------------------------------------------
def _cmd_train(args):
    # Started by mpiexec with several processes: train data-parallel, every
    # rank on the whole data set; only rank 0 prints and writes files.
    from .distributed import _world, launched_by_mpi
    comm = _world(None)[1] if launched_by_mpi() else None
    if comm is None or comm.Get_rank() == 0:
        return _train(args, comm)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        return _train(args, comm)


def _train(args, comm):
    import backprop as bp

    # Fail before training, not after it, on what would only show up at the end.
    for option in ("save", "plot", "plot_grad_norms"):
        path = getattr(args, option)
        if path is not None:
            _writable_target(path, "--" + option.replace("_", "-"))
    if args.plot or args.plot_grad_norms:
        from .plotting import _figure_class
        _figure_class()
    if args.threads is not None:
        bp.set_num_threads(args.threads)

    data = load_data(args.data, args.label_column)
    X = np.asarray(data.X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise CLIError(f"{data.name}: the features must be a non-empty 2-D array, got shape {X.shape}")
    if data.y is None or len(data.y) != X.shape[0]:
        raise CLIError(f"{data.name}: need one label per sample")
    loss, n_out, y = _targets_for_training(data.name, data.y, args.loss)
    if data.X_test is not None:
        X_train, y_train = X, y
        X_test = np.asarray(data.X_test)
        _, _, y_test = _targets_for_training(data.name, data.y_test, loss)
        held_out = f"its own test set of {len(X_test):,}"
    elif args.test_fraction > 0:
        train, test = _split(len(X), args.test_fraction, args.seed)
        X_train, y_train, X_test, y_test = X[train], y[train], X[test], y[test]
        held_out = f"{len(test):,} held out for testing"
    else:
        X_train, y_train, X_test, y_test = X, y, None, None
        held_out = "none held out"

    net = bp.Network([X.shape[1], *args.layers, n_out], activation=args.activation, loss=loss,
                     dtype=args.dtype, backend=args.backend, seed=args.seed, dropout=args.dropout, norm=args.norm)
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    weight_decay = args.weight_decay if args.weight_decay is not None else DEFAULT_WEIGHT_DECAY[args.optimizer]
    clipping = dict(clip_norm=args.clip_norm, clip_value=args.clip_value)
    if args.optimizer == "sgd":
        momentum = 0.9 if args.momentum is None else args.momentum
        optimizer = bp.SGD(lr=lr, momentum=momentum, weight_decay=weight_decay, **clipping)
    elif args.optimizer == "adamw":
        optimizer = bp.AdamW(lr=lr, weight_decay=weight_decay, **clipping)
    else:
        optimizer = bp.Adam(lr=lr, weight_decay=weight_decay, **clipping)

    classes = f", {n_out} classes" if loss == "cross_entropy" else ""
    print(f"Data: {data.name}, {len(X_train):,} training samples of {X.shape[1]} features{classes}; {held_out}")
    print(f"Network: {' -> '.join(map(str, net.sizes))}, {'/'.join(dict.fromkeys(net.activations))}, "
          f"loss {net.loss}, {net.n_params:,} parameters, {net.dtype.name}, backend {net.backend}"
          + (", LayerNorm" if net.norm else "") + (f", dropout {args.dropout:g}" if args.dropout else ""))
    parallel = "" if comm is None else f", data-parallel on {comm.Get_size()} processes"
    print(f"Training: {optimizer!r}, batch size {args.batch_size}, {args.epochs} epochs, seed {args.seed}"
          f"{parallel}", flush=True)
    validation = (X_test, y_test) if X_test is not None else None
    started = time.perf_counter()
    # The same progress bar on one process or several (ProgressBar draws on rank 0 only).
    options = dict(epochs=args.epochs, batch_size=args.batch_size, optimizer=optimizer, validation_data=validation,
                   record_grad_norms=args.plot_grad_norms is not None,
                   callbacks=[bp.callbacks.ProgressBar(kind=args.progress)]
                   + ([bp.callbacks.BackupAndRestore(args.backup)] if args.backup else []))
    if comm is None:
        history = net.fit(X_train, y_train, **options)
    else:
        history = bp.distributed.fit(net, X_train, y_train, comm, **options)
    wall = time.perf_counter() - started
    train_seconds = sum(history.seconds)
    rate = len(X_train) * args.epochs / max(train_seconds, 1e-9)
    sys.stderr.flush()
    print(f"Done: {args.epochs} epochs in {wall:.2f} s ({rate:,.0f} samples/s while training)")
    print("  training: " + _figures(net.evaluate(X_train, y_train)))
    if validation is not None:
        print("  test:     " + _figures(net.evaluate(*validation)))
    if args.save:
        if comm is None:
            net.save(args.save)
        else:
            bp.distributed.save(net, args.save, comm)
        print(f"Saved the model to {args.save}")
    if comm is not None and comm.Get_rank() != 0:
        return 0
    if args.plot:
        history.plot(path=args.plot, title=f"{data.name}: {' -> '.join(map(str, net.sizes))}")
        print(f"Saved the learning curves to {args.plot}")
    if args.plot_grad_norms:
        from .plotting import plot_grad_norms
        plot_grad_norms(history, path=args.plot_grad_norms, title="gradient norm per layer")
        print(f"Saved the gradient norms to {args.plot_grad_norms}")
    return 0


def _figures(result):
    return ", ".join(f"{key} {value:.4f}" for key, value in result.items())


def _load_model(path, backend=None):
    import backprop as bp

    if not os.path.exists(path):
        raise CLIError(f"{path}: no such model file")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a folder, not a model file")
    return bp.load(path, backend=backend)


def _features(data, network, label_column=-1):
    """(X, y) of `data` for `network`; y is None for a file of features only."""
    X = np.asarray(data.X_test if data.X_test is not None else data.X)
    y = data.y_test if data.X_test is not None else data.y
    # A CSV of features only: load_csv took a feature column for the labels; put it back where it was.
    if (X.ndim == 2 and y is not None and X.shape[1] + 1 == network.sizes[0]
            and np.asarray(y).ndim == 1 and np.asarray(y).dtype.kind in "iuf"):
        column = label_column % (X.shape[1] + 1)
        return np.insert(X, column, np.asarray(y, dtype=np.float64), axis=1), None
    return X, y


def _cmd_predict(args):
    net = _load_model(args.model, args.backend)
    data = load_data(args.data, args.label_column, features_only_ok=True)
    X, _ = _features(data, net, args.label_column)
    X = _check_features(data.name, X, net, args.model)
    result = net.forward(X) if args.outputs else net.predict(X)
    if args.out is None:
        _write_rows(sys.stdout, result)
    else:
        _writable_target(args.out, "--out")
        if args.out.lower().endswith(".npy"):
            np.save(args.out, result, allow_pickle=False)
        else:
            with open(args.out, "w") as file:
                _write_rows(file, result)
        print(f"Wrote {len(result):,} predictions to {args.out}", file=sys.stderr)
    return 0


def _write_rows(file, result):
    fmt = "%d" if result.dtype.kind in "iu" else "%.7g"
    np.savetxt(file, result.reshape(len(result), -1), fmt=fmt, delimiter=",")


def _cmd_evaluate(args):
    net = _load_model(args.model, args.backend)
    data = load_data(args.data, args.label_column)
    X, y = _features(data, net, args.label_column)
    if y is None:
        raise CLIError(f"{data.name}: has no labels to evaluate against")
    X = _check_features(data.name, X, net, args.model)
    y = _targets_for_network(data.name, y, net)
    result = net.evaluate(X, y)
    print(f"{data.name}: {len(X):,} samples, {_figures(result)}")
    return 0


def _cmd_info(args):
    import backprop as bp

    if args.model is None:
        info = bp.build_info()
        print(f"backprop {bp.__version__}")
        for key, value in info.items():
            print(f"  {key}: {value}")
        return 0
    net = _load_model(args.model)
    print(f"{args.model}:")
    net.summary()
    return 0


def _benchmark_roots():
    """Folders that may hold the benchmarks package: the current one, then this source checkout."""
    roots = [Path.cwd()]
    checkout = Path(__file__).resolve().parents[2]  # <checkout>/python/backprop/cli.py
    if (checkout / "pyproject.toml").is_file() and checkout not in roots:
        roots.append(checkout)
    return roots


def _cmd_bench(args):
    for root in _benchmark_roots():
        if (root / "benchmarks" / "__main__.py").is_file():
            command = [sys.executable, "-m", "benchmarks", "--quick", *args.args]
            print(f"Running `python -m benchmarks --quick{''.join(' ' + a for a in args.args)}` in {root}",
                  flush=True)
            return subprocess.call(command, cwd=root)
    raise CLIError("the benchmark suite is not available: it is the benchmarks/ folder of a source checkout "
                   "of backprop; run `backprop bench` from there")


# -- parser -----------------------------------------------------------------------
def build_parser(prog="backprop"):
    """The argparse parser of the tool (exposed for documentation and tests)."""
    import backprop as bp
    from ._architecture import LOSSES, NORMS
    from .network import BACKENDS, DTYPES
    from .progress import KINDS

    parser = _Parser(prog=prog, description="Train and use feedforward networks (backprop).",
                     epilog="Run without a command to train on the shipped digits data set.")
    parser.add_argument("--version", action="version", version=f"backprop {bp.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command")

    data_help = ("'digits', 'fashion-mnist', a folder of IDX files, a .csv/.csv.gz file "
                 "(features and a label column) or an .npz file with X and y")
    train = commands.add_parser("train", help="train a network", description="Train a network and report on it.")
    train.add_argument("--data", default=None, help=f"{data_help} (default: the shipped digits)")
    train.add_argument("--label-column", type=int, default=-1, help="CSV column of the labels (default: last)")
    train.add_argument("--test-fraction", type=_fraction, default=0.2,
                       help="part held out for testing when the data has no test set (default 0.2)")
    train.add_argument("--layers", type=_layers, default=[64],
                       help="hidden-layer widths, e.g. 256,128 ('none': no hidden layer; default 64)")
    train.add_argument("--activation", type=_activation, default="relu",
                       help="hidden activation: relu, leaky_relu, tanh, sigmoid, identity, gelu, silu, elu "
                            "(or one per layer)")
    train.add_argument("--dropout", type=_fraction, default=0.0,
                       help="dropout rate after every hidden layer while training (default 0: none)")
    train.add_argument("--norm", choices=NORMS, default=None, help="layer: LayerNorm in every hidden layer")
    train.add_argument("--loss", choices=("auto",) + LOSSES, default="auto",
                       help="default: cross_entropy for whole-number labels, else mse")
    train.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd")
    train.add_argument("--lr", type=_positive_float, default=None,
                       help=f"learning rate (default {DEFAULT_LR['sgd']} for sgd, {DEFAULT_LR['adam']} for adam)")
    train.add_argument("--momentum", type=_fraction, default=None, help="SGD momentum (default 0.9)")
    train.add_argument("--weight-decay", type=_non_negative_float, default=None,
                       help="L2 penalty on weights; with adamw its decoupled decay (default 0, adamw 0.01)")
    train.add_argument("--clip-norm", type=_positive_float, default=None,
                       help="scale each batch gradient to a global L2 norm of at most this")
    train.add_argument("--clip-value", type=_positive_float, default=None,
                       help="clamp each batch gradient entry to [-v, v]")
    train.add_argument("--batch-size", type=_positive_int, default=32)
    train.add_argument("--epochs", type=_positive_int, default=20)
    train.add_argument("--seed", type=_non_negative_int, default=0,
                       help="seeds the weights, the shuffling and the test split (default 0)")
    train.add_argument("--dtype", choices=DTYPES, default="float32")
    train.add_argument("--threads", type=_positive_int, default=None, help="threads of the native core")
    train.add_argument("--backend", choices=BACKENDS, default="native")
    train.add_argument("--progress", choices=KINDS, default="auto",
                       help="progress bars: tqdm when installed (auto), plain, or off")
    train.add_argument("--save", metavar="MODEL.npz", help="save the trained network")
    train.add_argument("--backup", metavar="DIR",
                       help="back the training up into DIR after every epoch; started again with the same DIR, "
                            "a killed run resumes where it was (bp.callbacks.BackupAndRestore)")
    train.add_argument("--plot", metavar="CURVES.png", help="save loss and accuracy curves (needs matplotlib)")
    train.add_argument("--plot-grad-norms", metavar="NORMS.png",
                       help="record and plot per-layer gradient norms (needs matplotlib)")

    predict = commands.add_parser("predict", help="predict with a saved network",
                                  description="Print (or write) one prediction per sample.")
    predict.add_argument("model", help="a model file saved by `backprop train --save`")
    predict.add_argument("data", help=data_help + "; the label column or y is optional")
    predict.add_argument("--out", help="write here instead of stdout (.npy: NumPy array, else CSV text)")
    predict.add_argument("--outputs", action="store_true",
                         help="the network's outputs (e.g. class probabilities) instead of labels")
    predict.add_argument("--label-column", type=int, default=-1)
    predict.add_argument("--backend", choices=BACKENDS, default=None)

    evaluate = commands.add_parser("evaluate", help="loss and accuracy of a saved network",
                                   description="Loss (and accuracy) of a saved network on labelled data.")
    evaluate.add_argument("model")
    evaluate.add_argument("data", help=data_help)
    evaluate.add_argument("--label-column", type=int, default=-1)
    evaluate.add_argument("--backend", choices=BACKENDS, default=None)

    info = commands.add_parser("info", help="summary of a saved network (or of the build)")
    info.add_argument("model", nargs="?", default=None)

    bench = commands.add_parser("bench", help="run the benchmark suite in quick mode",
                                description="Run `python -m benchmarks --quick` (source checkouts only).")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="passed on to the benchmarks")
    return parser


COMMANDS = {"train": _cmd_train, "predict": _cmd_predict, "evaluate": _cmd_evaluate, "info": _cmd_info,
            "bench": _cmd_bench}


def main(argv=None, prog="backprop"):
    """Run the tool; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Default ``sys.argv[1:]``. No command means ``train``; options before
        any command (``backprop --epochs 5``) are train's.
    prog : str
        The name shown in messages.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "train")
    parser = build_parser(prog)
    if argv[0] == "bench" and not {"-h", "--help"} & set(argv[1:]):
        # Everything after `bench` goes to the benchmarks untouched (argparse's
        # REMAINDER would refuse a first argument that looks like an option).
        args = parser.parse_args(["bench"])
        args.args = argv[2:] if argv[1:2] == ["--"] else argv[1:]
    else:
        args = parser.parse_args(argv)
        if getattr(args, "momentum", None) is not None and args.optimizer != "sgd":
            parser.error("--momentum applies to --optimizer sgd only")
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`backprop predict ... | head`): stop quietly, and
        # point stdout at devnull so that the interpreter's final flush fails no more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as error:
        if os.environ.get("BACKPROP_TRACEBACK"):
            raise
        print(f"{prog}: error: {_describe(error)}", file=sys.stderr)
        _abort_other_ranks()
        return 1


def _abort_other_ranks():
    """Under mpiexec, end every rank: the others may be waiting for this one in a collective."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is not None and MPI.Is_initialized() and not MPI.Is_finalized() and MPI.COMM_WORLD.Get_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)


def _describe(error):
    """One line for the user about `error`."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.filename}: {error.strerror}"
    if isinstance(error, (CLIError, ValueError, TypeError, FloatingPointError, ImportError, OSError)):
        return _one_line(error)
    return f"{type(error).__name__}: {_one_line(error)} (set BACKPROP_TRACEBACK=1 for details)"
