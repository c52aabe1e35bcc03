"""Writes SciPy `linear_sum_assignment` answers for random cost matrices, for the Kotlin LSAP test.

The Kotlin decoder must resolve exact cost ties the way SciPy does, so the cases are tie-heavy:
small integer costs, constant matrices, decoder-like costs (rounded tag distance * 100 - quantised
value) padded with 1e10 columns, plain random floats, large offsets with small steps (float64 rounding
near ties: catches an implementation that shifts costs by their minimum, as SciPy < 1.6 did) and a few
rows > cols (transposed) cases.

    python android_demo/posecore/tools/gen_lsap_vectors.py [--out PATH] [--seed N]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import scipy
from scipy.optimize import linear_sum_assignment

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/test/resources/lsap_vectors.json"


def decoder_like(rng: np.random.Generator, rows: int, active: int) -> np.ndarray:
    """cost[r, c] = round_half_even(|tag_r - tag_c|) * 100 - val_r, padded to square-ish with 1e10."""
    tags_r = rng.integers(-8, 9, rows) * 0.25  # quantised tags: many exact distance ties
    tags_c = rng.integers(-8, 9, active) * 0.25
    vals = rng.integers(1, 20, rows) * (1.0 / 64)  # INT8-like detection values, many equal
    dist = np.abs(tags_r[:, None] - tags_c[None, :])
    cost = np.round(dist) * 100 - vals[:, None]
    if rows > active:
        cost = np.concatenate([cost, np.full((rows, rows - active), 1e10)], axis=1)
    return cost


def make_cases(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    mats: list[np.ndarray] = []
    for _ in range(80):  # small integer costs, rows <= cols
        r = int(rng.integers(1, 8))
        c = int(rng.integers(r, 10))
        mats.append(rng.integers(0, int(rng.integers(1, 4)) + 1, (r, c)).astype(np.float64))
    for n in (1, 2, 3, 5, 7):  # constant matrices (SciPy returns the identity)
        mats.append(np.full((n, n + int(rng.integers(0, 3))), 3.0))
    for _ in range(80):  # the decoder's own cost shape
        rows = int(rng.integers(1, 12))
        active = int(rng.integers(1, 12))
        mats.append(decoder_like(rng, rows, active))
    for _ in range(30):  # generic floats, including negatives
        r = int(rng.integers(1, 10))
        c = int(rng.integers(r, 14))
        mats.append(rng.normal(0, 10, (r, c)))
    for _ in range(60):  # float64 rounding: a large offset plus small steps (shifting by the min would differ)
        r = int(rng.integers(2, 7))
        c = int(rng.integers(r, 8))
        base = float(rng.choice([1e8, -1e8, 1e15, 0.1, 3.3]))
        step = float(rng.choice([0.1, 1 / 3, 0.7, 1e-9]))
        mats.append(base + rng.integers(0, 4, (r, c)) * step)
    for _ in range(15):  # rows > cols: SciPy solves the transpose
        c = int(rng.integers(1, 6))
        r = int(rng.integers(c + 1, 9))
        mats.append(rng.integers(0, 3, (r, c)).astype(np.float64))
    return mats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=20240607)
    args = parser.parse_args()
    cases = []
    for cost in make_cases(args.seed):
        rows, cols = cost.shape
        row_ind, col_ind = linear_sum_assignment(cost)
        col_for_row = [-1] * rows
        for r, c in zip(row_ind.tolist(), col_ind.tolist()):
            col_for_row[r] = c
        cases.append({"rows": rows, "cols": cols, "cost": cost.ravel().tolist(), "col_for_row": col_for_row})
    doc = {
        "generator": "android_demo/posecore/tools/gen_lsap_vectors.py",
        "seed": args.seed,
        "scipy_version": scipy.__version__,
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"{len(cases)} cases -> {args.out}")


if __name__ == "__main__":
    main()
