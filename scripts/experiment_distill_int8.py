"""Experiment (not in the converter): can fine-tuning the float weights under the int8 model's activation
rounding (straight-through gradients, float outputs as the only targets: no labels needed) raise the int8
SQNR on images it was not tuned on? The question behind it: is the missing ~3 dB on the heatmaps within
reach of quantisation-aware tuning with the few unlabelled images a user calibrates with?

    python scripts/experiment_distill_int8.py --model m_int8.tflite --checkpoint CK --calib-images DIR \
        --images ../shared/data/crowdpose/images --steps 300 --lr 1e-6 --out distill.json

The deploy graph is rebuilt as `litepose convert` built MODEL (`int8_sensitivity.rebuilt_deploy_graph`),
every tensor MODEL quantises is rounded to MODEL's grid (`int8_sensitivity.run_graph`), and Adam minimises the
summed noise-to-signal ratio of the three outputs over `--views` views of each calibration image. Reported,
every `--every` steps: SQNR of the rounded graph against the original float outputs on the held-out images'
views, and how far the tuned float function has moved from the original ("float_drift_db"). `--export OUT`
converts the tuned graph as convert does, for `litepose validate OUT --reference CK`.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None):
    from int8_sensitivity import int8_grids, model_arguments, rebuilt_deploy_graph, run_graph

    ap = model_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--cosine", action="store_true", help="learning rate decays to 0 over the steps")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--out", required=True, help="JSON results")
    ap.add_argument("--export", default=None, help="also convert the tuned graph to this int8 .tflite (as convert "
                                                 "does: same calibration set, ranges, centring, GPTQ)")
    args = ap.parse_args(argv)

    import tensorflow as tf
    import keras

    import python_ref.preprocess as pp
    from converter.validate import input_views

    deploy, hw, calib = rebuilt_deploy_graph(args.checkpoint, args.input_size, args.calib_images, args.calib_count)
    grids = int8_grids(args.model)
    rounded = {l.name for l in deploy.layers if l.name in grids}

    def straight_through(v, s, z):
        r = (tf.clip_by_value(tf.round(v / s) + z, -128.0, 127.0) - z) * s
        return v + tf.stop_gradient(r - v)

    def views_of(images):
        return np.stack([pp.letterbox(v, hw)[0].astype(np.float32)
                         for img in images for v in input_views(np.asarray(img), args.views)])

    train = views_of(calib.images)
    held_out = views_of([pp.load_image_rgb(p) for p in sorted(Path(args.images).iterdir())
                         if p.suffix.lower() in (".jpg", ".jpeg", ".png")])
    f_float = tf.function(lambda x: run_graph(deploy, x, set(), grids, value=lambda v: v))
    f_int8 = tf.function(lambda x: run_graph(deploy, x, rounded, grids, straight_through, value=lambda v: v))

    def outputs(f, xs):
        parts = [f(tf.constant(xs[i:i + 4])) for i in range(0, len(xs), 4)]
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}

    def sqnr_db(ref, test):
        return {k: round(float(10 * np.log10(np.sum(ref[k] ** 2) / np.sum((ref[k] - test[k]) ** 2))), 2)
                for k in ref}

    target_train, target_held = outputs(f_float, train), outputs(f_float, held_out)
    power = {k: float(np.mean(v ** 2)) for k, v in target_train.items()}
    history = []

    def record(step, seconds):
        row = {"step": step, "seconds": round(seconds),
               "held_out_int8_db": sqnr_db(target_held, outputs(f_int8, held_out)),
               "train_int8_db": sqnr_db(target_train, outputs(f_int8, train))}
        if step:
            row["float_drift_db"] = sqnr_db(target_held, outputs(f_float, held_out))
        history.append(row)
        print(json.dumps(row), flush=True)

    variables = deploy.trainable_variables
    optimiser = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(args.lr, args.steps)
                                      if args.cosine else args.lr)

    @tf.function
    def step(x, targets):
        with tf.GradientTape() as tape:
            out = run_graph(deploy, x, rounded, grids, straight_through, value=lambda v: v)
            loss = tf.add_n([tf.reduce_mean((out[k] - targets[k]) ** 2) / power[k] for k in targets])
        optimiser.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    record(0, 0.0)
    for s in range(1, args.steps + 1):
        idx = rng.choice(len(train), args.batch, replace=False)
        step(tf.constant(train[idx]), {k: tf.constant(v[idx]) for k, v in target_train.items()})
        if s % args.every == 0 or s == args.steps:
            record(s, time.perf_counter() - t0)
    Path(args.out).write_text(json.dumps({"model": args.model, "lr": args.lr, "cosine": args.cosine,
                                          "steps": args.steps,
                                          "batch": args.batch, "views": args.views, "train_inputs": len(train),
                                          "held_out_inputs": len(held_out), "history": history}, indent=1))
    print(f"wrote {args.out}")
    if args.export:
        from converter.export import export_tflite

        Path(args.export).write_bytes(export_tflite(deploy, "int8", representative_images=calib.images,
                                                    log=lambda m: None))
        print(f"wrote {args.export}")


if __name__ == "__main__":
    main()
