"""Fashion-MNIST in 10 seconds of training: LayerNorm, dropout and AdamW against overfitting.

A 784-256-128-10 ReLU network with LayerNorm and dropout 0.1 in its hidden
layers, AdamW (lr 3e-3, cosine decay over 30 epochs), batches of 128; the
last 10,000 training rows are held out for validation, the weights of the
best validation accuracy are kept
(EarlyStopping(restore_best_weights=True)), and the test accuracy is
measured once, at the end. Training stops starting epochs when the next one
would pass the time budget (10 s by default, validation included).

    python examples/fashion_mnist_recipe.py [--seconds 10] [--dropout 0.1] [--norm layer|none] [--plain]

--plain trains the same network without dropout (and without LayerNorm
with --norm none) with Adam (lr 1e-3) instead, for comparison. Needs
Fashion-MNIST where backprop.datasets finds it (Debian's
dataset-fashion-mnist package, or --data DIR with the four IDX files).
"""

from __future__ import annotations

import argparse
import time

import backprop as bp
from backprop.callbacks import Callback, CosineDecay, EarlyStopping
from backprop.datasets import load_fashion_mnist


class TimeBudget(Callback):
    """Stops training before an epoch that would end after `seconds` from the start of fit."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs):
        elapsed = time.perf_counter() - self.started
        if elapsed * (epoch + 2) / (epoch + 1) > self.seconds:  # the next epoch would take about the mean
            self.network.stop_training = True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=30, help="at most this many; the cosine schedule's length")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--norm", choices=["layer", "none"], default="layer")
    parser.add_argument("--plain", action="store_true", help="no dropout, Adam: the baseline")
    parser.add_argument("--data", default=None, help="folder of the Fashion-MNIST IDX files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    (X, y), (X_test, y_test) = load_fashion_mnist(args.data)
    X_train, y_train, X_val, y_val = X[:-10000], y[:-10000], X[-10000:], y[-10000:]
    dropout = 0.0 if args.plain else args.dropout
    net = bp.Network([784, 256, 128, 10], activation="relu", dropout=dropout, norm=None if args.norm == "none" else args.norm,
                     seed=args.seed)
    optimizer = bp.Adam(lr=1e-3) if args.plain else bp.AdamW(lr=args.lr, weight_decay=1e-2)
    callbacks = [TimeBudget(args.seconds), EarlyStopping(monitor="val_accuracy", patience=args.epochs),
                 CosineDecay(args.epochs)]
    started = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=args.epochs, batch_size=args.batch_size, optimizer=optimizer,
                      validation_data=(X_val, y_val), callbacks=callbacks)
    seconds = time.perf_counter() - started
    test = net.evaluate(X_test, y_test)["accuracy"]
    print(f"{'plain Adam' if args.plain else f'dropout {dropout:g}, AdamW'}: {len(history.epoch)} epochs in "
          f"{seconds:.1f} s (threads {bp.get_num_threads()}); best validation accuracy "
          f"{max(history['val_accuracy']):.4f}, training accuracy {history['accuracy'][-1]:.4f}; "
          f"test accuracy {test:.4f}")
    return test


if __name__ == "__main__":
    main()
