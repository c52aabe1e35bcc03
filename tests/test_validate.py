"""`litepose validate`: metrics against known answers, thresholds, exit codes, calibration overlap, reference
checks, AP over the validated images only, outputs (report folder, --update-manifest)."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from converter.validate import jpeg_roundtrip, match_people, oks_ap_against_reference, sqnr_from
from python_ref.errors import LitePoseError

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
    # someone 1000 px away is not the same person: the reference person is missed, not paired
    assert match_people(np.stack([a]), np.stack([a + np.array([1000, 600, 0], np.float32)])) == []
    assert match_people(np.stack([a]), np.stack([a + np.array([30, 40, 0], np.float32)])) == [(0, 0)]   # 50 px
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


@pytest.mark.parametrize("side", [1, 4])
def test_input_views_of_tiny_images_keep_at_least_one_pixel(side):
    """The shifts (up to 12 rows / 16 columns) stop at the last row / column of a tiny image."""
    from converter.validate import input_views

    image = np.arange(side * side * 3, dtype=np.uint8).reshape(side, side, 3)
    views = input_views(image, 8)
    assert len(views) == 8
    for v in views:
        assert v.dtype == np.uint8 and v.ndim == 3 and v.shape[2] == 3 and min(v.shape[:2]) >= 1
    np.testing.assert_array_equal(views[0], image[:, ::-1])
    np.testing.assert_array_equal(views[1], image[side - 1:, side - 1:])      # shift clamped: the last pixel
    # every view's pixels come from the image (1 x 1 after the shift: the resize keeps that one colour)
    np.testing.assert_array_equal(views[2], image[side - 1:, side - 1:])


def test_view_geometry_moves_points_with_the_pixels():
    """A bright square's centroid in each view (pixel i spans [i, i+1)) lands where `View.map_xy` moves
    its centre: crop, INTER_AREA rescale and mirror agree with the point mapping the annotations use."""
    from converter.validate import view_plan

    h, w = 90, 130
    for cx, cy in ((40.0, 30.0), (101.5, 62.5), (20.0, 70.0)):
        image = np.zeros((h, w, 3), np.uint8)
        image[int(cy) - 3:int(cy) + 3, int(cx) - 3:int(cx) + 3] = 255     # 6 x 6 pixels centred on (cx, cy)
        centre = np.array([int(cx), int(cy)], float)
        for view in view_plan(h, w, 8):
            v = view.apply(image)[..., 0].astype(float)
            assert v.shape == (view.height, view.width)
            ys, xs = np.mgrid[:v.shape[0], :v.shape[1]]
            found = np.array([(v * (xs + 0.5)).sum(), (v * (ys + 0.5)).sum()]) / v.sum()
            np.testing.assert_allclose(found, view.map_xy(centre), atol=0.15)


def test_annotations_follow_the_views(tmp_path):
    """Mirrored views swap left and right by the file's joint names, a joint the crop cuts off is no
    longer labelled (and no longer counted), boxes and areas scale with the pixels."""
    from converter.validate import annotations_for_views, view_plan
    from python_ref.evaluate import load_annotations
    from python_ref.keypoints import CROWDPOSE_JOINTS

    rng = np.random.default_rng(7)
    person = np.concatenate([rng.uniform(20, 300, (14, 2)), np.ones((14, 1))], 1)
    person[CROWDPOSE_JOINTS.index("left_wrist")] = (3.0, 200.0, 1)    # cut by a 7-pixel crop from the left
    ann = load_annotations(_annotation_file(tmp_path / "a.json", [(5, "five.jpg", [person])]))
    ann = dataclasses.replace(ann, area=np.array([5000.0]))
    plan = view_plan(480, 640, 3)
    views, ids = annotations_for_views(ann, [(5, plan)])
    assert [im.file_name for im in views.images] == ["five@view0.jpg", "five@view1.jpg", "five@view2.jpg"]
    assert [(im.width, im.height) for im in views.images] == [(v.width, v.height) for v in plan]
    assert ids == [[1, 2, 3]] and views.image_id.tolist() == [1, 2, 3]
    kp0, kp1, kp2 = views.keypoints
    left, right = CROWDPOSE_JOINTS.index("left_shoulder"), CROWDPOSE_JOINTS.index("right_shoulder")
    assert plan[0].mirrored and (plan[0].dx, plan[0].dy) == (0, 0)
    np.testing.assert_allclose(kp0[left, :2], [640 - person[right, 0], person[right, 1]])   # swapped sides
    np.testing.assert_allclose(kp0[right, :2], [640 - person[left, 0], person[left, 1]])
    head = CROWDPOSE_JOINTS.index("head")
    np.testing.assert_allclose(kp0[head, :2], [640 - person[head, 0], person[head, 1]])     # no partner
    assert not plan[1].mirrored and (plan[1].dx, plan[1].dy) == (7, 5)
    wrist = CROWDPOSE_JOINTS.index("left_wrist")
    assert kp1[wrist, 2] == 0 and np.count_nonzero(kp1[:, 2] > 0) == 13
    assert views.num_keypoints.tolist() == [14, 13, 13]
    np.testing.assert_allclose(kp1[head, :2], person[head, :2] - [7, 5])
    s = plan[2].scale_x * plan[2].scale_y
    np.testing.assert_allclose(views.area, [5000.0, 5000.0, 5000.0 * s])
    x, y, bw, bh = ann.bbox[0]
    np.testing.assert_allclose(views.bbox[0], [640 - x - bw, y, bw, bh])                 # mirrored box
    np.testing.assert_allclose(views.bbox[1], [x - 7, y - 5, bw, bh])
    v2 = plan[2]      # cropped, rescaled and mirrored: the cut-off left wrist is the unlabelled right one
    assert v2.mirrored and v2.dx > 3 and v2.scale_x < 1
    np.testing.assert_allclose(views.bbox[2], [v2.width - (x - v2.dx + bw) * v2.scale_x, (y - v2.dy) * v2.scale_y,
                                               bw * v2.scale_x, bh * v2.scale_y])
    assert kp2[CROWDPOSE_JOINTS.index("right_wrist"), 2] == 0 and kp2[wrist, 2] > 0
    # a file name found twice (two sub-folders) gets its views twice, as its predictions are scored twice
    twice, ids = annotations_for_views(ann, [(5, plan[:1]), (5, plan[:1])])
    assert ids == [[1], [2]] and twice.image_id.tolist() == [1, 2]


def test_cut_joints_leave_num_keypoints_counted_as_the_file_counts(tmp_path):
    """CrowdPose's files count labelled limb joints in `num_keypoints` (head and neck never), COCO's every
    labelled joint: cutting off an uncounted head must not drop a person to 0 (ignored by the evaluator)."""
    from converter.validate import annotations_for_views, view_plan
    from python_ref.evaluate import load_annotations
    from python_ref.keypoints import CROWDPOSE_JOINTS

    person = np.zeros((14, 3))
    person[CROWDPOSE_JOINTS.index("head")] = (3, 3, 1)          # cut by the 7 x 5 crop of view 1
    person[CROWDPOSE_JOINTS.index("neck")] = (20, 20, 1)
    person[CROWDPOSE_JOINTS.index("left_shoulder")] = (30, 40, 1)
    path = _annotation_file(tmp_path / "a.json", [(1, "one.jpg", [person])])
    data = json.loads(path.read_text())
    for counted, expected in ((1, [1, 1]), (3, [3, 2])):            # CrowdPose's count, then COCO's
        data["annotations"][0]["num_keypoints"] = counted
        path.write_text(json.dumps(data))
        views, _ = annotations_for_views(load_annotations(path), [(1, view_plan(480, 640, 2))])
        assert views.num_keypoints.tolist() == expected


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


FAST = ["--runs", 1, "--threads", "1", "--no-input-sensitivity"]


def _warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("[litepose] warning:")]


def _one_line_error(res) -> str:
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.output
    return errors[0]


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.needs_shared
def test_float_tflite_matches_its_checkpoint_and_passes(xs_models, shared_dir, tmp_path):
    root, ckpt, _ = xs_models
    crowd = shared_dir / "data" / "crowdpose"
    before = _snapshot(root)
    res = _validate([root / "xs_fp32.tflite", "--reference", ckpt, "--images", crowd / "images",
                     "--annotations", crowd / "annotations.json", "--report", tmp_path / "r",
                     "--min-sqnr", 60, "--min-oks-ap", 0.99, "--max-ap-drop", 0.01, "--runs", 2, "--threads", "1"])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert all(v["sqnr_db"] > 60 for v in rep["outputs"].values())
    assert rep["oks_ap_vs_reference"]["AP"] == pytest.approx(1.0)
    assert rep["person_count_agreement"]["images_with_equal_counts"] == 2
    assert rep["annotations"]["drop"] == pytest.approx(0.0, abs=1e-9)
    assert rep["annotations"]["images_scored"] == 2 and rep["annotations"]["annotated_images_not_validated"] == 0
    assert rep["warnings"] == [] and _warnings(res.output) == []    # the model's own checkpoint: no warning
    assert _snapshot(root) == before               # without --update-manifest nothing outside the report changes
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

    other_views = json.loads(json.dumps(rep))
    other_views["views"]["per_image"] = 5
    assert "different numbers of views per image (3, 5)" in pool_reports([rep, other_views])["views_note"]
    assert "views" not in pool_reports([rep, other_views])
    for reports in ([rep], [rep, rep]):
        pooled = pool_reports(reports)
        assert pooled["images"] == len(rep["per_image"]) * len(reports)
        for k, v in rep["outputs"].items():
            assert pooled["sqnr_db"][k] == pytest.approx(v["sqnr_db"], abs=1e-9)
        assert pooled["oks_ap_vs_reference"]["AP"] == pytest.approx(rep["oks_ap_vs_reference"]["AP"], abs=1e-9)
        assert pooled["views"]["inputs"] == rep["views"]["inputs"] * len(reports)
        assert pooled["views"]["oks_ap_vs_reference"]["AP"] == pytest.approx(
            rep["views"]["oks_ap_vs_reference"]["AP"], abs=1e-9)
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


# ---- AP over the validated images only ---------------------------------------------------------------

def _annotation_file(path: Path, images: list[tuple[int, str, list]]) -> Path:
    """A CrowdPose-style annotation file: (image id, file name, people as (14, 3) x, y, score/visibility)."""
    from python_ref.keypoints import CROWDPOSE_JOINTS

    anns = []
    for image_id, _, people in images:
        for p in people:
            p = np.asarray(p, float)
            vis = p[:, 2] > 0
            x0, y0 = p[vis, 0].min(), p[vis, 1].min()
            kp = np.concatenate([p[:, :2] * vis[:, None], np.where(vis, 2.0, 0.0)[:, None]], 1)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                         "keypoints": kp.reshape(-1).tolist(), "num_keypoints": int(vis.sum()),
                         "bbox": [float(x0), float(y0), float(p[vis, 0].max() - x0), float(p[vis, 1].max() - y0)]})
    path.write_text(json.dumps({
        "images": [{"id": i, "file_name": name, "width": 640, "height": 480} for i, name, _ in images],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(CROWDPOSE_JOINTS)}]}))
    return path


@pytest.mark.needs_shared
def test_ap_is_measured_on_the_validated_images_only(xs_models, shared_dir, tmp_path):
    """Ground truth = the float reference's own people on the four COCO images (so the reference's AP is
    exactly 1), plus two annotated images that are not in the folder. The extra images must not change AP."""
    from python_ref.evaluate import Results, evaluate_keypoints, load_annotations, run_evaluate

    root, _, _ = xs_models
    images = shared_dir / "data" / "coco" / "images"
    common = [root / "xs_int8.tflite", "--reference", root / "xs_fp32.tflite", "--images", images] + FAST
    res = _validate(common + ["--report", tmp_path / "poses"])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "poses" / "report.json").read_text())["per_image"]
    people = {row["image"]: row["poses"]["reference"] for row in rows}
    assert len(people) == 4 and sum(map(len, people.values())) >= 4       # the reference finds people
    folder = [(i + 1, name, people[name]) for i, name in enumerate(sorted(people))]
    biggest = max(folder, key=lambda f: len(f[2]))[2]
    extra = [(101, "not_here_1.jpg", biggest), (102, "sub/not_here_2.jpg", biggest)]
    only_folder = _annotation_file(tmp_path / "folder.json", folder)
    with_extra = _annotation_file(tmp_path / "extra.json", extra[:1] + folder + extra[1:])

    # the dilution this guards against: over every image of extra.json the reference misses the extra people
    ann = load_annotations(with_extra)
    ref_rows = [(ann.find_image(name).id, p) for name, ps in people.items() for p in ps]
    diluted = evaluate_keypoints(ann, Results(path="ref", image_id=np.array([i for i, _ in ref_rows]),
                                              keypoints=np.array([p for _, p in ref_rows], float),
                                              score=np.ones(len(ref_rows))), joint_map="none")["AP"]
    assert diluted < 0.8

    aps, view_aps = {}, {}
    for name, ann_file in (("folder", only_folder), ("extra", with_extra)):
        res = _validate(common + ["--annotations", ann_file, "--report", tmp_path / name, "--max-ap-drop", 100,
                                  "--views", 2])
        assert res.exit_code == 0, res.output
        aps[name] = json.loads((tmp_path / name / "report.json").read_text())["annotations"]
        view_aps[name] = json.loads((tmp_path / name / "report.json").read_text())["views"]["annotations"]
        if name == "extra":
            assert len(_warnings(res.output)) == 1
            assert "2 of 6 annotated images were not validated" in _warnings(res.output)[0]
    assert aps["folder"]["reference"]["AP"] == pytest.approx(1.0)       # its own poses as ground truth
    for key in ("reference", "model"):
        assert aps["extra"][key] == aps["folder"][key]
    assert aps["extra"]["drop"] == aps["folder"]["drop"] and aps["folder"]["drop"] > 0
    assert aps["folder"]["images_scored"] == aps["extra"]["images_scored"] == 4
    assert (aps["folder"]["annotated_images"], aps["extra"]["annotated_images"]) == (4, 6)
    assert aps["extra"]["annotated_images_not_validated"] == 2
    assert "on 4 of its 6 images" in (tmp_path / "extra" / "report.md").read_text()
    # over 2 views of each validated image (the annotations moved with the pixels); the extra images add none
    assert view_aps["extra"] == view_aps["folder"] and view_aps["folder"]["images_scored"] == 8
    v = view_aps["folder"]
    assert 0 <= v["model"]["AP"] <= 1 and v["drop"] == pytest.approx(100 * (v["reference"]["AP"] - v["model"]["AP"]))
    assert "AP against the annotations moved with the pixels" in (tmp_path / "extra" / "report.md").read_text()
    # the model's AP recomputed by `litepose evaluate` from its detections in the report (matched by name)
    model_rows = json.loads((tmp_path / "extra" / "report.json").read_text())["per_image"]
    preds = [{"image": row["image"], "keypoints": np.asarray(p).reshape(-1).tolist(), "score": s}
             for row in model_rows for p, s in zip(row["poses"]["model"], row["poses"]["model_scores"])]
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    assert run_evaluate(only_folder, tmp_path / "preds.json")["AP"] == pytest.approx(aps["extra"]["model"]["AP"])


@pytest.mark.needs_shared
def test_files_sharing_a_name_are_scored_once_and_a_missing_card_is_said(xs_models, shared_dir, tmp_path):
    """Annotations match images by file name: a second file of the same name (another folder) would add its
    detections to the first one's image as false positives; it is left out of the AP, with a warning."""
    root, _, _ = xs_models
    crowdpose = shared_dir / "data" / "crowdpose"
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one / "a", two / "a", two / "b"):
        folder.mkdir(parents=True)
        for p in (crowdpose / "images").iterdir():
            shutil.copy(p, folder / p.name)
    bare = tmp_path / "bare" / "model.tflite"      # the int8 model without its card
    bare.parent.mkdir()
    shutil.copy(root / "xs_int8.tflite", bare)
    aps = {}
    for name, images in (("one", one), ("two", two)):
        res = _validate([bare, "--reference", root / "xs_fp32.tflite", "--images", images, "--annotations",
                         crowdpose / "annotations.json", "--report", tmp_path / f"rep_{name}"] + FAST)
        assert res.exit_code == 0, res.output
        warnings = _warnings(res.output)
        assert any("no model card next to the model; calibration overlap not checked" in w for w in warnings)
        clashes = [w for w in warnings if "only that file is scored" in w]
        assert len(clashes) == (2 if name == "two" else 0), warnings
        aps[name] = json.loads((tmp_path / f"rep_{name}" / "report.json").read_text())["annotations"]
    assert aps["two"]["images_scored"] == aps["one"]["images_scored"] == 2
    assert aps["two"]["reference"] == aps["one"]["reference"] and aps["two"]["model"] == aps["one"]["model"]
    # annotations that name the sub-folder: b/ is matched by its path; a/, listed first, holds other pictures
    # under the same names and is not those images
    three = tmp_path / "three"
    shutil.copytree(two / "b", three / "b")
    (three / "a").mkdir()
    others = sorted((shared_dir / "data" / "coco" / "images").iterdir())
    for other, p in zip(others, sorted((crowdpose / "images").iterdir())):
        shutil.copy(other, three / "a" / p.name)
    named = json.loads((crowdpose / "annotations.json").read_text())
    for im in named["images"]:
        im["file_name"] = "b/" + im["file_name"]
    (tmp_path / "named.json").write_text(json.dumps(named))
    res = _validate([bare, "--reference", root / "xs_fp32.tflite", "--images", three, "--annotations",
                     tmp_path / "named.json", "--report", tmp_path / "rep_named"] + FAST)
    assert res.exit_code == 0 and not [w for w in _warnings(res.output) if "only that file" in w], res.output
    rows = json.loads((tmp_path / "rep_named" / "report.json").read_text())
    assert rows["annotations"]["images_scored"] == 2 and rows["annotations"]["model"] == aps["one"]["model"]


