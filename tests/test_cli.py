"""The command-line tool (backprop.cli, python -m backprop) and its progress bars.

Most commands run in-process through cli.main for speed; the error cases that
must end in one line and a non-zero status, never a traceback, also run as
real subprocesses.
"""

from __future__ import annotations

import gzip
import io
import struct
import subprocess
import sys

import numpy as np
import pytest

import backprop as bp
from backprop import cli
from backprop.progress import PlainProgressBar, progress_bar


# -- data files ---------------------------------------------------------------------
def blobs(n=90, n_features=4, n_classes=3, seed=0):
    """Separable classes: a Gaussian blob per class."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    centres = rng.normal(scale=3.0, size=(n_classes, n_features))
    return centres[y] + rng.normal(size=(n, n_features)), y


@pytest.fixture
def csv_file(tmp_path):
    X, y = blobs()
    path = tmp_path / "blobs.csv"
    rows = ["f1,f2,f3,f4,label"] + [",".join(f"{v:.6f}" for v in x) + f",{label}" for x, label in zip(X, y)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def model_file(tmp_path, csv_file, capsys):
    path = tmp_path / "model.npz"
    assert cli.main(["train", "--data", str(csv_file), "--layers", "8", "--epochs", "15", "--save", str(path),
                     "--progress", "off"]) == 0
    capsys.readouterr()
    return path


def run(*args, cwd=None):
    """python -m backprop ARGS as a subprocess: (returncode, stdout, stderr)."""
    result = subprocess.run([sys.executable, "-m", "backprop", *map(str, args)], capture_output=True, text=True,
                            cwd=cwd, timeout=120)
    return result.returncode, result.stdout, result.stderr


def assert_one_line_error(code, err, *fragments):
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- the main job and the version ---------------------------------------------------
def test_bare_module_trains_on_the_shipped_digits():
    code, out, err = run()
    assert code == 0, err
    assert "Data: digits" in out and "held out for testing" in out
    assert "Epoch 20/20" in err and "loss=" in err and "accuracy=" in err and "sample/s" in err
    accuracy = float(out.split("test:")[1].split("accuracy")[1].split()[0])
    assert accuracy > 0.95


def test_version():
    code, out, _ = run("--version")
    assert code == 0 and out.strip() == f"backprop {bp.__version__}"


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "predict", "evaluate", "info", "bench"):
        assert command in out


# -- train --------------------------------------------------------------------------
def test_train_equals_network_fit(csv_file, tmp_path, capsys):
    """The progress loop trains exactly as one call of Network.fit does."""
    path = tmp_path / "m.npz"
    assert cli.main(["train", "--data", str(csv_file), "--layers", "6,5", "--activation", "tanh",
                     "--optimizer", "adam", "--lr", "0.01", "--batch-size", "7", "--epochs", "4", "--seed", "3",
                     "--dtype", "float64", "--backend", "numpy", "--test-fraction", "0", "--save", str(path),
                     "--progress", "plain"]) == 0
    out, err = capsys.readouterr()
    assert "none held out" in out and f"Saved the model to {path}" in out
    assert err.count("Epoch ") == 4 and "Epoch 4/4" in err
    X, y = bp.datasets.load_csv(csv_file)
    net = bp.Network([4, 6, 5, 3], activation="tanh", dtype="float64", backend="numpy", seed=3)
    net.fit(X, y, epochs=4, batch_size=7, optimizer=bp.Adam(lr=0.01))
    saved = bp.load(path)
    for a, b in zip(saved.layers, net.layers):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)


def test_train_with_backup_resumes_a_killed_run(csv_file, tmp_path, capsys, monkeypatch):
    """--backup DIR: a run that dies after epoch 2 (simulated) and is started again ends as one that never
    died; the backup is gone at the end."""
    args = ["train", "--data", str(csv_file), "--layers", "6", "--batch-size", "7", "--epochs", "4", "--seed", "3",
            "--dtype", "float64", "--test-fraction", "0", "--progress", "off"]
    assert cli.main([*args, "--save", str(tmp_path / "plain.npz")]) == 0
    original = bp.callbacks.BackupAndRestore.on_epoch_end

    def dies_after_epoch_2(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise SystemExit(137)
    monkeypatch.setattr(bp.callbacks.BackupAndRestore, "on_epoch_end", dies_after_epoch_2)
    backup = tmp_path / "backup"
    with pytest.raises(SystemExit):
        cli.main([*args, "--backup", str(backup), "--save", str(tmp_path / "resumed.npz")])
    assert (backup / "backup.npz").exists()
    monkeypatch.setattr(bp.callbacks.BackupAndRestore, "on_epoch_end", original)
    assert cli.main([*args, "--backup", str(backup), "--save", str(tmp_path / "resumed.npz")]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(bp.load(tmp_path / "resumed.npz").parameters(),
                                  bp.load(tmp_path / "plain.npz").parameters())
    assert not (backup / "backup.npz").exists()


def test_train_with_regularization_equals_network_fit(csv_file, tmp_path, capsys):
    path = tmp_path / "m.npz"
    assert cli.main(["train", "--data", str(csv_file), "--layers", "6,5", "--activation", "gelu", "--dropout", "0.2",
                     "--norm", "layer", "--optimizer", "adamw", "--clip-norm", "1.0", "--batch-size", "7",
                     "--epochs", "3", "--seed", "3", "--dtype", "float64", "--test-fraction", "0",
                     "--save", str(path), "--progress", "off"]) == 0
    out = capsys.readouterr().out
    assert "LayerNorm, dropout 0.2" in out and "AdamW(" in out and "clip_norm=1.0" in out
    X, y = bp.datasets.load_csv(csv_file)
    net = bp.Network([4, 6, 5, 3], activation="gelu", dropout=0.2, norm="layer", dtype="float64", seed=3)
    net.fit(X, y, epochs=3, batch_size=7, optimizer=bp.AdamW(clip_norm=1.0))
    np.testing.assert_array_equal(bp.load(path).parameters(), net.parameters())


def test_train_top_level_options_mean_train(capsys):
    assert cli.main(["--epochs", "1", "--layers", "none", "--progress", "off", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "64 -> 10" in out and "1 epochs" in out and "test:" in out


def test_train_regression_from_npz_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([0.5, -1.0, 2.0]) + 0.1
    np.savez(tmp_path / "r.npz", X=X, y=y)
    args = ["train", "--data", tmp_path / "r.npz", "--layers", "8", "--activation", "tanh", "--epochs", "3",
            "--lr", "0.01", "--momentum", "0.5", "--plot", tmp_path / "c.png", "--plot-grad-norms",
            tmp_path / "g.png", "--save", tmp_path / "r_model.npz", "--progress", "off"]
    assert cli.main([str(a) for a in args]) == 0
    out = capsys.readouterr().out
    assert "loss mse" in out and "accuracy" not in out.split("Done")[1]
    for name in ("c.png", "g.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["predict", str(tmp_path / "r_model.npz"), str(tmp_path / "r.npz")]) == 0
    values = np.array(capsys.readouterr().out.split(), dtype=float)
    np.testing.assert_allclose(values, bp.load(tmp_path / "r_model.npz").predict(X).ravel(), rtol=1e-6)


def idx(array):
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_train_on_an_idx_folder_uses_its_test_set(tmp_path, capsys):
    rng = np.random.default_rng(0)
    names = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    for part, n in (("train", 20), ("test", 8)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for name, array in zip(names[part], (images, labels)):
            (tmp_path / name).write_bytes(gzip.compress(idx(array)))
    assert cli.main(["train", "--data", str(tmp_path), "--layers", "4", "--epochs", "1", "--progress", "off",
                     "--save", str(tmp_path / "f.npz")]) == 0
    out = capsys.readouterr().out
    assert "20 training samples of 784 features, 10 classes; its own test set of 8" in out
    assert cli.main(["evaluate", str(tmp_path / "f.npz"), str(tmp_path)]) == 0
    assert "8 samples" in capsys.readouterr().out


def test_train_tqdm_progress(capsys):
    pytest.importorskip("tqdm")
    assert cli.main(["train", "--epochs", "2", "--progress", "tqdm", "--layers", "8"]) == 0
    err = capsys.readouterr().err
    assert "Epoch 2/2" in err and "sample/s" in err and "loss=" in err


# -- predict, evaluate, info -------------------------------------------------------------
def test_predict_prints_and_writes(model_file, csv_file, tmp_path, capsys):
    X, y = bp.datasets.load_csv(csv_file)
    expected = bp.load(model_file).predict(X)
    assert cli.main(["predict", str(model_file), str(csv_file)]) == 0
    printed = np.array(capsys.readouterr().out.split(), dtype=int)
    np.testing.assert_array_equal(printed, expected)
    assert (printed == y).mean() > 0.9

    assert cli.main(["predict", str(model_file), str(csv_file), "--out", str(tmp_path / "p.npy")]) == 0
    assert "Wrote 90 predictions" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), expected)

    assert cli.main(["predict", str(model_file), str(csv_file), "--outputs", "--out", str(tmp_path / "p.csv")]) == 0
    probabilities = np.loadtxt(tmp_path / "p.csv", delimiter=",")
    assert probabilities.shape == (90, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


def test_predict_features_only(model_file, csv_file, tmp_path, capsys):
    X, _ = bp.datasets.load_csv(csv_file)
    expected = bp.load(model_file).predict(X)
    np.savetxt(tmp_path / "features.csv", X, delimiter=",")
    np.savez(tmp_path / "features.npz", X=X)
    for data in ("features.csv", "features.npz"):
        assert cli.main(["predict", str(model_file), str(tmp_path / data), "--backend", "numpy"]) == 0
        np.testing.assert_array_equal(np.array(capsys.readouterr().out.split(), dtype=int), expected)
    # --label-column says which column load_csv set aside; it goes back in its place.
    assert cli.main(["predict", str(model_file), str(tmp_path / "features.csv"), "--label-column", "0"]) == 0
    np.testing.assert_array_equal(np.array(capsys.readouterr().out.split(), dtype=int), expected)


def test_evaluate(model_file, csv_file, capsys):
    X, y = bp.datasets.load_csv(csv_file)
    result = bp.load(model_file).evaluate(X, y)
    assert cli.main(["evaluate", str(model_file), str(csv_file)]) == 0
    out = capsys.readouterr().out
    assert "90 samples" in out and f"loss {result['loss']:.4f}" in out and f"accuracy {result['accuracy']:.4f}" in out


def test_info(model_file, capsys):
    assert cli.main(["info", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert "Network 4 -> 8 -> 3" in out and "Total parameters: 67" in out
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"backprop {bp.__version__}" in out and "isa" in out


# -- bench ----------------------------------------------------------------------------
def test_bench_runs_the_quick_suite(tmp_path, monkeypatch, capfd):
    package = tmp_path / "benchmarks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("import sys\nprint('BENCH', sys.argv[1:])\nsys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", "--only", "x"]) == 3
    out = capfd.readouterr().out
    assert "BENCH ['--quick', '--only', 'x']" in out


def test_bench_not_available(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_benchmark_roots", lambda: [tmp_path])
    assert cli.main(["bench"]) == 1
    err = capsys.readouterr().err
    assert "benchmark suite is not available" in err and len(err.strip().splitlines()) == 1


# -- errors: one line, non-zero status, no traceback -----------------------------------------
def test_errors_in_a_subprocess(tmp_path, csv_file, model_file):
    (tmp_path / "corrupt.npz").write_bytes(model_file.read_bytes()[:200])
    np.savetxt(tmp_path / "wide.csv", np.ones((5, 7)), delimiter=",")
    cases = [
        (["train", "--data", tmp_path / "absent.csv"], ["absent.csv", "no such file"]),
        (["evaluate", tmp_path / "absent.npz", "digits"], ["absent.npz", "no such model file"]),
        (["info", tmp_path / "corrupt.npz"], ["corrupt.npz", "not a valid backprop model file"]),
        (["train", "--layers", "64,x"], ["--layers", "256,128"]),
        (["evaluate", model_file, tmp_path / "wide.csv"], ["has 6 features per sample", "expects 4"]),
        (["train", "--optimizer", "rmsprop"], ["--optimizer", "rmsprop"]),
    ]
    for args, fragments in cases:
        code, out, err = run(*args, cwd=tmp_path)
        assert_one_line_error(code, err, *fragments)


@pytest.mark.parametrize("args, fragments", [
    (["train", "--layers", "0"], ["positive"]),
    (["train", "--layers", ""], None),  # no hidden layer is fine: checked by the success below
    (["train", "--epochs", "0"], ["--epochs", "positive integer"]),
    (["train", "--lr", "-1"], ["--lr", "> 0"]),
    (["train", "--lr", "nan"], ["--lr"]),
    (["train", "--test-fraction", "1"], ["--test-fraction"]),
    (["train", "--activation", "softplus"], ["unknown activation 'softplus'"]),
    (["train", "--dtype", "float16"], ["--dtype"]),
    (["train", "--backend", "cuda"], ["--backend"]),
    (["train", "--momentum", "1.5"], ["--momentum", "[0, 1)"]),
    (["train", "--dropout", "1"], ["--dropout", "[0, 1)"]),
    (["train", "--norm", "batch"], ["--norm"]),
    (["train", "--clip-norm", "0"], ["--clip-norm", "> 0"]),
    (["train", "--optimizer", "adam", "--momentum", "0.9"], ["--momentum applies to --optimizer sgd only"]),
    (["frobnicate"], ["invalid choice"]),
    (["predict", "model.npz"], ["required"]),
])
def test_bad_arguments_exit_2_with_one_line(args, fragments, capsys):
    if fragments is None:
        assert cli.main(args + ["--epochs", "1", "--progress", "off"]) == 0
        return
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--help" in err
    for fragment in fragments:
        assert fragment in err


def test_bad_data_and_files_exit_1_with_one_line(tmp_path, model_file, csv_file, capsys):
    (tmp_path / "text.csv").write_text("1,2,cat\n3,4,dog\n")
    (tmp_path / "data.json").write_text("{}")
    np.savez(tmp_path / "noy.npz", X=np.zeros((3, 4)))
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81" * 10)
    cases = [
        (["train", "--data", str(tmp_path / "text.csv")], "labels are text ('cat', 'dog'"),
        (["train", "--data", str(tmp_path / "data.json")], "cannot tell the format"),
        (["train", "--data", str(tmp_path / "noy.npz")], "expected arrays 'X' and 'y'"),
        (["train", "--data", str(tmp_path / "empty.csv")], "holds no rows"),
        (["train", "--data", str(tmp_path / "binary.csv")], "not a text file"),
        (["train", "--data", str(tmp_path)], "Fashion-MNIST IDX files not found"),
        (["train", "--activation", "relu,tanh"], "activation needs one entry per hidden layer"),
        (["train", "--save", str(tmp_path / "missing" / "m.npz")], "does not exist"),
        (["train", "--loss", "binary_cross_entropy"], "[0, 1]"),
        (["train", "--data", str(csv_file), "--test-fraction", "0.999"], "leaves no training samples"),
        (["predict", str(tmp_path), "digits"], "is a folder"),
        (["evaluate", str(model_file), str(tmp_path / "noy.npz")], "expected arrays 'X' and 'y'"),
        (["evaluate", str(model_file), "digits"], "digits has 64 features per sample"),
        (["predict", str(model_file), str(tmp_path / "absent.csv")], "absent.csv: no such file"),
        (["predict", str(csv_file), "digits"], "not a valid backprop model file"),
    ]
    for args, fragment in cases:
        assert cli.main(args + (["--progress", "off"] if args[0] == "train" else [])) == 1, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("backprop: error: ") and fragment in err, (args, err)


def test_divergence_and_interrupt(monkeypatch, capsys):
    assert cli.main(["train", "--lr", "1e30", "--epochs", "2", "--progress", "off"]) == 1
    err = capsys.readouterr().err
    assert "NaN or infinite at epoch 1, batch" in err and "of 45" in err

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setitem(cli.COMMANDS, "info", interrupted)
    assert cli.main(["info"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_traceback_on_request(monkeypatch):
    monkeypatch.setenv("BACKPROP_TRACEBACK", "1")
    with pytest.raises(ValueError, match="not a valid backprop model file"):
        cli.main(["info", __file__])


# -- progress bars ----------------------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_bar_in_a_file_prints_one_line():
    stream = io.StringIO()
    with progress_bar(total=100, desc="Epoch 1/2", unit="sample", file=stream, kind="plain") as bar:
        bar.update(40)
        bar.set_postfix({"loss": 0.5, "accuracy": 0.25})
        bar.update(60)
    text = stream.getvalue()
    assert text.count("\n") == 1 and "\r" not in text
    assert text.startswith("Epoch 1/2: 100% |") and "100/100" in text and "sample/s]" in text
    assert text.rstrip().endswith("loss=0.5000, accuracy=0.2500")


def test_plain_bar_in_a_terminal_redraws():
    stream = Terminal()
    bar = PlainProgressBar(total=10, file=stream, min_interval=0.0)
    for _ in range(10):
        bar.update()
    bar.set_postfix_str("done")
    bar.close()
    bar.close()  # twice is harmless
    text = stream.getvalue()
    assert text.count("\r") >= 10 and text.endswith("done\n") and text.count("\n") == 1


def test_progress_bar_kinds(monkeypatch):
    stream = io.StringIO()
    bar = progress_bar(10, file=stream, kind="off")
    bar.update(10)
    bar.close()
    assert stream.getvalue() == ""
    assert isinstance(progress_bar(10, file=io.StringIO()), PlainProgressBar)  # auto, not a terminal
    with pytest.raises(ValueError, match="kind must be one of"):
        progress_bar(10, kind="fancy")
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert isinstance(progress_bar(10, file=Terminal()), PlainProgressBar)  # auto, no tqdm
    with pytest.raises(ModuleNotFoundError, match=r"backprop-mlp\[progress\]"):
        progress_bar(10, kind="tqdm")


def test_progress_bar_uses_tqdm_in_a_terminal():
    tqdm = pytest.importorskip("tqdm")
    bar = progress_bar(10, file=Terminal())
    assert isinstance(bar, tqdm.tqdm)
    bar.close()
