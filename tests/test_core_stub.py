"""The type stub python/backprop/_core.pyi describes the compiled core.

mypy's stubtest (CI) checks names, but it cannot read the signatures of
pybind11 functions; pybind11 writes them as the first line of each docstring.
These tests parse those lines and the stub, and compare parameter names,
order and defaults, the public names of the module and of each class, and the
keys of the dicts that the core returns.
"""

import ast
import os
import re

import numpy as np
import pytest

import backprop as bp
from backprop import _core

STUB = os.path.join(os.path.dirname(bp.__file__), "_core.pyi")
compiled = _core._module


def stub_tree():
    with open(STUB, encoding="utf-8") as f:
        return ast.parse(f.read())


def stub_class(name):
    return next(node for node in stub_tree().body if isinstance(node, ast.ClassDef) and node.name == name)


def stub_parameters(function):
    """[(name, has_default)] of a stub function, self included."""
    args = function.args
    positional = args.posonlyargs + args.args
    first_default = len(positional) - len(args.defaults)
    return [(a.arg, i >= first_default) for i, a in enumerate(positional)]


def runtime_parameters(obj):
    """[(name, has_default)] from pybind11's signature line: 'name(a: T, b: U = None) -> R'."""
    first_line = obj.__doc__.splitlines()[0]
    match = re.fullmatch(r"\w+\((.*)\) -> .*", first_line)
    assert match, f"not a pybind11 signature: {first_line!r}"
    parameters, depth, current = [], 0, ""
    for char in match.group(1) + ",":  # split on the commas outside brackets
        if char == "," and depth == 0:
            if current.strip():
                parameters.append(current.strip())
            current = ""
            continue
        depth += (char in "[(") - (char in "])")
        current += char
    return [(p.split(":")[0].strip(), "=" in p) for p in parameters]


def stub_functions(body):
    return {node.name: node for node in body if isinstance(node, ast.FunctionDef)}


def public_names(obj):
    # Leading underscores: Python's and pybind11's own members (the module's _set_sharing is added by hand).
    return {name for name in dir(obj) if not name.startswith("_")}


def test_the_stub_names_every_public_function_and_class_of_the_core():
    stubbed = {node.name for node in stub_tree().body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert public_names(compiled) - stubbed == set()


@pytest.mark.parametrize("cls", ["Model", "OptimizerConfig"])
def test_the_stub_names_every_member_of_the_core_classes(cls):
    body = stub_class(cls).body
    stubbed = set(stub_functions(body))
    stubbed |= {node.target.id for node in body if isinstance(node, ast.AnnAssign)}
    assert public_names(getattr(compiled, cls)) - stubbed == set()


def test_every_method_of_model_has_the_stubs_parameters():
    stubbed = stub_functions(stub_class("Model").body)
    for name in public_names(compiled.Model):
        member = getattr(compiled.Model, name)
        if callable(member):
            assert runtime_parameters(member) == stub_parameters(stubbed[name]), name


def test_every_module_function_has_the_stubs_parameters():
    stubbed = stub_functions(stub_tree().body)
    for name in public_names(compiled) | {"_set_sharing"}:
        member = getattr(compiled, name)
        if callable(member) and not isinstance(member, type):
            assert runtime_parameters(member) == stub_parameters(stubbed[name]), name


def typed_dict_keys(name):
    return {node.target.id for node in stub_class(name).body if isinstance(node, ast.AnnAssign)}


def test_epoch_result_and_build_info_hold_the_stubs_keys():
    model = _core.Model([3, 2], ["identity"], "mse")
    params = np.zeros(model.n_params)
    X, targets = np.ones((4, 3)), np.zeros((4, 2))
    config = _core.OptimizerConfig()
    config.kind, config.lr = _core.OptimizerKind.sgd, 0.1
    result = model.train_epoch(params, model.dataset(X, targets=targets), np.arange(4), 2, config, None, None,
                               np.zeros(1, np.int64), False)
    assert set(result) == typed_dict_keys("_EpochResult")
    assert set(compiled.build_info()) == typed_dict_keys("_BuildInfo")
    assert len(model.evaluate(params, X, targets=targets)) == 3
