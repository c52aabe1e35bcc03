"""Where an int8 LitePose loses its SQNR: round groups of activation tensors to the int8 model's own grids
inside the float deploy graph, one group at a time, and score the outputs against the unrounded graph.

    python scripts/int8_sensitivity.py --model m_int8.tflite --checkpoint CK --calib-images DIR \
        --images ../shared/data/crowdpose/images --out sensitivity.json [--layers REGEX]

The deploy graph is rebuilt exactly as `litepose convert` builds it for that model (same calibration set,
so the same equalisation scales and centred biases); each int8 tensor's scale and zero point are read from
MODEL (tensor names carry the Keras layer names; a layer the converter merged with an identical copy, such as
the heads' tags depthwise copy, is rounded under its copy's name only, and the outputs' own rounding is not
included). Weights stay float, so "all groups" shows how much of the model's error is activation rounding. Noise powers of separate groups add up to about the total: a group
at 30 dB alone costs a 22 dB model about 1/6 of its noise. `--layers REGEX` scores each matching layer
alone instead of the groups.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

GROUPS = (  # (group, layer-name pattern), first match wins
    ("stem", r"(normalize|first_)"),
    ("expand_relu6", r"stage_\d+_\d+_inv"),
    ("dw_pieces", r"stage_\d+_\d+_depth_conv_(part|view|pad)"),
    ("dw_partial_sum", r"stage_\d+_\d+_depth_conv_sum"),
    ("dw_relu6", r"stage_\d+_\d+_depth_conv_relu6"),
    ("point_conv", r"stage_\d+_\d+_point_conv"),
    ("residual_stream", r"stage_\d+_\d+_add"),
    ("deconv", r"deconv"),
    ("heads", r"(final_|heatmaps|tags)"),
)


def group_of(name: str) -> str:
    return next((g for g, pattern in GROUPS if re.match(pattern, name)), "other")


def int8_grids(model_path: str) -> dict[str, tuple[float, int]]:
    """Keras layer name -> (scale, zero point) of the int8 tensor it produces (fused activations: the
    activation layer's name comes first in the TFLite tensor name)."""
    from ai_edge_litert.interpreter import Interpreter

    grids = {}
    for t in Interpreter(model_path).get_tensor_details():
        q = t["quantization_parameters"]
        if t["dtype"] != np.int8 or len(q["scales"]) != 1 or "/" not in t["name"]:
            continue
        layer = re.sub(r"_\d+$", "", t["name"].split(";")[0].split("/")[1])
        grids[layer] = (float(q["scales"][0]), int(q["zero_points"][0]))
    return grids


def run_graph(model, x, rounded: set, grids: dict, on_grid=None, value=np.asarray):
    """The Keras graph run layer by layer, the outputs of layers in `rounded` put on their int8 grid (for an
    Add of more than two inputs: the partial sum of the first two, as TFLite's chain of ADDs computes it).
    `on_grid(v, scale, zero_point)` rounds (default: numpy); `value` turns a layer output into what the next
    layers read (numpy arrays by default; the identity keeps TensorFlow tensors for gradients)."""
    import keras

    def rounding(v, s, z):
        return (np.clip(np.round(v / s) + z, -128, 127) - z) * s

    on_grid = on_grid or rounding
    vals = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            vals[id(layer.output)] = x
            continue
        ins = [vals[id(t)] for t in layer._inbound_nodes[0].input_tensors]
        if isinstance(layer, keras.layers.Add) and len(ins) > 2:
            y = ins[0] + ins[1]
            if layer.name in rounded:
                y = on_grid(y, *grids[layer.name])
            for v in ins[2:]:
                y = y + v
        else:
            y = value(layer(ins if len(ins) > 1 else ins[0]))
            if layer.name in rounded:
                y = on_grid(y, *grids[layer.name])
        vals[id(layer.output)] = y
    return {name: vals[id(t)] for name, t in zip(sorted(model.output), model.outputs)} \
        if isinstance(model.output, dict) else [vals[id(t)] for t in model.outputs]


def rebuilt_deploy_graph(checkpoint: str, input_size: str, calib_images, calib_count: int = 100,
                         centre_sums: bool = True):
    """The float deploy graph exactly as `litepose convert` builds it for int8 from this calibration folder
    (same equalisation scales, same centred biases); returns (graph, input hw, calibration set)."""
    from converter.archs import parse_input_size
    from converter.calibration import build_calibration_set
    from converter.checkpoint import build_keras_from_checkpoint
    from converter.convert import graph_for_export
    from converter.export import centre_sum_addends

    hw = parse_input_size(input_size)
    model, info = build_keras_from_checkpoint(checkpoint, input_hw=hw)
    calib = build_calibration_set(calib_images, hw, count=calib_count, log=lambda m: None)
    deploy, _ = graph_for_export(model, info["arch"], info["num_joints"], "deploy", calib.images, log=lambda m: None)
    if centre_sums:
        centre_sum_addends(deploy, calib.images, log=lambda m: None)
    return deploy, hw, calib


def model_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options that name an int8 model and how it was built, and the held-out images."""
    ap.add_argument("--model", required=True, help="the int8 .tflite built by litepose convert")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--input-size", default="448x448")
    ap.add_argument("--calib-images", required=True, action="append",
                    help="the calibration folder(s) the model was built with (the option again for each, in the "
                    "order convert got them)")
    ap.add_argument("--calib-count", type=int, default=100)
    ap.add_argument("--images", required=True, help="evaluation images (held out from calibration)")
    return ap


def main(argv=None):
    ap = model_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    ap.add_argument("--layers", default=None, help="score each layer matching this regex alone")
    ap.add_argument("--no-centre-sums", action="store_true", help="the model was built with centre_sums=False")
    ap.add_argument("--out", required=True, help="JSON results")
    args = ap.parse_args(argv)

    import python_ref.preprocess as pp

    deploy, hw, _ = rebuilt_deploy_graph(args.checkpoint, args.input_size, args.calib_images, args.calib_count,
                                         not args.no_centre_sums)
    grids = int8_grids(args.model)
    quantised = [l.name for l in deploy.layers if l.name in grids]
    xs = [pp.letterbox(pp.load_image_rgb(p), hw)[0].astype(np.float32)[None]
          for p in sorted(Path(args.images).iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    reference = [run_graph(deploy, x, set(), grids) for x in xs]

    def sqnr(rounded: set) -> dict:
        outs = [run_graph(deploy, x, rounded, grids) for x in xs]
        res = {}
        for k in reference[0]:
            signal = sum(float(np.sum(r[k] ** 2)) for r in reference)
            noise = sum(float(np.sum((r[k] - o[k]) ** 2)) for r, o in zip(reference, outs))
            res[k] = round(float(10 * np.log10(signal / max(noise, 1e-30))), 2)
        return res

    if args.layers:
        units = {n: {n} for n in quantised if re.match(args.layers, n)}
    else:
        units = {}
        for n in quantised:
            units.setdefault(group_of(n), set()).add(n)
    result = {"model": args.model, "images": len(xs), "tensors": len(quantised),
              "all": sqnr(set(quantised)), "alone": {}}
    print(f"all {len(quantised)} tensors rounded: {result['all']}", flush=True)
    for name, members in sorted(units.items()):
        result["alone"][name] = sqnr(members)
        print(f"{name:40s} {result['alone'][name]}", flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
