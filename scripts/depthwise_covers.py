"""The cheapest exact split of a 7x7 depthwise kernel into 'same' pieces, priced with one host's measured costs.

Reads a `scripts/bench_depthwise.py --alternatives` report: the int8 cost of a 3-, 9- and 25-tap kernel (the
1x1 / 3x3 / 5x5 rows, int8 in and out) and of one more ADD ("1x1 depthwise + ADD" minus "1x1"). Searches every
cover of the 7x7 window by 3 and by 4 pieces (`converter.rewrites.same_piece_candidates`, exhaustive) and prints
the cheapest of each, next to the deploy graph's lattice, as JSON (docs/int8.md, "Session 11").

    python scripts/depthwise_covers.py docs/bench/depthwise_session11.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converter.rewrites import depthwise_kernel_taps, same_piece_candidates  # noqa: E402

FULL = (1 << 49) - 1


def measured_costs_ms(report: dict) -> tuple[dict[int, float], float]:
    r = report["results"]
    kernel_ms = {3: r["1x1"]["int8_io_ms"], 9: r["3x3"]["int8_io_ms"], 25: r["5x5"]["int8_io_ms"]}
    add_ms = report["alternatives"]["1x1 depthwise + ADD"]["int8_io_ms"] - r["1x1"]["int8_io_ms"]
    return kernel_ms, add_ms


def cheapest_covers(kernel_ms: dict[int, float], add_ms: float) -> dict:
    """{"3 pieces": ..., "4 pieces": ...}: cost (kernels + ADDs, ms) and the pieces' row/column offsets."""
    pieces = {}
    for mask, rows, cols in same_piece_candidates():
        cost = kernel_ms[depthwise_kernel_taps(len(rows) * len(cols))]
        if mask not in pieces or pieces[mask][0] > cost:
            pieces[mask] = (cost, rows, cols)
    masks = np.array(list(pieces), dtype=np.uint64)
    costs = np.array([v[0] for v in pieces.values()])
    items = list(pieces.items())
    cheapest_piece = float(costs.min())

    def finish(covered: int):
        """The cheapest single piece holding every tap not yet covered, or None."""
        need = np.uint64(FULL & ~covered)
        fits = (masks & need) == need
        if not fits.any():
            return None
        k = int(np.argmin(np.where(fits, costs, np.inf)))
        return items[k]

    best3, best4 = None, None
    for i, (a, pa) in enumerate(items):
        for b, pb in items[i:]:
            last = finish(a | b)
            if last is not None:
                total = pa[0] + pb[0] + last[1][0] + 2 * add_ms
                if best3 is None or total < best3[0]:
                    best3 = (total, [pa, pb, last[1]])
            if best4 is not None and pa[0] + pb[0] + 2 * cheapest_piece + 3 * add_ms >= best4[0]:
                continue
            for c, pc in items:
                last = finish(a | b | c)
                if last is not None:
                    total = pa[0] + pb[0] + pc[0] + last[1][0] + 3 * add_ms
                    if best4 is None or total < best4[0]:
                        best4 = (total, [pa, pb, pc, last[1]])

    def describe(best):
        return {"cost_ms": round(best[0], 3),
                "pieces": [{"rows": list(p[1]), "cols": list(p[2]), "ms": p[0]} for p in best[1]]}
    return {"3 pieces": describe(best3), "4 pieces": describe(best4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", help="JSON written by scripts/bench_depthwise.py --alternatives")
    args = ap.parse_args()
    report = json.loads(Path(args.report).read_text())
    kernel_ms, add_ms = measured_costs_ms(report)
    lattice_ms = 2 * kernel_ms[25] + kernel_ms[9] + 2 * add_ms
    out = {"kernel_ms_by_taps": kernel_ms, "add_ms": round(add_ms, 3), "lattice_ms": round(lattice_ms, 3),
           **cheapest_covers(kernel_ms, add_ms)}
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
