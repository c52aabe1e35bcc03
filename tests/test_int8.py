"""INT8 export: full-integer graph, I/O contract, determinism, measured activation ranges, and (slow)
the real LitePose-M accuracy against its float network."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from converter.convert import run_convert  # noqa: E402

XS = "litepose-xs-crowdpose-random.pth"
INTEGER_OPS = {"ADD", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "PAD", "RESHAPE",
               "STRIDED_SLICE"}


def _convert(shared_dir, out, calib, **kw):
    return run_convert(checkpoint=str(shared_dir / "checkpoints" / XS), arch=None, joints=None,
                       input_size=kw.pop("input_size", "128x128"), precision="int8", output=str(out),
                       calib_images=str(calib), calib_count=kw.pop("calib_count", 4), **kw)


@pytest.fixture(scope="session")
def xs_int8(shared_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "xs_int8.tflite"
    card = _convert(shared_dir, out, shared_dir / "data" / "coco" / "images")
    return out, card


@pytest.mark.needs_shared
def test_full_integer_graph_and_io_contract(xs_int8):
    from ai_edge_litert.interpreter import Interpreter

    path, card = xs_int8
    image = card["inputs"]["image"]
    assert (image["dtype"], image["scale"], image["zero_point"]) == ("uint8", 1.0, 0)
    assert all(o["dtype"] == "float32" for o in card["outputs"].values())
    ops = card["ops"]
    assert set(ops) - {"QUANTIZE", "DEQUANTIZE"} <= INTEGER_OPS, ops
    assert ops["QUANTIZE"] == 1 and ops["DEQUANTIZE"] == 3          # uint8 -> int8 in, int8 -> float out
    interp = Interpreter(model_path=str(path))
    float_tensors = [t["name"] for t in interp.get_tensor_details()
                     if t["dtype"] == np.float32 and len(t["shape"]) == 4]
    assert len(float_tensors) == 3, float_tensors                    # only the three outputs are float


@pytest.mark.needs_shared
def test_dim_calibration_images_keep_the_contract_input(shared_dir, tmp_path):
    """Calibration frames that never reach white (a dim room, night) must not move the input's int8 parameters:
    the contract's scale 1 / zero point 0 hold whatever the calibration pixels are (the converter used to take
    the input range from them, and the build then failed its own I/O check at the end)."""
    import cv2

    calib = tmp_path / "dim"
    calib.mkdir()
    for k, source in enumerate(sorted((shared_dir / "data" / "coco" / "images").iterdir())[:2]):
        dim = (cv2.imread(str(source)).astype(np.float32) * 0.6 + 10).astype(np.uint8)     # 10..163
        cv2.imwrite(str(calib / f"dim{k}.png"), dim)
    for dtype, zero_point in (("uint8", 0), ("int8", -128)):
        card = _convert(shared_dir, tmp_path / f"dim_{dtype}.tflite", calib, input_size="64x64", input_dtype=dtype)
        image = card["inputs"]["image"]
        assert (image["dtype"], image["scale"], image["zero_point"]) == (dtype, 1.0, zero_point)


@pytest.mark.needs_shared
def test_skipped_calibration_files_are_said_again_at_the_end(shared_dir, tmp_path, capsys):
    """A bad file in the calibration folder is skipped (one bad photo must not end a long conversion), and the
    last lines say so, since the line at the moment it was skipped has scrolled away."""
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(sorted((shared_dir / "data" / "coco" / "images").iterdir())[0], calib / "a_good.jpg")
    (calib / "b_page.jpg").write_text("<!DOCTYPE html><html><body>404</body></html>")
    card = _convert(shared_dir, tmp_path / "m.tflite", calib, input_size="64x64")
    assert [s["file"] for s in card["calibration"]["skipped"]] == ["b_page.jpg"] and card["calibration"]["count"] == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "warning: 1 calibration file(s) skipped" in last and "b_page.jpg" in last and "m.json" in last


@pytest.mark.needs_shared
def test_model_card_and_manifest_record_the_calibration(xs_int8, shared_dir):
    path, card = xs_int8
    calib = card["calibration"]
    folder = shared_dir / "data" / "coco" / "images"
    assert calib["count"] == 4
    for im in calib["images"]:
        assert im["sha256"] == hashlib.sha256((folder / im["file"]).read_bytes()).hexdigest()
    assert card["graph"] == "deploy" and card["rewrites"]["ranges"] == "calibration images"
    assert card["activation_ranges"] == "mse-backbone" and card["weight_rounding"] == "gptq"
    assert card["saturating_sums_narrowed"] is True and card["summed_biases_centred"] is True
    assert set(card["output_bias_correction"]) == {"heatmaps_s4", "tags_s4", "heatmaps_s2"}
    manifest = json.loads((path.parent / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["file"] == path.name)
    assert entry["precision"] == "int8" and entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.needs_shared
def test_same_inputs_give_a_byte_identical_file(xs_int8, shared_dir, tmp_path):
    path, _ = xs_int8
    again = tmp_path / "again.tflite"
    _convert(shared_dir, again, shared_dir / "data" / "coco" / "images")
    assert again.read_bytes() == path.read_bytes()


@pytest.mark.needs_shared
def test_output_bias_correction_can_be_turned_off(xs_int8, shared_dir, tmp_path):
    """--no-output-bias-correction: the card says so, and the file differs from the default one only in the
    output convs' biases (same size, same ops)."""
    path, card = xs_int8
    off = tmp_path / "off.tflite"
    card_off = _convert(shared_dir, off, shared_dir / "data" / "coco" / "images", output_bias_correction=False)
    assert card_off["output_bias_correction"] is False
    assert card_off["ops"] == card["ops"] and card_off["size_bytes"] <= card["size_bytes"]
    assert card_off["sha256"] != card["sha256"]


@pytest.mark.needs_shared
def test_measured_ranges_fix_the_in_place_add_calibration(xs_int8, shared_dir):
    """The converter's calibrator gives a residual block's point-wise conv output the range of the residual
    sum (the in-place ADD overwrote it); measured ranges give it its own, narrower scale."""
    from ai_edge_litert.interpreter import Interpreter

    from converter.checkpoint import build_keras_from_checkpoint
    from converter.export import export_tflite
    from converter.rewrites import build_deploy_model
    from python_ref.preprocess import letterbox, load_image_rgb

    def scales(interp):
        out = {}
        for t in interp.get_tensor_details():
            first = t["name"].split(";")[0]
            for kind in ("point_conv", "add"):
                key = first.split("/")[1].rsplit("_", 1)[0] if "/" in first else ""
                if key.endswith(f"_{kind}") and t["quantization"][0] > 0:
                    out[key] = t["quantization"][0]
        return out

    path, _ = xs_int8
    fixed = scales(Interpreter(model_path=str(path)))
    blocks = [k[:-len("_point_conv")] for k in fixed if k.endswith("_point_conv") and k[:-11] + "_add" in fixed]
    assert len(blocks) >= 10
    ratios = [fixed[b + "_point_conv"] / fixed[b + "_add"] for b in blocks]
    assert min(ratios) < 0.7                       # measured: the conv output is narrower than the sum

    model, info = build_keras_from_checkpoint(shared_dir / "checkpoints" / XS, input_hw=(128, 128))
    folder = shared_dir / "data" / "coco" / "images"
    images = [letterbox(load_image_rgb(p), (128, 128))[0] for p in sorted(folder.iterdir())]
    deploy = build_deploy_model(model, info["arch"], info["num_joints"])
    plain = export_tflite(deploy, "int8", images, log=lambda m: None, recalibrate=False)
    converter_scales = scales(Interpreter(model_content=plain))
    assert all(abs(converter_scales[b + "_point_conv"] / converter_scales[b + "_add"] - 1) < 1e-6 for b in blocks)


