"""A second `pip install` reuses the objects the first one compiled.

pip builds each install in a fresh isolated environment, with pybind11 under
a new temporary path; scikit-build-core, seeing a new environment, deletes
the build folder's top-level CMakeCache.txt and CMakeFiles/ and configures
afresh. The README's second command (`pip install ".[test]"`) still compiles
nothing because the cores' objects live in cpp/CMakeFiles/ and the compile
commands name a copy of pybind11's headers inside the build folder
(CMakeLists.txt). This test replays that sequence with CMake and Ninja on one
object file (a full build of the three cores takes minutes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJECT = "cpp/CMakeFiles/_core_baseline.dir/instances_float.cpp.o"

pytestmark = [pytest.mark.slow,  # heavy: builds the core twice
              pytest.mark.skipif(
                  not (shutil.which("cmake") and shutil.which("ninja") and os.path.isfile(os.path.join(REPO, "CMakeLists.txt"))),
                  reason="needs CMake, Ninja and the source tree")]


def configure(build, pybind11_root):
    subprocess.run(["cmake", "-S", REPO, "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                    f"-Dpybind11_DIR={pybind11_root / 'share' / 'cmake' / 'pybind11'}",
                    f"-DPython_EXECUTABLE={sys.executable}"], check=True, capture_output=True, text=True)


def test_objects_survive_a_new_build_environment(tmp_path):
    pybind11 = pytest.importorskip("pybind11")
    source = os.path.dirname(pybind11.__file__)
    environments = []
    for name in ("first", "second"):  # what two isolated build environments hold
        root = tmp_path / name / "pybind11"
        shutil.copytree(source, root)  # fresh files: new paths and new modification times
        environments.append(root)
    build = tmp_path / "build"

    configure(build, environments[0])
    subprocess.run(["ninja", "-C", str(build), OBJECT], check=True, capture_output=True, text=True)

    # scikit-build-core on a new isolated environment: clear the cache, configure again.
    (build / "CMakeCache.txt").unlink()
    shutil.rmtree(build / "CMakeFiles")
    shutil.rmtree(environments[0])
    configure(build, environments[1])
    plan = subprocess.run(["ninja", "-C", str(build), "-n", "-d", "explain", OBJECT], check=True,
                          capture_output=True, text=True)
    assert "no work to do" in plan.stdout, plan.stdout + plan.stderr
