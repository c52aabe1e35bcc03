"""The ONNX route, for comparison: the same LitePose network as ONNX (built with onnx.helper, no
PyTorch), converted by onnx2tf, measured against the native Keras -> TFLite route.

`keras_to_onnx(model)` writes the graph a PyTorch export of the official model would give: NCHW,
convolutions with their BatchNorm folded in (as torch.onnx.export does in eval mode), the BatchNorm
after each deconvolution sum kept as BatchNormalization, ReLU6 as Clip; ImageNet normalisation as
Sub/Div at the input so the I/O contract (0..255 RGB input, outputs `heatmaps_s4`, `tags_s4`,
`heatmaps_s2`) is the same. Weights are the Keras model's, i.e. the same checkpoint.
`compare_routes(variant)` converts both routes and reports output parity, op counts, size, latency and
INT8 accuracy (SQNR against the float Keras model on a held-out image).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from python_ref.errors import LitePoseError

OPSET = 17
OUTPUT_NAMES = ("heatmaps_s4", "tags_s4", "heatmaps_s2")


# ------------------------------------------------------------------------------------------------
# Keras -> ONNX (graph built by hand from the layer list)
# ------------------------------------------------------------------------------------------------
def _inputs_of(layer) -> list:
    inp = layer.input
    return list(inp) if isinstance(inp, (list, tuple)) else [inp]


def keras_to_onnx(model, path: str | Path | None = None, fold_bn: bool = True):
    """An ONNX ModelProto (NCHW) equal in function to the Keras LitePose `model`; saved if `path`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    name_of: dict[int, str] = {}      # id(KerasTensor) -> ONNX tensor name
    pads_of: dict[int, tuple] = {}    # pending ZeroPadding2D of a tensor: (top, bottom, left, right)
    consumers = Counter()
    for layer in model.layers:
        for t in _inputs_of(layer) if type(layer).__name__ != "InputLayer" else []:
            consumers[id(t)] += 1

    def const(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    conv_of: dict[int, dict] = {}  # id(conv output) -> its node + weights, while BN folding is possible
    (h, w) = model.input_shape[1:3]
    image = model.inputs[0]
    name_of[id(image)] = "image"
    graph_inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, h, w])]

    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        ins = _inputs_of(layer)
        out = layer.output
        oname = layer.name
        x = name_of[id(ins[0])]
        if kind == "Normalization":
            mean = np.asarray(layer.mean, np.float32).reshape(1, 3, 1, 1)
            std = np.sqrt(np.asarray(layer.variance, np.float32)).reshape(1, 3, 1, 1)
            nodes.append(helper.make_node("Sub", [x, const(f"{oname}_mean", mean)], [f"{oname}_centred"]))
            nodes.append(helper.make_node("Div", [f"{oname}_centred", const(f"{oname}_std", std)], [oname]))
        elif kind == "ZeroPadding2D":
            (top, bottom), (left, right) = layer.padding
            name_of[id(out)] = x
            pads_of[id(out)] = (top, bottom, left, right)
            continue
        elif kind in ("Conv2D", "DepthwiseConv2D"):
            kernel = np.asarray(layer.get_weights()[0], np.float32)
            kh, kw = layer.kernel_size
            if kind == "Conv2D":
                weight, group = kernel.transpose(3, 2, 0, 1), 1
            else:
                weight, group = kernel.transpose(2, 3, 0, 1), kernel.shape[2]
            bias = np.asarray(layer.get_weights()[1], np.float32) if layer.use_bias else None
            top, bottom, left, right = pads_of.get(id(ins[0]), (0, 0, 0, 0))
            if layer.padding == "same":
                if layer.strides != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
                    raise ValueError(f"{layer.name}: 'same' padding is only exported for stride 1, odd kernels")
                top, bottom, left, right = top + kh // 2, bottom + kh // 2, left + kw // 2, right + kw // 2
            conv_of[id(out)] = {"x": x, "weight": weight, "bias": bias, "group": group, "name": oname,
                                "pads": [top, left, bottom, right], "strides": list(layer.strides)}
            if not (fold_bn and consumers[id(out)] == 1 and _next_is_bn(model, out)):
                _emit_conv(conv_of.pop(id(out)), nodes, const, helper)
        elif kind == "BatchNormalization":
            gamma, beta, mean, var = (np.asarray(v, np.float32) for v in layer.get_weights())
            conv = conv_of.pop(id(ins[0]), None)
            if conv is not None:  # fold into the convolution before it
                scale = gamma / np.sqrt(var + layer.epsilon)
                conv["weight"] = conv["weight"] * scale.reshape(-1, 1, 1, 1)
                conv["bias"] = (beta - mean * scale) + (conv["bias"] * scale if conv["bias"] is not None else 0)
                conv["name"] = oname
                _emit_conv(conv, nodes, const, helper)
            else:
                nodes.append(helper.make_node(
                    "BatchNormalization", [x, const(f"{oname}_gamma", gamma), const(f"{oname}_beta", beta),
                                           const(f"{oname}_mean", mean), const(f"{oname}_var", var)],
                    [oname], epsilon=float(layer.epsilon)))
        elif kind == "ReLU":
            if layer.max_value is not None:
                nodes.append(helper.make_node("Clip", [x, const(f"{oname}_min", np.array(0, np.float32)),
                                                       const(f"{oname}_max", np.array(float(layer.max_value), np.float32))],
                                              [oname]))
            else:
                nodes.append(helper.make_node("Relu", [x], [oname]))
        elif kind == "Add":
            acc = x
            for k, t in enumerate(ins[1:]):
                target = oname if k == len(ins) - 2 else f"{oname}_{k}"
                nodes.append(helper.make_node("Add", [acc, name_of[id(t)]], [target]))
                acc = target
        elif kind == "Conv2DTranspose":
            if layer.padding != "same" or tuple(layer.kernel_size) != (4, 4) or tuple(layer.strides) != (2, 2):
                raise ValueError(f"{layer.name}: only 4x4 stride-2 'same' transposed convolutions are exported")
            kernel = np.asarray(layer.get_weights()[0], np.float32)  # (kh, kw, out, in)
            nodes.append(helper.make_node("ConvTranspose", [x, const(f"{oname}_W", kernel.transpose(3, 2, 0, 1))],
                                          [oname], kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1]))
        else:
            raise ValueError(f"{layer.name}: layer type {kind} has no ONNX export here")
        name_of[id(out)] = oname

    outputs = model.output if isinstance(model.output, dict) else dict(zip(model.output_names, model.outputs))
    graph_outputs = []
    for name in OUTPUT_NAMES:
        t = outputs[name]
        src = name_of[id(t)]
        if src != name:
            nodes.append(helper.make_node("Identity", [src], [name]))
        _, oh, ow, oc = t.shape
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, int(oc), int(oh), int(ow)]))
    graph = helper.make_graph(nodes, model.name, graph_inputs, graph_outputs, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="litepose-edge")
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    if path is not None:
        onnx.save(proto, str(path))
    return proto