@pytest.mark.needs_shared
def test_ap_gate_fails_when_no_validated_image_is_annotated(xs_models, shared_dir, tmp_path):
    root, _, _ = xs_models
    crowd = shared_dir / "data" / "crowdpose"
    data = json.loads((crowd / "annotations.json").read_text())
    for im in data["images"]:
        im["file_name"] = "elsewhere_" + im["file_name"]      # the same people, on images not in the folder
    (tmp_path / "other.json").write_text(json.dumps(data))
    res = _validate([root / "xs_fp32.tflite", "--reference", root / "xs_fp32.tflite", "--images", crowd / "images",
                     "--annotations", tmp_path / "other.json", "--max-ap-drop", 100, "--report", tmp_path / "r",
                     "--views", 1] + FAST)
    assert "AP not measured" in _one_line_error(res) and "below the thresholds" in res.output
    views_ap = json.loads((tmp_path / "r" / "report.json").read_text())["views"]["annotations"]
    assert views_ap["drop"] is None and "none of the validated images is in other.json" in views_ap["note"]
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    a = rep["annotations"]
    assert a["images_scored"] == 0 and a["annotated_images"] == 2 and a["drop"] is None
    assert a["reference"]["AP"] is None and a["model"]["AP"] is None
    assert not rep["passed"] and rep["checks"][0]["passed"] is False and "not measured" in rep["checks"][0]["note"]
    assert "not measured" in (tmp_path / "r" / "report.md").read_text()
    # without --annotations the gate cannot be met: refused before any work
    res = _validate([root / "xs_fp32.tflite", "--reference", root / "xs_fp32.tflite", "--images", crowd / "images",
                     "--max-ap-drop", 1, "--report", tmp_path / "r2"] + FAST)
    assert res.exit_code == 2 and not (tmp_path / "r2").exists()              # a usage error
    assert res.output.strip().startswith("Error: --max-ap-drop needs --annotations") and "Traceback" not in res.output


