"""Single-op depthwise-convolution timings on LiteRT's default CPU path (XNNPACK), fp32 and int8:
which kernel shapes stay on the fast path (docs/int8.md). One DepthwiseConv2D on 1x112x112x144, 'same'.
XNNPACK's int8 kernels come in 3 (AVX2 / AVX-512 x86, ARM), 9 and 25 taps: a kernel costs as much as the next
size up, > 25 taps is slow. int8_ms includes a float QUANTIZE and DEQUANTIZE; int8_io_ms is the op alone (int8
in and out).

`--alternatives` also times what could stand in for a 7x7 depthwise conv on the same tensor: the three
lattice pieces summed (the deploy graph's form), an int8 ADD (the price of one more piece), and the same 7x7
as a grouped CONV_2D with block-diagonal weights (exact, more multiplies, but on the GEMM kernels, which use
VNNI / AMX where the CPU has them), and the deploy graph's blocked form (`converter.rewrites.BlockedDepthwise`:
pixel blocks as channel groups, one grouped conv; session 12).

    nice python scripts/bench_depthwise.py --out depthwise.json [--alternatives]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
VARIANTS = {
    "2x2": {"kernel_size": (2, 2)}, "3x3": {"kernel_size": (3, 3)}, "2x5": {"kernel_size": (2, 5)},
    "4x4": {"kernel_size": (4, 4)}, "5x5": {"kernel_size": (5, 5)}, "7x7": {"kernel_size": (7, 7)},
    "7x3": {"kernel_size": (7, 3)}, "3x7": {"kernel_size": (3, 7)}, "7x1": {"kernel_size": (7, 1)},
    "7x2 dilation 6": {"kernel_size": (7, 2), "dilation_rate": (1, 6)},
    # the three pieces of the deploy graph's 7x7 split (converter/rewrites.py, layout "lattice")
    "7x3 dilation (1,2)": {"kernel_size": (7, 3), "dilation_rate": (1, 2)},
    "5x4 dilation (1,2)": {"kernel_size": (5, 4), "dilation_rate": (1, 2)},
    "2x4 dilation (6,2)": {"kernel_size": (2, 4), "dilation_rate": (6, 2)},
    "7x4": {"kernel_size": (7, 4)}, "5x6": {"kernel_size": (5, 6)}, "3x9": {"kernel_size": (3, 9)},
    "1x1": {"kernel_size": (1, 1)}, "3x1": {"kernel_size": (3, 1)}, "1x2 dilation 6": {"kernel_size": (1, 2),
                                                                                       "dilation_rate": (1, 6)},
}
GROUPS = (1, 2, 3, 4, 6)  # 7x7 grouped CONV_2D on 144 channels: 144, 72, 48, 36, 24 channels per group


def alternative_models(keras, h, w, c):
    """{name: keras.Model} of the stand-ins for one 7x7 depthwise conv + ReLU6 on [1, h, w, c]."""
    def model(fn):
        x = keras.Input((h, w, c), batch_size=1, name="x")
        return keras.Model(x, fn(x))

    dw = keras.layers.DepthwiseConv2D
    out = {
        "lattice 7x3+5x4+2x4, ADD, ReLU6": model(lambda x: keras.layers.ReLU(6.0)(keras.layers.Add()([
            dw((7, 3), dilation_rate=(1, 2), padding="same")(x), dw((5, 4), dilation_rate=(1, 2), padding="same")(x),
            dw((2, 4), dilation_rate=(6, 2), padding="same")(x)]))),
        "1x1 depthwise + ADD": model(lambda x: keras.layers.Add()([dw(1)(x), x])),
    }
    from converter.rewrites import BlockedDepthwise, depthwise_block_size

    b = depthwise_block_size(h, w, 7)
    out[f"blocked: {b}x{b} pixel blocks, 2x2 grouped CONV_2D, ReLU6 (--depthwise-form blocked)"] = model(
        lambda x: BlockedDepthwise.make(7, b, padding="same", activation="relu6")(x))
    for g in GROUPS:
        out[f"7x7 CONV_2D groups={g}, ReLU6"] = model(
            lambda x, g=g: keras.layers.Conv2D(c, 7, padding="same", groups=g, activation="relu6")(x))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--alternatives", action="store_true", help="also the stand-ins for a 7x7 depthwise conv")
    args = ap.parse_args()
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from converter.export import build_environment

    h = w = 112
    c = 144
    rng = np.random.default_rng(0)

    def convert(model, int8, int8_io=False):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if int8:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ({"x": rng.normal(size=(1, h, w, c)).astype(np.float32)}
                                                   for _ in range(3))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if int8_io:   # the op alone, as inside a full-integer model: no QUANTIZE / DEQUANTIZE around it
                conv.inference_input_type = conv.inference_output_type = tf.int8
        return conv.convert()

    def bench(data):
        it = Interpreter(model_content=data, num_threads=1)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        it.invoke()
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            it.invoke()
            times.append((time.perf_counter() - t0) * 1000)
        return round(float(np.median(times)), 2)

    out = {}
    for name, kw in VARIANTS.items():
        x = keras.Input((h, w, c), batch_size=1, name="x")
        model = keras.Model(x, keras.layers.DepthwiseConv2D(padding="same", **kw)(x))
        out[name] = {"fp32_ms": bench(convert(model, False)), "int8_ms": bench(convert(model, True)),
                     "int8_io_ms": bench(convert(model, True, int8_io=True))}
        print(name, out[name], file=sys.stderr, flush=True)
    report = {"command": " ".join(sys.argv), "host": build_environment(), "shape": [1, h, w, c], "threads": 1,
              "results": out}
    if args.alternatives:
        report["alternatives"] = {}
        for name, model in alternative_models(keras, h, w, c).items():
            report["alternatives"][name] = {"fp32_ms": bench(convert(model, False)),
                                            "int8_io_ms": bench(convert(model, True, int8_io=True))}
            print(name, report["alternatives"][name], file=sys.stderr, flush=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
