"""Pool several `litepose validate` reports into one set of numbers: SQNR from the summed energies of all
images, OKS-AP of the model's poses against the reference's over all images' people together.

    python scripts/pool_validate_reports.py rep_A rep_B rep_C --json pooled.json

Meant for held-out folds (each image evaluated by a model that was not calibrated on it): 2-4 images
per fold give OKS-AP steps of several hundredths; pooled, the estimate rests on all people at once.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _ap(oks: dict) -> str:
    return "n/a" if oks.get("AP") is None else f"{oks['AP']:.3f}"


def main(argv=None) -> int:
    from converter.validate import pool_reports
    from python_ref.errors import LitePoseError
    from python_ref.io_utils import write_text_atomic

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reports", nargs="+", help="report folders (or report.json files) of litepose validate")
    ap.add_argument("--json", default=None, help="write the pooled numbers here")
    args = ap.parse_args(argv)
    try:
        reports = []
        for item in args.reports:
            path = Path(item) / "report.json" if Path(item).is_dir() else Path(item)
            try:
                reports.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError) as exc:
                raise LitePoseError(f"{path}: not a readable validate report ({exc.__class__.__name__})") from None
        pooled = pool_reports(reports)
        if args.json:
            write_text_atomic(Path(args.json), json.dumps(pooled, indent=2) + "\n")
    except LitePoseError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    oks = pooled["oks_ap_vs_reference"]
    print(f"{pooled['images']} images from {pooled['reports']} reports: SQNR "
          + " / ".join(f"{k} {v:.1f} dB" for k, v in pooled["sqnr_db"].items())
          + f"; OKS-AP vs reference {_ap(oks)} over {oks.get('num_reference_people')} people")
    if "views_note" in pooled:
        print(pooled["views_note"])
    if "views" in pooled:
        v = pooled["views"]["oks_ap_vs_reference"]
        print(f"over their {pooled['views']['inputs']} views: OKS-AP vs reference {_ap(v)} over "
              f"{v.get('num_reference_people')} people")
    return 0


if __name__ == "__main__":
    sys.exit(main())
