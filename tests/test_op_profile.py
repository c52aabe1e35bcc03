"""`litepose profile`: every op of a model cut out into a one-op model, timed alone."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from converter.cli import main
from converter.op_profile import read_model


@pytest.fixture(scope="module")
def small_keras_model():
    """A model with the deploy graph's kinds of ops: the stem's PAD + 3x3 conv, the blocked 7x7 depthwise (PAD,
    SPACE_TO_DEPTH, TRANSPOSE, grouped CONV_2D, DEPTH_TO_SPACE), a residual ADD and a CONCATENATION."""
    import keras

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
    return model


@pytest.fixture(scope="module")
def small_int8_model(small_keras_model):
    """The small model, full-integer."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    conv = tf.lite.TFLiteConverter.from_keras_model(small_keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ({"image": rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)}
                                           for _ in range(4))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.fixture(scope="module")
def small_fp16_model(small_keras_model):
    """The small model with fp16 weights: each weight reaches its op through a DEQUANTIZE of a constant."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(small_keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    return conv.convert()


def _reference_interpreter(content, **kw):
    """TFLite's own kernels (no XNNPACK), whose intermediate tensors can all be kept."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=content, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, **kw)
    interp.allocate_tensors()
    return interp


@pytest.mark.parametrize("form", ["int8", "fp16"])
def test_each_one_op_model_computes_what_the_op_computes_inside_the_whole_model(small_int8_model,
                                                                              small_fp16_model, form):
    """Fed the whole model's own intermediate tensors, every cut-out op gives the whole model's output
    tensors bit for bit: the one-op models keep the op, its constants and its quantisation (and, in an fp16
    file, the DEQUANTIZE of each of its weights, so that the weights stay constants)."""
    from converter.op_profile import one_op_models, read_model, weight_dequantizes

    content_whole = small_int8_model if form == "int8" else small_fp16_model
    whole = _reference_interpreter(content_whole, experimental_preserve_all_tensors=True)
    image = whole.get_input_details()[0]
    rng = np.random.default_rng(1)
    pixels = rng.integers(-128, 128, image["shape"]) if form == "int8" else rng.uniform(0, 1, image["shape"])
    whole.set_tensor(image["index"], pixels.astype(image["dtype"]))
    whole.invoke()
    by_name = {t["name"]: t["index"] for t in whole.get_tensor_details()}
    model = read_model(content_whole)
    at_load = weight_dequantizes(model)
    assert (len(at_load) > 0) == (form == "fp16")
    graph = model.subgraphs[0]
    weights = {graph.tensors[graph.operators[i].outputs[0]].name.decode() for i in at_load}
    names = []
    for index, name, content in one_op_models(model):
        names.append(name)
        one = _reference_interpreter(content)
        # a cut's inputs are activations only: the weights it reads through a DEQUANTIZE stay constants in it
        assert not {d["name"] for d in one.get_input_details()} & weights
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


def test_profile_runs_on_a_device_install_without_tensorflow(small_int8_model, tmp_path, repo_dir):
    """A device (pip install ., no TensorFlow) profiles its models too: the FlatBuffer API comes from
    ai-edge-litert. A fresh interpreter in which importing TensorFlow fails."""
    import subprocess
    import sys

    model = tmp_path / "small.tflite"
    model.write_bytes(small_int8_model)
    code = ("import sys, json; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
            "from click.testing import CliRunner\nfrom converter.cli import main\n"
            f"r = CliRunner().invoke(main, ['profile', {str(model)!r}, '--runs', '1', '--json', {str(tmp_path / 'p.json')!r}])\n"
            "print(json.dumps({'exit': r.exit_code, 'output': r.output[-500:]}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_dir, capture_output=True, text=True, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exit"] == 0, result["output"]
    report = json.loads((tmp_path / "p.json").read_text())
    assert len(report["ops"]) == len(read_model(small_int8_model).subgraphs[0].operators)


def test_profile_of_an_fp16_file_times_each_op_with_constant_weights(small_fp16_model, tmp_path):
    """The DEQUANTIZE ops of an fp16 file's weights run once at load: reported, not timed, not "could not run"."""
    from converter.op_profile import profile_ops, read_model, weight_dequantizes

    model = tmp_path / "small_fp16.tflite"
    model.write_bytes(small_fp16_model)
    report = profile_ops(model, runs=2)
    at_load = weight_dequantizes(read_model(small_fp16_model))
    assert report["untimed_ops"] == 0 and report["weight_dequantizes"] == len(at_load) > 0
    assert {o["index"] for o in report["ops"] if o.get("at_load")} == at_load
    assert all(o["ms"] is None for o in report["ops"] if o.get("at_load"))
    assert all(o["ms"] > 0 for o in report["ops"] if not o.get("at_load"))
    assert "DEQUANTIZE" not in report["by_op"]


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
