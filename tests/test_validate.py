"""`litepose validate`: metrics against known answers, thresholds, exit codes, calibration overlap."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from converter.validate import jpeg_roundtrip, match_people, oks_ap_against_reference, sqnr_from

XS = "litepose-xs-crowdpose-random.pth"


def _pose(x0, y0, scale=1.0, n=14):
    rng = np.random.default_rng(int(x0))
    xy = np.stack([x0 + scale * rng.uniform(0, 60, n), y0 + scale * rng.uniform(0, 150, n)], 1)
    return np.concatenate([xy, np.full((n, 1), 0.8)], 1).astype(np.float32)


def test_oks_ap_of_identical_poses_is_one_and_of_distant_poses_zero():
    ref = [np.stack([_pose(10, 10), _pose(200, 20)]), np.stack([_pose(50, 60)])]
    scores = [np.array([0.9, 0.8]), np.array([0.7])]
    assert oks_ap_against_reference(ref, ref, scores, 14)["AP"] == pytest.approx(1.0)
    far = [p + np.array([400.0, 400.0, 0.0], np.float32) for p in ref]
    assert oks_ap_against_reference(ref, far, scores, 14)["AP"] == pytest.approx(0.0)
    # one person missing out of three: recall 2/3 caps AP below 1
    ap = oks_ap_against_reference(ref, [ref[0][:1], ref[1]], [scores[0][:1], scores[1]], 14)["AP"]
    assert 0.5 < ap < 0.75


def test_match_people_pairs_nearest_and_sqnr():
    a, b = _pose(0, 0), _pose(300, 0)
    pairs = match_people(np.stack([a, b]), np.stack([b + 1, a + 1]))
    assert sorted(pairs) == [(0, 1), (1, 0)]
    assert sqnr_from(100.0, 1.0) == pytest.approx(20.0)
    assert sqnr_from(1.0, 0.0) == float("inf")


def test_input_views_are_fixed_small_variations():
    from converter.validate import input_views

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (60, 80, 3)).astype(np.uint8)
    views = input_views(image, 4)
    assert len(views) == 4 and views[0].shape == image.shape
    np.testing.assert_array_equal(views[0], image[:, ::-1])                    # mirrored
    np.testing.assert_array_equal(views[1], image[5:, 7:])                     # shifted
    assert views[2].shape == (round(50 * 0.9), round(66 * 0.9), 3)            # shifted, rescaled
    assert all(np.array_equal(a, b) for a, b in zip(views, input_views(image, 4)))   # deterministic
    assert input_views(image, 0) == []


def test_jpeg_roundtrip_is_a_small_real_change():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:64, 0:96]
    smooth = np.stack([60 + xx, 40 + 2 * yy, 180 - xx / 2 - yy], -1)      # photo-like smooth gradients
    image = np.clip(smooth + rng.normal(0, 2, smooth.shape), 0, 255).astype(np.uint8)
    out = jpeg_roundtrip(image)
    assert out.shape == image.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - image.astype(int))
    assert diff.max() > 0 and diff.mean() < 4          # changed, but by a few grey levels
    # colour order kept: a pure red image stays red
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 220
    assert np.all(jpeg_roundtrip(red).mean(axis=(0, 1)) > [200, -1, -1]) and jpeg_roundtrip(red)[..., 2].mean() < 20


@pytest.fixture(scope="session")
def xs_models(shared_dir, tmp_path_factory):
    pytest.importorskip("tensorflow")
    from converter.convert import run_convert

    root = tmp_path_factory.mktemp("validate")
    calib = root / "calib"
    calib.mkdir()
    for p in (shared_dir / "data" / "crowdpose" / "images").iterdir():
        shutil.copy(p, calib / p.name)
    ckpt = str(shared_dir / "checkpoints" / XS)
    common = dict(checkpoint=ckpt, arch=None, joints=None, input_size="128x128")
    run_convert(**common, precision="fp32", output=str(root / "xs_fp32.tflite"))
    run_convert(**common, precision="int8", output=str(root / "xs_int8.tflite"), calib_images=str(calib))
    return root, ckpt, calib


def _validate(args):
    from converter.cli import main

    return CliRunner().invoke(main, ["validate"] + [str(a) for a in args])


@pytest.mark.needs_shared
def test_float_tflite_matches_its_checkpoint_and_passes(xs_models, shared_dir, tmp_path):
    root, ckpt, _ = xs_models
    crowd = shared_dir / "data" / "crowdpose"
    res = _validate([root / "xs_fp32.tflite", "--reference", ckpt, "--images", crowd / "images",
                     "--annotations", crowd / "annotations.json", "--report", tmp_path / "r",
                     "--min-sqnr", 60, "--min-oks-ap", 0.99, "--max-ap-drop", 0.01, "--runs", 2, "--threads", "1"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert all(v["sqnr_db"] > 60 for v in rep["outputs"].values())
    assert rep["oks_ap_vs_reference"]["AP"] == pytest.approx(1.0)
    assert rep["person_count_agreement"]["images_with_equal_counts"] == 2
    assert rep["annotations"]["drop"] == pytest.approx(0.0, abs=1e-9)
    assert rep["passed"] and len(rep["latency"]) == 1
    assert (tmp_path / "r" / "report.md").read_text().startswith("# litepose validate")
    assert sorted(p.name for p in (tmp_path / "r").glob("overlay_*.png")) == ["overlay_103319.png",
                                                                                "overlay_106848.png"]
    # the float reference against itself on JPEG-95 inputs: an invisible change that still moves the
    # outputs far more than float32 rounding does (the fp32 model vs its checkpoint is > 60 dB)
    sens = rep["input_sensitivity"]
    assert set(sens["sqnr_db"]) == set(rep["outputs"])
    assert all(5 < v < 60 for v in sens["sqnr_db"].values())
    assert 0 <= sens["oks_ap_vs_reference"]["AP"] <= 1
    assert all("reference_jpeg_sqnr_db" in row["outputs"]["heatmaps_s4"] for row in rep["per_image"])
    assert "JPEG-95" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.needs_shared
def test_thresholds_fail_with_exit_1_after_writing_the_report(xs_models, shared_dir, tmp_path):
    root, ckpt, _ = xs_models
    res = _validate([root / "xs_int8.tflite", "--reference", root / "xs_fp32.tflite", "--images",
                     shared_dir / "data" / "coco" / "images", "--report", tmp_path / "r", "--min-sqnr", 99,
                     "--runs", 1, "--threads", "1", "--no-input-sensitivity", "--views", 3])
    assert res.exit_code == 1
    assert "below the thresholds" in res.output and "Traceback" not in res.output
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    # 3 views per image pooled: a real int8-vs-float SQNR of other inputs (finite, near the images' own)
    assert rep["views"]["inputs"] == 3 * len(rep["per_image"])
    for k, v in rep["outputs"].items():
        assert 0 < rep["views"]["sqnr_db"][k] < 99 and abs(rep["views"]["sqnr_db"][k] - v["sqnr_db"]) < 10
    assert not rep["passed"] and all(not c["passed"] for c in rep["checks"])
    assert rep["images"]["calibration_overlap"] == []
    assert rep["input_sensitivity"] is None
    # pooling: one report pools to its own numbers, and a report pooled with itself too (same ratios)
    from converter.validate import pool_reports

    for reports in ([rep], [rep, rep]):
        pooled = pool_reports(reports)
        assert pooled["images"] == len(rep["per_image"]) * len(reports)
        for k, v in rep["outputs"].items():
            assert pooled["sqnr_db"][k] == pytest.approx(v["sqnr_db"], abs=1e-9)
        assert pooled["oks_ap_vs_reference"]["AP"] == pytest.approx(rep["oks_ap_vs_reference"]["AP"], abs=1e-9)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import pool_validate_reports

    assert pool_validate_reports.main([str(tmp_path / "r"), "--json", str(tmp_path / "pooled.json")]) == 0
    assert json.loads((tmp_path / "pooled.json").read_text())["images"] == len(rep["per_image"])
    assert pool_validate_reports.main([str(tmp_path / "missing")]) == 1


@pytest.mark.needs_shared
def test_calibration_overlap_is_reported_and_can_be_excluded(xs_models, tmp_path):
    root, ckpt, calib = xs_models
    res = _validate([root / "xs_int8.tflite", "--reference", ckpt, "--images", calib, "--report", tmp_path / "r",
                     "--runs", 1, "--threads", "1"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert sorted(rep["images"]["calibration_overlap"]) == ["103319.jpg", "106848.jpg"]
    assert "Warning" in (tmp_path / "r" / "report.md").read_text()
    res = _validate([root / "xs_int8.tflite", "--reference", ckpt, "--images", calib, "--report", tmp_path / "r2",
                     "--exclude-calibration-images"])
    assert res.exit_code == 1 and "every image was a calibration image" in res.output
    assert not (tmp_path / "r2").exists()


def test_bad_inputs_fail_clearly(tmp_path):
    res = _validate([tmp_path / "nope.tflite", "--reference", tmp_path / "x.pth", "--images", tmp_path,
                     "--report", tmp_path / "r"])
    assert res.exit_code == 1 and "Error:" in res.output and "Traceback" not in res.output
