"""Time existing .tflite files on LiteRT's default CPU path, interleaved (round after round over all files and
thread counts, so a drift of the shared host hits every file alike); medians and minima as JSON.

    nice python scripts/time_tflite.py int8=tflite_models/litepose-m-448-int8.tflite \
        fp32=tflite_models/litepose-m-448-fp32.tflite fp16=m_fp16.tflite --out timings.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", help="NAME=FILE.tflite")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=8, help="timed invocations per model and round")
    ap.add_argument("--out", required=True, help="JSON results")
    args = ap.parse_args()
    from python_ref.errors import LitePoseError
    from python_ref.io_utils import write_text_atomic
    from converter.bench import interleaved_times_ms
    from python_ref.errors import first_line
    from python_ref.runner import _interpreter_class

    Interpreter = _interpreter_class()
    if not Path(args.out).resolve().parent.is_dir():
        sys.exit(f"Error: {args.out}: the folder {Path(args.out).parent} does not exist")
    threads = [int(t) for t in args.threads.split(",")]
    interps = {}
    try:
        for spec in args.models:
            name, sep, path = spec.partition("=")
            if not sep or not Path(path).is_file():
                raise LitePoseError(f"{spec}: expected NAME=FILE.tflite with an existing file")
            for th in threads:
                try:
                    it = Interpreter(model_path=path, num_threads=th)
                    it.allocate_tensors()
                except (ValueError, RuntimeError) as e:
                    raise LitePoseError(f"{path}: not a loadable .tflite model ({first_line(e)})") from None
                d = it.get_input_details()[0]
                it.set_tensor(d["index"], np.random.default_rng(0).integers(0, 255, d["shape"]).astype(d["dtype"]))
                it.invoke()  # warm-up
                interps[(name, th)] = it
    except LitePoseError as e:
        sys.exit(f"Error: {e}")
    times = interleaved_times_ms(interps, args.rounds, args.runs,
                                 log=lambda m: print(m, file=sys.stderr, flush=True))
    from converter.export import build_environment

    result = {"host": build_environment(),   # XNNPACK picks its kernels per CPU: timings hold for this host only
              "rounds": args.rounds, "runs": args.runs, "models": dict(m.split("=", 1) for m in args.models),
              "latency_ms": [{"model": n, "threads": th, "median": round(float(np.median(v)), 2),
                              "min": round(float(np.min(v)), 2)} for (n, th), v in times.items()]}
    try:
        write_text_atomic(args.out, json.dumps(result, indent=1))
    except (LitePoseError, OSError) as e:
        sys.exit(f"Error: {first_line(e)}")
    for row in result["latency_ms"]:
        print(f"{row['model']:>10s} {row['threads']}T  median {row['median']:7.1f} ms  min {row['min']:7.1f} ms")


if __name__ == "__main__":
    main()
