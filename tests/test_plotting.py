"""Pictures: History.plot, plotting.plot_history and plot_grad_norms, the error
without matplotlib, and the gradient-norm example script."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from backprop import plotting

REPO = Path(__file__).resolve().parents[1]


def history(loss="cross_entropy", validation=True, epochs=3, grad_norms=True, sizes=(4, 6, 5, 3)):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, sizes[0]))
    y = rng.integers(0, sizes[-1], 40) if loss == "cross_entropy" else rng.normal(size=(40, sizes[-1]))
    net = bp.Network(list(sizes), activation="tanh", loss=loss, backend="numpy", seed=0)
    return net.fit(X, y, epochs=epochs, batch_size=8, optimizer=bp.SGD(lr=0.05),
                   validation_data=(X[:10], y[:10]) if validation else None, record_grad_norms=grad_norms)


@pytest.fixture(scope="module")
def matplotlib():
    return pytest.importorskip("matplotlib")


def line_labels(ax):
    return [line.get_label() for line in ax.get_lines()]


def test_history_plot_draws_loss_and_accuracy(matplotlib, tmp_path):
    from matplotlib.figure import Figure

    hist = history()
    path = tmp_path / "curves.png"
    figure = hist.plot(path=path, title="run")
    assert isinstance(figure, Figure)
    loss_ax, accuracy_ax = figure.axes
    assert loss_ax.get_ylabel() == "loss" and accuracy_ax.get_ylabel() == "accuracy"
    assert line_labels(loss_ax) == ["training", "validation"]
    np.testing.assert_allclose(loss_ax.get_lines()[0].get_ydata(), hist["loss"])
    np.testing.assert_allclose(accuracy_ax.get_lines()[1].get_ydata(), hist["val_accuracy"])
    np.testing.assert_array_equal(loss_ax.get_lines()[0].get_xdata(), [1, 2, 3])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure._suptitle.get_text() == "run"


def test_plot_regression_history_without_validation_has_one_panel(matplotlib, tmp_path):
    figure = history(loss="mse", validation=False).plot(path=tmp_path / "c.svg")
    assert len(figure.axes) == 1 and line_labels(figure.axes[0]) == ["training"]
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")


def test_plot_history_accepts_a_dict_and_given_axes(matplotlib):
    from matplotlib.figure import Figure

    figure = Figure()
    axes = figure.subplots(1, 2)
    returned = plotting.plot_history({"loss": [1.0, 0.5], "accuracy": [0.5, 0.9]}, axes=axes)
    assert returned is figure
    assert line_labels(axes[1]) == ["training"]
    with pytest.raises(ValueError, match="needs 2 Axes"):
        plotting.plot_history({"loss": [1.0], "accuracy": [0.5]}, axes=axes[0])


def test_plot_history_bad_input(matplotlib):
    with pytest.raises(ValueError, match="no epochs"):
        bp.History().plot()
    with pytest.raises(ValueError, match="one value per epoch"):
        plotting.plot_history({"loss": [1.0, 0.5], "accuracy": [0.5]})
    with pytest.raises(TypeError, match="History or a dict"):
        plotting.plot_history([1.0, 0.5])


def test_plot_grad_norms_one_line_per_layer(matplotlib, tmp_path):
    hist = history(sizes=(4, 6, 6, 5, 3))
    figure = plotting.plot_grad_norms(hist, path=tmp_path / "norms.png", title="norms")
    ax = figure.axes[0]
    assert line_labels(ax) == ["layer 1", "layer 2", "layer 3", "layer 4 (output)"]
    for layer, line in enumerate(ax.get_lines()):
        np.testing.assert_allclose(line.get_ydata(), hist.grad_norms[:, layer])
    assert ax.get_yscale() == "log"
    assert (tmp_path / "norms.png").stat().st_size > 0
    # A plain array works too, and a linear axis on request.
    figure = plotting.plot_grad_norms(hist.grad_norms, log=False, legend=False)
    assert figure.axes[0].get_yscale() == "linear" and figure.axes[0].get_legend() is None


def test_plot_grad_norms_bad_input(matplotlib):
    with pytest.raises(ValueError, match="record_grad_norms=True"):
        plotting.plot_grad_norms(history(grad_norms=False))
    with pytest.raises(ValueError, match=r"\(n_epochs, n_layers\)"):
        plotting.plot_grad_norms(np.ones(3))
    with pytest.raises(ValueError, match=r"\(n_epochs, n_layers\)"):
        plotting.plot_grad_norms(np.ones((0, 2)))


def test_figures_do_not_go_through_pyplot(matplotlib):
    # Many plots in a loop must not pile up in pyplot (its >20-figures warning
    # is an error under this suite's filterwarnings).
    hist = history(epochs=1)
    for _ in range(25):
        hist.plot()
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


@pytest.mark.parametrize("call", ["history", "grad_norms"])
def test_without_matplotlib_the_error_names_the_extra(monkeypatch, call):
    hist = history(epochs=1)
    # None in sys.modules makes `import matplotlib...` raise ModuleNotFoundError.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "backprop-mlp\[plot\]"') as info:
        hist.plot() if call == "history" else plotting.plot_grad_norms(hist)
    assert info.value.name == "matplotlib"


def test_gradient_norm_example_shows_vanishing_gradients(matplotlib, tmp_path, capsys):
    script = REPO / "examples" / "gradient_norms.py"
    module = runpy.run_path(str(script))
    out = tmp_path / "norms.png"
    runs = module["main"](["--epochs", "2", "--out", str(out)])
    assert out.read_bytes()[:4] == b"\x89PNG"
    sigmoid, relu = runs["sigmoid"].grad_norms[-1], runs["relu"].grad_norms[-1]
    # The first sigmoid layer gets gradients orders of magnitude smaller than its output layer;
    # ReLU's stay within a small factor.
    assert sigmoid[0] < 1e-3 * sigmoid[-1]
    assert relu[0] > 0.1 * relu[-1]
    assert "Saved" in capsys.readouterr().out


def test_gradient_norm_example_shows_layer_norm_remedy(matplotlib, tmp_path, capsys):
    module = runpy.run_path(str(REPO / "examples" / "gradient_norms.py"))
    out = tmp_path / "layer_norm.png"
    runs = module["main"](["--compare", "norm", "--epochs", "2", "--out", str(out)])
    assert out.read_bytes()[:4] == b"\x89PNG"
    plain, normed = runs["tanh"].grad_norms[-1], runs["tanh + LayerNorm"].grad_norms[-1]
    # 16 tanh layers: the first gets a small fraction of the output layer's gradient, unless normalised.
    assert plain[0] < 0.1 * plain[-1]
    assert normed[0] > 0.5 * normed[-1]
    assert runs["tanh + LayerNorm"]["val_accuracy"][-1] > runs["tanh"]["val_accuracy"][-1] + 0.2


def test_gradient_norm_example_writes_to_the_working_directory(matplotlib, tmp_path, monkeypatch, capsys):
    # It used to overwrite the tracked docs/gradient_norms.png wherever it ran from.
    tracked = REPO / "docs" / "gradient_norms.png"
    before = tracked.read_bytes()
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(REPO / "examples" / "gradient_norms.py"))["main"](["--epochs", "1"])
    assert (tmp_path / "gradient_norms.png").read_bytes()[:4] == b"\x89PNG"
    assert tracked.read_bytes() == before


def test_documentation_pictures_exist():
    pages = {page.name: page.read_text() for page in (REPO / "docs").rglob("*.md")}
    for name, page in (("gradient_norms.png", "getting-started.md"), ("learning_curves.png", "getting-started.md"),
                       ("layer_norm_gradients.png", "regularization.md")):
        assert (REPO / "docs" / name).is_file()
        assert f"]({name})" in pages[page] or f"](../{name})" in pages[page]


def test_validation_every_other_epoch_is_drawn_at_its_epochs(matplotlib):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    hist = bp.Network([4, 5, 3], backend="numpy", seed=0).fit(X, y, epochs=4, validation_data=(X, y),
                                                               validation_freq=2)
    assert hist.epochs_of("val_loss") == [2, 4] and hist.epochs_of("loss") == [1, 2, 3, 4]
    figure = hist.plot()
    val_line = [line for line in figure.axes[0].get_lines() if line.get_label() == "validation"][0]
    assert list(val_line.get_xdata()) == [2, 4]