# ---- the reference against the model -----------------------------------------------------------------

def _tiny_litepose_tflite(path: Path, hw: tuple[int, int], joints: int) -> Path:
    """A small float model with the LitePose I/O contract (input `image`, three named outputs)."""
    import keras
    import tensorflow as tf

    image = keras.Input((*hw, 3), batch_size=1, name="image")
    s2 = keras.layers.Conv2D(4, 3, strides=2, padding="same")(image)
    s4 = keras.layers.Conv2D(4, 3, strides=2, padding="same")(s2)
    outs = {"heatmaps_s4": keras.layers.Conv2D(joints, 1)(s4), "tags_s4": keras.layers.Conv2D(joints, 1)(s4),
            "heatmaps_s2": keras.layers.Conv2D(joints, 1)(s2)}
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras.Model(image, outs)).convert())
    return path


@pytest.mark.needs_shared
def test_reference_of_another_network_shape_is_refused(xs_models, shared_dir, tmp_path):
    root, _, _ = xs_models
    model = root / "xs_fp32.tflite"                     # 128x128, 14 joints
    common = ["--images", shared_dir / "data" / "crowdpose" / "images", "--report", tmp_path / "r"] + FAST
    coco_ckpt = shared_dir / "checkpoints" / "litepose-l-coco-random.pth"
    line = _one_line_error(_validate([model, "--reference", coco_ckpt] + common))
    assert str(coco_ckpt) in line and "17 joints" in line and "has 14" in line
    wrong_size = _tiny_litepose_tflite(tmp_path / "64.tflite", (64, 64), 14)
    line = _one_line_error(_validate([model, "--reference", wrong_size] + common))
    assert str(wrong_size) in line and "64x64" in line and "128x128" in line
    wrong_joints = _tiny_litepose_tflite(tmp_path / "17.tflite", (128, 128), 17)
    line = _one_line_error(_validate([model, "--reference", wrong_joints] + common))
    assert str(wrong_joints) in line and "17 joints" in line and "has 14" in line
    coco = shared_dir / "data" / "coco" / "annotations.json"            # 17 joints, and no map asked for
    res = _validate([model, "--reference", root / "xs_fp32.tflite", "--annotations", coco, "--joint-map", "none"]
                    + common)
    line = _one_line_error(res)
    assert "predictions have 14 joints" in line and "has 17" in line and "validated 1/" not in res.output
    assert not (tmp_path / "r").exists()


