"""python_ref.golden: the litepose-golden/1 writer that feeds the Kotlin GoldenVectorsTest."""
from __future__ import annotations

import json

import numpy as np
import pytest

from python_ref.decoder import FastDecoderParams, decode_fast
from python_ref.errors import LitePoseError
from python_ref.golden import export_golden, read_golden_case, write_golden_case
from python_ref.preprocess import Letterbox


@pytest.fixture(scope="module")
def outputs():
    """Two blobs for each of 14 joints at distinct tags: two people."""
    rng = np.random.default_rng(0)
    hm4 = rng.uniform(0, 0.02, (6, 8, 14)).astype(np.float32)
    hm2 = rng.uniform(0, 0.02, (12, 16, 14)).astype(np.float32)
    tags = np.zeros((6, 8, 14), np.float32)
    tags[:, 4:] = 3.0
    for j in range(14):
        hm2[2 + j % 8, 2, j] = 0.9
        hm2[2 + j % 8, 12, j] = 0.7
    return {"heatmaps_s4": hm4, "tags_s4": tags, "heatmaps_s2": hm2}


def test_export_round_trip(tmp_path, outputs):
    lb = Letterbox.fit((40, 50), (24, 32))
    path = export_golden(tmp_path, "case-1", {k: v[None] for k, v in outputs.items()}, letterbox=lb,
                         source={"note": "test"})
    doc = read_golden_case(path)
    expected = decode_fast(outputs)
    assert len(expected) == 2 and doc["joints"] == 14 and doc["input_hw"] == [24, 32]
    np.testing.assert_array_equal(np.array(doc["poses"], np.float32), expected.poses)  # bit-exact floats
    np.testing.assert_array_equal(np.array(doc["scores"], np.float32), expected.scores)
    for k, v in outputs.items():
        np.testing.assert_array_equal(doc["arrays"][k], v)
        assert (tmp_path / f"case-1.{k}.bin").stat().st_size == v.size * 4
    assert doc["decoder"] == {"detection_threshold": 0.1, "tag_threshold": 1.0, "top_k": 30, "max_num_people": 30,
                              "nms_kernel": 5, "adjust": True, "refine": True}
    image = np.array(doc["poses_image"], np.float32)
    np.testing.assert_allclose(image[..., :2], lb.to_image(expected.poses)[..., :2], atol=1e-4)
    assert doc["letterbox"]["offset_xy"] == list(lb.offset_xy)


def test_quantised_outputs_must_dequantise_exactly(tmp_path, outputs):
    raw = {k: np.clip(np.round(v / 0.01), -128, 127).astype(np.int8) for k, v in outputs.items()}
    real = {k: np.float32(0.01) * q.astype(np.float32) for k, q in raw.items()}
    quant = {k: (0.01, 0) for k in raw}
    path = export_golden(tmp_path, "q", real, quantization=quant, raw_outputs=raw)
    doc = json.loads(path.read_text())
    assert doc["quantization"]["tags_s4"]["dtype"] == "int8"
    assert (tmp_path / "q.tags_s4.raw.bin").read_bytes() == raw["tags_s4"].tobytes()
    with pytest.raises(LitePoseError, match="does not dequantise"):
        export_golden(tmp_path, "bad", outputs, quantization=quant, raw_outputs=raw)
    assert not (tmp_path / "bad.json").exists()


def test_user_errors(tmp_path, outputs):
    with pytest.raises(LitePoseError, match="case name"):
        export_golden(tmp_path, "a/b", outputs)
    with pytest.raises(LitePoseError, match="not a folder"):
        export_golden(tmp_path / "missing", "x", outputs)
    with pytest.raises(LitePoseError, match="do not fit"):
        write_golden_case(tmp_path, "x", {**outputs, "heatmaps_s2": outputs["heatmaps_s4"]}, [], [],
                          params=FastDecoderParams())
    assert list(tmp_path.iterdir()) == []
