"""Move a network between backprop and PyTorch, both ways.

1. Build and train a small classifier in PyTorch (nn.CrossEntropyLoss on logits),
   bring it into backprop with Network.from_torch and check the predictions agree.
2. Train on in backprop (its C++ core), hand the weights back to PyTorch through
   a PyTorch-compatible state dict, and check again.

    python examples/torch_interchange.py

Needs PyTorch (pip install "backprop-mlp[torch]").
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import backprop as bp
from backprop.datasets import load_digits


def main():
    X, y = load_digits()
    X = (X / 16.0).astype(np.float32)
    X_train, y_train, X_test, y_test = X[:1400], y[:1400], X[1400:], y[1400:]

    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny matrices: threads cost more than they give
    module = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))  # logits out
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    inputs, labels = torch.from_numpy(X_train), torch.from_numpy(y_train)
    for _ in range(10):
        for batch in torch.randperm(len(inputs)).split(32):
            optimizer.zero_grad()
            nn.functional.cross_entropy(module(inputs[batch]), labels[batch]).backward()
            optimizer.step()

    # The last Linear gives logits: loss="cross_entropy" makes backprop put a softmax on them.
    net = bp.Network.from_torch(module, loss="cross_entropy", seed=0)
    with torch.no_grad():
        torch_classes = module(torch.from_numpy(X_test)).argmax(1).numpy()
    print(f"PyTorch -> backprop: {net!r}")
    print(f"  same predictions: {np.array_equal(net.predict(X_test), torch_classes)}, "
          f"test accuracy {net.evaluate(X_test, y_test)['accuracy']:.3f}")

    net.fit(X_train, y_train, epochs=10, batch_size=32, optimizer=bp.SGD(lr=0.02, momentum=0.9))
    module.load_state_dict({key: torch.from_numpy(value) for key, value in net.state_dict().items()})
    with torch.no_grad():
        torch_classes = module(torch.from_numpy(X_test)).argmax(1).numpy()
    print("backprop -> PyTorch (state dict):")
    print(f"  same predictions: {np.array_equal(net.predict(X_test), torch_classes)}, "
          f"test accuracy {net.evaluate(X_test, y_test)['accuracy']:.3f}")
    print(f"  net.to_torch() = {net.to_torch()}")


if __name__ == "__main__":
    main()
