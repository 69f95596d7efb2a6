"""`python -m backprop`: train a small network on the shipped digits data set."""

from __future__ import annotations

import argparse
import sys

import numpy as np

import backprop as bp
from backprop.datasets import load_digits


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m backprop",
                                     description="Train a network on the shipped UCI digits data set.")
    parser.add_argument("--version", action="version", version=f"backprop {bp.__version__}")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--backend", choices=["native", "numpy"], default="native")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    X, y = load_digits()
    X = X / 16.0
    order = np.random.default_rng(args.seed).permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]

    net = bp.Network([64, 64, 10], activation="relu", output="softmax", loss="cross_entropy",
                     backend=args.backend, seed=args.seed)
    net.summary()
    print(f"\nTraining on {len(train)} digits, testing on {n_test} (backend: {net.backend})")
    try:
        net.fit(X[train], y[train], epochs=args.epochs, batch_size=32,
                optimizer=bp.SGD(lr=0.05, momentum=0.9), validation_data=(X[test], y[test]), verbose=1)
    except (ValueError, TypeError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    result = net.evaluate(X[test], y[test])
    print(f"\nTest accuracy: {result['accuracy']:.4f} (loss {result['loss']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
