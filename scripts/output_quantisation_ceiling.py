"""Best SQNR an INT8 model's outputs can reach: the float reference's outputs rounded to the int8 grid of
the model's last quantised tensors (scale / zero point read from the .tflite), per image.

    python scripts/output_quantisation_ceiling.py MODEL_INT8.tflite FLOAT.tflite IMAGE_DIR [IMAGE_DIR ...]

Shows whether a SQNR target is limited by the output format itself or by error inside the network
(docs/int8.md section 3). Images are letterboxed like deployed inference.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def output_grids(model_path: str) -> dict[str, tuple[float, int]]:
    """(scale, zero_point) of the int8 tensor behind each named output (before its DEQUANTIZE, if any)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=model_path)
    it.allocate_tensors()
    names = {v: k for k, v in it._get_full_signature_list()["serving_default"]["outputs"].items()}
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    grids = {}
    for op in it._get_ops_details():
        out = op["outputs"][0]
        if out in names:
            src = tensors[op["inputs"][0]] if op["op_name"] == "DEQUANTIZE" else tensors[out]
            scale, zero = src["quantization"]
            if scale:
                grids[names[out]] = (float(scale), int(zero))
    return grids


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    from converter.validate import sqnr_from

    ref, test = ref.astype(np.float64), test.astype(np.float64)
    return sqnr_from(float(np.sum(ref ** 2)), float(np.sum((ref - test) ** 2)))


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        sys.exit(__doc__)
    from python_ref.preprocess import letterbox, load_image_rgb
    from python_ref.runner import TFLiteRunner

    model_path, float_path, folders = args[0], args[1], args[2:]
    grids = output_grids(model_path)
    model, ref = TFLiteRunner(model_path), TFLiteRunner(float_path)
    print("output grids (scale, zero point):", grids)
    for folder in folders:
        for path in sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
            boxed, _ = letterbox(load_image_rgb(path), model.input_hw)
            r, m = ref(boxed), model(boxed)
            cells = []
            for name, (scale, zero) in grids.items():
                q = (np.clip(np.round(r[name] / scale) + zero, -128, 127) - zero) * scale
                cells.append(f"{name} ceiling {sqnr_db(r[name], q):5.1f} / model {sqnr_db(r[name], m[name]):5.1f} dB")
            print(f"{path.name[:24]:24s} " + "  ".join(cells))


if __name__ == "__main__":
    main()
