"""Calibration set: selection (count, seed, crowdIndex strata), deployed letterbox, manifest, odd images."""
from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest

from converter.calibration import build_calibration_set, calibration_hashes
from python_ref.errors import LitePoseError

HW = (64, 96)


def _quiet(_msg):
    pass


def _rgb(h, w, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture()
def odd_folder(tmp_path):
    """One image of every kind the calibration must handle or reject."""
    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(d / "a_rgb.png"), _rgb(40, 80, 1))                                    # wide colour
    cv2.imwrite(str(d / "b_gray.png"), _rgb(50, 50, 2)[..., 0])                           # 1 channel
    rgba = np.concatenate([_rgb(60, 45, 3), np.full((60, 45, 1), 7, np.uint8)], 2)
    cv2.imwrite(str(d / "c_rgba.png"), rgba)                                              # alpha
    cv2.imwrite(str(d / "d_16bit.png"), (_rgb(48, 48, 4).astype(np.uint16) * 257))        # 16 bit
    cv2.imwrite(str(d / "e_tiny.png"), _rgb(8, 8, 5))                                     # too small
    (d / "f_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")               # unreadable
    (d / "notes.txt").write_text("not an image")                                          # ignored
    return d


def test_odd_images_are_handled_or_rejected_with_reasons(odd_folder):
    calib = build_calibration_set(odd_folder, HW, count=10, seed=0, log=_quiet)
    m = calib.manifest
    used = {im["file"]: im for im in m["images"]}
    assert set(used) == {"a_rgb.png", "b_gray.png", "c_rgba.png", "d_16bit.png"}
    assert used["b_gray.png"]["decoded"] == "grayscale -> RGB"
    assert used["c_rgba.png"]["decoded"] == "alpha dropped"
    assert "uint16" in used["d_16bit.png"]["decoded"]
    skipped = {s["file"]: s["reason"] for s in m["skipped"]}
    assert set(skipped) == {"e_tiny.png", "f_corrupt.jpg"}
    assert "too small" in skipped["e_tiny.png"]
    assert "OpenCV" in skipped["f_corrupt.jpg"] or "image" in skipped["f_corrupt.jpg"]
    # sha256 of the file bytes, as validate compares them
    for name, im in used.items():
        assert im["sha256"] == hashlib.sha256((odd_folder / name).read_bytes()).hexdigest()
    assert calibration_hashes({"calibration": m}) == {im["sha256"] for im in m["images"]}
    assert m["count"] == 4 and m["count_requested"] == 10
    json.dumps(m)  # the manifest goes into the model card


def test_images_are_letterboxed_like_deployed_inference(odd_folder):
    calib = build_calibration_set(odd_folder, HW, count=10, seed=0, log=_quiet)
    by_file = dict(zip([im["file"] for im in calib.manifest["images"]], calib.images))
    for img in calib.images:
        assert img.shape == HW + (3,) and img.dtype == np.uint8
    # 80x40 (2:1) into 96x64 (3:2): width-limited, 96x48, centred -> 8 border rows above and below, in the
    # contract's border colour (ImageNet mean, docs/design.md).
    from python_ref.preprocess import LETTERBOX_FILL_RGB

    wide = by_file["a_rgb.png"]
    border = np.asarray(LETTERBOX_FILL_RGB, np.uint8)
    assert (wide[:8] == border).all() and (wide[-8:] == border).all()
    src = cv2.cvtColor(cv2.imread(str(odd_folder / "a_rgb.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(wide[8:56], cv2.resize(src, (96, 48), interpolation=cv2.INTER_LINEAR))
    # grayscale replicated to three equal channels
    gray = by_file["b_gray.png"][:, 16:80]          # 50x50 -> 64x64 at x offset 16
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


def test_count_and_seed_are_deterministic(tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(12):
        cv2.imwrite(str(d / f"img{i:02d}.png"), _rgb(40, 40, i))
    a = build_calibration_set(d, HW, count=5, seed=3, log=_quiet).manifest["images"]
    b = build_calibration_set(d, HW, count=5, seed=3, log=_quiet).manifest["images"]
    c = build_calibration_set(d, HW, count=5, seed=4, log=_quiet).manifest["images"]
    assert [x["file"] for x in a] == [x["file"] for x in b]
    assert len(a) == 5 and len({x["file"] for x in a}) == 5
    assert [x["file"] for x in a] != [x["file"] for x in c]


def test_plain_folders_are_searched_recursively(tmp_path):
    for sub in ("a", "b/c"):
        (tmp_path / sub).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / sub / "x.png"), _rgb(40, 40, len(sub)))
    m = build_calibration_set(tmp_path, HW, count=10, log=_quiet).manifest
    assert sorted(im["file"] for im in m["images"]) == ["a/x.png", "b/c/x.png"]
    assert m["images"][0]["sha256"] != m["images"][1]["sha256"]


def test_annotations_stratify_by_crowd_index(tmp_path):
    d = tmp_path / "crowd"
    d.mkdir()
    crowd = {"e1": 0.05, "e2": 0.1, "e3": 0.15, "m1": 0.3, "m2": 0.5, "h1": 0.9}
    images = []
    for i, (name, ci) in enumerate(sorted(crowd.items())):
        cv2.imwrite(str(d / f"{name}.jpg"), _rgb(40, 40, i))
        images.append({"id": i + 1, "file_name": f"{name}.jpg", "width": 40, "height": 40, "crowdIndex": ci})
    images.append({"id": 99, "file_name": "missing.jpg", "width": 40, "height": 40, "crowdIndex": 0.9})
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": [], "categories": [
        {"id": 1, "name": "person", "keypoints": ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                                                  "left_wrist", "right_wrist", "left_hip", "right_hip",
                                                  "left_knee", "right_knee", "left_ankle", "right_ankle",
                                                  "head", "neck"]}]}))
    m = build_calibration_set(d, HW, annotations=str(ann), count=3, seed=0, log=_quiet).manifest
    assert sorted(im["stratum"] for im in m["images"]) == ["easy", "hard", "medium"]
    assert m["strata"] == {"easy": 1, "hard": 1, "medium": 1}
    assert all(im["image_id"] is not None for im in m["images"])


def _crowd_annotations(path, images):
    """A CrowdPose-style file listing (file_name, crowdIndex or None) images, no people needed here."""
    rows = [{"id": i + 1, "file_name": name, "width": 40, "height": 40, **({} if ci is None else {"crowdIndex": ci})}
            for i, (name, ci) in enumerate(images)]
    from python_ref.evaluate import CROWDPOSE_JOINTS

    path.write_text(json.dumps({"images": rows, "annotations": [], "categories": [
        {"id": 1, "name": "person", "keypoints": list(CROWDPOSE_JOINTS)}]}))
    return str(path)


def test_strata_are_visited_in_a_seeded_order_and_images_without_crowd_index_are_counted(tmp_path):
    """One image per call must not always be 'easy' (sorted stratum names), and a remainder must not always
    fall on the same strata; images without a crowdIndex are one more stratum, counted in the manifest."""
    d = tmp_path / "crowd"
    d.mkdir()
    images = [(f"{s}{i}.jpg", ci) for s, ci in (("e", 0.1), ("m", 0.5), ("h", 0.9), ("n", None)) for i in range(4)]
    for i, (name, _) in enumerate(images):
        cv2.imwrite(str(d / name), _rgb(40, 40, i))
    ann = _crowd_annotations(tmp_path / "ann.json", images)
    firsts = {build_calibration_set(d, HW, annotations=ann, count=1, seed=seed, log=_quiet).manifest["images"][0]
              ["stratum"] for seed in range(12)}
    assert len(firsts) >= 3                              # 12 seeds over 4 strata in seeded orders
    m = build_calibration_set(d, HW, annotations=ann, count=6, seed=0, log=_quiet).manifest
    assert sorted(m["strata"].values()) == [1, 1, 2, 2] and sum(m["strata"].values()) == 6
    assert set(m["strata"]) == {"easy", "medium", "hard", "none"}


def test_annotated_file_names_with_folders_and_ambiguous_names(tmp_path):
    d = tmp_path / "imgs"
    (d / "a").mkdir(parents=True)
    cv2.imwrite(str(d / "a" / "x.jpg"), _rgb(40, 40, 1))           # found with its sub-folder
    cv2.imwrite(str(d / "y.jpg"), _rgb(40, 40, 2))                 # a/y.jpg and b/y.jpg: only y.jpg on disk
    cv2.imwrite(str(d / "z.jpg"), _rgb(40, 40, 3))                 # sub/z.jpg: found by its name
    ann = _crowd_annotations(tmp_path / "ann.json", [("a/x.jpg", 0.1), ("a/y.jpg", 0.1), ("b/y.jpg", 0.5),
                                                     ("sub/z.jpg", 0.9)])
    lines = []
    m = build_calibration_set(d, HW, annotations=ann, count=10, seed=0, log=lines.append).manifest
    assert sorted((im["file"], im["image_id"]) for im in m["images"]) == [("a/x.jpg", 1), ("z.jpg", 4)]
    assert any("2 annotated images share a file name" in line for line in lines)


def test_the_same_bytes_under_two_names_and_a_pixel_bomb_are_skipped(tmp_path):
    import struct
    import zlib

    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), _rgb(40, 40, 1))
    (d / "b_copy.png").write_bytes((d / "a.png").read_bytes())
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0)    # 1.6 G pixels claimed in a tiny file
    (d / "c_bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                                   + chunk(b"IDAT", zlib.compress(b"\x00" * 40001)) + chunk(b"IEND", b""))
    m = build_calibration_set(d, HW, count=10, seed=0, log=_quiet).manifest
    assert [im["file"] for im in m["images"]] == ["a.png"] or [im["file"] for im in m["images"]] == ["b_copy.png"]
    reasons = {s["file"]: s["reason"] for s in m["skipped"]}
    assert "c_bomb.png" in reasons and "OpenCV cannot decode" in reasons["c_bomb.png"]
    assert any("the same file as" in r for r in reasons.values())


def test_empty_sets_are_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LitePoseError, match="empty"):
        build_calibration_set(empty, HW, log=_quiet)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(LitePoseError, match="none of the 1 candidate images is usable"):
        build_calibration_set(bad, HW, log=_quiet)
    with pytest.raises(LitePoseError, match="not found"):
        build_calibration_set(tmp_path / "nope", HW, log=_quiet)


@pytest.mark.needs_shared
def test_real_crowdpose_annotations(shared_dir):
    root = shared_dir / "data" / "crowdpose"
    m = build_calibration_set(root / "images", (448, 448), annotations=str(root / "annotations.json"),
                              count=100, seed=0, log=_quiet).manifest
    assert sorted(im["image_id"] for im in m["images"]) == [103319, 106848]
    assert m["strata"] == {"medium": 2}          # crowdIndex 0.39 and 0.33


def test_several_folders_give_the_same_set_as_one_flat_folder(tmp_path):
    """The draw depends on the images (by file name), not on how they are spread over folders."""
    flat, coco, aic = tmp_path / "flat", tmp_path / "coco" / "images", tmp_path / "aic" / "images"
    for d in (flat, coco, aic):
        d.mkdir(parents=True)
    for i in range(7):
        img = _rgb(40, 40, 10 + i)
        cv2.imwrite(str(flat / f"img{i}.png"), img)
        cv2.imwrite(str((coco if i % 2 else aic) / f"img{i}.png"), img)
    one = build_calibration_set(flat, HW, count=5, seed=1, log=_quiet)
    two = build_calibration_set([coco, aic], HW, count=5, seed=1, log=_quiet)
    assert [im["sha256"] for im in one.manifest["images"]] == [im["sha256"] for im in two.manifest["images"]]
    assert all(np.array_equal(a, b) for a, b in zip(one.images, two.images))
    assert two.manifest["source"]["images_dir"] == ["coco/images", "aic/images"]
    assert {im["file"].rsplit("/", 1)[0] for im in two.manifest["images"]} <= {"coco/images", "aic/images"}
    with pytest.raises(LitePoseError, match="is a file"):
        build_calibration_set([coco, flat / "img0.png"], HW, log=_quiet)
    with pytest.raises(LitePoseError, match="given twice"):
        build_calibration_set([coco, coco], HW, log=_quiet)
