"""The Keras network and the fp32 TFLite file compute the official PyTorch function.

Every fixture in shared/fixtures/parity/ is checked, at its own (non-square) input size, on every output:
max |error| <= 1e-4 * max(1, largest |official value|).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from converter.checkpoint import build_keras_from_checkpoint

MEAN = np.array([0.485, 0.456, 0.406], np.float64)
STD = np.array([0.229, 0.224, 0.225], np.float64)


def _fixtures(shared_dir):
    return sorted((shared_dir / "fixtures" / "parity").glob("*.npz"))


@pytest.fixture(scope="session")
def parity_cases(shared_dir):
    """name -> (uint8 image HxWx3, official outputs NHWC dict, keras model, J)."""
    cases = {}
    for path in _fixtures(shared_dir):
        z = np.load(path)
        nchw = z["input"][0].astype(np.float64)
        pixels = (nchw.transpose(1, 2, 0) * STD + MEAN) * 255.0
        image = np.round(pixels)
        assert np.abs(pixels - image).max() < 1e-3  # the official input is a normalised uint8 image
        j = int(z["num_joints"])
        out0, out1 = z["out0"][0].transpose(1, 2, 0), z["out1"][0].transpose(1, 2, 0)
        official = {"heatmaps_s4": out0[..., :j], "tags_s4": out0[..., j:], "heatmaps_s2": out1}
        model, info = build_keras_from_checkpoint(shared_dir / "checkpoints" / str(z["checkpoint"]),
                                                  input_hw=image.shape[:2])
        assert info["num_joints"] == j
        cases[path.stem] = (image.astype(np.uint8), official, model, j)
    assert cases, "no parity fixtures found"
    return cases


def _assert_close(got: dict, official: dict, what: str):
    for name, ref in official.items():
        err = float(np.max(np.abs(np.asarray(got[name], np.float64) - ref)))
        tol = 1e-4 * max(1.0, float(np.max(np.abs(ref))))
        assert err <= tol, f"{what} {name}: max error {err:.3g} > {tol:.3g}"


@pytest.mark.needs_shared
def test_keras_matches_official_outputs(parity_cases):
    for name, (image, official, model, _j) in parity_cases.items():
        out = model(image[None].astype(np.float32))
        _assert_close({k: np.asarray(v)[0] for k, v in out.items()}, official, f"{name} keras")


@pytest.mark.needs_shared
@pytest.mark.slow
def test_fp32_tflite_matches_official_outputs(parity_cases, tmp_path_factory):
    from converter.export import export_tflite, inspect_tflite, check_io_contract
    from python_ref.runner import TFLiteRunner

    out_dir = tmp_path_factory.mktemp("parity-tflite")
    for name, (image, official, model, j) in parity_cases.items():
        data = export_tflite(model, "fp32", log=lambda *_: None)
        io = inspect_tflite(data)
        check_io_contract(io, "fp32", image.shape[:2], j)
        path = out_dir / f"{name}.tflite"
        path.write_bytes(data)
        _assert_close(TFLiteRunner(path)(image), official, f"{name} tflite")


@pytest.mark.needs_shared
def test_parity_fixtures_cover_every_checkpoint_family(shared_dir):
    names = {p.stem for p in _fixtures(shared_dir)}
    archs = {json.loads(str(np.load(p)["arch"]))["input_channel"] for p in _fixtures(shared_dir)}
    assert len(names) >= 4 and len(archs) >= 2
