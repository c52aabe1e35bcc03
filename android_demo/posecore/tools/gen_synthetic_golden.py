"""Writes the small synthetic golden cases committed under src/test/resources/golden-synthetic/.

Synthetic "model outputs" (Gaussian joint blobs, per-person tags, noise; float32, INT8/UINT8-quantised
with many exact ties, NaN/inf garbage, an empty map) decoded by python_ref.decoder.decode_fast and
written in the litepose-golden/1 format (GOLDEN_FORMAT.md) by python_ref.golden. Real cases come from
`litepose export-golden`; these keep GoldenVectorsTest meaningful without ../shared.

    python android_demo/posecore/tools/gen_synthetic_golden.py [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from python_ref.decoder import FastDecoderParams  # noqa: E402
from python_ref.golden import export_golden  # noqa: E402
from python_ref.preprocess import Letterbox  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/test/resources/golden-synthetic"


def blobs(rng: np.random.Generator, input_hw: tuple[int, int], joints: int, people: int,
          missing: float = 0.15, tag_spread: float = 2.0, noise: float = 0.03) -> dict:
    """Outputs for `people` persons: each joint a Gaussian blob (peak 0.3..1) on both heatmaps,
    tags = the nearest blob's person tag + small noise, uniform background noise."""
    H, W = input_hw
    out = {}
    centres = rng.uniform([0.15 * W, 0.15 * H], [0.85 * W, 0.85 * H], (people, 2))
    spots = centres[:, None, :] + rng.normal(0, 0.12 * min(H, W), (people, joints, 2))
    spots = np.clip(spots, 0, [W - 1, H - 1])
    present = rng.random((people, joints)) > missing
    peak = rng.uniform(0.3, 1.0, (people, joints))
    person_tag = np.arange(people) * tag_spread + rng.uniform(-0.3, 0.3, people)
    for name, stride in (("heatmaps_s4", 4), ("heatmaps_s2", 2)):
        h, w = H // stride, W // stride
        yy, xx = np.mgrid[0:h, 0:w]
        cx, cy = (xx + 0.5) * stride, (yy + 0.5) * stride
        hm = rng.uniform(0, noise, (h, w, joints))
        best_d = np.full((h, w, joints), np.inf)
        tags = np.zeros((h, w, joints))
        for p in range(people):
            for j in range(joints):
                d2 = (cx - spots[p, j, 0]) ** 2 + (cy - spots[p, j, 1]) ** 2
                if present[p, j]:
                    hm[:, :, j] += peak[p, j] * np.exp(-d2 / (2 * (1.5 * stride) ** 2))
                closer = d2 < best_d[:, :, j]
                best_d[:, :, j] = np.where(closer, d2, best_d[:, :, j])
                tags[:, :, j] = np.where(closer, person_tag[p], tags[:, :, j])
        out[name] = hm.astype(np.float32)
        if stride == 4:
            out["tags_s4"] = (tags + rng.normal(0, 0.05, tags.shape)).astype(np.float32)
    return out


def quantise(outputs: dict, dtype) -> tuple[dict, dict, dict]:
    """Per-output affine quantisation (like a converted INT8 model's outputs); returns the dequantised
    float32 outputs, the raw integer tensors and {name: (scale, zero_point)}."""
    info = np.iinfo(dtype)
    real, raw, quant = {}, {}, {}
    for k, a in outputs.items():
        lo, hi = float(min(a.min(), 0)), float(max(a.max(), 0))
        scale = np.float32((hi - lo) / (info.max - info.min))
        zp = int(round(info.min - lo / scale))
        q = np.clip(np.round(a / scale) + zp, info.min, info.max).astype(dtype)
        raw[k] = q
        quant[k] = (float(scale), zp)
        real[k] = scale * (q.astype(np.int32) - zp).astype(np.float32)
    return real, raw, quant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240608)
    made = []

    base = blobs(rng, (48, 80), 14, 3)
    made.append(export_golden(args.out, "synthetic-crowdpose-3p-float", base,
                              letterbox=Letterbox.fit((100, 150), (48, 80)),
                              source={"note": "3 Gaussian-blob people, float32, letterbox 150x100 -> 80x48"}))
    real, raw, quant = quantise(base, np.int8)
    made.append(export_golden(args.out, "synthetic-crowdpose-3p-int8", real, quantization=quant, raw_outputs=raw,
                              source={"note": "the float case quantised to int8: many exact ties"}))

    crowd = blobs(rng, (48, 64), 17, 12, tag_spread=0.8, noise=0.08)
    real, raw, quant = quantise(crowd, np.uint8)
    made.append(export_golden(args.out, "synthetic-coco-12p-uint8", real, quantization=quant, raw_outputs=raw,
                              params=FastDecoderParams(max_num_people=8),
                              source={"note": "12 close-tagged people, 17 joints, uint8, max_num_people 8"}))

    noise = {k: rng.uniform(0, 1, s).astype(np.float32)
             for k, s in (("heatmaps_s4", (12, 16, 14)), ("tags_s4", (12, 16, 14)), ("heatmaps_s2", (24, 32, 14)))}
    noise["tags_s4"] *= 20
    for k in noise:
        flat = noise[k].reshape(-1)
        idx = rng.choice(flat.size, 40, replace=False)
        flat[idx[:15]] = np.nan
        flat[idx[15:30]] = np.inf
        flat[idx[30:]] = -np.inf
    made.append(export_golden(args.out, "synthetic-noise-nan-inf", noise,
                              source={"note": "uniform noise with NaN/inf: hundreds of peaks"}))

    zeros = {k: np.zeros(s, np.float32)
             for k, s in (("heatmaps_s4", (2, 3, 14)), ("tags_s4", (2, 3, 14)), ("heatmaps_s2", (4, 6, 14)))}
    made.append(export_golden(args.out, "synthetic-empty", zeros, source={"note": "no peaks: no people"}))

    import json
    for path in made:
        doc = json.loads(path.read_text())
        print(f"{path.name}: {len(doc['poses'])} people", file=sys.stderr)


if __name__ == "__main__":
    main()