@pytest.mark.needs_shared
def test_int8_outputs_follow_the_float_network(xs_int8, shared_dir):
    from converter.checkpoint import build_keras_from_checkpoint
    from converter.convert import compare_outputs
    from python_ref.preprocess import letterbox, load_image_rgb
    from python_ref.runner import TFLiteRunner

    path, _ = xs_int8
    model, _ = build_keras_from_checkpoint(shared_dir / "checkpoints" / XS, input_hw=(128, 128))
    image = letterbox(load_image_rgb(shared_dir / "data" / "crowdpose" / "images" / "106848.jpg"), (128, 128))[0]
    ref = {k: np.asarray(v)[0] for k, v in model(image[None].astype(np.float32)).items()}
    cmp = compare_outputs(ref, TFLiteRunner(path)(image))
    for name, v in cmp.items():
        assert v["sqnr_db"] > 10.0, (name, v)       # random weights, held-out image; a broken graph gives ~0


@pytest.mark.slow
@pytest.mark.needs_shared
def test_real_litepose_m_int8(shared_dir, tmp_path):
    """The one real-size check: LitePose-M at 448x448 calibrated on COCO + AIC + people, validated on the
    two CrowdPose images (not calibration images) against the float checkpoint, with the contract's
    mean-colour letterbox. Floors are the measured values (docs/int8.md) minus a margin."""
    from converter.validate import run_validate

    calib = tmp_path / "calib"
    calib.mkdir()
    for sub in ("coco/images", "aic/images", "people"):
        for p in (shared_dir / "data" / sub).iterdir():
            shutil.copy(p, calib / p.name)
    ckpt = str(shared_dir / "checkpoints" / "litepose-auto-m-crowdpose-448.pth")
    out = tmp_path / "m_int8.tflite"
    card = run_convert(checkpoint=ckpt, arch=None, joints=None, input_size="448x448", precision="int8",
                       output=str(out), calib_images=str(calib))
    # the offset of heatmaps_s4 is folded into its bias (22.6 -> 23.2 dB on the calibration images)
    fix = card["output_bias_correction"]["heatmaps_s4"]
    assert fix["corrected"] and fix["sqnr_db_after"] > fix["sqnr_db_before"] + 0.2, fix
    crowd = shared_dir / "data" / "crowdpose"
    report = run_validate(model=str(out), reference=ckpt, images=str(crowd / "images"),
                          annotations=str(crowd / "annotations.json"), report=str(tmp_path / "report"),
                          threads=(1,), runs=3)
    assert report["images"]["calibration_overlap"] == []
    sqnr = {k: v["sqnr_db"] for k, v in report["outputs"].items()}
    assert sqnr["heatmaps_s4"] > 20.5 and sqnr["tags_s4"] > 28 and sqnr["heatmaps_s2"] > 20.5, sqnr  # 22.9/31.4/22.7
    assert report["oks_ap_vs_reference"]["AP"] >= 0.9                                          # 0.901
    assert report["annotations"]["drop"] <= 1.0                                                # -5.0 points
    assert report["latency"][0]["median_ms"] < 400     # straightforward int8: ~4,000 ms; this graph ~70 ms


def test_bias_correction_removes_the_mean_int8_weight_error():
    """Empirical bias correction on a depthwise pair summed by ADD (the split-7x7 pattern: the bias-free
    piece hands its correction to `_part0`) and a 1x1 conv after it. With every kernel on TFLite's
    per-channel int8 grid, the per-channel mean output error on held-out data (same distribution as the
    calibration data, not the same samples) shrinks after the correction."""
    import keras

    from converter.export import empirical_bias_correction
    from converter.rewrites import int8_grid

    rng = np.random.default_rng(3)
    x_in = keras.Input((16, 16, 8), batch_size=1)
    a = keras.layers.DepthwiseConv2D(3, padding="same", name="dw_part0")(x_in)
    b = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, use_bias=False, name="dw_part1")(x_in)
    s = keras.layers.Add(name="dw_sum")([a, b])
    y = keras.layers.Conv2D(6, 1, name="pw")(s)
    model = keras.Model(x_in, [s, y])
    for layer in model.layers:
        w = layer.get_weights()
        if not w:
            continue
        k = rng.normal(0, 0.1, w[0].shape).astype(np.float32)
        k.reshape(-1, k.shape[-1] if layer.name == "pw" else k.shape[2])[0] = 1.5  # one outlier: coarse grid
        layer.set_weights([k] + [rng.normal(0, 0.1, v.shape).astype(np.float32) for v in w[1:]])

    def data(n):  # positive, uneven channel means: the weight error does not average out
        return [rng.uniform(0, 2, (16, 16, 8)).astype(np.float32) * np.linspace(0.5, 3, 8, dtype=np.float32)
                for _ in range(n)]

    calib, held_out = data(6), data(6)
    float_w = [w.copy() for w in model.get_weights()]

    ref = [model(x[None]) for x in held_out]       # the float model, original biases

    def mean_errors():
        saved = [w.copy() for w in model.get_weights()]
        for layer in model.layers:
            w = layer.get_weights()
            if w:
                axis = 2 if isinstance(layer, keras.layers.DepthwiseConv2D) else 3
                layer.set_weights([int8_grid(w[0], axis)] + w[1:])
        q = [model(x[None]) for x in held_out]
        model.set_weights(saved)
        return [np.abs(np.mean([np.asarray(r[i]) - np.asarray(t[i]) for r, t in zip(ref, q)], axis=(0, 1, 2, 3)))
                for i in range(2)]

    before = mean_errors()
    corrected = empirical_bias_correction(model, calib, log=lambda m: None)
    assert set(corrected) == {"dw_part0", "dw_part1", "pw"}
    after = mean_errors()
    for b_, a_ in zip(before, after):
        assert b_.mean() > 1e-3                        # the int8 weights do shift the outputs
        assert a_.mean() < 0.3 * b_.mean(), (b_, a_)   # and the correction removes most of it
    # kernels untouched, only biases moved
    for w0, w1 in zip(float_w, model.get_weights()):
        assert w0.shape != w1.shape or w0.ndim == 1 or np.array_equal(w0, w1)


