"""Measure deploy-graph variants of one checkpoint: build each .tflite, time it on LiteRT's default CPU
path (XNNPACK) at 1 and 2 threads, and score its outputs against the float Keras network (SQNR).

    nice python scripts/bench_int8.py --checkpoint ../shared/checkpoints/litepose-auto-m-crowdpose-448.pth \
        --input-size 448x448 --calib-images DIR --eval-images DIR --out bench.json \
        --variant 'int8={}' --variant 'fp32={"precision": "fp32"}' --variant 'plain-fp32={"graph": "plain", "precision": "fp32"}'

A variant is NAME=JSON: "precision" (fp32|fp16|dynamic|int8, default int8), "graph" (deploy|plain), and any
`converter.rewrites.DeployOptions` field, or the `export_tflite` options "range_method" (minmax | mse |
mse-backbone | mse-heads; default mse-backbone, as `litepose convert`), "bias_correction" (false | true |
"depthwise"), "narrow_sums", "centre_sums", "output_bias_correction" (both default true) and "weight_rounding"
(gptq | nearest). Timing:
rounds of all models interleaved (the machine is shared and noisy, so variants are compared within one run),
median over rounds x runs. The letterbox is the contract's (ImageNet mean-colour border);
`--letterbox-fill black` reproduces the earlier black border (docs/int8.md section 1).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

IMAGENET_MEAN_RGB = (124, 116, 104)
FILLS = {"mean": IMAGENET_MEAN_RGB, "black": (0, 0, 0)}


def fill_letterbox(fill: str = "mean"):
    """Patch python_ref.preprocess.letterbox to paint the border in `fill` ('mean' or 'black')."""
    import python_ref.preprocess as pp

    colour = FILLS[fill]
    original = pp.letterbox

    def letterbox(image, input_hw):
        img, box = original(image, input_hw)
        (nh, nw), (ox, oy) = box.resized_hw, box.offset_xy
        out = np.empty_like(img)
        out[:] = np.asarray(colour, np.uint8)
        out[oy:oy + nh, ox:ox + nw] = img[oy:oy + nh, ox:ox + nw]
        return out, box

    pp.letterbox = letterbox


def load_images(folder: str, input_hw):
    import python_ref.preprocess as pp

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [(p.name, pp.letterbox(pp.load_image_rgb(p), input_hw)[0]) for p in files]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--input-size", default="448x448")
    ap.add_argument("--calib-images", required=True, help="folder, or several joined by ','")
    ap.add_argument("--eval-images", required=True)
    ap.add_argument("--variant", action="append", required=True, help="NAME=JSON")
    ap.add_argument("--out", required=True, help="JSON results")
    ap.add_argument("--models-dir", default=None, help="keep the .tflite files here")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--letterbox-fill", choices=("contract", "black", "mean"), default="contract")
    args = ap.parse_args(argv)
    if args.letterbox_fill != "contract":
        fill_letterbox(args.letterbox_fill)

    from ai_edge_litert.interpreter import Interpreter
    from converter.bench import interleaved_times_ms

    from converter.archs import parse_input_size
    from converter.checkpoint import build_keras_from_checkpoint
    from converter.convert import compare_outputs
    from converter.export import export_tflite, inspect_tflite
    from converter.rewrites import DeployOptions, build_deploy_model, measure_channel_ranges

    hw = parse_input_size(args.input_size)
    model, info = build_keras_from_checkpoint(args.checkpoint, input_hw=hw)
    calib = [img for folder in args.calib_images.split(",") for _, img in load_images(folder, hw)]
    evals = load_images(args.eval_images, hw)
    refs = [{k: np.asarray(v)[0] for k, v in model(img[None].astype(np.float32)).items()} for _, img in evals]
    ranges = measure_channel_ranges(model, info["arch"], calib)
    models_dir = Path(args.models_dir) if args.models_dir else Path(os.environ.get("TMPDIR", "/tmp"))
    models_dir.mkdir(parents=True, exist_ok=True)

    results = {}
    for spec in args.variant:
        name, _, js = spec.partition("=")
        opts = json.loads(js or "{}")
        precision = opts.pop("precision", "int8")
        graph = opts.pop("graph", "deploy")
        bias_correction = opts.pop("bias_correction", False)
        extra = {k: opts.pop(k) for k in ("range_method", "narrow_sums", "weight_rounding", "centre_sums",
                                      "output_bias_correction") if k in opts}  # default: export_tflite's
        src = model if graph == "plain" else build_deploy_model(model, info["arch"], info["num_joints"],
                                                                 DeployOptions(**opts), ranges=ranges)
        t0 = time.perf_counter()
        data = export_tflite(src, precision, representative_images=calib if precision == "int8" else None,
                             log=lambda m: None, bias_correction=bias_correction, **extra)
        path = models_dir / f"{name}.tflite"
        path.write_bytes(data)
        from python_ref.runner import TFLiteRunner

        runner = TFLiteRunner(path)
        sqnr = {}
        for (fname, img), ref in zip(evals, refs):
            for k, v in compare_outputs(ref, runner(img)).items():
                sqnr.setdefault(k, {})[fname] = round(v["sqnr_db"], 2)
        results[name] = {"precision": precision, "graph": graph, "options": opts, "file": str(path),
                         "size_bytes": len(data), "ops": inspect_tflite(data)["ops"], "sqnr_db": sqnr,
                         "build_s": round(time.perf_counter() - t0, 1), "latency_ms": {}}
        print(f"{name}: built, SQNR {sqnr}", file=sys.stderr, flush=True)

    threads = [int(t) for t in args.threads.split(",")]
    image = evals[0][1]
    interps = {}
    for n, r in results.items():
        for t in threads:
            it = Interpreter(model_path=r["file"], num_threads=t)
            it.allocate_tensors()
            d = it.get_input_details()[0]
            it.set_tensor(d["index"], image[None].astype(d["dtype"]) if d["dtype"] != np.int8
                          else (image.astype(np.int16) - 128).astype(np.int8)[None])
            it.invoke()
            interps[(n, t)] = it
    times = interleaved_times_ms(interps, args.rounds, args.runs,
                                 log=lambda m: print(m, file=sys.stderr, flush=True))
    for (n, t), v in times.items():
        results[n]["latency_ms"][str(t)] = {"median": round(float(np.median(v)), 2), "min": round(float(np.min(v)), 2)}
    out = {"command": " ".join(sys.argv), "checkpoint": Path(args.checkpoint).name, "input_size": args.input_size,
           "letterbox_fill": args.letterbox_fill, "calib_images": args.calib_images, "eval_images": args.eval_images,
           "rounds": args.rounds, "runs": args.runs, "variants": results}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for n, r in results.items():
        print(f"{n:24s} " + "  ".join(f"{t}T {r['latency_ms'][t]['median']:7.1f} ms" for t in r["latency_ms"])
              + "  SQNR " + " ".join(f"{k}={min(v.values()):.1f}" for k, v in r["sqnr_db"].items()))


if __name__ == "__main__":
    main()
