"""python_ref.runner.TFLiteRunner against the Keras model it was converted from (fp32, full-int8 with uint8
and int8 inputs), plus the failure modes a user meets (missing, corrupt, wrong signatures).

TensorFlow is allowed here (tests), never in python_ref. The tiny model follows the model I/O contract:
input `image` [1, H, W, 3] 0..255, three separately computed outputs with their signature names.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from python_ref.errors import LitePoseError
from python_ref.runner import OUTPUT_NAMES, TFLiteRunner

H, W, J = 32, 48, 5


def _tiny_keras_model(output_names=OUTPUT_NAMES):
    """Functional model with a dict output: keras.Model(..., {name: tensor}) gives TFLite signature outputs
    with exactly those names (a list output gives output_0, output_1, ...)."""
    import keras
    keras.utils.set_random_seed(3)
    image = keras.Input((H, W, 3), batch_size=1, name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(image)
    s2 = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    s4 = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(s2)
    # different ranges on purpose: heatmaps ~0..1, tags ~tens (each needs its own quantisation scale)
    hm4 = keras.layers.Conv2D(J, 1, activation="sigmoid")(s4)
    tg4 = keras.layers.Rescaling(20.0)(keras.layers.Conv2D(J, 1)(s4))
    hm2 = keras.layers.Conv2D(J, 1, activation="sigmoid")(s2)
    return keras.Model(image, dict(zip(output_names, (hm4, tg4, hm2))))


def _images(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        img[0, 0] = 0
        img[0, 1] = 255  # calibration sees the full 0..255 range -> input scale 1
        out.append(img)
    return out


def _convert(model, kind):
    import tensorflow as tf
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if kind == "fp16":  # float16 weights, float32 I/O
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif kind != "fp32":
        def representative():
            for img in _images(16, seed=11):
                yield [img.astype(np.float32)[None]]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8 if kind == "int8-uint8in" else tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{kind: path} for fp32 / int8 with uint8 input / int8 with int8 input, plus the Keras model."""
    model = _tiny_keras_model()
    folder = tmp_path_factory.mktemp("tiny tflite")  # a space in the path on purpose
    paths = {}
    for kind in ("fp32", "fp16", "int8-uint8in", "int8-int8in"):
        paths[kind] = folder / f"tiny-{kind}.tflite"
        paths[kind].write_bytes(_convert(model, kind))
    wrong = folder / "tiny-wrong-names.tflite"
    wrong.write_bytes(_convert(_tiny_keras_model(("heatmaps", "tags", "heatmaps_s2")), "fp32"))
    paths["wrong-names"] = wrong
    return model, paths


def _keras_outputs(model, img):
    out = model(img.astype(np.float32)[None], training=False)
    return {k: np.asarray(v)[0] for k, v in out.items()}


def test_fp32_runner_matches_keras(tiny_models):
    model, paths = tiny_models
    runner = TFLiteRunner(paths["fp32"], num_threads=1)
    assert runner.input_hw == (H, W) and runner.num_joints == J and runner.input_dtype == np.float32
    for img in _images(3, seed=5):
        got = runner(img)
        ref = _keras_outputs(model, img)
        assert set(got) == set(OUTPUT_NAMES)
        for name in OUTPUT_NAMES:
            assert got[name].dtype == np.float32 and got[name].shape == ref[name].shape
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-5, err_msg=name)
    # the three outputs are really different tensors (a name mix-up would pass a shape check)
    assert got["tags_s4"].std() > 5 * got["heatmaps_s4"].std()