@pytest.mark.needs_shared
def test_mse_clipping_scope_leaves_the_heads_at_min_max(shared_dir):
    """range_method="mse-backbone" clips (never widens) backbone activations and leaves every tensor of the
    deconvolution / head layers exactly at its measured min/max, where clipping cost heatmap peaks."""
    from ai_edge_litert.interpreter import Interpreter

    from converter.checkpoint import build_keras_from_checkpoint
    from converter.export import _producer_layer, export_tflite
    from converter.rewrites import build_deploy_model
    from python_ref.preprocess import letterbox, load_image_rgb

    model, info = build_keras_from_checkpoint(shared_dir / "checkpoints" / XS, input_hw=(128, 128))
    folder = shared_dir / "data" / "coco" / "images"
    images = [letterbox(load_image_rgb(p), (128, 128))[0] for p in sorted(folder.iterdir())]
    deploy = build_deploy_model(model, info["arch"], info["num_joints"])

    def scales(method):
        data = export_tflite(deploy, "int8", images, log=lambda m: None, range_method=method)
        out = {}
        for t in Interpreter(model_content=data).get_tensor_details():
            q = t["quantization_parameters"]["scales"]
            if t["dtype"] == np.int8 and len(q) == 1 and "/" in t["name"]:
                out[t["name"]] = float(q[0])
        return out

    minmax, scoped = scales("minmax"), scales("mse-backbone")
    assert set(minmax) == set(scoped)
    heads = [n for n in minmax if _producer_layer(n).startswith(("deconv_", "final_"))]
    backbone = [n for n in minmax if _producer_layer(n).startswith("stage_")]
    assert len(heads) >= 5 and len(backbone) >= 20
    assert all(scoped[n] == minmax[n] for n in heads)
    assert all(scoped[n] <= minmax[n] * (1 + 1e-6) for n in backbone)
    assert sum(scoped[n] < 0.95 * minmax[n] for n in backbone) >= len(backbone) // 4


def _contract_outputs(hm_in, tags_in, hm2_in, joints: int) -> dict:
    """The three named outputs `export_tflite` expects, as 1x1 convs of small test graphs."""
    import keras

    return {"heatmaps_s4": keras.layers.Conv2D(joints, 1, name="hm")(hm_in),
            "tags_s4": keras.layers.Conv2D(joints, 1, name="tags")(tags_in),
            "heatmaps_s2": keras.layers.Conv2D(2, 1, name="hm2")(hm2_in)}


