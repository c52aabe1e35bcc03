"""python_ref must run on a device without TensorFlow: importing it (every module) must not import TensorFlow.

Runs in a fresh interpreter, because the test session itself may already have imported TensorFlow.
"""
from __future__ import annotations

import json
import subprocess
import sys

_PROBE = r"""
import importlib, json, pkgutil, sys
import {package}
names = ["{package}"] + sorted(m.name for m in pkgutil.walk_packages({package}.__path__, "{package}."))
for name in names:
    importlib.import_module(name)
{extra}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "torch"))
print(json.dumps({{"modules": names, "heavy": heavy}}))
"""


def _probe(repo_dir, package, extra=""):
    code = _PROBE.format(package=package, extra=extra)
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_dir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_python_ref_imports_no_tensorflow(repo_dir):
    found = _probe(repo_dir, "python_ref")
    # the probe really walked the package (the core modules of the reference side are all there)
    for name in ("python_ref.errors", "python_ref.io_utils", "python_ref.preprocess", "python_ref.runner",
                 "python_ref.predict", "python_ref.draw"):
        assert name in found["modules"]
    assert found["heavy"] == [], f"python_ref imported {found['heavy']}"


def test_cli_start_imports_no_tensorflow(repo_dir):
    """`litepose --help`, `predict --model` and `evaluate` start without TensorFlow (lazy imports)."""
    found = _probe(repo_dir, "python_ref", extra="import converter.cli")
    assert found["heavy"] == [], f"importing converter.cli pulled in {found['heavy']}"


def test_cli_start_imports_no_scipy(repo_dir):
    """SciPy (for the Hungarian matching) takes about a second to import: the decoder imports it on first
    use, so `litepose --help`, `evaluate` or an error message do not wait for it."""
    found = _probe(repo_dir, "python_ref",
                   extra="import converter.cli\nassert 'scipy' not in sys.modules, 'scipy imported at start'")
    assert "python_ref.decoder" in found["modules"]


def test_python_ref_never_imports_converter(repo_dir):
    """The layering: converter may use python_ref, never the reverse (not even lazily inside a function),
    so python_ref runs where only numpy, OpenCV and LiteRT are installed."""
    import ast

    offenders = []
    for path in sorted((repo_dir / "python_ref").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] == "converter"]
    assert len(list((repo_dir / "python_ref").rglob("*.py"))) >= 10     # the scan saw the package
    assert offenders == []