@pytest.mark.parametrize("kind", ["fp32", "int8-uint8in"])
def test_outputs_of_one_frame_survive_the_next_frame(tiny_models, kind):
    """The runner returns the runtime's output copies without copying again: a result must still hold its
    own frame's values after the next call (no view into the interpreter's buffers)."""
    model, paths = tiny_models
    runner = TFLiteRunner(paths[kind], num_threads=1)
    first_img, second_img = _images(2, seed=11)
    first = runner(first_img)
    kept = {k: v.copy() for k, v in first.items()}
    second = runner(second_img)
    for name in OUTPUT_NAMES:
        np.testing.assert_array_equal(first[name], kept[name], err_msg=name)
        assert not np.array_equal(first[name], second[name]), name
        assert not np.shares_memory(first[name], second[name])
    raw = runner.run_raw(runner.prepare_input(first_img))
    runner.run_raw(runner.prepare_input(second_img))
    deq = runner.dequantize(raw)
    for name in OUTPUT_NAMES:
        np.testing.assert_allclose(deq[name], kept[name], rtol=1e-6, atol=1e-6, err_msg=name)


def test_fp16_runner_matches_keras_to_half_precision(tiny_models):
    model, paths = tiny_models
    runner = TFLiteRunner(paths["fp16"])
    assert runner.input_dtype == np.float32
    assert Path(paths["fp16"]).stat().st_size < Path(paths["fp32"]).stat().st_size
    img = _images(1, seed=6)[0]
    got, ref = runner(img), _keras_outputs(model, img)
    for name in OUTPUT_NAMES:
        assert got[name].dtype == np.float32
        scale = float(np.abs(ref[name]).max())
        np.testing.assert_allclose(got[name], ref[name], rtol=0, atol=5e-3 * scale, err_msg=name)


@pytest.mark.parametrize("kind, dtype, zero_point", [("int8-uint8in", np.uint8, 0), ("int8-int8in", np.int8, -128)])
def test_int8_runner_dequantises_each_output_with_its_own_parameters(tiny_models, kind, dtype, zero_point):
    model, paths = tiny_models
    runner = TFLiteRunner(paths[kind])
    assert runner.input_dtype == dtype
    assert runner.input_quantization == (1.0, zero_point)
    img = _images(1, seed=7)[0]
    batch = runner.prepare_input(img)
    assert batch.dtype == dtype and batch.shape == (1, H, W, 3)
    np.testing.assert_array_equal(batch[0].astype(np.int32), img.astype(np.int32) + zero_point)
    got = runner(img)
    ref = _keras_outputs(model, img)
    quant = runner.output_quantization
    assert quant["tags_s4"][0] > 5 * quant["heatmaps_s4"][0]  # separate scales per output
    for name in OUTPUT_NAMES:
        scale = quant[name][0]
        assert got[name].dtype == np.float32
        # every value is on its tensor's grid scale * (q - zp) ...
        steps = got[name] / scale + quant[name][1]
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3, err_msg=name)
        # ... and close to the float model (a few quantisation steps: tiny net, 8-bit everywhere)
        err = np.abs(got[name] - ref[name])
        assert err.mean() < 2 * scale and err.max() < 8 * scale, (name, err.mean() / scale, err.max() / scale)


@pytest.mark.parametrize("kind, scale, zero_point, pixels, stored", [
    ("int8-uint8in", 2.0, 3, [0, 1, 128, 255], [3, 4, 67, 131]),          # 0.5 and 127.5 round up
    ("int8-int8in", 2.0, -128, [0, 128, 255], [-128, -64, 0]),
    ("int8-uint8in", 254.6 / 255, 0, [0, 255], [0, 255])])                  # 255.4 clipped
def test_input_quantisation_outside_the_contract_rounds_halves_up_like_tflite_and_posecore(
        tiny_models, kind, scale, zero_point, pixels, stored):
    """A model whose integer input is not the contract's (uint8 / int8, scale 1) gets round(v / scale) + zp
    with halves rounded up: TFLite's QUANTIZE rounds half away from zero, and posecore's InputWriter writes the
    same bytes (InputWriterTest has the same cases)."""
    _, paths = tiny_models
    runner = TFLiteRunner(paths[kind])
    runner._input_scale, runner._input_zero_point = scale, zero_point
    img = np.zeros((H, W, 3), np.uint8)
    img[0, :len(pixels), 0] = pixels
    got = runner.prepare_input(img)[0, 0, :len(pixels), 0]
    assert got.tolist() == stored


