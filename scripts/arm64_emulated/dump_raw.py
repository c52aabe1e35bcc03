"""Save a LitePose .tflite model's raw outputs on a few images, to compare CPUs bit by bit.

Runs on x86 and inside the arm64 sysroot alike, with what `litepose predict` uses: python_ref's
TFLiteRunner and letterbox. Per image it saves STEM__input.npy (the letterboxed uint8 image fed to the
model) and STEM__<output>.npy, plus meta.json (machine, versions, whether XNNPACK ran, int8 grids).
--inputs-from DIR feeds the inputs saved by another run instead of decoding the images here, so that JPEG
decoding and cv2.resize, which differ between OpenCV builds, are left out of the comparison.

usage: python dump_raw.py --model M.tflite --out DIR [--threads N] [--inputs-from DIR] IMAGE...
"""
import argparse
import json
import platform
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repo root, for python_ref
from python_ref.preprocess import letterbox, load_image_rgb  # noqa: E402
from python_ref.runner import TFLiteRunner, runtime_name  # noqa: E402


def int8_grids(runner):
    """{output: [scale, zero_point]} of the integers behind each output, so that differences can be counted
    in int8 steps: an integer output's own quantisation, or for a float output the int8 tensor that its final
    DEQUANTIZE reads (the committed int8 models end that way). Reads LiteRT's private op list: {} if absent."""
    grids = {n: list(q) for n, q in runner.output_quantization.items() if q[0] > 0}
    try:
        it = runner._interpreter
        tensors = {t["index"]: t for t in it.get_tensor_details()}
        # the op list also holds the XNNPACK node that replaced the DEQUANTIZEs, with the same outputs
        dequantize = {int(op["outputs"][0]): int(op["inputs"][0])
                      for op in it._get_ops_details() if op["op_name"] == "DEQUANTIZE"}
        for name, detail in runner._outputs.items():
            if name not in grids and detail["index"] in dequantize:
                scale, zero_point = tensors[dequantize[detail["index"]]]["quantization"]
                if scale > 0:
                    grids[name] = [float(scale), int(zero_point)]
    except (AttributeError, KeyError, IndexError):
        pass
    return grids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--inputs-from", help="a dump_raw.py folder whose STEM__input.npy files are fed")
    ap.add_argument("images", nargs="+")
    a = ap.parse_args()

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runner = TFLiteRunner(a.model, num_threads=a.threads)
    meta = {"machine": platform.machine(), "python": platform.python_version(), "runtime": runtime_name(),
            "numpy": np.__version__, "opencv": cv2.__version__, "xnnpack": runner.xnnpack,
            "model": Path(a.model).name, "threads": a.threads, "inputs_from": a.inputs_from,
            "output_quant": {n: list(q) for n, q in runner.output_quantization.items()},
            "int8_grids": int8_grids(runner), "stems": []}
    for image in a.images:
        stem = Path(image).stem
        if a.inputs_from:
            net_in = np.load(Path(a.inputs_from) / f"{stem}__input.npy")
        else:
            net_in = letterbox(load_image_rgb(image), runner.input_hw)[0]
        np.save(out / f"{stem}__input.npy", net_in)
        for name, value in runner.run_raw(runner.prepare_input(net_in)).items():
            np.save(out / f"{stem}__{name}.npy", value)
        meta["stems"].append(stem)
        print(f"  {stem}", flush=True)
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"{meta['machine']}, {meta['runtime']}, XNNPACK {meta['xnnpack']}, {a.threads} thread(s): wrote {out}")


if __name__ == "__main__":
    main()