@pytest.mark.needs_shared
def test_reference_of_another_checkpoint_is_refused_and_quantised_warned(xs_models, shared_dir, tmp_path):
    root, _, _ = xs_models
    images = ["--images", shared_dir / "data" / "crowdpose" / "images"]
    s_ckpt = shared_dir / "checkpoints" / "litepose-s-crowdpose-random.pth"   # same head shapes, other weights
    line = _one_line_error(_validate([root / "xs_fp32.tflite", "--reference", s_ckpt, "--report", tmp_path / "s"]
                                     + images + FAST))
    assert str(s_ckpt) in line and "not the checkpoint" in line and "--allow-other-reference" in line
    assert not (tmp_path / "s").exists()
    # a float .tflite whose card records another checkpoint: refused the same way
    shutil.copy(root / "xs_fp32.tflite", tmp_path / "other.tflite")
    card = json.loads((root / "xs_fp32.json").read_text())
    (tmp_path / "other.json").write_text(json.dumps({**card, "checkpoint_sha256": "ab" * 32, "variant": "S"}))
    line = _one_line_error(_validate([root / "xs_int8.tflite", "--reference", tmp_path / "other.tflite",
                                      "--report", tmp_path / "o"] + images + FAST))
    assert "converted from another checkpoint" in line and "abababababab" in line and "reference S, model XS" in line
    assert not (tmp_path / "o").exists()
    res = _validate([root / "xs_fp32.tflite", "--reference", s_ckpt, "--report", tmp_path / "s",
                     "--allow-other-reference"] + images + FAST)
    assert res.exit_code == 0, res.output
    (warning,) = _warnings(res.output)
    card_sha = json.loads((root / "xs_fp32.json").read_text())["checkpoint_sha256"]
    assert "not the checkpoint" in warning and card_sha[:12] in warning and "42ca256c7a30" in warning
    assert "reference S, model XS" in warning
    rep = json.loads((tmp_path / "s" / "report.json").read_text())
    assert len(rep["warnings"]) == 1
    assert "**Warning:** " + rep["warnings"][0] in (tmp_path / "s" / "report.md").read_text()
    # an int8 model (uint8 input) given as "the float reference"
    res = _validate([root / "xs_fp32.tflite", "--reference", root / "xs_int8.tflite", "--report", tmp_path / "q"]
                    + images + FAST)
    assert res.exit_code == 0, res.output
    (warning,) = _warnings(res.output)
    assert "not a float model" in warning and "input uint8" in warning and str(root / "xs_int8.tflite") in warning