def test_uint8_and_int8_inputs_give_identical_outputs(tiny_models):
    _, paths = tiny_models
    img = _images(1, seed=9)[0]
    a = TFLiteRunner(paths["int8-uint8in"])(img)
    b = TFLiteRunner(paths["int8-int8in"])(img)
    for name in OUTPUT_NAMES:
        np.testing.assert_array_equal(a[name], b[name])


def test_threads_option_does_not_change_results(tiny_models):
    _, paths = tiny_models
    img = _images(1, seed=13)[0]
    one = TFLiteRunner(paths["fp32"], num_threads=1)(img)
    two = TFLiteRunner(paths["fp32"], num_threads=2)(img)
    for name in OUTPUT_NAMES:
        np.testing.assert_allclose(one[name], two[name], rtol=1e-6, atol=1e-6)
    with pytest.raises(LitePoseError, match="threads"):
        TFLiteRunner(paths["fp32"], num_threads=0)


def test_wrong_image_shape_or_type_is_refused(tiny_models):
    _, paths = tiny_models
    runner = TFLiteRunner(paths["fp32"])
    with pytest.raises(ValueError):
        runner(np.zeros((H + 1, W, 3), np.uint8))
    with pytest.raises(ValueError):
        runner(np.zeros((H, W, 3), np.float32))


def test_model_without_the_signature_names_is_a_user_error(tiny_models):
    _, paths = tiny_models
    with pytest.raises(LitePoseError) as err:
        TFLiteRunner(paths["wrong-names"])
    msg = str(err.value)
    assert str(paths["wrong-names"]) in msg and "tags_s4" in msg and "heatmaps" in msg


@pytest.mark.parametrize("content", [
    None,  # missing
    b"",
    b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>",
    b"\x18\x00\x00\x00TFL3" + b"\x00" * 40,  # right identifier, garbage FlatBuffer
])
def test_missing_or_corrupt_model_is_a_user_error(tmp_path, content):
    path = tmp_path / "model.tflite"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LitePoseError) as err:
        TFLiteRunner(path)
    assert str(path) in str(err.value)


def test_a_checkpoint_given_as_the_model_says_what_to_do(tmp_path):
    import pickle
    import zipfile

    zipped = tmp_path / "weights.pth"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
    legacy = tmp_path / "weights-legacy.pth"
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))
    for path in (zipped, legacy):
        with pytest.raises(LitePoseError, match="a PyTorch checkpoint, not a .tflite model: convert it first") as err:
            TFLiteRunner(path)
        assert str(path) in str(err.value) and "--checkpoint" in str(err.value)
    other_zip = tmp_path / "photos.zip"               # a zip that is no checkpoint keeps the plain message
    with zipfile.ZipFile(other_zip, "w") as zf:
        zf.writestr("a.jpg", b"x")
    with pytest.raises(LitePoseError, match="not a TFLite model"):
        TFLiteRunner(other_zip)


def test_truncated_real_model_is_a_user_error(tiny_models, tmp_path):
    _, paths = tiny_models
    data = Path(paths["fp32"]).read_bytes()
    path = tmp_path / "truncated.tflite"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(LitePoseError) as err:
        TFLiteRunner(path)
    assert str(path) in str(err.value)


