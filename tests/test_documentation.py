"""Every Python example of the README and the documentation pages runs.

Each page's ```python blocks run in order in one namespace, in a temporary folder, after a small
context that the pages take as given (``X, y`` digits, ``X_val, y_val``, a ``net``, ``sizes``);
the pages' ``{doctest}`` blocks and the docstrings' examples run in CI's Sphinx doctest build.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest

import backprop as bp
from backprop.datasets import load_digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.relpath(os.path.join(folder, name), ROOT)
                               for folder, _, names in os.walk(os.path.join(ROOT, "docs"))
                               if "_build" not in folder for name in names if name.endswith(".md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _read(page):
    with open(os.path.join(ROOT, page)) as file:
        return file.read()


def _context():
    X, y = load_digits()
    X = X / 16.0
    return {"np": np, "bp": bp, "X": X, "y": y, "X_val": X[1400:], "y_val": y[1400:],
            "net": bp.Network([64, 32, 10], seed=0), "sizes": [64, 32, 10]}


@pytest.mark.parametrize("page", [p for p in PAGES if BLOCK.search(_read(p))])
def test_python_examples_run(page, tmp_path, monkeypatch):
    text = _read(page)
    if "import onnxruntime" in text:
        pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    namespace = _context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning on short examples
        for number, code in enumerate(BLOCK.findall(text), 1):
            try:
                exec(compile(code, f"{page}, example {number}", "exec"), namespace)
            except Exception as error:
                pytest.fail(f"{page}, example {number} raised {type(error).__name__}: {error}\n{code}")
