"""Single-op depthwise-convolution timings on LiteRT's default CPU path (XNNPACK), fp32 and int8:
which kernel shapes stay on the fast path (docs/int8.md). One DepthwiseConv2D on 1x112x112x144, 'same'.
XNNPACK's int8 kernels come in 3 (AVX2 / AVX-512 x86, ARM), 9 and 25 taps: a kernel costs as much as the next
size up, > 25 taps is slow. int8_ms includes a float QUANTIZE and DEQUANTIZE; int8_io_ms is the op alone (int8
in and out).

`--alternatives` also times what could stand in for a 7x7 depthwise conv on the same tensor: the three
lattice pieces summed (the deploy graph's form), an int8 ADD (the price of one more piece), and the same 7x7
as a grouped CONV_2D with block-diagonal weights (exact, more multiplies, but on the GEMM kernels, which use
VNNI / AMX where the CPU has them), and the deploy graph's blocked form (`converter.rewrites.BlockedDepthwise`:
pixel blocks as channel groups, one grouped conv; session 12), and a blocked form without its PAD (4x4 sub-blocks,
a 4x4 grouped conv of stride 2 whose 'same' padding is the depthwise conv's; session 14).

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
    out["sub-blocked: 4x4 pixel sub-blocks, 4x4 grouped CONV_2D stride 2 'same' (no PAD), ReLU6"] = model(
        lambda x: sub_blocked_depthwise(keras)(x))
    for g in GROUPS:
        out[f"7x7 CONV_2D groups={g}, ReLU6"] = model(
            lambda x, g=g: keras.layers.Conv2D(c, 7, padding="same", groups=g, activation="relu6")(x))
    return out


def sub_blocked_depthwise(keras, k=7, m=4):
    """A random 7x7 depthwise conv + ReLU6 as SPACE_TO_DEPTH(m) + TRANSPOSE, one grouped conv (kernel 4 x 4 sub-blocks,
    stride 2, 'same': its zero padding of one sub-block is the depthwise conv's, so no PAD) making 2m x 2m output
    blocks, TRANSPOSE + DEPTH_TO_SPACE. Same multiplies as the 2 x 2 blocked form, but m^2 = 16 input channels per
    tap instead of 64 (exact; checked against tf.nn.depthwise_conv2d when built)."""
    import tensorflow as tf

    b, q = 2 * m, 4
    ty, tx, py, px, oy, ox = np.meshgrid(*(np.arange(v) for v in (q, q, m, m, b, b)), indexing="ij")
    dy, dx = (ty - 1) * m + py - oy + k // 2, (tx - 1) * m + px - ox + k // 2
    taps = np.where((dy >= 0) & (dy < k) & (dx >= 0) & (dx < k), dy * k + dx, k * k).reshape(q, q, m * m, b * b)

    class SubBlocked(keras.layers.Layer):
        def build(self, shape):
            c = shape[-1]
            kernel = np.random.default_rng(0).normal(0, 0.2, (k * k, c)).astype(np.float32)
            filt = np.concatenate([kernel, np.zeros((1, c), np.float32)])[taps]          # q q mm bb c
            self.filt = np.transpose(filt, (0, 1, 2, 4, 3)).reshape(q, q, m * m, c * b * b)
            self.kernel = kernel.reshape(k, k, c, 1)

        def call(self, x):
            _, h, w, c = x.shape
            xs = tf.reshape(tf.nn.space_to_depth(x, m), [(h // m) * (w // m), m * m, c])
            xs = tf.reshape(tf.transpose(xs, [0, 2, 1]), [1, h // m, w // m, c * m * m])
            y = tf.nn.relu6(tf.nn.conv2d(xs, self.filt, 2, "SAME"))
            y = tf.reshape(tf.transpose(tf.reshape(y, [(h // b) * (w // b), c, b * b]), [0, 2, 1]),
                           [1, h // b, w // b, b * b * c])
            return tf.nn.depth_to_space(y, b)

    layer = SubBlocked()

    def apply(x):
        y = layer(x)
        probe = np.random.default_rng(1).normal(size=(1,) + tuple(x.shape[1:])).astype(np.float32)
        want = tf.nn.relu6(tf.nn.depthwise_conv2d(probe, layer.kernel, [1, 1, 1, 1], "SAME")).numpy()
        assert np.abs(layer(probe).numpy() - want).max() < 1e-4, "sub-blocked form differs from the depthwise conv"
        return y
    return apply


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