@pytest.mark.needs_shared
def test_model_card_that_is_not_an_object_is_ignored_with_a_warning(xs_models, shared_dir, tmp_path):
    root, _, _ = xs_models
    shutil.copy(root / "xs_fp32.tflite", tmp_path / "m.tflite")
    (tmp_path / "m.json").write_text('[{"image": "a.jpg", "keypoints": [], "score": 0.5}]')   # predictions
    res = _validate([tmp_path / "m.tflite", "--reference", root / "xs_fp32.tflite", "--images",
                     shared_dir / "data" / "crowdpose" / "images", "--report", tmp_path / "r"] + FAST)
    assert res.exit_code == 0, res.output
    (warning,) = _warnings(res.output)
    assert str(tmp_path / "m.json") in warning and "not a model card" in warning
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["model"]["precision"] is None and rep["images"]["calibration_overlap"] == []
    assert all(v["sqnr_db"] is None for v in rep["outputs"].values())     # the same model twice: inf, as null


@pytest.mark.needs_shared
def test_a_model_that_differs_from_its_card_is_warned_about(xs_models, shared_dir, tmp_path):
    root, _, _ = xs_models
    shutil.copy(root / "xs_int8.tflite", tmp_path / "m.tflite")
    card = json.loads((root / "xs_int8.json").read_text())
    (tmp_path / "m.json").write_text(json.dumps({**card, "sha256": "0" * 64}))   # the card of another build
    res = _validate([tmp_path / "m.tflite", "--reference", root / "xs_fp32.tflite", "--images",
                     shared_dir / "data" / "crowdpose" / "images", "--report", tmp_path / "r"] + FAST)
    assert res.exit_code == 0, res.output
    (warning,) = [w for w in _warnings(res.output) if "differs from its model card" in w]
    assert str(tmp_path / "m.tflite") in warning and "differs from its model card m.json (000000000000)" in warning
    assert warning.removeprefix("[litepose] warning: ") in json.loads((tmp_path / "r" / "report.json").read_text())["warnings"]


