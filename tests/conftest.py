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


@pytest.fixture(scope="session")
def converted_model(shared_dir, tmp_path_factory):
    """Factory: convert a shared checkpoint once per session and return the .tflite path.

    `converted_model("litepose-xs-crowdpose-random.pth", "256x256", "int8")`; int8 calibrates on the
    shared COCO images.
    """
    cache: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("converted")

    def convert(checkpoint: str, input_size: str, precision: str = "fp32", **kwargs) -> Path:
        key = (checkpoint, input_size, precision, tuple(sorted(kwargs.items())))
        if key not in cache:
            from converter.convert import run_convert

            out = root / f"{Path(checkpoint).stem}-{input_size}-{precision}-{len(cache)}.tflite"
            calib = str(shared_dir / "data" / "coco" / "images") if precision == "int8" else None
            run_convert(checkpoint=str(shared_dir / "checkpoints" / checkpoint), arch=None, joints=None,
                        input_size=input_size, precision=precision, output=str(out), calib_images=calib,
                        **kwargs)
            cache[key] = out
        return cache[key]

    return convert


def _with_exif_orientation(jpeg: bytes, value: int, byte_order: str = "little") -> bytes:
    """A JPEG with an EXIF APP1 segment holding only the orientation tag, as a phone camera writes it."""
    o = byte_order
    ifd = (1).to_bytes(2, o) + (0x0112).to_bytes(2, o) + (3).to_bytes(2, o) + (1).to_bytes(4, o) \
        + value.to_bytes(2, o) + b"\0\0" + (0).to_bytes(4, o)
    tiff = (b"II" if o == "little" else b"MM") + (42).to_bytes(2, o) + (8).to_bytes(4, o) + ifd
    payload = b"Exif\0\0" + tiff
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


@pytest.fixture
def exif_jpeg():
    """`exif_jpeg(jpeg_bytes, orientation, byte_order)`: the JPEG with that EXIF orientation tag."""
    return _with_exif_orientation

