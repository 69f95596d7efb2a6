"""Vanishing gradients, seen: a deep sigmoid network beside a deep ReLU one.

Trains two networks of 8 hidden layers of 32 units on the shipped digits
data set, identical but for the hidden activation, records the mean norm of
each layer's weight gradient ‖∂R/∂W‖ per epoch (fit(record_grad_norms=True))
and draws them side by side with the test accuracy.

The sigmoid's derivative is at most 1/4, so every layer the error signal
passes on its way back shrinks it: the first layers of the sigmoid network
get gradients orders of magnitude smaller than its last ones, and it learns
slowly. ReLU passes the signal through unchanged where units are active, so
its layers' gradients stay within a small factor of each other.

    python examples/gradient_norms.py [--epochs 30] [--out gradient_norms.png]

With ``--compare norm`` it draws the remedy instead: two networks of 16
hidden tanh layers of 32 units (weights N(0, 0.1²), plain SGD, lr 0.05),
without and with LayerNorm (norm="layer"). Without it the gradients vanish
on the way back and the network does not learn; LayerNorm rescales each
layer's pre-activations, so the error signal reaches the first layers and
it trains.

    python examples/gradient_norms.py --compare norm --out layer_norm_gradients.png

The picture goes to the working directory unless --out names another path
(the README's are docs/gradient_norms.png and docs/layer_norm_gradients.png,
made with the defaults).

Needs matplotlib (pip install "backprop-mlp[plot]").
"""

from __future__ import annotations

import argparse

import numpy as np

import backprop as bp
from backprop.datasets import load_digits
from backprop.plotting import plot_grad_norms

HIDDEN = [32] * 8
DEEP = [32] * 16


def train(activation, X_train, y_train, X_test, y_test, epochs, backend, seed=0):
    """A 64-(32×8)-10 network with `activation` in its hidden layers; returns its History."""
    net = bp.Network([X_train.shape[1], *HIDDEN, 10], activation=activation, backend=backend, seed=seed)
    return net.fit(X_train, y_train, epochs=epochs, batch_size=32, optimizer=bp.SGD(lr=0.02, momentum=0.9),
                   validation_data=(X_test, y_test), record_grad_norms=True)


def train_deep(norm, X_train, y_train, X_test, y_test, epochs, backend, seed=0):
    """A 64-(32×16)-10 tanh network, LayerNorm in every hidden layer or none; returns its History."""
    net = bp.Network([X_train.shape[1], *DEEP, 10], activation="tanh", norm=norm, init="normal", init_std=0.1,
                     backend=backend, seed=seed)
    return net.fit(X_train, y_train, epochs=epochs, batch_size=32, optimizer=bp.SGD(lr=0.05),
                   validation_data=(X_test, y_test), record_grad_norms=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default="gradient_norms.png", help="where to save the picture")
    parser.add_argument("--backend", choices=["native", "numpy"], default="native")
    parser.add_argument("--compare", choices=["activation", "norm"], default="activation",
                        help="sigmoid against relu (8 layers), or tanh without and with LayerNorm (16 layers)")
    args = parser.parse_args(argv)

    from matplotlib.figure import Figure

    X, y = load_digits()
    X = X / 16.0
    order = np.random.default_rng(0).permutation(len(y))
    test, train_rows = order[:360], order[360:]
    data = (X[train_rows], y[train_rows], X[test], y[test], args.epochs, args.backend)
    if args.compare == "norm":
        runs = {"tanh": train_deep(None, *data), "tanh + LayerNorm": train_deep("layer", *data)}
        shape = "16 hidden × 32"
    else:
        runs = {a: train(a, *data) for a in ("sigmoid", "relu")}
        shape = "8 hidden × 32"

    figure = Figure(figsize=(15, 4.2), layout="constrained")
    axes = figure.subplots(1, 3)
    axes[0].sharey(axes[1])
    for ax, (activation, history) in zip(axes, runs.items()):
        # One legend is enough (same colours in both); the ReLU panel has room for it.
        plot_grad_norms(history, ax=ax, title=f"{activation}: gradient norm per layer ({shape})",
                        legend=activation == list(runs)[-1])
        norms = history.grad_norms[-1]
        print(f"{activation:16s} last epoch: ‖∂R/∂W‖ layer 1 {norms[0]:.2e}, output layer {norms[-1]:.2e}; "
              f"test accuracy {history['val_accuracy'][-1]:.3f}")
    for activation, history in runs.items():
        axes[2].plot(history.epoch, history["val_accuracy"], label=activation)
    axes[2].set_title("test accuracy")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("accuracy")
    axes[2].set_ylim(0, 1)
    axes[2].grid(True, alpha=0.3)
    axes[2].legend()
    figure.savefig(args.out, dpi=100)
    print(f"Saved {args.out}")
    return runs


if __name__ == "__main__":
    main()