# ---- outputs ------------------------------------------------------------------------------------------

@pytest.mark.needs_shared
def test_manifest_is_updated_only_with_the_flag(xs_models, shared_dir, tmp_path):
    root, _, _ = xs_models
    models = tmp_path / "models"
    models.mkdir()
    for name in ("xs_int8.tflite", "xs_int8.json", "xs_fp32.json", "manifest.json"):
        shutil.copy(root / name, models / name)
    before = _snapshot(models)
    args = [models / "xs_int8.tflite", "--reference", root / "xs_fp32.tflite", "--images",
            shared_dir / "data" / "coco" / "images"] + FAST
    res = _validate(args + ["--report", tmp_path / "r1"])
    assert res.exit_code == 0, res.output
    assert _snapshot(models) == before and "[litepose] updated" not in res.output
    res = _validate(args + ["--report", tmp_path / "r2", "--update-manifest"])
    assert res.exit_code == 0, res.output
    updated = [line for line in res.output.splitlines() if line.startswith("[litepose] updated")]
    assert len(updated) == 1 and str(models / "manifest.json") in updated[0] and "entry xs_int8.tflite" in updated[0]
    after = _snapshot(models)
    assert {k for k in after if after[k] != before[k]} == {"manifest.json"}          # the card is not rewritten
    rep = json.loads((tmp_path / "r2" / "report.json").read_text())
    old = {m["file"]: m for m in json.loads(before["manifest.json"])["models"]}
    new = {m["file"]: m for m in json.loads(after["manifest.json"])["models"]}
    assert new["xs_fp32.tflite"] == old["xs_fp32.tflite"]
    entry = new["xs_int8.tflite"]
    assert entry["sha256"] == old["xs_int8.tflite"]["sha256"] == rep["model"]["sha256"]
    assert entry["accuracy"]["sqnr_db"] == {k: round(v["sqnr_db"], 2) for k, v in rep["outputs"].items()}
    assert entry["accuracy"]["evaluated"] == 4 and "ap" not in entry["accuracy"]
    assert entry["latency"]["median_ms_by_threads"] == {"1": round(rep["latency"][0]["median_ms"], 1)}
    from importlib import metadata

    assert entry["latency"]["host"]["ai-edge-litert"] == metadata.version("ai-edge-litert")  # the timed runtime
    assert entry["latency"]["host"]["cpu_features"] == rep["host"]["cpu_features"]
    assert rep["host"]["xnnpack_delegate"] is True      # the latency is XNNPACK's, not the builtin kernels'
    host_line = [line for line in (tmp_path / "r2" / "report.md").read_text().splitlines() if line.startswith("Host: ")]
    assert len(host_line) == 1 and rep["host"]["cpu"] in host_line[0]
    # again, after an earlier run that timed 2 threads and scored AP: the 2-thread median of the same host and
    # runtime stays, the AP of the other run goes, said in a note
    data = json.loads(after["manifest.json"])
    earlier = next(m for m in data["models"] if m["file"] == "xs_int8.tflite")
    earlier["latency"]["median_ms_by_threads"]["2"] = 9.9
    earlier["accuracy"]["ap"] = {"annotations": "annotations.json", "drop_points": 0.5}
    (models / "manifest.json").write_text(json.dumps(data))
    res = _validate(args + ["--report", tmp_path / "r4", "--update-manifest"])
    assert res.exit_code == 0, res.output
    entry = next(m for m in json.loads((models / "manifest.json").read_text())["models"] if m["file"] == "xs_int8.tflite")
    rep = json.loads((tmp_path / "r4" / "report.json").read_text())
    assert entry["latency"]["median_ms_by_threads"] == {"1": round(rep["latency"][0]["median_ms"], 1), "2": 9.9}
    assert "ap" not in entry["accuracy"] and any("earlier ap is dropped" in line for line in res.output.splitlines())
    earlier = next(m for m in data["models"] if m["file"] == "xs_int8.tflite")
    earlier["latency"]["host"]["cpu"] = "another CPU"         # timed elsewhere: those medians do not carry over
    (models / "manifest.json").write_text(json.dumps(data))
    res = _validate(args + ["--report", tmp_path / "r5", "--update-manifest"])
    entry = next(m for m in json.loads((models / "manifest.json").read_text())["models"] if m["file"] == "xs_int8.tflite")
    assert res.exit_code == 0 and list(entry["latency"]["median_ms_by_threads"]) == ["1"]
    # asked for but impossible (no manifest next to the model): refused before the work
    (models / "manifest.json").unlink()
    line = _one_line_error(_validate(args + ["--report", tmp_path / "r3", "--update-manifest"]))
    assert str(models / "manifest.json") in line and not (tmp_path / "r3").exists()


