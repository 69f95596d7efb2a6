"""Sphinx configuration of backprop's documentation (``pip install ".[docs]"``, then
``python -m sphinx -W --keep-going -b html docs docs/_build/html``)."""

import os
import re
import sys

import backprop

project = "backprop"
author = "the backprop developers"
copyright = "2026, the backprop developers"
release = version = backprop.__version__

extensions = [
    "myst_parser",            # the pages are Markdown
    "sphinx.ext.autodoc",     # the API reference, from the docstrings
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",     # every ```{doctest} block and docstring example runs in CI
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from the built site: math renders without a network
    "numpydoc",
]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_validation_checks = set()
# Names the docstrings mention in their types that are no Python objects to link.
numpydoc_xref_param_type = False

doctest_global_setup = """
import numpy as np
import backprop as bp
"""

html_theme = "furo"
html_title = f"backprop {release}"

nitpicky = False
# Every internal reference must resolve; -W turns a broken one into a failed build.
suppress_warnings = []

sys.path.insert(0, os.path.abspath(".."))

# scikit-learn's attribute names end in "_" (coefs_, loss_curve_), which reStructuredText reads as
# links: the docstrings, written for help() and numpydoc, get them as literals here.
_TRAILING_UNDERSCORE = re.compile(r"(?<![`\w*])([A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?_)(?=[\s,.;:)\]/]|$)")
_DEFINITION = re.compile(r"^\s*[\w, ]+ : ")  # "name : type" lines: numpydoc reads the names itself


def _literal_attributes(app, what, name, obj, options, lines):
    def quote(text):  # outside literals; in "name : type" lines only the type, numpydoc reads the names
        out = []
        for line in text.split("\n"):
            head, sep, tail = line.partition(" : ") if _DEFINITION.match(line) else ("", "", line)
            out.append(head + sep + _TRAILING_UNDERSCORE.sub(r"``\1``", tail))
        return "\n".join(out)

    parts = "\n".join(lines).split("``")
    text = "``".join(part if k % 2 else quote(part) for k, part in enumerate(parts))
    lines[:] = text.split("\n")


def _skip_generated(app, what, name, obj, skip, options):
    # scikit-learn generates set_fit_request & co. on every estimator; they are its API, not ours.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _literal_attributes, priority=400)
    app.connect("autodoc-skip-member", _skip_generated)