def _with_bad_tensor_index(content: bytes) -> bytes:
    """The model with its last operator reading a tensor index past the end: the FlatBuffer still parses,
    the graph does not (what a few flipped bytes in a download do)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    graph = model.subgraphs[0]
    op = graph.operators[-1]
    op.inputs = [len(graph.tensors) + 1000, *list(op.inputs)[1:]]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_model_with_a_broken_graph_is_a_user_error_when_loaded(tiny_models, tmp_path):
    """Refused in one line when the runner is made, before any image is read (not a traceback at the first
    frame); `litepose profile` refuses it the same way."""
    from click.testing import CliRunner

    from converter.cli import main

    _, paths = tiny_models
    path = tmp_path / "damaged.tflite"
    path.write_bytes(_with_bad_tensor_index(Path(paths["fp32"]).read_bytes()))
    with pytest.raises(LitePoseError, match="LiteRT cannot load this model") as err:
        TFLiteRunner(path)
    assert str(path) in str(err.value) and "tensor index" in str(err.value)
    result = CliRunner().invoke(main, ["profile", str(path), "--runs", "1"], standalone_mode=False)
    assert result.exit_code != 0 and str(path) in str(result.exception) and "tensor index" in str(result.exception)


@pytest.mark.parametrize("numpy_version, usable", [("2.4.6", False), ("1.26.4", True)])
def test_tflite_runtime_under_numpy_2_is_one_line_not_numpy_s_traceback(monkeypatch, numpy_version, usable):
    """Where only tflite-runtime 2.14 is installed (armv7l), numpy 2 must be refused before its import prints
    numpy's ABI traceback; with numpy 1 it is the runtime."""
    import sys
    import types
    from importlib import metadata

    import python_ref.runner as runner

    imported = []
    fake = types.ModuleType("tflite_runtime.interpreter")
    fake.Interpreter = type("Interpreter", (), {})
    package = types.ModuleType("tflite_runtime")
    package.interpreter = fake

    real_version = metadata.version
    monkeypatch.setattr(metadata, "version",
                        lambda name: "2.14.0" if name == "tflite-runtime" else real_version(name))
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)            # not installed
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", package)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake)
    monkeypatch.setattr(np, "__version__", numpy_version)
    original_import = __builtins__["__import__"] if isinstance(__builtins__, dict) else __builtins__.__import__

    def tracking_import(name, *args, **kwargs):
        if name.startswith("tflite_runtime"):
            imported.append(name)
        return original_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", tracking_import)
    if usable:
        assert runner._interpreter_class() is fake.Interpreter and imported == ["tflite_runtime.interpreter"]
    else:
        with pytest.raises(LitePoseError) as info:
            runner._interpreter_class()
        assert str(info.value) == (f"tflite-runtime 2.14.0 is built for numpy 1, and numpy {numpy_version} is "
                                   "installed: pip install 'numpy<2' (or pip install ai-edge-litert, where it has a wheel)")
        assert imported == []


def test_a_runtime_without_its_xnnpack_delegate_is_noticed_and_warned_about(tiny_models, monkeypatch):
    """Without /sys LiteRT silently leaves out XNNPACK and runs its builtin kernels (slower, other int8
    rounding: measured on aarch64 under qemu); the runner notices, and predict says so."""
    import functools

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    import python_ref.runner as runner_module
    from python_ref.predict import DeployedModel

    path = tiny_models[1]["int8-uint8in"]
    assert TFLiteRunner(path).xnnpack is True and DeployedModel(path).warnings == []
    builtin_only = functools.partial(
        Interpreter, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    monkeypatch.setattr(runner_module, "_interpreter_class", lambda *a: builtin_only)
    assert TFLiteRunner(path).xnnpack is False
    (warning,) = DeployedModel(path).warnings
    assert str(path) in warning and "XNNPACK delegate did not apply" in warning


@pytest.mark.parametrize("platform, says", [("linux", "pip install ai-edge-litert"), ("win32", "WSL")])
def test_no_runtime_installed_says_what_to_install_or_where_to_run(monkeypatch, platform, says):
    """Windows has no LiteRT wheel at all: naming pip there would send the user on a search that cannot end."""
    import sys

    import python_ref.runner as runner

    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)                      # none installed
    monkeypatch.setattr(runner, "_check_tflite_runtime_numpy", lambda: None)
    monkeypatch.setattr(sys, "platform", platform)
    with pytest.raises(LitePoseError) as info:
        runner._interpreter_class()
    assert "needs the LiteRT runtime" in str(info.value) and says in str(info.value)