@pytest.mark.needs_shared
def test_report_location_is_checked_before_the_work(xs_models, shared_dir, tmp_path):
    root, _, _ = xs_models
    args = [root / "xs_fp32.tflite", "--reference", root / "xs_fp32.tflite", "--images",
            shared_dir / "data" / "crowdpose" / "images"] + FAST
    (tmp_path / "file").write_text("x")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        if os.access(read_only, os.W_OK):       # root ignores permission bits; /sys refuses new files to root too
            read_only = Path("/sys")
            if not read_only.is_dir():
                pytest.skip("running as root without /sys: no folder that refuses writes")
        cases = [(tmp_path / "file", "exists and is not a folder"), (tmp_path / "file" / "r", "is a file"),
                 (tmp_path / "missing" / "r", "does not exist"), (read_only / "r", "cannot write in"),
                 (read_only, "cannot write in")]
        for report, what in cases:
            res = _validate(args + ["--report", report])
            line = _one_line_error(res)
            assert line.startswith(f"Error: {report}: ") and what in line, line
            assert "validated 1/" not in res.output                              # nothing was run
    finally:
        (tmp_path / "ro").chmod(0o755)


@pytest.mark.needs_shared
def test_a_failure_while_writing_the_report_leaves_the_old_report_or_no_folder(xs_models, shared_dir, tmp_path,
                                                                                monkeypatch):
    """All of the report or none of it: the markdown fails after the overlays were staged."""
    import converter.validate as validate_module

    root, _, _ = xs_models
    args = [root / "xs_fp32.tflite", "--reference", root / "xs_fp32.tflite", "--images",
            shared_dir / "data" / "crowdpose" / "images"] + FAST
    old = tmp_path / "old"
    assert _validate(args + ["--report", old]).exit_code == 0
    before = _snapshot(old)

    def full_disk(result):
        raise LitePoseError("report.md: cannot write (No space left on device)")

    monkeypatch.setattr(validate_module, "format_markdown", full_disk)
    for report in (old, tmp_path / "new"):
        res = _validate(args + ["--report", report])
        assert _one_line_error(res) == "Error: report.md: cannot write (No space left on device)"
    assert _snapshot(old) == before and sorted(p.name for p in old.iterdir()) == sorted(before)
    assert not (tmp_path / "new").exists()


@pytest.mark.needs_shared
def test_tiny_images_in_sub_folders_validate_with_views(xs_models, tmp_path):
    import cv2

    root, _, _ = xs_models
    folder = tmp_path / "tiny"
    folder.mkdir()
    rng = np.random.default_rng(5)
    cv2.imwrite(str(folder / "one.png"), np.full((1, 1, 3), 180, np.uint8))
    (folder / "sub").mkdir()                                                 # sub-folders are searched too
    cv2.imwrite(str(folder / "sub" / "four.png"), rng.integers(0, 256, (4, 4, 3)).astype(np.uint8))
    res = _validate([root / "xs_int8.tflite", "--reference", root / "xs_fp32.tflite", "--images", folder,
                     "--views", 3, "--report", tmp_path / "r"] + FAST)
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["images"]["evaluated"] == 2 and rep["views"]["inputs"] == 6
    assert all(0 < v < 200 for v in rep["views"]["sqnr_db"].values())     # int8 vs float: finite, real numbers