def test_addends_of_a_saturating_sum_get_only_the_range_that_reaches_it():
    """A 3-piece depthwise sum followed by ReLU6 (the split-7x7 pattern): each addend's int8 range is cut to
    [out_lo - other_hi, out_hi - other_lo] (hand-computed here from the float tensors), which leaves the
    sum unchanged and makes its int8 output closer to float; a piece that also feeds an output keeps its
    full range."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from converter.export import _producer_layer, export_tflite

    rng = np.random.default_rng(7)
    image = keras.Input((16, 16, 3), batch_size=1, name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu6", name="expand")(image)
    p0 = keras.layers.DepthwiseConv2D(3, padding="same", name="piece0")(h)
    p1 = keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=2, use_bias=False, name="piece1")(h)
    p2 = keras.layers.DepthwiseConv2D(1, use_bias=False, name="piece2")(h)
    s01 = keras.layers.Add(name="sum01")([p0, p1])
    y = keras.layers.ReLU(6.0, name="out_relu6")(keras.layers.Add(name="sum")([s01, p2]))
    shared = keras.layers.DepthwiseConv2D(1, name="shared")(h)      # feeds a sum and an output
    z = keras.layers.ReLU(6.0, name="z_relu6")(keras.layers.Add(name="zsum")([y, shared]))
    model = keras.Model(image, _contract_outputs(y, shared, z, 2))
    for layer in model.layers:
        w = layer.get_weights()
        if w:
            # one wide piece: ReLU6 after the sum throws most of its range away
            scale = {"expand": 0.02, "piece0": 0.3, "piece1": 0.3, "piece2": 4.0}.get(layer.name, 1.0)
            layer.set_weights([rng.normal(0, scale, v.shape).astype(np.float32) for v in w])

    def images(n):
        return [rng.uniform(0, 255, (16, 16, 3)).astype(np.float32) for _ in range(n)]

    calib, held_out = images(8), images(4)
    probe = keras.Model(image, [p0, p1, p2, s01, y])
    vals = [np.concatenate([np.asarray(probe(x[None])[k]).ravel() for x in calib]) for k in range(5)]
    lo, hi = [v.min() for v in vals], [v.max() for v in vals]

    def int8_scales(data):
        return {_producer_layer(t["name"]).rsplit("_", 1)[0]: float(t["quantization_parameters"]["scales"][0])
                for t in Interpreter(model_content=data).get_tensor_details()
                if t["dtype"] == np.int8 and len(t["quantization_parameters"]["scales"]) == 1 and "/" in t["name"]}

    def run(data):
        interp = Interpreter(model_content=data)
        runner = interp.get_signature_runner()
        return [runner(image=x[None].astype(np.uint8))["heatmaps_s4"] for x in held_out]

    opts = {"log": lambda m: None, "range_method": "minmax", "weight_rounding": "nearest",
            "output_bias_correction": False}   # this feature alone
    wide = export_tflite(model, "int8", calib, narrow_sums=False, **opts)
    narrow = export_tflite(model, "int8", calib, **opts)
    s_wide, s_narrow = int8_scales(wide), int8_scales(narrow)

    def expected_scale(a, b):
        return (max(b, 0.0) - min(a, 0.0)) / 255

    # last addend: the sum after it is clamped to [0, 6] by ReLU6; s01's range is what reaches it
    assert s_narrow["piece2"] == pytest.approx(
        expected_scale(max(lo[2], 0 - hi[3]), min(hi[2], 6 - lo[3])), rel=1e-3)
    assert s_wide["piece2"] == pytest.approx(expected_scale(lo[2], hi[2]), rel=1e-3)
    assert s_narrow["piece2"] < 0.5 * s_wide["piece2"]
    assert all(s_narrow[n] <= s_wide[n] * (1 + 1e-6) for n in s_wide)     # never widened
    assert s_narrow["shared"] == s_wide["shared"]

    ref = [np.asarray(model(x[None])["heatmaps_s4"]) for x in held_out]

    def sqnr(outs):
        err = sum(float(np.sum((o - r) ** 2)) for o, r in zip(outs, ref))
        return 10 * np.log10(sum(float(np.sum(r ** 2)) for r in ref) / err)

    assert sqnr(run(narrow)) > sqnr(run(wide)) + 2      # measured: 29.8 vs 27.1 dB


def test_gptq_rounding_stays_on_the_int8_grid_and_lowers_the_output_error():
    """`_gptq_rows` against nearest rounding: same grid (the converter keeps the values), each row's largest
    weight unchanged, less error e H e^T on correlated inputs; with uncorrelated inputs (H = I) nothing is
    worth pushing to other columns and it is exactly nearest rounding."""
    from converter.export import _gptq_rows
    from converter.rewrites import int8_grid

    rng = np.random.default_rng(5)
    x = rng.normal(size=(4000, 24)) @ rng.normal(size=(24, 24)) + 0.7   # correlated, non-zero mean
    w = rng.normal(size=(12, 24))
    h = x.T @ x
    nearest = int8_grid(w.T, 1).T.astype(np.float64)
    q = _gptq_rows(w, h)
    scale = np.abs(w).max(axis=1, keepdims=True) / 127
    assert np.max(np.abs(int8_grid(q.T, 1).T - q) / scale) < 1e-4          # on the grid TFLite computes
    assert np.allclose(np.abs(q).max(axis=1), np.abs(w).max(axis=1))
    assert np.max(np.abs(q - w) / scale) < 8                                # still near its weights

    def err(v):
        return float(np.sum((x @ (v - w).T) ** 2))

    assert 10 * np.log10(err(nearest) / err(q)) > 1.0
    assert np.allclose(_gptq_rows(w, np.eye(24), damp=0.0), nearest, atol=1e-6 * scale.max())


def test_gptq_weight_rounding_in_export_beats_nearest_and_restores_the_model():
    """A small conv stack converted to int8 twice: GPTQ rounding gives held-out outputs closer to float than
    nearest rounding, and the Keras model keeps its float weights afterwards."""
    import keras

    from ai_edge_litert.interpreter import Interpreter

    from converter.export import export_tflite, inspect_tflite

    rng = np.random.default_rng(11)
    image = keras.Input((48, 48, 3), batch_size=1, name="image")   # more positions than the statistics draw
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu6", name="c0")(image)
    h = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6", name="dw")(h)
    h = keras.layers.Conv2D(24, 1, activation="relu6", name="c1")(h)
    # two copies of one depthwise conv on one input (as the deploy graph's split heads): the converter merges
    # them with nearest rounding and must still be able to with GPTQ rounding
    copy_a = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="copy_a")(h)
    copy_b = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="copy_b")(h)
    model = keras.Model(image, _contract_outputs(copy_a, copy_b, h, 4))
    for layer in model.layers:
        w = layer.get_weights()
        if w:
            k = rng.normal(0, 0.02 if layer.name == "c0" else 0.4, w[0].shape)
            k.reshape(-1, k.shape[-2] if layer.name == "dw" else k.shape[-1])[0] *= 6   # outliers: coarse grid
            layer.set_weights([k.astype(np.float32), rng.normal(0, 0.1, w[1].shape).astype(np.float32)])
    model.get_layer("copy_b").set_weights(model.get_layer("copy_a").get_weights())
    float_weights = [w.copy() for w in model.get_weights()]

    def images(n):  # smooth images: neighbouring pixels and channels correlate, as in photographs
        base = rng.uniform(0, 255, (n, 6, 6, 3)).astype(np.float32)
        return [np.kron(b, np.ones((8, 8, 1), np.float32)) for b in base]

    calib, held_out = images(8), images(4)

    def sqnr(data):
        runner = Interpreter(model_content=data).get_signature_runner()
        num = den = 0.0
        for x in held_out:
            ref = model(x[None])
            out = runner(image=x[None].astype(np.uint8))
            for k in ("heatmaps_s4", "tags_s4", "heatmaps_s2"):
                num += float(np.sum(np.asarray(ref[k]) ** 2))
                den += float(np.sum((np.asarray(ref[k]) - out[k]) ** 2))
        return 10 * np.log10(num / den)

    opts = {"log": lambda m: None, "output_bias_correction": False}    # this feature alone
    nearest = export_tflite(model, "int8", calib, weight_rounding="nearest", **opts)
    gptq = export_tflite(model, "int8", calib, weight_rounding="gptq", **opts)
    assert all(np.array_equal(a, b) for a, b in zip(float_weights, model.get_weights()))
    assert sqnr(gptq) > sqnr(nearest) + 2          # measured: 31.9 vs 28.8 dB
    assert inspect_tflite(gptq)["ops"] == inspect_tflite(nearest)["ops"]


@pytest.mark.parametrize("kind", ["depthwise", "conv"])
@pytest.mark.parametrize("cfg", [{"kernel_size": (7, 3), "dilation_rate": (1, 2), "padding": "same"},
                                 {"kernel_size": (2, 4), "dilation_rate": (6, 2), "padding": "same"},
                                 {"kernel_size": 3, "strides": 2, "padding": "valid"},
                                 {"kernel_size": 3, "strides": 2, "padding": "same"},
                                 {"kernel_size": 1}])
def test_gptq_input_windows_reproduce_the_layer(kind, cfg):
    """The windows the GPTQ statistics are built from, times the kernel, give the layer's own outputs (all
    positions drawn: the same multiset of values per channel), for the padding, stride and dilation of
    every piece the deploy graph uses."""
    import keras

    from converter.export import _layer_patches

    rng = np.random.default_rng(2)
    layer = (keras.layers.DepthwiseConv2D(**cfg, use_bias=False) if kind == "depthwise"
             else keras.layers.Conv2D(5, **cfg, use_bias=False))
    x = rng.normal(size=(1, 14, 12, 4)).astype(np.float32)
    y = np.asarray(layer(x))[0]
    k = layer.get_weights()[0]
    p = _layer_patches(layer, x, rng, 10 ** 6)
    assert len(p) == y.shape[0] * y.shape[1]
    yy = np.einsum("pkc,kc->pc", p, k.reshape(-1, 4)) if kind == "depthwise" else p @ k.reshape(-1, 5)
    assert np.allclose(np.sort(yy, axis=0), np.sort(y.reshape(-1, y.shape[-1]), axis=0), atol=1e-4)


@pytest.mark.parametrize("stride,padding,pads", [(1, "same", None), (2, "valid", ((3, 2), (3, 2))),
                                                 (2, "valid", ((3, 3), (3, 3)))])
def test_gptq_input_windows_reproduce_the_blocked_depthwise_layer(stride, padding, pads):
    """The same for `BlockedDepthwise`, which pads inside the layer at stride 2 (PyTorch's padding)."""
    from converter.export import _layer_patches
    from converter.rewrites import BlockedDepthwise

    rng = np.random.default_rng(3)
    layer = BlockedDepthwise.make(7, 4 if stride == 2 else 8, strides=stride, padding=padding, pads=pads,
                                  use_bias=False)
    x = rng.normal(size=(1, 14, 12, 4)).astype(np.float32)
    y = np.asarray(layer(x))[0]
    p = _layer_patches(layer, x, rng, 10 ** 6)
    assert len(p) == y.shape[0] * y.shape[1]
    yy = np.einsum("pkc,kc->pc", p, layer.get_weights()[0].reshape(-1, 4))
    assert np.allclose(np.sort(yy, axis=0), np.sort(y.reshape(-1, y.shape[-1]), axis=0), atol=1e-4)


def test_gptq_gives_copies_of_a_layer_the_same_weights():
    """Two copies of a conv on one input (the deploy graph duplicates the heads' depthwise conv) must round
    alike, or the converter can no longer merge them and the int8 model gains ops (measured: +2 depthwise
    convs, +1 ms on LitePose-M)."""
    import keras

    from converter.export import gptq_weight_rounding

    rng = np.random.default_rng(4)
    image = keras.Input((64, 64, 3), batch_size=1)
    h = keras.layers.Conv2D(48, 3, padding="same", activation="relu6", name="c0")(image)
    copies = [keras.layers.Conv2D(8, 1, name=f"pw_{i}")(h) for i in "ab"]
    copies += [keras.layers.DepthwiseConv2D(7, padding="same", name=f"dw_{i}")(h) for i in "ab"]
    model = keras.Model(image, copies)
    for layer in model.layers:
        w = layer.get_weights()
        if w:
            layer.set_weights([rng.normal(0, 0.3, v.shape).astype(np.float32) for v in w])
    for kind in ("pw", "dw"):
        model.get_layer(f"{kind}_b").set_weights(model.get_layer(f"{kind}_a").get_weights())
    images = [rng.uniform(0, 255, (64, 64, 3)).astype(np.float32) for _ in range(2)]
    before = model.get_layer("pw_a").get_weights()[0].copy()
    gptq_weight_rounding(model, images, log=lambda m: None)
    assert not np.array_equal(before, model.get_layer("pw_a").get_weights()[0])
    for kind in ("pw", "dw"):
        a, b = (model.get_layer(f"{kind}_{i}").get_weights()[0] for i in "ab")
        assert np.array_equal(a, b), kind


def _quantised_widths(lo, hi):
    """Width of each row's int8 range: TFLite widens every activation range to hold 0."""
    return np.maximum(hi.max(1), 0) - np.minimum(lo.min(1), 0)


def test_centring_shifts_line_up_the_channels_of_each_addend():
    """Two addends whose channels sit 10 apart (a: [-1, 1] and [9, 11]; b: [-1, 1] and [-11, -9]): moving a
    constant of 10 from one bias to the other in channel 1 leaves each addend 2 wide instead of 12. When the
    sum itself sits at 7 (a: [0, 2], [10, 12]; b: [5, 7], [-5, -3]) its offset must stay in the addends, and
    with ranges that hold 0 the best split costs 9 (e.g. [0, 2] + [0, 7]), not 2 + 2. With three addends the
    partial sum a0 + a1 counts too, and no range gets wider in total."""
    from converter.export import _centring_shifts, _tensor_shifts

    lo = np.array([[-1.0, 9.0], [-1.0, -11.0]])
    hi = np.array([[1.0, 11.0], [1.0, -9.0]])
    d = _centring_shifts(lo, hi)
    np.testing.assert_allclose(d.sum(0), 0.0, atol=1e-9)              # the sum is unchanged
    np.testing.assert_allclose(_quantised_widths(lo + d, hi + d), [2.0, 2.0], atol=1e-6)

    lo = np.array([[0.0, 10.0], [5.0, -5.0]])
    hi = np.array([[2.0, 12.0], [7.0, -3.0]])
    d = _centring_shifts(lo, hi)
    np.testing.assert_allclose(d.sum(0), 0.0, atol=1e-9)
    assert _quantised_widths(lo + d, hi + d).sum() == pytest.approx(9.0, abs=1e-6)   # from 12 + 12

    rng = np.random.default_rng(3)
    centres = rng.normal(0, 5, (3, 16))
    lo3 = np.concatenate([centres - 1, centres[:1] + centres[1:2] - 1.5])  # addends, then a0 + a1
    hi3 = np.concatenate([centres + 1, centres[:1] + centres[1:2] + 1.5])
    d3 = _centring_shifts(lo3, hi3)
    np.testing.assert_allclose(d3.sum(0), 0.0, atol=1e-9)
    s3 = _tensor_shifts(d3)
    np.testing.assert_allclose(s3[3], d3[0] + d3[1])
    before = _quantised_widths(lo3, hi3).sum()
    after = _quantised_widths(lo3 + s3, hi3 + s3).sum()
    assert after < 0.6 * before, (before, after)


def _split_sum_model(rng):
    """A 3-piece depthwise sum + ReLU6 whose pieces' channels are offset from one another by their biases
    (as the split 7x7 pieces are), plus an Add with a bias-free input and one whose input is read twice."""
    import keras

    image = keras.Input((16, 16, 3), batch_size=1, name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu6", name="expand")(image)
    pieces = [keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=d, name=f"piece{i}")(h)
              for i, d in enumerate((1, 2, 3))]
    y = keras.layers.ReLU(6.0, name="out_relu6")(keras.layers.Add(name="sum")(pieces))
    no_bias = keras.layers.DepthwiseConv2D(1, use_bias=False, name="no_bias")(h)
    biased = keras.layers.DepthwiseConv2D(1, name="biased")(h)
    z = keras.layers.Add(name="zsum")([no_bias, biased])
    twice = keras.layers.DepthwiseConv2D(1, name="twice")(y)
    other = keras.layers.DepthwiseConv2D(1, name="other")(y)
    w = keras.layers.Add(name="wsum")([twice, other])
    model = keras.Model(image, _contract_outputs(z, twice, keras.layers.Add(name="both")([y, w]), 2))
    for layer in model.layers:
        for_layer = layer.get_weights()
        if for_layer:
            scale = 0.02 if layer.name == "expand" else 0.3
            new = [rng.normal(0, scale, for_layer[0].shape)]
            if len(for_layer) > 1:
                new.append(rng.normal(0, 4.0 if layer.name.startswith("piece") else 0.1, for_layer[1].shape))
            layer.set_weights([v.astype(np.float32) for v in new])
    return model


def test_centring_moves_bias_between_summed_pieces_only_and_keeps_the_function():
    """`centre_sum_addends` touches only the Add whose inputs are all biased convs read by it alone; the
    network's outputs stay the same (float rounding), and the pieces and the partial sum piece0 + piece1
    together get narrower int8 ranges (holding 0, as TFLite's) on the images it measured."""
    import keras

    from converter.export import _summed_convs, centre_sum_addends

    rng = np.random.default_rng(5)
    model = _split_sum_model(rng)
    assert [[c.name for c in convs] for convs in _summed_convs(model)] == [["piece0", "piece1", "piece2"]]
    images = [rng.uniform(0, 255, (16, 16, 3)).astype(np.float32) for _ in range(6)]
    pieces = [model.get_layer(f"piece{i}").output for i in range(3)]
    probe = keras.Model(model.inputs[0], pieces + list(model.outputs))

    def widths_and_outputs():
        res = [probe(x[None]) for x in images]
        vals = [np.concatenate([np.asarray(r[i]).reshape(-1, 8) for r in res]) for i in range(3)]
        vals.append(vals[0] + vals[1])
        return [float(max(v.max(), 0) - min(v.min(), 0)) for v in vals], [r[3:] for r in res]

    before, out_before = widths_and_outputs()
    untouched = {n: [w.copy() for w in model.get_layer(n).get_weights()] for n in ("no_bias", "biased", "twice")}
    assert centre_sum_addends(model, images, log=lambda m: None) == 1
    after, out_after = widths_and_outputs()
    for a, b in zip(out_before, out_after):
        for u, v in zip(a, b):
            np.testing.assert_allclose(np.asarray(v), np.asarray(u), atol=2e-4)
    assert sum(after) < 0.8 * sum(before), (before, after)
    for n, ws in untouched.items():
        assert all(np.array_equal(u, v) for u, v in zip(ws, model.get_layer(n).get_weights()))


def test_export_centres_the_sums_with_the_same_ops_and_restores_the_model():
    """int8 export with and without centring: same ops, narrower int8 scales for the pieces, and the Keras
    model keeps its weights."""
    from ai_edge_litert.interpreter import Interpreter

    from converter.export import _producer_layer, export_tflite, inspect_tflite

    rng = np.random.default_rng(9)
    model = _split_sum_model(rng)
    float_weights = [w.copy() for w in model.get_weights()]
    calib = [rng.uniform(0, 255, (16, 16, 3)).astype(np.float32) for _ in range(8)]
    plain = export_tflite(model, "int8", calib, log=lambda m: None, centre_sums=False)
    centred = export_tflite(model, "int8", calib, log=lambda m: None, centre_sums=True)
    assert all(np.array_equal(a, b) for a, b in zip(float_weights, model.get_weights()))
    assert inspect_tflite(centred)["ops"] == inspect_tflite(plain)["ops"]

    def piece_scales(data):
        out = {}
        for t in Interpreter(model_content=data).get_tensor_details():
            name = _producer_layer(t["name"]).rsplit("_", 1)[0]       # Keras adds a call suffix
            if t["dtype"] == np.int8 and name.startswith("piece") and len(t["quantization_parameters"]["scales"]) == 1:
                out[name] = float(t["quantization_parameters"]["scales"][0])
        return out

    p, c = piece_scales(plain), piece_scales(centred)
    assert set(p) == set(c) and len(p) == 3
    assert sum(c.values()) < 0.9 * sum(p.values()), (p, c)     # the programme's objective, roughly


@pytest.mark.needs_shared
def test_split_head_ranges_keeps_both_halves_as_convs_of_their_own(xs_int8, shared_dir, tmp_path):
    """--split-head-ranges: the upper halves are two more depthwise convs. With equal kernels the converter
    merged each pair into one conv plus int8 bias ADDs (step 0.15: heatmaps_s4 fell to 4 dB on LitePose-M);
    the scaled upper half keeps them apart. The 1/4-scale heatmap input is twice as wide, at half the range."""
    from ai_edge_litert.interpreter import Interpreter

    from converter.checkpoint import build_keras_from_checkpoint
    from converter.convert import compare_outputs
    from python_ref.preprocess import letterbox, load_image_rgb
    from python_ref.runner import TFLiteRunner

    base_path, base = xs_int8
    path = tmp_path / "split.tflite"
    card = _convert(shared_dir, path, shared_dir / "data" / "coco" / "images", split_head_ranges=True)
    assert card["rewrites"]["options"]["split_head_ranges"] is True
    assert card["ops"]["DEPTHWISE_CONV_2D"] > base["ops"]["DEPTHWISE_CONV_2D"]
    assert card["ops"]["ADD"] == base["ops"]["ADD"]      # no bias ADD left by a merge of the two halves

    def heatmap_input(p):
        """(channels, int8 range) of the 1/4-scale heatmap conv's input, and the ops that make its parts."""
        interp = Interpreter(model_path=str(p))
        tensors = {t["index"]: t for t in interp.get_tensor_details()}
        ops = interp._get_ops_details()
        made_by = {o: op["op_name"] for op in ops for o in op["outputs"]}
        concat = next(op for op in ops if "heatmaps_s4_inputs" in tensors[op["outputs"][0]]["name"])
        t = tensors[concat["outputs"][0]]
        return t["shape"][-1], t["quantization_parameters"]["scales"][0] * 255, {made_by[i] for i in concat["inputs"]}

    (c0, range0, made0), (c1, range1, made1) = heatmap_input(base_path), heatmap_input(path)
    assert c1 == 2 * c0 and 5.9 < range1 < 6.5          # relu6 halves: the int8 range is 6, channels doubled
    assert made0 == made1 == {"DEPTHWISE_CONV_2D"}      # each half straight from its own conv
    model, _ = build_keras_from_checkpoint(shared_dir / "checkpoints" / XS, input_hw=(128, 128))
    image = letterbox(load_image_rgb(shared_dir / "data" / "crowdpose" / "images" / "106848.jpg"), (128, 128))[0]
    ref = {k: np.asarray(v)[0] for k, v in model(image[None].astype(np.float32)).items()}
    split, plain = (compare_outputs(ref, TFLiteRunner(p)(image)) for p in (path, base_path))
    print({k: (round(split[k]["sqnr_db"], 2), round(plain[k]["sqnr_db"], 2)) for k in split})
    assert split["heatmaps_s4"]["sqnr_db"] > plain["heatmaps_s4"]["sqnr_db"] - 0.5


def _output_offset_case(heatmaps_s2_from_add: bool = False):
    """A small network whose int8 outputs sit off the float ones, and 8 calibration images (whole numbers, as
    camera pixels). The output convs' channels have weights of very different sizes (x4 per channel), so their
    int32 biases have very different scales. With `heatmaps_s2_from_add`, heatmaps_s2 is an ADD of two convs."""
    import keras

    rng = np.random.default_rng(5)
    image = keras.Input((32, 32, 3), batch_size=1, name="image")
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu6", name="c0")(image)
    h = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(h)
    outputs = _contract_outputs(h, h, h, 4)
    if heatmaps_s2_from_add:
        outputs["heatmaps_s2"] = keras.layers.Add(name="hm2_sum")(
            [outputs["heatmaps_s2"], keras.layers.Conv2D(2, 1, name="hm2_b")(h)])
    model = keras.Model(image, outputs)
    for layer in model.layers:
        w = layer.get_weights()
        if w:   # near-cancelling output weights on many small ReLU inputs: a visible mean error
            k = rng.normal(0, 0.02 if layer.name == "c0" else 0.5, w[0].shape)
            if layer.name in ("hm", "tags"):
                k *= 4.0 ** np.arange(k.shape[-1]) / 8
            b = rng.normal(0, 0.05, w[1].shape) * (layer.name not in ("hm", "tags"))   # equal biases: stored once
            layer.set_weights([k.astype(np.float32), b.astype(np.float32)])
    calib = [np.round(np.kron(rng.uniform(0, 255, (4, 4, 3)), np.ones((8, 8, 1)))).astype(np.float32)
             for _ in range(8)]
    for x in calib:   # black and white blocks: the input range is 0..255, scale 1 as in the I/O contract
        x[:8, :8], x[8:16, :8] = 0, 255
    return model, calib


def _output_errors(model, data, images, reference_kernels=False):
    """Per output: (mean error per channel, SQNR dB) of an int8 file with uint8 input against the float model."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kw = {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if reference_kernels else {}
    runner = Interpreter(model_content=data, **kw).get_signature_runner()
    errs, refs = {}, {}
    for x in images:
        ref, out = model(x[None]), runner(image=x[None].astype(np.uint8))
        for k in out:
            r = np.asarray(ref[k], np.float64)[0]
            errs.setdefault(k, []).append((out[k][0] - r).reshape(-1, r.shape[-1]))
            refs.setdefault(k, []).append(r.reshape(-1, r.shape[-1]))
    result = {}
    for k in errs:
        e, r = np.concatenate(errs[k]), np.concatenate(refs[k])
        result[k] = (e.mean(0), 10 * np.log10(np.sum(r ** 2) / np.sum(e ** 2)))
    return result


def _output_biases(data):
    """Output name -> (int32 bias values, their scales) of the conv that makes it, read with LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    ops = interp._get_ops_details()
    made_by = {o: op for op in ops for o in op["outputs"]}
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    result = {}
    for name, d in interp.get_signature_runner().get_output_details().items():
        op = made_by[d["index"]] if "index" in d else None
        op = op or next(made_by[t] for t in made_by if tensors[t]["name"] == name)
        if op["op_name"] == "DEQUANTIZE":
            op = made_by[op["inputs"][0]]
        if op["op_name"] == "CONV_2D":
            bias = op["inputs"][2]
            result[name] = (interp.get_tensor(bias).astype(np.int64), tensors[bias]["quantization_parameters"]["scales"])
    return result


def test_output_bias_correction_removes_the_mean_output_error_and_changes_only_those_biases():
    """Rounding noise that passes a ReLU is no longer zero-mean: the int8 outputs sit off the float ones by a
    per-channel constant. `correct_output_biases` moves it into the output convs' int32 biases: each channel's
    bias moves by its own measured mean error in its own scale, the mean error, recomputed here, drops to a
    fraction of an output step, and nothing else in the file moves."""
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    from converter.export import export_tflite, inspect_tflite

    model, calib = _output_offset_case()
    details = {}
    plain = export_tflite(model, "int8", calib, log=lambda m: None, output_bias_correction=False)
    fixed = export_tflite(model, "int8", calib, log=lambda m: None, details=details)
    report = details["output_bias_correction"]
    assert set(report) == {"heatmaps_s4", "tags_s4", "heatmaps_s2"}
    steps = {}
    for t in Interpreter(model_content=fixed).get_tensor_details():   # the int8 output tensors' steps
        if t["dtype"] == np.int8 and len(t["shape"]) == 4 and t["shape"][-1] in (2, 4):
            steps[int(t["shape"][-1])] = max(steps.get(int(t["shape"][-1]), 0), t["quantization"][0])
    # the shift of each channel's bias is that channel's mean error (reference kernels, as the correction)
    measured = _output_errors(model, plain, calib, reference_kernels=True)
    biases_plain, biases_fixed = _output_biases(plain), _output_biases(fixed)
    assert report["heatmaps_s4"]["corrected"]
    for k in (k for k in ("heatmaps_s4", "tags_s4") if report[k]["corrected"]):
        (b0, scales), (b1, _) = biases_plain[k], biases_fixed[k]
        assert np.ptp(np.log2(scales)) > 4                   # channels' bias scales differ by > 16x
        assert np.all(np.abs((b1 - b0) * scales + measured[k][0]) <= scales * 0.5 + 1e-9), (k, (b1 - b0) * scales)
    before, after = _output_errors(model, plain, calib), _output_errors(model, fixed, calib)   # as deployed
    worst_before = max(float(np.abs(before[k][0]).max() / steps[before[k][0].size]) for k in before)
    assert worst_before > 0.3, before        # the case has a mean error worth correcting (in output steps)
    for k in after:
        if report[k]["corrected"]:
            assert np.abs(after[k][0]).max() < 0.15 * steps[after[k][0].size], (k, before[k], after[k])
            assert after[k][1] > before[k][1]
    assert after["heatmaps_s4"][1] > before["heatmaps_s4"][1] + 1   # measured 43.6 vs 40.3 dB
    # Same ops, same tensors and scales; the only bytes that differ are the corrected output biases.
    assert inspect_tflite(fixed)["ops"] == inspect_tflite(plain)["ops"]
    a, b = (flatbuffer_utils.convert_bytearray_to_object(bytearray(d)) for d in (plain, fixed))
    ta, tb = a.subgraphs[0].tensors, b.subgraphs[0].tensors
    assert len(ta) == len(tb)
    zero_biases = [ta[i].buffer for i in range(len(ta)) if ta[i].type == 2 and len(ta[i].shape) == 1
                   and ta[i].shape[0] == 4 and not np.any(np.asarray(a.buffers[ta[i].buffer].data))]
    assert len(zero_biases) == 2 and zero_biases[0] == zero_biases[1]   # stored once; the correction splits them
    changed = {ta[i].name for i in range(len(ta))
               if not np.array_equal(np.asarray(a.buffers[ta[i].buffer].data), np.asarray(b.buffers[tb[i].buffer].data))}
    assert changed and all(ta[i].type == 2 for i in range(len(ta)) if ta[i].name in changed)   # int32 biases
    assert len(changed) == sum(1 for v in report.values() if v["corrected"])
    assert all(np.array_equal(np.asarray(x.quantization.scale), np.asarray(y.quantization.scale))
               for x, y in zip(ta, tb) if x.quantization is not None and x.quantization.scale is not None)


def test_output_bias_correction_with_int8_input_and_outputs():
    """int8 image input (the image minus 128) and raw int8 outputs: the correction reads them through their
    quantisation; the corrected file's outputs, read here the same way, are closer to float than without it."""
    from ai_edge_litert.interpreter import Interpreter

    from converter.export import export_tflite

    model, calib = _output_offset_case()
    details = {}
    fixed = export_tflite(model, "int8", calib, input_dtype="int8", output_dtype="int8", log=lambda m: None,
                          details=details)
    plain = export_tflite(model, "int8", calib, input_dtype="int8", output_dtype="int8", log=lambda m: None,
                          output_bias_correction=False)
    assert details["output_bias_correction"]["heatmaps_s4"]["corrected"]

    def sqnr(data):
        runner = Interpreter(model_content=data).get_signature_runner()
        scale, zero = runner.get_output_details()["heatmaps_s4"]["quantization"]
        num = den = 0.0
        for x in calib:
            out = runner(image=(x[None] - 128).astype(np.int8))["heatmaps_s4"]
            assert out.dtype == np.int8
            ref = np.asarray(model(x[None])["heatmaps_s4"], np.float64)
            num += float(np.sum(ref ** 2))
            den += float(np.sum(((out.astype(np.float64) - zero) * scale - ref) ** 2))
        return 10 * np.log10(num / den)

    assert sqnr(fixed) > sqnr(plain) + 1                 # measured about 43.6 vs 40.3 dB


def test_output_bias_correction_skips_what_it_cannot_correct_and_undoes_what_does_not_help(monkeypatch):
    """An output made by an ADD has no bias to move, a file without a signature has no outputs to find, and a
    correction that makes an output worse on the calibration images is undone, its bias bytes untouched."""
    from tensorflow.lite.tools import flatbuffer_utils

    import converter.export as export

    model, calib = _output_offset_case(heatmaps_s2_from_add=True)
    plain = export.export_tflite(model, "int8", calib, log=lambda m: None, output_bias_correction=False)
    assert set(_output_biases(plain)) == {"heatmaps_s4", "tags_s4"}
    fixed, report = export.correct_output_biases(plain, model, calib, log=lambda m: None)
    assert set(report) == {"heatmaps_s4", "tags_s4"}

    fb = flatbuffer_utils.convert_bytearray_to_object(bytearray(plain))
    fb.signatureDefs = []
    unsigned = bytes(flatbuffer_utils.convert_object_to_bytearray(fb))
    lines = []
    assert export.correct_output_biases(unsigned, model, calib, log=lines.append) == (unsigned, {})
    assert "nothing to correct" in lines[-1]

    real_shift = export._shift_biases

    def harmful(data, shifts):   # a wrong correction of tags_s4 (10 units off), as a clamped output could get
        return real_shift(data, {k: v + (10.0 if k == "tags_s4" else 0.0) for k, v in shifts.items()})

    monkeypatch.setattr(export, "_shift_biases", harmful)
    lines = []
    guarded, report = export.correct_output_biases(plain, model, calib, log=lines.append)
    assert report["tags_s4"]["corrected"] is False and report["heatmaps_s4"]["corrected"] is True
    assert report["tags_s4"]["sqnr_db_after"] == report["tags_s4"]["sqnr_db_before"]
    assert "tags_s4" in lines[-1] and "(not corrected)" in lines[-1]
    b0, b1 = _output_biases(plain), _output_biases(guarded)
    assert np.array_equal(b0["tags_s4"][0], b1["tags_s4"][0])
    assert not np.array_equal(b0["heatmaps_s4"][0], b1["heatmaps_s4"][0])


@pytest.mark.needs_shared
def test_blocked_depthwise_form_converts_to_full_integer_and_follows_the_float_network(xs_int8, shared_dir,
                                                                                       tmp_path):
    """--depthwise-form blocked: the 7x7 depthwise convs become grouped CONV_2Ds between SPACE_TO_DEPTH +
    TRANSPOSE and TRANSPOSE + DEPTH_TO_SPACE (no split pieces, no partial-sum ADDs), still full-integer, and as
    close to the float network as the split form (one int8 rounding per conv instead of three pieces and two
    partial sums)."""
    from converter.checkpoint import build_keras_from_checkpoint
    from converter.convert import compare_outputs
    from python_ref.preprocess import letterbox, load_image_rgb
    from python_ref.runner import TFLiteRunner

    base_path, base = xs_int8
    path = tmp_path / "blocked.tflite"
    card = _convert(shared_dir, path, shared_dir / "data" / "coco" / "images", depthwise_form="blocked")
    assert card["rewrites"]["options"]["depthwise_layout"] == "blocked"
    assert card["rewrites"]["depthwise_form"] == {"form": "blocked", "chosen_by": "--depthwise-form"}
    assert set(card["ops"]) - {"QUANTIZE", "DEQUANTIZE"} <= INTEGER_OPS | {"TRANSPOSE", "SPACE_TO_DEPTH"}, card["ops"]
    assert card["ops"]["TRANSPOSE"] == 2 * card["ops"]["SPACE_TO_DEPTH"] > 0
    assert card["ops"]["DEPTH_TO_SPACE"] == base["ops"]["DEPTH_TO_SPACE"] + card["ops"]["SPACE_TO_DEPTH"]
    assert card["ops"]["DEPTHWISE_CONV_2D"] < base["ops"]["DEPTHWISE_CONV_2D"]
    assert card["ops"]["ADD"] < base["ops"]["ADD"]
    model, _ = build_keras_from_checkpoint(shared_dir / "checkpoints" / XS, input_hw=(128, 128))
    image = letterbox(load_image_rgb(shared_dir / "data" / "crowdpose" / "images" / "106848.jpg"), (128, 128))[0]
    ref = {k: np.asarray(v)[0] for k, v in model(image[None].astype(np.float32)).items()}
    blocked, split = (compare_outputs(ref, TFLiteRunner(p)(image)) for p in (path, base_path))
    print({k: (round(blocked[k]["sqnr_db"], 2), round(split[k]["sqnr_db"], 2)) for k in blocked})
    for k in blocked:
        assert blocked[k]["sqnr_db"] > split[k]["sqnr_db"] - 1.0, k


@pytest.mark.needs_shared
def test_depthwise_form_is_refused_where_it_changes_nothing(shared_dir, tmp_path):
    from python_ref.errors import LitePoseError

    calib = str(shared_dir / "data" / "coco" / "images")
    for kw in ({"precision": "fp32"}, {"precision": "int8", "graph": "plain", "calib_images": calib}):
        with pytest.raises(LitePoseError, match="--depthwise-form blocked applies to --precision int8"):
            run_convert(checkpoint=str(shared_dir / "checkpoints" / XS), arch=None, joints=None, input_size="128x128",
                        output=str(tmp_path / "m.tflite"), depthwise_form="blocked", **kw)
    assert not list(tmp_path.iterdir())


def test_auto_depthwise_form_takes_the_blocked_form_only_when_clearly_faster(monkeypatch):
    """auto: a near tie keeps the split form, so that two builds on one computer choose alike."""
    import keras

    import converter.bench as bench
    import converter.rewrites as rewrites
    from converter.convert import BLOCKED_MIN_GAIN, choose_depthwise_layout

    inp = keras.Input((28, 20, 16), batch_size=1)
    y = keras.layers.DepthwiseConv2D(7, padding="same")(inp)
    y = keras.layers.DepthwiseConv2D(7, padding="same")(keras.layers.Conv2D(48, 1)(y))
    y = keras.layers.DepthwiseConv2D(5, padding="same")(keras.layers.Conv2D(96, 1)(y))   # 25 taps: not a candidate
    model = keras.Model(inp, keras.layers.DepthwiseConv2D(7, strides=2, padding="same")(y))  # stride 2: neither
    assert rewrites.large_depthwise_shapes(model) == [(28, 20, 16, 7), (28, 20, 48, 7)]
    timed = []
    for split_ms, blocked_ms, layout in ((6.0, 6.0 / BLOCKED_MIN_GAIN, "blocked"), (6.0, 5.0, "lattice")):
        monkeypatch.setattr(bench, "depthwise_form_timings",
                            lambda *shape, s=split_ms, b=blocked_ms: timed.append(shape) or {"lattice": s, "blocked": b})
        chosen, why = choose_depthwise_layout("auto", model, log=lambda m: None)
        assert chosen == layout and why["int8_ms"] == {"split": split_ms, "blocked": blocked_ms}
    assert timed == [(28, 20, 48, 7)] * 2          # the largest candidate layer is the one timed
    assert choose_depthwise_layout("split", model, log=lambda m: None)[0] == "lattice"
