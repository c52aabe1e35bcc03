"""The measurement scripts (scripts/**/*.py) are run by hand from the docs, not by other tests: every name they
import from this package must exist, so a refactor cannot leave a documented command broken."""
from __future__ import annotations

import ast
import importlib

import pytest


def _package_imports(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in ("converter", "python_ref"):
            for alias in node.names:
                yield node.lineno, node.module, alias.name


def test_every_name_the_scripts_import_from_the_package_exists(repo_dir):
    pytest.importorskip("tensorflow")         # the scripts use converter modules that import it lazily
    scripts = sorted((repo_dir / "scripts").rglob("*.py"))
    assert len(scripts) >= 5
    missing, checked = [], 0
    for script in scripts:
        for line, module, name in _package_imports(script):
            checked += 1
            if not hasattr(importlib.import_module(module), name):
                missing.append(f"{script.name}:{line} from {module} import {name}")
    assert checked >= 10 and missing == []
