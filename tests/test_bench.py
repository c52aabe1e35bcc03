"""`litepose bench` end to end on a tiny configuration (XS at 128x128, 2 runs) and its error paths."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
pytest.importorskip("tensorflow")

from converter.archs import PRESETS  # noqa: E402
from converter.bench import run_bench, synthetic_images  # noqa: E402
from converter.macs import count_cost  # noqa: E402
from converter.network import build_litepose  # noqa: E402

FIELDS = {"model", "precision", "threads", "input_size", "size_bytes", "infer_ms_median", "infer_ms_p90",
          "pre_ms_median", "decode_ms_median", "peak_rss_mb", "weights", "macs_paper_convention", "macs_correct",
          "params"}


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    report = run_bench(variants=["XS"], precisions=["fp32", "int8", "int8-blocked"], threads=[1],
                       json_out=str(d / "b.json"),
                       markdown_out=str(d / "b.md"), plot_out=str(d / "b.png"), runs=2, calib_count=2,
                       input_size="128x128", people=[1, 5], keep_models=str(d / "models"))
    return report, d


def test_records_and_files(small_report):
    report, d = small_report
    on_disk = json.loads((d / "b.json").read_text())
    assert on_disk["records"] == report["records"]
    assert [(r["model"], r["precision"], r["threads"]) for r in report["records"]] == [
        ("litepose-XS", "fp32", 1), ("litepose-XS", "int8", 1), ("litepose-XS", "int8-blocked", 1)]
    cost = count_cost(build_litepose(PRESETS["XS"], 14, (128, 128)))
    for r in report["records"]:
        assert FIELDS <= set(r)
        assert r["input_size"] == "128x128" and r["weights"] == "random"
        assert r["params"] == cost.params and r["macs_correct"] == cost.macs_correct
        assert r["macs_paper_convention"] > r["macs_correct"]   # deconvs counted at output resolution
        assert 0 < r["infer_ms_median"] <= r["infer_ms_p90"]
        assert r["pre_ms_median"] > 0 and r["decode_ms_median"] > 0
        # measured in a TensorFlow-free worker: far below the converting parent's footprint
        assert 20 < r["peak_rss_mb"] < 600
        assert r["size_bytes"] == (d / "models" / f"litepose-XS-128x128-{r['precision']}.tflite").stat().st_size
    sizes = {r["precision"]: r["size_bytes"] for r in report["records"]}
    assert sizes["int8"] < 0.5 * sizes["fp32"]
    # int8-blocked: the --depthwise-form blocked graph (grouped convs on pixel blocks: Toeplitz weights)
    blocked = next(r for r in report["records"] if r["precision"] == "int8-blocked")
    assert "depthwise_layout=blocked" in blocked["graph"] and sizes["int8-blocked"] > 5 * sizes["int8"]
    md = (d / "b.md").read_text()
    assert "| litepose-XS | 128x128 | random | int8 | 1 |" in md
    assert (d / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_decoder_vs_people_finds_everyone(small_report):
    rows = small_report[0]["decoder_vs_people"]
    assert [r["people"] for r in rows] == [1, 5]
    assert [r["decoded_people"] for r in rows] == [1, 5]


def test_peer_model_is_timed_without_decoding(small_report, tmp_path):
    _, d = small_report
    peer = d / "models" / "litepose-XS-128x128-int8.tflite"
    report = run_bench(variants=[], precisions=["fp32"], threads=[1], peers=[str(peer)], json_out=str(tmp_path / "p.json"),
                       runs=2, people=[])
    (rec,) = report["records"]
    assert rec["model"] == f"peer:{peer.name}" and rec["kind"] == "peer"
    assert rec["decode_ms_median"] is None and rec["pre_ms_median"] is None and rec["macs_correct"] is None
    assert rec["infer_ms_median"] > 0 and rec["input_size"] == "128x128"


def test_plot_names_each_model_once_at_its_fastest_point():
    """A label per point piled the fp16 and fp32 names of a baseline on top of each other."""
    from converter.bench import accuracy_vs_latency_figure

    def rec(model, kind, precision, ms, threads=1):
        return {"model": model, "kind": kind, "precision": precision, "threads": threads, "infer_ms_median": ms}

    report = {"records": [rec("litepose-S", "litepose", "fp32", 80.0), rec("litepose-S", "litepose", "int8", 45.0),
                          rec("litepose-S", "litepose", "int8", 20.0, threads=2),   # only the fewest threads count
                          rec("litepose-M", "litepose", "fp32", 120.0), rec("litepose-M", "litepose", "int8", 60.0),
                          rec("higherhrnet-w16", "baseline", "fp32", 119.0),
                          rec("higherhrnet-w16", "baseline", "fp16", 118.0),
                          rec("higherhrnet-w16", "baseline", "int8", 40.0),
                          rec("peer.tflite", "peer", "int8", 10.0)]}   # no paper AP: not plotted
    fig = accuracy_vs_latency_figure(report)
    labels = sorted((t.get_text(), t.xy) for t in fig.axes[0].texts)
    assert labels == [("LitePose-M", (60.0, 59.9)), ("LitePose-S", (45.0, 58.3)), ("higherhrnet-w16", (40.0, 50.4))]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert sorted(legend) == ["LitePose fp32", "LitePose int8", "baselines fp16", "baselines fp32", "baselines int8"]
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_synthetic_calibration_images_are_deterministic():
    a, b = synthetic_images((64, 96), 2, seed=4), synthetic_images((64, 96), 2, seed=4)
    assert all((x == y).all() for x, y in zip(a, b)) and a[0].shape == (64, 96, 3) and a[0].dtype.name == "uint8"
    assert not (a[0] == a[1]).all()


@pytest.mark.parametrize("args,message", [
    (["--variants", "XXL"], "--variants XXL"),
    (["--precisions", "int4"], "--precisions int4"),
    (["--baselines", "resnet"], "--baselines resnet"),
    (["--graph", "plain", "--precisions", "int8-blocked"], "--precisions int8-blocked: a form of the deploy graph"),
    (["--peer", "missing.tflite"], "missing.tflite"),
    # checked before any conversion (these used to fail after minutes of work, or with a traceback)
    (["--people=-3"], "--people -3"),
    (["--calib-images", "nope"], "nope: calibration image folder not found"),
    (["--keep-models", "a_file"], "--keep-models wants a folder"),
])
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "r.json"
    (tmp_path / "a_file").write_text("x")
    proc = subprocess.run([sys.executable, "-c", "from converter.cli import main; main()", "bench", "--json", str(out), *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_cli_rejects_a_peer_that_is_not_tflite(tmp_path):
    fake = tmp_path / "fake.tflite"
    fake.write_text("<html>not a model</html>")
    proc = subprocess.run([sys.executable, "-c", "from converter.cli import main; main()", "bench", "--json", str(tmp_path / "r.json"),
                           "--variants", "", "--peer", str(fake)], capture_output=True, text=True)
    assert proc.returncode == 1 and "not a TFLite model" in proc.stderr
