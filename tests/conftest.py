"""Shared test fixtures.

`shared_dir` is the one place that finds ../shared (env LITEPOSE_SHARED overrides). Where it is
absent a test that needs it skips with the reason; under CI (env CI set) it must be present, so the
fixture fails instead of skipping.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_shared() -> Path | None:
    env = os.environ.get("LITEPOSE_SHARED")
    candidates = [Path(env)] if env else [REPO.parent / "shared"]
    for c in candidates:
        if (c / "checkpoints").is_dir() and (c / "fixtures").is_dir():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    found = _find_shared()
    if found is None:
        msg = ("../shared (checkpoints, fixtures, data) not found next to the repo and "
               "LITEPOSE_SHARED is not set")
        if os.environ.get("CI"):
            pytest.fail(msg + " - CI must have it")
        pytest.skip(msg)
    return found


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO
