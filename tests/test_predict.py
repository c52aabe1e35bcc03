"""`litepose predict` and python_ref.predict / draw: JSON format, mapping back to image pixels, flip test,
overlays, CLI errors, and (slow) the real LitePose-M checkpoint against the official end-to-end result."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from converter.cli import main
from python_ref.draw import draw_poses, person_colours
from python_ref.errors import LitePoseError
from python_ref.keypoints import CROWDPOSE
from python_ref.predict import _overlay_names, predict_image, result_entries, run_predict
from python_ref.preprocess import letterbox, official_resize

J = 14


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)


def _dump(result) -> str:
    return f"exit {result.exit_code}\noutput:\n{result.output}\nexception: {result.exception!r}"


# ---- a stand-in network with known answers ---------------------------------------------------------

def _gaussians(points_xy, hw, stride, sigma_px):
    """(h, w) map, max of unit Gaussians at input-pixel points (corner convention) sampled at cell centres."""
    h, w = hw
    ys, xs = np.mgrid[0:h, 0:w]
    cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
    out = np.zeros(hw, np.float64)
    for x, y in points_xy:
        out = np.maximum(out, np.exp(-((cx - x) ** 2 + (cy - y) ** 2) / (2 * sigma_px ** 2)))
    return out.astype(np.float32)


class FakeNetwork:
    """Stands in for a LitePose model whose answer is known: people with given joints (model-input pixels,
    joints listed in `missing` left out) and one associative-embedding tag per person.

    Called on the W-mirrored input it answers as a left/right-symmetric network would: mirrored maps with
    left and right joints swapped. `prepare` is the deployed letterbox or the official affine.
    """

    def __init__(self, people_xy, tags, input_hw, official_size=None, missing=()):
        self.num_joints = J
        self.input_hw = tuple(input_hw)
        self.official_size = official_size
        self.description = "fake network"
        self.default_mode, self.default_flip = ("official", True) if official_size else ("fast", False)
        h, w = self.input_hw
        people = np.asarray(people_xy, np.float64)
        maps = {"heatmaps_s4": np.zeros((h // 4, w // 4, J), np.float32),
                "tags_s4": np.zeros((h // 4, w // 4, J), np.float32),
                "heatmaps_s2": np.zeros((h // 2, w // 2, J), np.float32)}
        ys, xs = np.mgrid[0:h // 4, 0:w // 4]
        for j in range(J):
            pts = [people[p, j] for p in range(len(people)) if (p, j) not in set(missing)]
            maps["heatmaps_s4"][..., j] = 0.9 * _gaussians(pts, (h // 4, w // 4), 4, 6.0)
            maps["heatmaps_s2"][..., j] = 0.9 * _gaussians(pts, (h // 2, w // 2), 2, 6.0)
            d = np.stack([((xs + 0.5) * 4 - x) ** 2 + ((ys + 0.5) * 4 - y) ** 2 for x, y in people[:, j]])
            maps["tags_s4"][..., j] = np.asarray(tags, np.float32)[np.argmin(d, axis=0)]
        self.maps = maps
        self.inputs = []

    def prepare(self, image_rgb):
        if self.official_size:
            return official_resize(image_rgb, self.official_size)
        return letterbox(image_rgb, self.input_hw)

    def __call__(self, net_input):
        assert net_input.shape == self.input_hw + (3,) and net_input.dtype == np.uint8
        mirrored = bool(self.inputs) and np.array_equal(net_input, self.inputs[-1][:, ::-1])
        self.inputs.append(net_input.copy())
        if not mirrored:
            return {k: v.copy() for k, v in self.maps.items()}
        perm = list(CROWDPOSE.flip_index)
        return {k: np.ascontiguousarray(v[:, ::-1][..., perm]) for k, v in self.maps.items()}


def _two_people_in_image():
    """Two standing people in a 640 x 480 image (x, y per CrowdPose joint, image pixels), placed off the
    model grids (an exact cell corner would make a 2-cell plateau, which NMS keeps twice by design)."""
    base = np.array([[-30, -60], [30, -60], [-40, -20], [40, -20], [-45, 20], [45, 20], [-20, 30], [20, 30],
                     [-22, 90], [22, 90], [-24, 150], [24, 150], [0, -120], [0, -80]], np.float64)
    return np.stack([base + [200.3, 250.7], base * 0.8 + [450.6, 260.2]])


@pytest.fixture()
def noise_image():
    return np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode, flip", [("fast", False), ("official", False), ("official", True)])
def test_deployed_pipeline_maps_poses_back_to_image_pixels(noise_image, mode, flip):
    people_img = _two_people_in_image()
    _, box = letterbox(noise_image, (256, 256))  # s = 0.4, content 256 x 192 at y offset 32
    assert box.offset_xy == (0, 32)
    people_in = box.forward(people_img)
    # nobody's head top (joint 12) is in the maps: it must come out undetected, as score 0 at x = y = 0
    net = FakeNetwork(people_in, tags=[-2.0, 3.0], input_hw=(256, 256), missing=[(0, 12), (1, 12)])
    poses, scores = predict_image(net, noise_image, mode, flip)
    assert len(net.inputs) == (2 if flip else 1)
    if flip:
        np.testing.assert_array_equal(net.inputs[1], net.inputs[0][:, ::-1])
    assert poses.dtype == np.float32 and poses.shape[1:] == (J, 3) and scores.shape == (len(poses),)
    assert len(poses) == 2, scores
    assert (poses[:, 12] == 0).all()  # not to_image(0, 0), which is (0, -80) here
    for truth in people_img:  # each true person found once; joints within 1.5 input px = 3.75 image px
        q = int(np.argmin(np.linalg.norm(poses[:, 0, :2] - truth[0], axis=1)))
        joint_err = np.linalg.norm(poses[q, :, :2] - truth, axis=1)
        others = np.arange(J) != 12
        assert (poses[q, others, 2] > 0.5).all()
        assert joint_err[others].max() < 1.5 / 0.4, joint_err


def test_predict_image_names_what_it_got_instead_of_an_image(noise_image):
    net = FakeNetwork(_two_people_in_image(), tags=[-2.0, 3.0], input_hw=(256, 256))
    for bad, says in (("photo.jpg", "got a str"), (None, "got a NoneType"),
                      (noise_image.astype(np.int8), "got int8"), (noise_image / 255.0, "got float64"),
                      (noise_image[..., :2], r"shape \(H, W, 3\), got \(480, 640, 2\)")):
        with pytest.raises(ValueError, match=f"frame 7: expected .*{says}"):
            predict_image(net, bad, "fast", False, source="frame 7")
    assert net.inputs == []                      # refused before the network ran


def test_official_pipeline_uses_the_official_affine(noise_image):
    """Checkpoint route geometry: official_resize at 256 -> input 256 x 384 (w x h = 384 x 256)."""
    people_img = _two_people_in_image()
    _, transform = official_resize(noise_image, 256)
    assert transform.input_hw == (256, 384)
    net = FakeNetwork(transform.forward(people_img), tags=[1.0, 5.0], input_hw=(256, 384), official_size=256)
    poses, scores = predict_image(net, noise_image, "official", True)
    strong = poses[scores > 0.3]
    assert len(strong) == 2
    order = np.argsort(strong[:, 0, 0])  # person 0 is on the left
    scale = 256 / 480
    for truth, pose in zip(people_img, strong[order]):
        assert np.linalg.norm(pose[:, :2] - truth, axis=1).max() < 1.5 / scale


def test_fast_mode_refuses_flip(noise_image):
    net = FakeNetwork(np.zeros((1, J, 2)) + 100, tags=[0.0], input_hw=(256, 256))
    with pytest.raises(LitePoseError, match="flip"):
        predict_image(net, noise_image, "fast", True)


# ---- JSON and files ------------------------------------------------------------------------------

def test_result_entries_are_flat_lossless_and_per_person():
    poses = np.zeros((2, J, 3), np.float32)
    poses[0, 0] = (12.5, 7.25, 0.75)
    poses[1, 13] = (np.float32(1 / 3), 2.0, np.float32(0.1))
    entries = result_entries("imgs/a.jpg", poses, np.array([0.5, np.float32(0.2)], np.float32))
    assert [e["image"] for e in entries] == ["imgs/a.jpg", "imgs/a.jpg"]
    assert all(len(e["keypoints"]) == 3 * J for e in entries)
    assert entries[0]["keypoints"][:3] == [12.5, 7.25, 0.75]
    assert entries[0]["score"] == 0.5
    # float32 values round-trip exactly through their shortest decimal form
    text = json.dumps(entries)
    back = json.loads(text)
    assert np.float32(back[1]["keypoints"][39]) == np.float32(1 / 3)
    assert np.float32(back[1]["score"]) == np.float32(0.2)
    assert "0.20000000298" not in text
    np.testing.assert_array_equal(np.asarray(back[1]["keypoints"], np.float32).reshape(J, 3), poses[1])


def test_overlay_names_are_unique():
    assert _overlay_names(["a/x.jpg", "b/x.png", "c/y.jpg", "x.jpeg"]) == [
        "x_pose.jpg", "x-2_pose.jpg", "y_pose.jpg", "x-3_pose.jpg"]


def test_run_predict_writes_json_and_overlays(tmp_path):
    smooth = np.zeros((480, 640, 3), np.uint8)
    smooth[..., 0] = np.linspace(0, 120, 640)[None]
    smooth[..., 2] = np.linspace(60, 0, 480)[:, None]
    img_path = tmp_path / "in.png"
    cv2.imwrite(str(img_path), cv2.cvtColor(smooth, cv2.COLOR_RGB2BGR))
    people_img = _two_people_in_image()
    _, box = letterbox(smooth, (256, 256))
    net = FakeNetwork(box.forward(people_img), tags=[-2.0, 3.0], input_hw=(256, 256))
    lines = []
    out = tmp_path / "out.json"
    entries = run_predict(net, [str(img_path)], out, draw_dir=tmp_path / "draw", progress=lines.append)
    assert json.loads(out.read_text()) == entries
    assert len(entries) == 2 and all(e["image"] == str(img_path) for e in entries)
    assert any("[1/1]" in line and "2 people" in line and " ms" in line for line in lines), lines
    overlay = cv2.imread(str(tmp_path / "draw" / "in_pose.jpg"))
    assert overlay is not None and overlay.shape == smooth.shape
    diff = np.abs(cv2.cvtColor(overlay, cv2.COLOR_BGR2RGB).astype(int) - smooth.astype(int)).sum(2)
    for person in people_img:  # a dot on every joint
        for x, y in person.astype(int):
            assert diff[y - 1:y + 2, x - 1:x + 2].max() > 100, (x, y)
    assert np.percentile(diff[:, 560:], 99) < 20  # far from everyone: JPEG noise only


def test_run_predict_writes_nothing_when_an_image_fails(tmp_path, noise_image):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), noise_image)
    net = FakeNetwork(np.zeros((1, J, 2)) + 100, tags=[0.0], input_hw=(256, 256))
    out = tmp_path / "out.json"
    with pytest.raises(LitePoseError, match="missing.jpg"):
        run_predict(net, [str(good), str(tmp_path / "missing.jpg")], out, progress=lambda _: None)
    assert not out.exists() and list(tmp_path.glob(".out.json*")) == []


# ---- drawing ---------------------------------------------------------------------------------------

def test_draw_poses_one_colour_per_person_and_thresholds():
    img = np.zeros((480, 640, 3), np.uint8)
    poses = np.zeros((3, J, 3), np.float32)
    for p, y in ((0, 100.5), (1, 300.5)):
        poses[p, 0] = (40.5, y, 0.9)
        poses[p, 13] = (240.5, y, 0.9)
    poses[1, 5] = (140.5, y + 50, 0.0)  # undetected joint: no dot
    poses[2, 0] = (500.5, 400.5, 0.9)
    poses[2, 13] = (600.5, 400.5, 0.9)
    out = draw_poses(img, poses, np.array([0.9, 0.8, 0.05]), skeleton=[(0, 13), (0, 5)], min_person_score=0.1)
    assert img.max() == 0  # the input is not modified
    c0, c1 = person_colours(3)[:2]
    assert np.abs(np.asarray(c0) - c1).max() > 60
    np.testing.assert_allclose(out[100, 140], c0, atol=12)  # middle of person 0's limb 0-13
    np.testing.assert_allclose(out[300, 140], c1, atol=12)
    for x in (40, 240):  # white-rimmed joint dots at the ends
        assert (out[95:106, x - 5:x + 6].min(axis=2) > 200).any()
    assert out[340:361, 120:161].max() == 0  # no dot, no limb to the undetected joint 5
    assert out[380:421, 480:621].max() == 0  # person 2 is below the person threshold
    assert out[150:250].max() == 0 and out[:, 300:].max() == 0  # nothing anywhere else


def test_draw_poses_refuses_what_it_cannot_draw_and_keeps_far_joints_drawable():
    img = np.zeros((40, 60, 3), np.uint8)
    poses = np.zeros((1, J, 3), np.float32)
    poses[0, 0] = (10.5, 10.5, 0.9)
    poses[0, 1] = (1e12, -1e12, 0.9)          # a joint far off the picture: cv2 takes 32-bit points only
    out = draw_poses(img, poses, np.array([0.9]), skeleton=[(0, 1)])
    assert out.dtype == np.uint8 and out[10, 10].max() > 0 and out.max() > 0
    with pytest.raises(ValueError, match=r"skeleton joins joints \[14, 16\], the poses have 14 joints"):
        draw_poses(img, poses, np.array([0.9]), skeleton=[(0, 14), (1, 16)])     # COCO edges on CrowdPose poses
    with pytest.raises(ValueError, match="expected a uint8 RGB image"):
        draw_poses(img.astype(np.float32), poses, np.array([0.9]), skeleton=[])


# ---- CLI -----------------------------------------------------------------------------------------

def test_cli_needs_exactly_one_model_source(tmp_path):
    r = invoke(["predict", "x.jpg", "--json", tmp_path / "o.json"])
    assert r.exit_code == 2 and "--model" in r.output, _dump(r)
    r = invoke(["predict", "x.jpg", "--model", "a.tflite", "--checkpoint", "b.pth", "--json", tmp_path / "o.json"])
    assert r.exit_code == 2, _dump(r)
    r = invoke(["predict", "x.jpg", "--model", "a.tflite", "--arch", "M", "--json", tmp_path / "o.json"])
    assert r.exit_code == 2 and "--arch" in r.output, _dump(r)
    r = invoke(["predict", "x.jpg", "--model", "a.tflite", "--flip", "--json", tmp_path / "o.json"])
    assert r.exit_code == 2 and "--mode official" in r.output, _dump(r)


def test_cli_missing_model_or_image_is_one_line_error(tmp_path):
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
    r = invoke(["predict", img, "--model", tmp_path / "none.tflite", "--json", tmp_path / "o.json"])
    assert r.exit_code == 1, _dump(r)
    assert "none.tflite" in r.output and "Traceback" not in r.output
    # a missing image is reported before any model is loaded (that could take seconds)
    r = invoke(["predict", img, tmp_path / "gone.jpg", "--model", tmp_path / "none.tflite",
                "--json", tmp_path / "o.json"])
    assert r.exit_code == 1 and "gone.jpg: no such image file or folder" in r.output, _dump(r)
    r = invoke(["predict", img, "--model", tmp_path / "none.tflite", "--json", tmp_path])
    assert r.exit_code == 1 and "folder" in r.output, _dump(r)
    assert not (tmp_path / "o.json").exists()


# ---- the real checkpoint end to end (slow) ----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.needs_shared
def test_checkpoint_reproduces_the_official_end_to_end_result(shared_dir, tmp_path):
    """LitePose-M on CrowdPose 103319.jpg, official mode with flip (the CLI defaults for --checkpoint) vs the
    literal official valid.py result from float32 network outputs. Same people; joints within ~1 px (float
    differences between PyTorch and Keras can move a joint across an NMS plateau: see fixtures/README.md)."""
    ref = np.load(shared_dir / "fixtures" / "decode" / "crowdpose-103319.npz")
    image = shared_dir.parent / str(ref["data_path"])
    out = tmp_path / "poses.json"
    r = invoke(["predict", "--checkpoint", shared_dir / "checkpoints" / "litepose-auto-m-crowdpose-448.pth",
                image, "--json", out, "--draw", tmp_path / "draw", "--threads", "2"])
    assert r.exit_code == 0, _dump(r)
    entries = json.loads(out.read_text())
    assert {e["image"] for e in entries} == {str(image)}
    got = np.array([e["keypoints"] for e in entries], np.float64).reshape(-1, J, 3)
    got_scores = np.array([e["score"] for e in entries])
    want = ref["flip_final_poses_fp32net"].astype(np.float64)
    want_scores = ref["flip_scores_fp32net"].astype(np.float64)
    assert len(got) == len(want), (got_scores, want_scores)
    for p in range(len(want)):
        q = int(np.argmin(np.abs(got_scores - want_scores[p]) + [np.abs(g[:, :2] - want[p, :, :2]).mean() for g in got]))
        dist = np.linalg.norm(got[q, :, :2] - want[p, :, :2], axis=1)
        assert np.median(dist) < 0.5 and dist.mean() < 1.0, (p, dist)
        np.testing.assert_allclose(got[q, :, 2], want[p, :, 2], atol=2e-3)
        assert abs(got_scores[q] - want_scores[p]) < 2e-3
    assert (tmp_path / "draw" / "103319_pose.jpg").is_file()
