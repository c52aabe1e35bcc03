"""The ONNX route: a hand-built ONNX graph equal to the Keras LitePose, and onnx2tf's conversion of it."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from converter.archs import PRESETS  # noqa: E402
from converter.bench import synthetic_images  # noqa: E402
from converter.convert import compare_outputs  # noqa: E402
from converter.network import build_litepose  # noqa: E402
from converter.onnx_route import (_randomise_bn, keras_to_onnx, onnx2tf_available, run_any_tflite,  # noqa: E402
                                  run_onnx, run_onnx2tf, tflite_ops)


@pytest.fixture(scope="module")
def xs_small():
    model = build_litepose(PRESETS["XS"], 14, (128, 192), name="litepose_XS")
    _randomise_bn(model, seed=3)
    image = synthetic_images((128, 192), 1, seed=5)[0]
    ref = {k: np.asarray(v)[0] for k, v in model(image.astype(np.float32)[None]).items()}
    return model, image, ref


def test_onnx_graph_matches_keras(xs_small, tmp_path):
    model, image, ref = xs_small
    proto = keras_to_onnx(model, tmp_path / "xs.onnx")
    ops = {n.op_type for n in proto.graph.node}
    # BN folded into every conv; only the BNs after the three deconvolution sums stay.
    assert sum(n.op_type == "BatchNormalization" for n in proto.graph.node) == 3
    assert {"Conv", "ConvTranspose", "Clip", "Relu", "Add"} <= ops
    assert [o.name for o in proto.graph.output] == ["heatmaps_s4", "tags_s4", "heatmaps_s2"]
    out = run_onnx(tmp_path / "xs.onnx", image)
    for name, v in compare_outputs(ref, out).items():
        assert v["max_abs_error"] < 1e-4 * max(1.0, v["max_abs_reference"]), name
        assert v["sqnr_db"] > 90, name


def test_onnx2tf_float_route_matches_keras(xs_small, tmp_path):
    reason = onnx2tf_available()
    if reason and not os.environ.get("CI"):
        pytest.skip(f"onnx2tf cannot run: {reason}")
    model, image, ref = xs_small
    keras_to_onnx(model, tmp_path / "xs.onnx")
    files = run_onnx2tf(tmp_path / "xs.onnx", tmp_path, None, log=lambda m: None)
    assert "fp32" in files
    out, how = run_any_tflite(files["fp32"], image)
    for name, v in compare_outputs(ref, out).items():
        assert v["sqnr_db"] > 90, (name, how)
    ops = tflite_ops(files["fp32"])
    assert ops.get("CONV_2D", 0) >= 70 and ops.get("DEPTHWISE_CONV_2D") == 39
    assert ops.get("TRANSPOSE", 0) == 0   # onnx2tf's point: no layout transposes left in a plain conv net
