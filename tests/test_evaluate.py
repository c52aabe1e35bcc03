"""Keypoint evaluation: the official golden case, hand-computed OKS/AP cases, perfect predictions on every
shared annotation file (with joint maps), matching rules, and user errors of `litepose evaluate`."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from converter.cli import main
from python_ref import evaluate as ev
from python_ref.errors import LitePoseError

GOLDEN_KEYS = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard")
CP_SIGMAS = [.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79]   # / 10, spec 6.2
COCO_TO_CROWDPOSE = list(range(5, 17))                       # COCO 5..16 = CrowdPose 0..11
AIC_FOR_CROWDPOSE = [3, 0, 4, 1, 5, 2, 9, 6, 10, 7, 11, 8, 12, 13]   # CrowdPose joint j = AIC joint [j]


@pytest.fixture(scope="session")
def golden(shared_dir):
    d = shared_dir / "fixtures" / "eval"
    return d / "gt.json", d / "preds.json", json.loads((d / "expected.json").read_text())


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def _cli(*args):
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


# ------------------------------------------------------------------ golden case (crowdposetools / xtcocotools)

def test_golden_case_reproduces_official_numbers(golden, tmp_path):
    gt, preds, expected = golden
    out = tmp_path / "metrics.json"
    res = _cli("--annotations", gt, "--results", preds, "--json", out)
    assert res.exit_code == 0, res.output
    metrics = json.loads(out.read_text())
    assert metrics["protocol"] == "crowdpose" and metrics["joint_map"] == "none"
    for key in GOLDEN_KEYS:
        assert metrics[key] == pytest.approx(expected[key], abs=1e-4), key
        assert metrics[key] == pytest.approx(expected["xtcocotools"][key], abs=1e-4), key
    assert "AP_easy" in res.output and f"{expected['AP']:.4f}" in res.output       # the printed table


def test_predict_format_matches_coco_format(golden, tmp_path):
    """`litepose predict` entries (image path, matched by file name) score exactly like image_id entries."""
    gt, preds, expected = golden
    names = {im["id"]: im["file_name"] for im in json.loads(gt.read_text())["images"]}
    predict_style = [{"image": f"/some/where/{names[p['image_id']]}", "keypoints": p["keypoints"],
                      "score": p["score"]} for p in json.loads(preds.read_text())]
    report = ev.run_evaluate(gt, _write(tmp_path / "p.json", predict_style))
    assert [report[k] for k in GOLDEN_KEYS] == pytest.approx([expected[k] for k in GOLDEN_KEYS], abs=1e-4)


def _perfect_predictions(gt_json: dict, joint_order=None):
    """One prediction per scorable GT person = its keypoints (optionally re-ordered), distinct scores."""
    out = []
    for i, a in enumerate(gt_json["annotations"]):
        kp = np.asarray(a["keypoints"], float).reshape(-1, 3)
        if a.get("iscrowd", 0) or not np.any(kp[:, 2] > 0):
            continue
        if joint_order is not None:
            kp = kp[joint_order]
        kp[:, 2] = 1.0
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.ravel().tolist(),
                    "score": 0.99 - 1e-4 * i})
    return out


def test_perfect_predictions_on_golden_annotations(golden, tmp_path):
    gt, _, _ = golden
    report = ev.run_evaluate(gt, _write(tmp_path / "p.json", _perfect_predictions(json.loads(gt.read_text()))))
    for key in GOLDEN_KEYS:
        assert report[key] == 1.0, key


@pytest.mark.parametrize("dataset, joint_order, joint_map, protocol, n_joints", [
    ("crowdpose", None, "none", "crowdpose", 14),
    ("coco", None, "none", "coco", 17),                      # a 17-joint COCO model
    ("coco", COCO_TO_CROWDPOSE + [0, 0], "coco", "coco", 12),  # 14-joint CrowdPose model (head, neck: junk)
    ("aic", AIC_FOR_CROWDPOSE, "aic", "crowdpose", 14),
    # a 17-joint COCO model on CrowdPose / AIC annotations: the 12 limb joints by name (face joints: junk)
    ("crowdpose", [ev.CROWDPOSE_JOINTS.index(n) if n in ev.CROWDPOSE_JOINTS else 12 for n in ev.COCO_JOINTS],
     "crowdpose", "crowdpose", 12),
    ("aic", [ev.AIC_JOINTS.index(n) if n in ev.AIC_JOINTS else 12 for n in ev.COCO_JOINTS], "aic", "crowdpose", 12),
])
def test_perfect_predictions_on_shared_data(shared_dir, tmp_path, dataset, joint_order, joint_map, protocol,
                                            n_joints):
    ann = shared_dir / "data" / dataset / "annotations.json"
    gt_json = json.loads(ann.read_text())
    preds = _perfect_predictions(gt_json, joint_order)
    report = ev.run_evaluate(ann, _write(tmp_path / "p.json", preds))          # joint map: auto
    assert (report["protocol"], report["joint_map"], len(report["joints"])) == (protocol, joint_map, n_joints)
    assert report["AP"] == 1.0 and report["AR"] == 1.0 and report["AP75"] == 1.0
    if protocol == "coco":
        assert set(ev.COCO_METRIC_KEYS) <= set(report)
        assert all(report[k] in (1.0, None) for k in ev.COCO_METRIC_KEYS)
    elif dataset == "aic":                                   # no crowdIndex in AIC: strata undefined
        assert report["AP_easy"] is None and report["AP_medium"] is None and report["AP_hard"] is None
    else:                                                    # both CrowdPose images have crowdIndex in [0.2, 0.8)
        assert report["AP_medium"] == 1.0 and report["AP_easy"] is None and report["AP_hard"] is None


def test_aic_map_reorders(shared_dir, tmp_path, capsys):
    """AIC-order keypoints passed off as CrowdPose order must score badly: the map really reorders. The user is
    told that the other joint order scores far better, and with --joint-map none they score 1."""
    ann = shared_dir / "data" / "aic" / "annotations.json"
    preds = _write(tmp_path / "p.json", _perfect_predictions(json.loads(ann.read_text())))     # not re-ordered
    capsys.readouterr()
    report = ev.run_evaluate(ann, preds, joint_map="aic")
    assert report["AP"] < 0.5
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert f"{preds}: warning: AP {report['AP']:.3f} with --joint-map aic, but 1.000 with --joint-map none" in warning
    assert ev.run_evaluate(ann, preds, joint_map="none")["AP"] == 1.0
    assert "warning" not in capsys.readouterr().err          # the better reading: nothing to say


# ------------------------------------------------------------------ hand-computed cases

def _crowdpose_gt(annotations, crowd_index=0.5):
    return {"images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480, "crowdIndex": crowd_index}],
            "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "keypoints": list(ev.CROWDPOSE_JOINTS)}]}


def _person(ann_id, kp, bbox, iscrowd=0):
    kp = np.asarray(kp, float)
    return {"id": ann_id, "image_id": 1, "category_id": 1, "iscrowd": iscrowd, "bbox": list(bbox),
            "keypoints": kp.ravel().tolist(), "num_keypoints": int(np.count_nonzero(kp[:, 2] == 2))}


def test_hand_computed_oks_and_ap(tmp_path):
    """Two labelled joints: one exact, one off by d with d^2 = 2 * area * (2 sigma)^2 -> OKS = (1 + e^-1) / 2
    = 0.684 (area = 0.53 * 100 * 200). It passes the thresholds .50 .55 .60 .65 of ten: AP = AR = 0.4."""
    gt_kp = np.zeros((14, 3))
    gt_kp[0] = [150, 100, 2]                                  # left shoulder, sigma .079
    gt_kp[13] = [160, 80, 2]                                  # neck, sigma .079
    pred = gt_kp.copy()
    pred[:, 2] = 0.9
    d = 2 * 0.079 * math.sqrt(2 * 0.53 * 100 * 200)
    pred[0, 0] += d * 0.6
    pred[0, 1] -= d * 0.8
    pred[5, :2] = [600, 400]                                  # an unlabelled GT joint: must not count
    expected_oks = (1 + math.exp(-1)) / 2
    oks = ev.compute_oks(pred[None, :, :2], gt_kp[None], np.array([[100., 50., 100., 200.]]),
                         np.array([0.53 * 100 * 200]), np.array(CP_SIGMAS) / 10)
    assert oks[0, 0] == pytest.approx(expected_oks, abs=1e-12)

    gt = _write(tmp_path / "gt.json", _crowdpose_gt([_person(7, gt_kp, (100, 50, 100, 200))]))
    res = _write(tmp_path / "r.json", [{"image_id": 1, "keypoints": pred.ravel().tolist(), "score": 0.5}])
    r = ev.run_evaluate(gt, res)
    assert (r["AP"], r["AP50"], r["AP75"], r["AR"], r["AR50"], r["AR75"]) == pytest.approx((.4, 1, 0, .4, 1, 0))
    assert r["AP_medium"] == 0.4 and r["AP_easy"] is None


def test_strata_round_like_crowdposetools(tmp_path):
    """crowdposetools rounds AP_easy/medium/hard with numpy (half to even on the scaled value): a true positive
    at one OKS threshold of ten (OKS 0.52), ranked 16th, gives AP 1/160 = 0.00625 -> 0.0062, where Python's
    round() gives 0.0063."""
    gt_kp = np.zeros((14, 3))
    gt_kp[0] = [150, 100, 2]
    gt_kp[13] = [160, 80, 2]
    pred = gt_kp.copy()
    pred[:, 2] = 0.9
    x = -math.log(2 * 0.52 - 1)                                 # OKS = (1 + e^-x) / 2 = 0.52
    pred[0, 0] += 2 * 0.079 * math.sqrt(x * 2 * 0.53 * 100 * 200)
    far = np.zeros((14, 3))
    far[:, :2] = [600, 20]
    preds = [{"image_id": 1, "keypoints": far.ravel().tolist(), "score": 0.9}] * 15 + \
        [{"image_id": 1, "keypoints": pred.ravel().tolist(), "score": 0.5}]
    gt = _write(tmp_path / "gt.json", _crowdpose_gt([_person(7, gt_kp, (100, 50, 100, 200))], crowd_index=0.1))
    r = ev.run_evaluate(gt, _write(tmp_path / "r.json", preds))
    assert r["AP"] == pytest.approx(1 / 160) and r["AP50"] == pytest.approx(1 / 16)
    assert r["AP_easy"] == 0.0062 and r["AP_medium"] is None


def test_annotation_ids_are_carried_not_checked_and_counts_must_be_whole(tmp_path):
    """pycocotools keys annotations by any JSON id and only asks whether num_keypoints == 0, so a string or
    null id scores like an integer one; 0.5 labelled joints is refused rather than truncated to 0 (ignored)."""
    kp = np.zeros((14, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = np.linspace(110, 190, 14), np.linspace(60, 240, 14), 2
    preds = _write(tmp_path / "r.json", [{"image_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.5}])
    for ann_id in ("a-7", None, 2**70):
        gt = _write(tmp_path / "gt.json", _crowdpose_gt([_person(ann_id, kp, (100, 50, 100, 200))]))
        assert ev.run_evaluate(gt, preds)["AP"] == pytest.approx(1.0)
    for count, message in ((0.5, "num_keypoints is 0.5, expected a whole number"), (-1, "expected a whole")):
        bad = _crowdpose_gt([_person(1, kp, (100, 50, 100, 200))])
        bad["annotations"][0]["num_keypoints"] = count
        res = _cli("--annotations", _write(tmp_path / "bad.json", bad), "--results", preds)
        assert res.exit_code == 1 and res.output.count("\n") == 1 and message in res.output, res.output
    huge = _crowdpose_gt([])
    huge["images"][0]["id"] = 2**64 + 5
    res = _cli("--annotations", _write(tmp_path / "huge.json", huge), "--results", _write(tmp_path / "e.json", []))
    assert res.exit_code == 1 and "does not fit in 64 bits" in res.output and res.output.count("\n") == 1


def test_detection_boxes_size_detections_as_pycocotools(tmp_path):
    """COCO area ranges: pycocotools' loadRes sizes every detection by its `bbox` when the first entry has one,
    else by its keypoints' extent. A false positive whose joints sit on one point (extent 0: outside 'large',
    so ignored there) but whose box is 200 x 200 (large) halves AP_L: precision 1/2 at full recall."""
    kp = np.zeros((17, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = np.linspace(110, 290, 17), np.linspace(60, 240, 17), 2
    gt = _write(tmp_path / "gt.json", {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [100, 50, 200, 200],
                         "area": 20000.0, "keypoints": kp.ravel().tolist(), "num_keypoints": 17}],
        "categories": [{"id": 1, "name": "person", "keypoints": list(ev.COCO_JOINTS)}]})
    far = np.zeros((17, 3))
    far[:, :2], far[:, 2] = [600, 20], 1
    entries = [{"image_id": 1, "category_id": 1, "keypoints": far.ravel().tolist(), "score": 0.9},
               {"image_id": 1, "category_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.5}]
    plain = ev.run_evaluate(gt, _write(tmp_path / "plain.json", entries))
    assert (plain["AP"], plain["AP_L"]) == pytest.approx((0.5, 1.0))
    boxed = [{**e, "bbox": [400, 0, 200, 200]} for e in entries]
    with_boxes = ev.run_evaluate(gt, _write(tmp_path / "boxed.json", boxed))
    assert (with_boxes["AP"], with_boxes["AP_L"]) == pytest.approx((0.5, 0.5))
    res = _cli("--annotations", gt, "--results", _write(tmp_path / "half.json", boxed[:1] + entries[1:]))
    assert res.exit_code == 1 and "entry 1 has no 'bbox' but entry 0 has one" in res.output


def test_box_rule_for_gt_without_labelled_joints():
    """GT without labelled joints: distance to its box enlarged to 3x (x in [0, 300], y in [0, 60] here)."""
    gt = np.zeros((1, 14, 3))
    sigmas = np.array(CP_SIGMAS) / 10
    inside = np.full((1, 14, 2), 50.0)
    oks = ev.compute_oks(inside, gt, np.array([[100., 20., 100., 20.]]), np.array([1000.]), sigmas)
    assert oks[0, 0] == pytest.approx(1.0)
    outside = inside.copy()
    outside[0, 3] = [310, 50]                                 # 10 px right of the enlarged box
    oks = ev.compute_oks(outside, gt, np.array([[100., 20., 100., 20.]]), np.array([1000.]), sigmas)
    term = math.exp(-100 / (2 * 1000 * (2 * sigmas[3]) ** 2))
    assert oks[0, 0] == pytest.approx((13 + term) / 14, abs=1e-12)


def test_crowd_region_absorbs_predictions_and_max_detections(tmp_path):
    kp = np.zeros((14, 3))
    kp[:, 0] = np.linspace(110, 190, 14)
    kp[:, 1] = np.linspace(60, 240, 14)
    kp[:, 2] = 2
    person = _person(1, kp, (100, 50, 100, 200))
    crowd = _person(2, np.zeros((14, 3)), (400, 100, 100, 100), iscrowd=1)
    in_crowd = np.zeros((14, 3))
    in_crowd[:, :2] = [450, 150]
    in_crowd[:, 2] = 1
    tp = {"image_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.5}
    crowd_preds = [{"image_id": 1, "keypoints": in_crowd.ravel().tolist(), "score": 0.9}] * 3
    gt = _write(tmp_path / "gt.json", _crowdpose_gt([person, crowd]))
    # crowd predictions outrank the true positive but are ignored, not false positives
    assert ev.run_evaluate(gt, _write(tmp_path / "a.json", crowd_preds + [tp]))["AP"] == pytest.approx(1.0)
    # without the crowd region the same predictions are false positives: precision 1/4 at full recall
    gt2 = _write(tmp_path / "gt2.json", _crowdpose_gt([person]))
    assert ev.run_evaluate(gt2, _write(tmp_path / "b.json", crowd_preds + [tp]))["AP"] == pytest.approx(0.25)
    # maxDets 20: 19 false positives above the true positive -> precision 1/20 everywhere; 20 -> TP cut off
    far = np.zeros((14, 3))
    far[:, :2] = [600, 20]
    fps = [{"image_id": 1, "keypoints": far.ravel().tolist(), "score": 0.9}]
    r19 = ev.run_evaluate(gt2, _write(tmp_path / "c.json", fps * 19 + [tp]))
    assert (r19["AP"], r19["AR"]) == pytest.approx((0.05, 1.0))
    r20 = ev.run_evaluate(gt2, _write(tmp_path / "d.json", fps * 20 + [tp]))
    assert (r20["AP"], r20["AR"]) == (0.0, 0.0)


def test_crowd_strata_boundaries_and_loader(shared_dir):
    assert [ev.crowd_stratum(c) for c in (0.0, 0.1999, 0.2, 0.7999, 0.8, 1.0, None)] == \
        ["easy", "easy", "medium", "medium", "hard", "hard", None]
    a = ev.load_annotations(shared_dir / "data" / "crowdpose" / "annotations.json")
    assert a.dataset == "crowdpose" and a.num_joints == 14 and a.has_crowd_index
    assert {im.file_name: im.stratum for im in a.images} == {"106848.jpg": "medium", "103319.jpg": "medium"}
    assert a.find_image("x/y/103319.jpg").id == 103319 and a.find_image("nope.jpg") is None
    idx = a.people(106848)
    assert a.keypoints[idx].shape == (3, 14, 3) and a.num_keypoints[idx].tolist() == [5, 0, 10]
    aic = ev.load_annotations(shared_dir / "data" / "aic" / "annotations.json")
    assert aic.dataset == "aic" and not aic.has_crowd_index and not aic.iscrowd.any()
    coco = ev.load_annotations(shared_dir / "data" / "coco" / "annotations.json")
    assert coco.dataset == "coco" and coco.num_joints == 17 and np.isfinite(coco.area).all()


# ------------------------------------------------------------------ user errors

def _bad_results(tmp_path, case):
    kp14 = [1.0] * 42
    path = tmp_path / f"{case}.json"
    content = {
        "missing": None,
        "not_json": "[{'image_id': 1,",
        "short_keypoints": [{"image_id": 1, "keypoints": [1, 2, 3], "score": 1}],
        "unknown_image": [{"image": "other.jpg", "keypoints": kp14, "score": 1}],
        "unknown_id": [{"image_id": 99, "keypoints": kp14, "score": 1}],
        "mixed_lengths": [{"image_id": 1, "keypoints": kp14, "score": 1},
                          {"image_id": 1, "keypoints": kp14[:39], "score": 1}],
        "nan_score": '[{"image_id": 1, "keypoints": %s, "score": NaN}]' % json.dumps(kp14),
        "bool_image_id": [{"image_id": True, "keypoints": kp14, "score": 1}],       # True == 1 in Python
        "image_and_id_disagree": [{"image": "a.jpg", "image_id": 2, "keypoints": kp14, "score": 1}],
        "huge_integer": '[{"image_id": 1, "keypoints": [%s], "score": 1}]' % ", ".join(["1" + "0" * 400] * 42),
    }[case]
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        _write(path, content)
    return path


@pytest.mark.parametrize("case", ["missing", "not_json", "short_keypoints", "unknown_image", "unknown_id",
                                  "mixed_lengths", "nan_score", "bad_annotations", "bool_image_id", "huge_integer",
                                  "iscrowd_string", "image_and_id_disagree"])
def test_bad_input_one_line_error_no_output(tmp_path, case):
    kp = np.zeros((14, 3))
    kp[0] = [10, 10, 2]
    gt = _write(tmp_path / "gt.json", _crowdpose_gt([_person(1, kp, (0, 0, 50, 50))]))
    annotations = gt
    if case == "bad_annotations":
        annotations = _write(tmp_path / "bad_gt.json", {"images": []})
        results = _write(tmp_path / "ok.json", [])
    elif case == "iscrowd_string":   # bool("0") is True: it would silently make the person a crowd region
        annotations = _write(tmp_path / "bad_gt.json", _crowdpose_gt([_person(1, kp, (0, 0, 50, 50), iscrowd="0")]))
        results = _write(tmp_path / "ok.json", [])
    else:
        results = _bad_results(tmp_path, case)
    out = tmp_path / "metrics.json"
    res = _cli("--annotations", annotations, "--results", results, "--json", out)
    assert res.exit_code != 0
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    named = annotations if case in ("bad_annotations", "iscrowd_string") else results
    assert str(named) in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".metrics.json.*"))


def test_a_misfit_joint_count_is_the_only_line_and_far_joints_score_zero_quietly(tmp_path):
    """The joint-count error comes before the warnings about images without predictions; joints 1e300 px
    away score OKS 0 without numpy overflow warnings; an integral float image_id (397133.0) is that image."""
    kp = np.zeros((14, 3))
    kp[:, :2], kp[:, 2] = 20, 2
    gt = _crowdpose_gt([_person(1, kp, (0, 0, 50, 50))])
    gt["images"].append({**gt["images"][0], "id": 2, "file_name": "b.jpg"})
    gt = _write(tmp_path / "gt.json", gt)
    res = _cli("--annotations", gt, "--results", _write(tmp_path / "r13.json",
                                                         [{"image_id": 1, "keypoints": [1.0] * 39, "score": 1}]))
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error:") and "13 joints" in lines[0]
    far = [{"image_id": 1.0, "keypoints": [1e300, 1e300, 1.0] * 14, "score": 1},
           {"image_id": 1, "keypoints": kp.ravel().tolist(), "score": 0.5}]
    with np.errstate(all="raise"):   # would raise FloatingPointError on an overflow the code does not expect
        report = ev.run_evaluate(gt, _write(tmp_path / "far.json", far))
    assert report["AP"] == pytest.approx(0.5, abs=0.02)   # the exact person ranked second: precision 1/2


def test_joint_count_mismatch_needs_a_map(shared_dir, tmp_path):
    ann = shared_dir / "data" / "crowdpose" / "annotations.json"
    res = _write(tmp_path / "r.json", [{"image": "103319.jpg", "keypoints": [1.0] * 51, "score": 1.0}])
    with pytest.raises(LitePoseError, match=r"17 joints.*needs --joint-map crowdpose \(or auto\)"):
        ev.run_evaluate(ann, res, joint_map="none")       # the one map that fits CrowdPose annotations
    res15 = _write(tmp_path / "r15.json", [{"image": "103319.jpg", "keypoints": [1.0] * 45, "score": 1.0}])
    for joint_map in ("auto", "none"):                    # no map to suggest for 15 joints
        with pytest.raises(LitePoseError, match="15 joints.*no joint map fits"):
            ev.run_evaluate(ann, res15, joint_map=joint_map)
    with pytest.raises(LitePoseError, match="pairs joints of other layouts"):   # CrowdPose order on CrowdPose
        ev.run_evaluate(ann, _write(tmp_path / "r14c.json", [{"image": "103319.jpg", "keypoints": [1.0] * 42,
                                                              "score": 1.0}]), joint_map="crowdpose")
    coco = shared_dir / "data" / "coco" / "annotations.json"
    res14 = _write(tmp_path / "r14.json", [{"image": "000000000785.jpg", "keypoints": [1.0] * 42, "score": 1.0}])
    with pytest.raises(LitePoseError, match=r"needs --joint-map coco \(or auto\)"):
        ev.run_evaluate(coco, res14, joint_map="none")