def _next_is_bn(model, tensor) -> bool:
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization" and any(t is tensor for t in _inputs_of(layer)):
            return True
    return False


def _emit_conv(conv: dict, nodes, const, helper) -> None:
    name = conv["name"]
    inputs = [conv["x"], const(f"{name}_W", conv["weight"].astype(np.float32))]
    if conv["bias"] is not None:
        inputs.append(const(f"{name}_B", np.asarray(conv["bias"], np.float32)))
    kh, kw = conv["weight"].shape[2:]
    nodes.append(helper.make_node("Conv", inputs, [name], kernel_shape=[int(kh), int(kw)], strides=conv["strides"],
                                  pads=conv["pads"], group=int(conv["group"])))


def run_onnx(path_or_proto, image_hwc: np.ndarray) -> dict[str, np.ndarray]:
    """onnxruntime outputs for one float 0..255 HWC image, returned NHWC without batch."""
    import onnxruntime as ort

    data = path_or_proto if isinstance(path_or_proto, (str, Path)) else path_or_proto.SerializeToString()
    sess = ort.InferenceSession(str(data) if isinstance(data, Path) else data, providers=["CPUExecutionProvider"])
    x = np.asarray(image_hwc, np.float32).transpose(2, 0, 1)[None]
    outs = sess.run(list(OUTPUT_NAMES), {"image": x})
    return {n: o[0].transpose(1, 2, 0) for n, o in zip(OUTPUT_NAMES, outs)}