@pytest.mark.needs_shared
def test_report_in_the_image_folder_never_replaces_an_input(xs_models, tmp_path):
    import cv2

    root, _, _ = xs_models
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for name in ("a.png", "a.jpg"):  # one stem twice: overlays overlay_a.png and overlay_a-2.png
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (64, 80, 3)).astype(np.uint8))
    res = _validate([root / "xs_int8.tflite", "--reference", root / "xs_fp32.tflite", "--images", folder,
                     "--report", folder] + FAST)
    assert res.exit_code == 0, res.output
    assert {"overlay_a.png", "overlay_a-2.png", "report.json"} <= {p.name for p in folder.iterdir()}
    res = _validate([root / "xs_int8.tflite", "--reference", root / "xs_fp32.tflite", "--images", folder,
                     "--report", folder] + FAST)   # again: the tagged overlays of the first run are no inputs
    assert res.exit_code == 0, res.output
    assert json.loads((folder / "report.json").read_text())["images"]["evaluated"] == 2
    assert "2 overlay(s) that litepose drew in" in res.output
    photo = folder / "overlay_b.png"  # a photo whose name is an overlay's name
    cv2.imwrite(str(photo), rng.integers(0, 256, (64, 80, 3)).astype(np.uint8))
    before = photo.read_bytes()
    cv2.imwrite(str(folder / "b.png"), rng.integers(0, 256, (64, 80, 3)).astype(np.uint8))
    res = _validate([root / "xs_int8.tflite", "--reference", root / "xs_fp32.tflite", "--images", folder,
                     "--report", folder] + FAST)
    assert "would overwrite the input image overlay_b.png" in _one_line_error(res)
    assert photo.read_bytes() == before
    for _ in range(2):  # a report folder inside the image folder: its overlays never become inputs
        res = _validate([root / "xs_int8.tflite", "--reference", root / "xs_fp32.tflite", "--images", folder,
                         "--report", folder / "report"] + FAST)
        assert res.exit_code == 0, res.output
        assert json.loads((folder / "report" / "report.json").read_text())["images"]["evaluated"] == 4


@pytest.mark.needs_shared
def test_a_reused_report_folder_keeps_only_this_runs_overlays(xs_models, tmp_path):
    """Validating 2 images, then 1 image into the same report folder leaves 1 overlay, not a report about one
    image next to overlays of two; a file of the user's named like an overlay (no litepose tag) stays."""
    import cv2

    root, _, _ = xs_models
    rng = np.random.default_rng(9)
    for folder, names in (("two", ("a.png", "b.png")), ("one", ("c.png",))):
        (tmp_path / folder).mkdir()
        for name in names:
            cv2.imwrite(str(tmp_path / folder / name), rng.integers(0, 256, (64, 80, 3)).astype(np.uint8))
    report = tmp_path / "rep"
    for folder in ("two", "one"):
        res = _validate([root / "xs_int8.tflite", "--reference", root / "xs_fp32.tflite", "--images",
                         tmp_path / folder, "--report", report] + FAST)
        assert res.exit_code == 0, res.output
        if folder == "two":
            assert {"overlay_a.png", "overlay_b.png"} <= {p.name for p in report.iterdir()}
            cv2.imwrite(str(report / "overlay_mine.png"), np.zeros((4, 4, 3), np.uint8))
    assert "removed 2 overlays of an earlier report" in res.output
    assert sorted(p.name for p in report.glob("overlay_*.png")) == ["overlay_c.png", "overlay_mine.png"]


@pytest.mark.needs_shared
def test_identical_outputs_write_valid_json_and_views_are_bounded(xs_models, shared_dir, tmp_path):
    root, _, _ = xs_models
    fp32 = root / "xs_fp32.tflite"
    res = _validate([fp32, "--reference", fp32, "--images", shared_dir / "data" / "people", "--report",
                     tmp_path / "r"] + FAST)
    assert res.exit_code == 0, res.output
    text = (tmp_path / "r" / "report.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    rep = json.loads(text)
    assert rep["outputs"]["heatmaps_s4"]["sqnr_db"] is None  # identical: inf dB, written as null
    res = _validate([fp32, "--reference", fp32, "--images", shared_dir / "data" / "people", "--views", 100000,
                     "--report", tmp_path / "r2"] + FAST)
    assert res.exit_code == 2 and "--views" in res.output and not (tmp_path / "r2").exists()


def test_report_json_keeps_number_lists_on_one_line_and_strings_as_they_are():
    from converter.validate import report_json

    report = {"poses": [[[1.5, -2.0, 0.25], [3e-05, 4, 5]]], "name": "photo[\n 1,\n 2\n].jpg", "empty": [],
              "mixed": [1, "a", [2, 3]], "note": "see [ 1, 2 ]"}
    text = report_json(report)
    assert json.loads(text) == report
    assert "[1.5, -2.0, 0.25]" in text and "[3e-05, 4, 5]" in text and "[2, 3]" in text
    assert '"see [ 1, 2 ]"' in text and '"photo[\\n 1,\\n 2\\n].jpg"' in text
