"""`litepose profile`: every op of a model cut out into a one-op model, timed alone."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from converter.cli import main


@pytest.fixture(scope="module")
def small_int8_model():
    """A full-integer model with the deploy graph's kinds of ops: the stem's PAD + 3x3 conv, the blocked 7x7
    depthwise (PAD, SPACE_TO_DEPTH, TRANSPOSE, grouped CONV_2D, DEPTH_TO_SPACE), a residual ADD and a
    CONCATENATION."""
    import keras
    import tensorflow as tf

    from converter.rewrites import BlockedDepthwise

    rng = np.random.default_rng(0)
    x = keras.Input((32, 32, 3), batch_size=1, name="image")
    x_padded = keras.layers.ZeroPadding2D(((1, 0), (1, 0)))(x)    # PyTorch's stem padding, as the deploy graph
    y = keras.layers.Conv2D(16, 3, 2, padding="valid", activation="relu6")(x_padded)
    dw = BlockedDepthwise.make(7, 8, padding="same", activation="relu6", name="blocked")
    z = keras.layers.Add()([dw(y), y])
    z = keras.layers.Concatenate()([keras.layers.DepthwiseConv2D(3, padding="same")(z), z])
    out = keras.layers.Conv2D(5, 1, name="heads")(z)
    model = keras.Model(x, out)
    model.get_layer("blocked").set_weights([rng.normal(0, 0.2, (7, 7, 16, 1)).astype(np.float32),
                                            rng.normal(0, 0.1, 16).astype(np.float32)])
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ({"image": rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)}
                                           for _ in range(4))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def _reference_interpreter(content, **kw):
    """TFLite's own kernels (no XNNPACK), whose intermediate tensors can all be kept."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, **kw)
    interp.allocate_tensors()
    return interp


def test_each_one_op_model_computes_what_the_op_computes_inside_the_whole_model(small_int8_model):
    """Fed the whole model's own intermediate tensors, every cut-out op gives the whole model's output
    tensors bit for bit: the one-op models keep the op, its constants and its quantisation."""
    from converter.op_profile import one_op_models, read_model

    whole = _reference_interpreter(small_int8_model, experimental_preserve_all_tensors=True)
    image = whole.get_input_details()[0]
    whole.set_tensor(image["index"], np.random.default_rng(1).integers(-128, 128, image["shape"]).astype(np.int8))
    whole.invoke()
    by_name = {t["name"]: t["index"] for t in whole.get_tensor_details()}
    names = []
    for _, name, content in one_op_models(read_model(small_int8_model)):
        names.append(name)
        one = _reference_interpreter(content)
        for d in one.get_input_details():
            one.set_tensor(d["index"], whole.get_tensor(by_name[d["name"]]))
        one.invoke()
        for d in one.get_output_details():
            got, want = one.get_tensor(d["index"]), whole.get_tensor(by_name[d["name"]])
            assert got.dtype == want.dtype and np.array_equal(got, want), (name, d["name"])
    assert {"SPACE_TO_DEPTH", "TRANSPOSE", "DEPTH_TO_SPACE", "CONV_2D", "ADD", "CONCATENATION"} <= set(names)


def test_profile_reports_every_op_once_and_sums_by_op_type(small_int8_model, tmp_path):
    model = tmp_path / "small.tflite"
    model.write_bytes(small_int8_model)
    r = CliRunner().invoke(main, ["profile", str(model), "--runs", "2", "--json", str(tmp_path / "p.json"),
                                  "--markdown", str(tmp_path / "p.md")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "p.json").read_text())
    from converter.op_profile import read_model

    count = len(read_model(small_int8_model).subgraphs[0].operators)
    assert [o["index"] for o in report["ops"]] == list(range(count))
    assert all(o["ms"] > 0 for o in report["ops"]) and report["whole_model_ms"] > 0
    # the stem's PAD is read only by its conv (XNNPACK folds it in); the blocked layer's PAD feeds SPACE_TO_DEPTH
    pads = {o["index"]: o for o in report["ops"] if o["op"] == "PAD"}
    folded = {i: o["folded_into"] for i, o in pads.items() if "folded_into" in o}
    assert len(pads) == 2 and len(folded) == 1
    (pad, conv), = folded.items()
    assert report["ops"][conv]["op"] == "CONV_2D" and pad == min(pads)
    assert report["pads_folded_into_convs"] == {"count": 1, "ms_alone": pads[pad]["ms"]}
    counted = [o for o in report["ops"] if "folded_into" not in o]
    assert sum(v["count"] for v in report["by_op"].values()) == count - 1
    for op, v in report["by_op"].items():
        assert v["ms"] == pytest.approx(sum(o["ms"] for o in counted if o["op"] == op), abs=1e-3)
    assert report["sum_of_ops_ms"] == pytest.approx(sum(o["ms"] for o in counted), abs=1e-3)
    text = (tmp_path / "p.md").read_text()
    assert "| SPACE_TO_DEPTH | 1 |" in text and "| PAD | 1 |" in text and "1 PAD(s) read only by a convolution" in text


@pytest.mark.parametrize("cut, says", [(None, "not a TFLite model"), (0.5, "not a readable TFLite model")])
def test_a_file_that_is_not_a_model_is_one_line_and_writes_nothing(small_int8_model, tmp_path, cut, says):
    content = b"not a model at all" if cut is None else small_int8_model[:int(len(small_int8_model) * cut)]
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(content)
    r = CliRunner().invoke(main, ["profile", str(bad), "--json", str(tmp_path / "p.json")])
    errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert r.exit_code == 1 and len(errors) == 1 and str(bad) in errors[0] and says in errors[0], r.output
    assert "Traceback" not in r.output and not (tmp_path / "p.json").exists()
    r = CliRunner().invoke(main, ["profile", str(tmp_path / "missing.tflite")])
    assert r.exit_code == 1 and "no such model file" in r.output