# ------------------------------------------------------------------------------------------------
# onnx2tf
# ------------------------------------------------------------------------------------------------
ONNX2TF_FILES = {"fp32": "_float32.tflite", "fp16": "_float16.tflite", "int8": "_full_integer_quant.tflite",
                 "int8-float-io": "_integer_quant.tflite"}


def onnx2tf_available() -> str | None:
    """None when onnx2tf can run here, else the exact reason."""
    code = "import onnx2tf, onnx_graphsurgeon, sng4onnx, tf_keras, onnxruntime"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return lines[-1] if lines else "import failed"
    return None


def run_onnx2tf(onnx_path: Path, out_dir: Path, calibration: np.ndarray | None, log=print) -> dict[str, Path]:
    """Convert with onnx2tf in its own process; int8 (full integer, uint8 input, float outputs) when
    calibration images [N, H, W, 3] 0..255 are given. Returns {precision: tflite path}."""
    kwargs = {"input_onnx_file_path": str(onnx_path), "output_folder_path": str(out_dir),
              "copy_onnx_input_output_names_to_tflite": True, "output_signaturedefs": True, "non_verbose": True}
    if calibration is not None:
        npy = out_dir / "calibration.npy"
        np.save(npy, np.asarray(calibration, np.float32))
        # Our graph normalises itself, so the calibration data is raw 0..255 pixels: mean 0, std 1.
        kwargs.update(output_integer_quantized_tflite=True, input_quant_dtype="uint8", output_quant_dtype="float32",
                      custom_input_op_name_np_data_path=[["image", str(npy), [[[[0.0, 0.0, 0.0]]]], [[[[1.0, 1.0, 1.0]]]]]])
    _write_onnx2tf_sample_data(out_dir, calibration)
    code = "import json, sys, onnx2tf; onnx2tf.convert(**json.loads(sys.argv[1]))"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True, env=env,
                          cwd=str(out_dir))
    if proc.returncode != 0:
        tail = " | ".join(ln.strip() for ln in (proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise LitePoseError(f"{onnx_path}: onnx2tf failed ({tail})")
    log(f"onnx2tf converted in {time.perf_counter() - t0:.0f} s")
    stem = onnx_path.stem
    return {p: out_dir / (stem + suffix) for p, suffix in ONNX2TF_FILES.items() if (out_dir / (stem + suffix)).exists()}


ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def _write_onnx2tf_sample_data(out_dir: Path, images: np.ndarray | None) -> None:
    """onnx2tf runs a check inference on 20 sample images that it downloads from GitHub unless the
    file is in its working directory; there is no network here, so write that file from our images."""
    import cv2

    from .bench import synthetic_images

    src = list(images) if images is not None and len(images) else synthetic_images((128, 128), 20, seed=7)
    batch = [cv2.resize(np.asarray(src[i % len(src)], np.uint8), (128, 128), interpolation=cv2.INTER_AREA)
             for i in range(20)]
    np.save(out_dir / ONNX2TF_SAMPLE_FILE, np.stack(batch).astype(np.float32) / 255.0)


def run_any_tflite(path, image_hwc: np.ndarray) -> tuple[dict[str, np.ndarray], str]:
    """Outputs of a LitePose-like .tflite that may not keep the I/O contract's names (onnx2tf names
    them `output_0..2` in its signature, or `Identity*` without a signature): by name when the names
    are ours, else in ONNX output order. Integer I/O is (de)quantised with the tensors' parameters."""
    from python_ref.runner import _interpreter_class, _quant_params, quantize_pixels

    interp = _interpreter_class()(model_path=str(path))
    sigs = interp.get_signature_list()
    image = np.asarray(image_hwc, np.float32)[None]

    def feed(detail):
        dt = np.dtype(detail["dtype"])
        if np.issubdtype(dt, np.integer):
            scale, zp = _quant_params(detail)
            return quantize_pixels(image, scale, zp, dt)
        return image.astype(dt)

    def real(value, detail):
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.integer):
            scale, zp = _quant_params(detail)
            return (np.float32(scale) * (value.astype(np.int32) - zp)).astype(np.float32)
        return value.astype(np.float32)

    if len(sigs) == 1:
        key = next(iter(sigs))
        runner = interp.get_signature_runner(key)
        (in_name, in_detail), = runner.get_input_details().items()
        raw = runner(**{in_name: feed(in_detail)})
        details = runner.get_output_details()
        names = sorted(raw)
        if set(OUTPUT_NAMES) <= set(names):
            return {n: real(raw[n], details[n])[0] for n in OUTPUT_NAMES}, "signature names"
        order = sorted(names, key=lambda n: int(n.rsplit("_", 1)[-1]) if n.rsplit("_", 1)[-1].isdigit() else n)
        return {o: real(raw[n], details[n])[0] for o, n in zip(OUTPUT_NAMES, order)}, f"signature order {order}"
    interp.allocate_tensors()
    (in_detail,) = interp.get_input_details()
    interp.set_tensor(in_detail["index"], feed(in_detail))
    interp.invoke()
    outs = sorted(interp.get_output_details(), key=lambda d: (len(d["name"]), d["name"]))
    return ({o: real(interp.get_tensor(d["index"]), d)[0] for o, d in zip(OUTPUT_NAMES, outs)},
            f"tensor order {[d['name'] for d in outs]} (no signature)")


def tflite_ops(path) -> dict[str, int]:
    from python_ref.runner import _interpreter_class

    interp = _interpreter_class()(model_path=str(path))
    return dict(sorted(Counter(op["op_name"] for op in interp._get_ops_details()).items()))


# ------------------------------------------------------------------------------------------------
# The comparison
# ------------------------------------------------------------------------------------------------
def _test_image(input_hw, calib_images: str | None) -> tuple[np.ndarray, str]:
    if calib_images:
        from .calibration import build_calibration_set

        held = build_calibration_set(calib_images, input_hw, count=1, seed=12345, log=lambda m: None)
        return held.images[0], f"real image ({held.manifest['images'][0]['file']}, letterboxed)"
    from .bench import synthetic_images
    return synthetic_images(input_hw, 1, seed=999)[0], "synthetic image"


def compare_routes(variant: str = "XS", **kwargs) -> dict:
    """Native route (project export) vs ONNX -> onnx2tf for one LitePose variant; a failure anywhere
    is reported in the result (`error`) rather than losing the rest of a long benchmark."""
    try:
        return _compare_routes(variant, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the report must say exactly what went wrong
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        return {"variant": variant, "error": f"{type(exc).__name__}: {lines[-1] if lines else ''}"}


def _compare_routes(variant: str = "XS", *, checkpoint: str | None = None, input_hw=None, runs: int = 10,
                   calib_images: str | None = None, calib_count: int = 8, workdir: str | None = None,
                   precisions=("fp32", "int8"), log=print) -> dict:
    """Native route (project export) vs ONNX -> onnx2tf for one LitePose variant."""
    from .archs import PRESETS
    from .bench import calibration_images, litepose_to_tflite, run_worker
    from .convert import compare_outputs
    from .network import build_litepose

    if checkpoint:
        from .checkpoint import build_keras_from_checkpoint
        model, info = build_keras_from_checkpoint(checkpoint, arch=variant, input_hw=input_hw)
        arch, joints, weights = info["arch"], info["num_joints"], os.path.basename(checkpoint)
    else:
        arch, joints, weights = PRESETS[variant], 14, "random"
        size = arch["img_size"]
        model = build_litepose(arch, joints, tuple(input_hw or (size, size)), name=f"litepose_{variant}")
        _randomise_bn(model)
    hw = tuple(int(v) for v in model.input_shape[1:3])
    test_image, test_note = _test_image(hw, calib_images)
    keras_out = {k: np.asarray(v)[0] for k, v in model(np.asarray(test_image, np.float32)[None]).items()}

    report = {"variant": variant, "input_size": f"{hw[0]}x{hw[1]}", "weights": weights, "test_image": test_note,
              "routes": {}, "onnx2tf_error": None}
    with tempfile.TemporaryDirectory(prefix="litepose-onnx-") as tmp:
        tmp = Path(workdir or tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        onnx_path = tmp / f"litepose-{variant}.onnx"
        t0 = time.perf_counter()
        proto = keras_to_onnx(model, onnx_path)
        ort_out = run_onnx(onnx_path, test_image)
        report["onnx"] = {"size_bytes": onnx_path.stat().st_size, "nodes": dict(Counter(n.op_type for n in proto.graph.node)),
                          "onnxruntime_vs_keras": compare_outputs(keras_out, ort_out),
                          "export_s": round(time.perf_counter() - t0, 1)}
        log(f"ONNX graph: {len(proto.graph.node)} nodes; onnxruntime vs Keras max error "
            + ", ".join(f"{k} {v['max_abs_error']:.1e}" for k, v in report["onnx"]["onnxruntime_vs_keras"].items()))
        calib = None
        if "int8" in precisions:
            calib, calib_note = calibration_images(hw, calib_images, calib_count)
            report["calibration"] = calib_note

        # The ONNX graph is the plain network, so the like-for-like comparison is the native plain graph;
        # the native deploy graph (what `litepose convert` ships) is listed too.
        files: dict[str, dict[str, Path]] = {"native-plain": {}, "native-deploy": {}, "onnx2tf": {}}
        report["native_graph"] = {}
        for graph in ("plain", "deploy"):
            for p in precisions:
                data, note = litepose_to_tflite(model, arch, joints, p, calib if p == "int8" else None, graph)
                path = tmp / f"native-{graph}-{p}.tflite"
                path.write_bytes(data)
                files[f"native-{graph}"][p] = path
                report["native_graph"][graph] = note
        reason = onnx2tf_available()
        if reason is None:
            try:
                produced = run_onnx2tf(onnx_path, tmp, calib if "int8" in precisions else None, log=log)
                files["onnx2tf"] = {p: produced[p] for p in precisions if p in produced}
            except LitePoseError as exc:
                reason = str(exc)
        report["onnx2tf_error"] = reason
        if reason:
            log(f"onnx2tf cannot run: {reason}")

        from python_ref.runner import TFLiteRunner

        for route, by_precision in files.items():
            for p, path in by_precision.items():
                entry = {"size_bytes": path.stat().st_size, "ops": tflite_ops(path)}
                entry["transposes"] = entry["ops"].get("TRANSPOSE", 0)
                try:
                    TFLiteRunner(path)
                    entry["contract"], entry["contract_error"] = True, None
                except LitePoseError as exc:
                    entry["contract"], entry["contract_error"] = False, str(exc).split(": ", 1)[-1]
                out, how = run_any_tflite(path, test_image)
                entry["outputs_read_by"] = how
                entry["vs_keras"] = compare_outputs(keras_out, out)
                try:
                    res = run_worker({"path": str(path), "threads": 1, "runs": runs, "contract": entry["contract"],
                                      "decode": False})
                except LitePoseError as exc:
                    res = {"error": str(exc).split(": ", 1)[-1]}
                entry.update(infer_ms_median=res.get("infer_ms_median"), infer_ms_p90=res.get("infer_ms_p90"),
                             peak_rss_mb=res.get("peak_rss_mb"), input_dtype=res.get("input_dtype"),
                             error=res.get("error"))
                report["routes"][f"{route}/{p}"] = entry
                log(f"{route} {p}: {entry['size_bytes'] / 1e6:.2f} MB, {sum(entry['ops'].values())} ops "
                    f"({entry['transposes']} TRANSPOSE), "
                    + (f"{entry['infer_ms_median']:.1f} ms" if entry["error"] is None else f"FAILED {entry['error']}")
                    + (f", min SQNR vs Keras {min(v['sqnr_db'] for v in entry['vs_keras'].values()):.1f} dB"
                       if entry.get("vs_keras") else ""))
    return report


def _randomise_bn(model, seed: int = 0) -> None:
    """Random-weight models get non-trivial BN statistics so folding and parity are really tested."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            c = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c).astype(np.float32), rng.normal(0, 0.1, c).astype(np.float32),
                               rng.normal(0, 0.1, c).astype(np.float32), rng.uniform(0.5, 2.0, c).astype(np.float32)])


def markdown_section(rep: dict) -> str:
    if rep.get("error"):
        return f"## ONNX route vs native route (LitePose-{rep['variant']})\n\n**Failed:** {rep['error']}\n"
    lines = [f"## ONNX route vs native route (LitePose-{rep['variant']}, {rep['input_size']}, weights: {rep['weights']})", "",
             f"ONNX graph built with onnx.helper from the same weights ({sum(rep['onnx']['nodes'].values())} nodes, "
             f"{rep['onnx']['size_bytes'] / 1e6:.2f} MB); onnxruntime vs Keras max abs error: "
             + ", ".join(f"{k} {v['max_abs_error']:.1e}" for k, v in rep["onnx"]["onnxruntime_vs_keras"].items())
             + f". Test image: {rep['test_image']}; calibration: {rep.get('calibration', '–')}. Native graphs: "
             + "; ".join(f"{k}: {v}" for k, v in (rep.get("native_graph") or {}).items()) + ".", ""]
    if rep.get("onnx2tf_error"):
        lines += [f"**onnx2tf could not run here:** {rep['onnx2tf_error']}", ""]
    lines += ["| route / precision | size MB | ops | TRANSPOSE | infer ms (median, 1 thread) | "
              "SQNR vs Keras float (heatmaps_s4 / tags_s4 / heatmaps_s2) | max abs error | keeps the I/O contract |",
              "|---|---|---|---|---|---|---|---|"]
    for key, e in rep["routes"].items():
        vs = e.get("vs_keras")
        sq = " / ".join(f"{vs[n]['sqnr_db']:.1f}" for n in OUTPUT_NAMES) if vs else "–"
        err = f"{max(vs[n]['max_abs_error'] for n in OUTPUT_NAMES):.1e}" if vs else "–"
        lines.append(f"| {key} | {e['size_bytes'] / 1e6:.2f} | {sum(e['ops'].values())} | {e['transposes']} | "
                     f"{'failed: ' + e['error'] if e.get('error') else format(e['infer_ms_median'], '.1f')} | {sq} dB | {err} | "
                     f"{'yes' if e.get('contract') else 'no: ' + str(e.get('contract_error'))} |")
    lines += ["", "Op counts: " + "; ".join(f"{k}: " + ", ".join(f"{op} {n}" for op, n in e["ops"].items())
                                            for k, e in rep["routes"].items())]
    return "\n".join(lines) + "\n"
