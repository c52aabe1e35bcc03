"""Compare two dump_raw.py folders output by output: does the model compute the same bits on both CPUs?

Per output, pooled over the images: the fraction of values that differ, the largest difference in int8
steps (on the int8 grid that dump_raw recorded, or --scales; else as a plain number), and the SQNR of TEST
against REF in dB (inf when identical). Also says whether the input tensors were the same.

usage: python compare_raw.py TEST_DIR REF_DIR [--scales JSON] [--json OUT] [--require-identical]
--scales JSON: {"heatmaps_s4": [scale, zero_point], ...}. --require-identical: exit 1 if any output differs.
"""
import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np


def load(folder):
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    arrays = {s: {p.name[len(s) + 2:-4]: np.load(p) for p in folder.glob(f"{s}__*.npy")} for s in meta["stems"]}
    return meta, arrays


def dequantize(value, quant):
    """Real values (float64) of a raw output; float outputs as they are."""
    if np.issubdtype(value.dtype, np.integer):
        return quant[0] * (value.astype(np.float64) - quant[1])
    return value.astype(np.float64)


def compare(test_dir, ref_dir, scales=None):
    tm, ta = load(test_dir)
    rm, ra = load(ref_dir)
    if tm["stems"] != rm["stems"]:
        sys.exit(f"different images: {tm['stems']} vs {rm['stems']}")
    grids = scales or rm.get("int8_grids") or {}
    inputs_same = [bool(np.array_equal(ta[s]["input"], ra[s]["input"])) for s in tm["stems"]]
    inputs_max = max(int(np.abs(ta[s]["input"].astype(int) - ra[s]["input"].astype(int)).max()) for s in tm["stems"])
    res = {"test": str(test_dir), "ref": str(ref_dir), "test_meta": tm, "ref_meta": rm,
           "inputs_identical": inputs_same, "inputs_max_pixel_diff": inputs_max, "outputs": {}}
    for name in rm["output_quant"]:
        t = [dequantize(ta[s][name], tm["output_quant"][name]) for s in tm["stems"]]
        r = [dequantize(ra[s][name], rm["output_quant"][name]) for s in rm["stems"]]
        diff = [np.abs(x - y) for x, y in zip(t, r)]
        noise = sum(float(np.sum(d ** 2)) for d in diff)
        signal = sum(float(np.sum(y ** 2)) for y in r)
        max_abs = max(float(d.max()) for d in diff)
        e = {"frac_differ": sum(int(np.count_nonzero(d)) for d in diff) / sum(d.size for d in diff),
             "max_abs": max_abs,
             "sqnr_db": math.inf if noise == 0 else 10 * math.log10(signal / noise)}
        if name in grids:
            e["max_steps"] = int(round(max_abs / grids[name][0]))
        res["outputs"][name] = e
    res["identical"] = all(e["frac_differ"] == 0 for e in res["outputs"].values())
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("test")
    ap.add_argument("ref")
    ap.add_argument("--scales", help='JSON file {"output": [scale, zero_point]} of the int8 grids')
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--require-identical", action="store_true")
    a = ap.parse_args()
    res = compare(a.test, a.ref, json.loads(Path(a.scales).read_text()) if a.scales else None)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    tm, rm = res["test_meta"], res["ref_meta"]
    print(f"{tm['machine']} ({tm['runtime']}, XNNPACK {tm['xnnpack']}) vs {rm['machine']} ({rm['runtime']}, "
          f"XNNPACK {rm['xnnpack']}), {len(tm['stems'])} images, {tm['threads']} vs {rm['threads']} thread(s)")
    print(f"  input tensors identical: {sum(res['inputs_identical'])}/{len(tm['stems'])} "
          f"(max pixel difference {res['inputs_max_pixel_diff']})")
    print(f"  {'output':12s} {'differ':>8s} {'max diff':>12s} {'SQNR dB':>8s}")
    for name, e in res["outputs"].items():
        steps = f"{e['max_steps']} steps" if "max_steps" in e else f"{e['max_abs']:.3g}"
        verdict = "identical" if e["frac_differ"] == 0 else "differ"
        print(f"  {name:12s} {100 * e['frac_differ']:7.3f}% {steps:>12s} {e['sqnr_db']:8.1f}  {verdict}")
    if a.require_identical and not res["identical"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
