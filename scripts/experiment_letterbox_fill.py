"""Convert + validate with a different letterbox border (docs/int8.md section 1, "The letterbox band").

The contract now fills the border with the ImageNet mean colour; `--fill black` patches
python_ref.preprocess.letterbox back to the earlier black border for both calibration and validation, then
runs the normal `litepose convert` and `litepose validate` code paths, to reproduce the black-border numbers.
Arguments after `--` go to validate.

    python scripts/experiment_letterbox_fill.py --fill black --checkpoint CKPT --calib-images DIR --output M.tflite \
        -- --images DIR --annotations JSON --report DIR
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_int8 import fill_letterbox  # noqa: E402


def main():
    argv = sys.argv[1:]
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--calib-images", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--input-size", default="448x448")
    ap.add_argument("--fill", choices=("black", "mean"), default="black")
    args = ap.parse_args(argv)
    fill_letterbox(args.fill)
    from converter.convert import run_convert

    run_convert(checkpoint=args.checkpoint, arch=None, joints=None, input_size=args.input_size, precision="int8",
                output=args.output, calib_images=args.calib_images)
    from converter.cli import main as cli

    cli(["validate", args.output, "--reference", args.checkpoint] + rest)


if __name__ == "__main__":
    main()
