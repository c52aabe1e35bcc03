"""`litepose validate`: is a deployed model (typically INT8) as good as its float reference?

Both models see the same deployed-mode input (letterbox to the model's size) and their outputs are
decoded the same way. The report (JSON for machines, markdown + PNG overlays for people) holds:
per-output SQNR and max error, per-joint keypoint error of matched people, person-count agreement,
OKS-AP of the model's poses scored against the reference's poses (score > 0.1, CrowdPose sigmas, area
0.53 x keypoint box), AP of both against annotations when given (over the validated images the annotation
file lists; its other images are left out, with a warning), and latency at each thread count.
Thresholds make the command exit 1 (after writing the report) when the model is worse than allowed; a
threshold that could not be measured fails. Calibration images (model card manifest, by sha256) that
reappear among the evaluation images are reported and, with `exclude_calibration`, left out. The reference
must have the model's joints and input size; another checkpoint than the card's is refused (unless
`allow_other_reference`: then warned about, as a quantised .tflite reference is). Nothing outside the report
folder is written unless `update_manifest` (`--update-manifest`): then the model's entry in the manifest.json
next to it records the accuracy and latency.

For scale, the report also measures the reference against itself on a JPEG quality-95 re-encode of each
input (`input_sensitivity`): an invisible change of the input. A model whose SQNR is close to that number
differs from the reference about as much as the reference differs from itself on a re-saved photo.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from python_ref.errors import LitePoseError, first_line
from python_ref.io_utils import IMAGE_SUFFIXES, check_distinct, images_in_folder, numbered_stems, probe_writable

REPORT_FORMAT = "litepose-validate/1"
OUTPUT_NAMES = ("heatmaps_s4", "tags_s4", "heatmaps_s2")
PERSON_SCORE = 0.1
MAX_VIEWS = 64  # each view is a full model + reference run per image; more adds time, not information
SENSITIVITY_JPEG_QUALITY = 95
MAX_DETECTIONS = 20   # python_ref.evaluate scores the best 20 detections per image (COCO maxDets)


def log(msg: str) -> None:
    print(f"[litepose] {msg}", file=sys.stderr, flush=True)


# ---- references ------------------------------------------------------------------------------------

class _KerasReference:
    """The float network from a checkpoint, built at the deployed model's input size (needs TensorFlow)."""

    is_float = True

    def __init__(self, path: str, input_hw, num_joints: int | None = None, model_name: str = "the model"):
        from .checkpoint import build_keras_from_checkpoint, load_checkpoint

        ckpt = load_checkpoint(path)     # cheap: the joint count is checked before TensorFlow builds anything
        if num_joints is not None and ckpt.num_joints != num_joints:
            raise LitePoseError(f"{path}: the reference has {ckpt.num_joints} joints, the model ({model_name}) "
                                f"has {num_joints}; compare a model with the network it was converted from")
        self.checkpoint_sha256, self.arch_name = ckpt.sha256, ckpt.arch_name
        self.model, self.info = build_keras_from_checkpoint(path, input_hw=tuple(input_hw))
        self.description = f"{Path(path).name} (float Keras network, {self.info['arch_name']})"

    def __call__(self, image_uint8):
        out = self.model(np.asarray(image_uint8, np.float32)[None], training=False)
        return {k: np.asarray(out[k])[0] for k in OUTPUT_NAMES}


class _TFLiteReference:
    def __init__(self, path: str, input_hw, num_joints: int | None = None, model_name: str = "the model"):
        from python_ref.runner import TFLiteRunner

        self.runner = TFLiteRunner(path)
        if tuple(self.runner.input_hw) != tuple(input_hw):
            raise LitePoseError(f"{path}: the reference's input is {_hw(self.runner.input_hw)}, the model's "
                                f"({model_name}) is {_hw(input_hw)}")
        if num_joints is not None and self.runner.num_joints != num_joints:
            raise LitePoseError(f"{path}: the reference has {self.runner.num_joints} joints, the model ({model_name}) "
                                f"has {num_joints}; compare a model with the network it was converted from")
        self.input_dtype = self.runner.input_dtype.name
        self.quantised_outputs = sorted(k for k, (scale, _) in self.runner.output_quantization.items() if scale)
        self.is_float = self.runner.input_dtype == np.float32 and not self.quantised_outputs
        self.description = f"{Path(path).name} ({self.input_dtype} input TFLite)"

    def __call__(self, image_uint8):
        return self.runner(image_uint8)


def _hw(hw) -> str:
    return f"{hw[0]}x{hw[1]}"


def load_reference(path: str, input_hw, num_joints: int | None = None, model_name: str = "the model"):
    """The reference network; a LitePoseError (naming `path` and both values) when its joint count or input
    size differs from the model's."""
    p = Path(path)
    if not p.exists():
        raise LitePoseError(f"{path}: reference not found (a checkpoint or a float .tflite)")
    if p.suffix.lower() == ".tflite":
        return _TFLiteReference(path, input_hw, num_joints, model_name)
    return _KerasReference(path, input_hw, num_joints, model_name)


def _read_card(card_path: Path, warn) -> dict | None:
    """A model card as a dict; None (with one warning) when it is absent, unreadable or not a JSON object."""
    if not card_path.is_file():
        return None
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        warn(f"{card_path}: unreadable model card ({first_line(exc)}); treated as absent "
             "(calibration overlap and checkpoint not checked)")
        return None
    if not isinstance(card, dict):
        warn(f"{card_path}: not a model card (a JSON {type(card).__name__}, expected an object); treated as absent "
             "(calibration overlap and checkpoint not checked)")
        return None
    return card


def reference_warnings(ref, reference: str, model_name: str, card: dict | None,
                       allow_other_reference: bool = False) -> list[str]:
    """One-line warnings about a reference that is probably not the model's float network: a .tflite whose
    inputs/outputs (or card) say it is quantised (comparing two int8 forms is a real use). A checkpoint other
    than the one the model card records is a mistake in all but rare cases: refused unless
    `allow_other_reference`, then a warning."""
    out = []
    expected = (card or {}).get("checkpoint_sha256")
    variant = (card or {}).get("variant")

    def other_checkpoint(what: str, ref_sha: str, ref_variant) -> None:
        variants = f"; reference {ref_variant}, model {variant}" if variant and ref_variant not in (None, variant) else ""
        msg = f"{reference}: {what} (sha256 {ref_sha[:12]}, the model card records {expected[:12]}{variants})"
        if not allow_other_reference:
            raise LitePoseError(f"{msg}; give the model's own checkpoint or float .tflite, or "
                                "--allow-other-reference to compare them anyway")
        out.append(msg)

    if isinstance(ref, _KerasReference):
        if isinstance(expected, str) and expected and ref.checkpoint_sha256 != expected:
            other_checkpoint(f"not the checkpoint {model_name} was converted from", ref.checkpoint_sha256,
                             ref.arch_name)
        return out
    from .export import card_path_for

    ref_card = _read_card(card_path_for(reference), lambda msg: None) or {}
    precision = ref_card.get("precision")
    if not ref.is_float or precision in ("int8", "dynamic"):
        what = [f"input {ref.input_dtype}"] if ref.input_dtype != "float32" else []
        what += [f"{len(ref.quantised_outputs)} quantised outputs"] if ref.quantised_outputs else []
        what += [f"its card says {precision}"] if precision in ("int8", "dynamic") else []
        out.append(f"{reference}: the reference is not a float model ({', '.join(what)}); the numbers measure "
                   "the difference between two quantised models, not the loss against float")
    ref_ckpt = ref_card.get("checkpoint_sha256")
    if isinstance(expected, str) and expected and isinstance(ref_ckpt, str) and ref_ckpt != expected:
        other_checkpoint(f"converted from another checkpoint than {model_name}", ref_ckpt, ref_card.get("variant"))
    return out


# ---- metrics ---------------------------------------------------------------------------------------

@dataclass
class _Energy:
    signal: float = 0.0
    noise: float = 0.0
    max_abs_error: float = 0.0

    def add(self, ref: np.ndarray, test: np.ndarray) -> dict:
        """Adds one image; returns its own numbers (SQNR, max error, and the energies, for pooling)."""
        r, t = ref.astype(np.float64), test.astype(np.float64)
        s, n = float(np.sum(r * r)), float(np.sum((r - t) ** 2))
        err = float(np.max(np.abs(r - t))) if r.size else 0.0
        self.signal += s
        self.noise += n
        self.max_abs_error = max(self.max_abs_error, err)
        return {"sqnr_db": sqnr_from(s, n), "max_abs_error": err, "signal_energy": s, "noise_energy": n}


def sqnr_from(signal: float, noise: float) -> float:
    if noise == 0:
        return math.inf
    return 10.0 * math.log10(max(signal, 1e-30) / noise)


def jpeg_roundtrip(image_rgb: np.ndarray, quality: int = SENSITIVITY_JPEG_QUALITY) -> np.ndarray:
    """The same RGB uint8 image saved and read back as JPEG (an imperceptible input perturbation)."""
    import cv2

    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image_rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise LitePoseError("OpenCV could not encode a JPEG for the input-sensitivity measurement")
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])


@dataclass(frozen=True)
class View:
    """One fixed variation of an image (`view_plan`): crop `dx`, `dy` off the top left, resize by
    `scale_x`, `scale_y` (INTER_AREA), mirror left-right when `mirrored`; `width` x `height` after."""
    dx: int
    dy: int
    scale_x: float
    scale_y: float
    mirrored: bool
    width: int
    height: int

    def apply(self, image_rgb: np.ndarray) -> np.ndarray:
        import cv2

        v = image_rgb[self.dy:, self.dx:]
        if v.shape[1] != self.width or v.shape[0] != self.height:
            v = cv2.resize(v, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(v[:, ::-1] if self.mirrored else v)

    def map_xy(self, xy: np.ndarray) -> np.ndarray:
        """Original-image pixel coordinates (x, y in the last axis; pixel i spans [i, i+1), as the
        letterbox's `to_image`) -> this view's."""
        xy = np.asarray(xy, np.float64)
        x = (xy[..., 0] - self.dx) * self.scale_x
        y = (xy[..., 1] - self.dy) * self.scale_y
        return np.stack([self.width - x if self.mirrored else x, y], -1)


def view_plan(h: int, w: int, count: int) -> list[View]:
    """`count` fixed variations of an h x w image (mirrored, shifted by a few pixels, rescaled by 0.8-0.95):
    the int8 error of a network this sensitive moves by about a decibel between two images or two nearly
    equal builds, so steadier numbers pool over more inputs than the few annotated images. On an image
    smaller than the shift, the shift stops at the last row / column: every view keeps at least 1 x 1 pixels."""
    if count > 0 and (h < 1 or w < 1):
        raise LitePoseError(f"an empty {h}x{w} image has no views")
    plan = []
    for i in range(count):
        dy, dx = min((5 * i) % 13, h - 1), min((7 * i) % 17, w - 1)
        scale = (1.0, 0.9, 0.8, 0.95)[(i // 2) % 4]
        cw, ch = w - dx, h - dy
        vw, vh = (cw, ch) if scale == 1.0 else (max(1, round(cw * scale)), max(1, round(ch * scale)))
        plan.append(View(dx, dy, vw / cw, vh / ch, i % 2 == 0, vw, vh))
    return plan


def input_views(image_rgb: np.ndarray, count: int) -> list[np.ndarray]:
    """The `view_plan` views of an image."""
    return [v.apply(image_rgb) for v in view_plan(*image_rgb.shape[:2], count)]


HEAD_JOINT_NAMES = ("head", "head_top", "neck")   # CrowdPose's num_keypoints leaves these out


def _remaining_count(visibility: np.ndarray, names: tuple[str, ...], num_keypoints: int, cut: np.ndarray) -> int:
    """A person's `num_keypoints` once the joints `cut` are gone. Files count differently (COCO and AIC:
    labelled joints; CrowdPose: labelled limb joints, head and neck never), so the rule that reproduces the
    file's own count is applied; if none does, the count only drops to what is left labelled."""
    labelled = visibility > 0
    limb = ~np.isin([n.lower() for n in names], HEAD_JOINT_NAMES)
    for counted in (labelled, labelled & limb, visibility == 2, (visibility == 2) & limb):
        if np.count_nonzero(counted) == num_keypoints:
            return num_keypoints - int(np.count_nonzero(counted & cut))
    return min(num_keypoints, int(np.count_nonzero(labelled & ~cut)))


def annotations_for_views(ann, entries: list):
    """The annotation file as it would read for the views. `entries`: (annotated image id, its `View`s) per
    validated file (a name may occur twice, in two sub-folders, as in the images' AP); each view becomes an
    image of its own, ids 1..n in order, returned with the set as ids[entry][view]. Joints move with the
    pixels (left and right swapped on mirrored views, by the file's own joint names); a joint the crop cuts
    off is no longer labelled (nor counted in `num_keypoints`); boxes and areas move and scale alike. The
    protocol is the images' one over more inputs; the absolute AP of mirrored views is not the images' AP,
    since a network is not exactly mirror-symmetric, but that moves the model and its reference alike."""
    from python_ref.evaluate import ImageInfo
    from python_ref.keypoints import flip_index_for_names

    flip = np.asarray(flip_index_for_names(ann.joint_names))
    images, ids, rows, kps, boxes, areas, num_kp, view_ids = [], [], [], [], [], [], [], []
    for image_id, views in entries:
        info, people = ann.image(image_id), ann.people(image_id)
        stem, dot, suffix = info.file_name.rpartition(".")
        view_ids.append([])
        for i, v in enumerate(views):
            new_id = len(images) + 1
            view_ids[-1].append(new_id)
            images.append(ImageInfo(id=new_id, file_name=f"{stem or suffix}@view{i}{dot + suffix if stem else ''}",
                                    width=v.width, height=v.height, crowd_index=info.crowd_index))
            for k in people:
                kp = ann.keypoints[k].astype(np.float64).copy()
                kp[:, :2] = v.map_xy(kp[:, :2])
                outside = (kp[:, 0] < 0) | (kp[:, 0] > v.width) | (kp[:, 1] < 0) | (kp[:, 1] > v.height)
                num_kp.append(_remaining_count(ann.keypoints[k, :, 2], ann.joint_names, int(ann.num_keypoints[k]),
                                               outside & (ann.keypoints[k, :, 2] > 0)))
                kp[outside | (kp[:, 2] <= 0)] = 0.0
                if v.mirrored:
                    kp = kp[flip]
                x, y, bw, bh = ann.bbox[k]
                (x0, y0), (x1, y1) = v.map_xy(np.array([[x, y], [x + bw, y + bh]]))
                ids.append(new_id)
                rows.append(k)
                kps.append(kp)
                boxes.append([min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)])
                areas.append(ann.area[k] * v.scale_x * v.scale_y)
    n, rows = len(ids), np.asarray(rows, np.int64)
    keypoints = np.asarray(kps, np.float64).reshape(n, ann.num_joints, 3)
    out = dataclasses.replace(
        ann, path=f"{ann.path} (views)", images=images, image_id=np.asarray(ids, np.int64),
        annotation_id=np.arange(1, n + 1), keypoints=keypoints, bbox=np.asarray(boxes, np.float64).reshape(n, 4),
        area=np.asarray(areas, np.float64), iscrowd=ann.iscrowd[rows],
        num_keypoints=np.asarray(num_kp, np.int64).astype(ann.num_keypoints.dtype),
        _by_id={im.id: im for im in images}, _by_name={im.file_name: im for im in images})
    return out, view_ids


def _people(poses: np.ndarray, scores: np.ndarray, threshold: float = PERSON_SCORE, limit: int | None = None):
    """People above the score threshold, best first; at most `limit` (COCO evaluation scores at most 20
    detections per image, so a reference with more people could never be matched in full)."""
    keep = np.flatnonzero(scores > threshold)
    keep = keep[np.argsort(-scores[keep], kind="mergesort")][:limit]
    return poses[keep], scores[keep]


MIN_PAIR_RADIUS_PX = 16.0   # a one-joint reference person has no size: pairs within this still count


def match_people(ref: np.ndarray, test: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (ref index, test index) minimising the mean distance over joints both detected. A test person
    farther (mean distance) than the reference person's keypoint-box diagonal is someone else, not a pair:
    the model missed that person, and its joints stay out of the per-joint error."""
    from scipy.optimize import linear_sum_assignment

    if len(ref) == 0 or len(test) == 0:
        return []
    both = (ref[:, None, :, 2] > 0) & (test[None, :, :, 2] > 0)
    dist = np.linalg.norm(ref[:, None, :, :2] - test[None, :, :, :2], axis=-1)
    size = np.array([np.hypot(*_keypoint_box(p)[2:]) for p in ref])
    mean = np.sum(dist * both, -1) / np.maximum(both.sum(-1), 1)
    cost = np.where(both.any(-1) & (mean <= np.maximum(size, MIN_PAIR_RADIUS_PX)[:, None]), mean, 1e9)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < 1e9]


def _keypoint_box(pose: np.ndarray) -> list[float]:
    vis = pose[:, 2] > 0
    if not vis.any():
        return [0.0, 0.0, 0.0, 0.0]
    x0, y0 = pose[vis, 0].min(), pose[vis, 1].min()
    return [float(x0), float(y0), float(pose[vis, 0].max() - x0), float(pose[vis, 1].max() - y0)]


def oks_ap_against_reference(ref_poses: list, test_poses: list, test_scores: list, num_joints: int) -> dict:
    """COCO-style AP of the test poses with the reference's people (score > 0.1) as ground truth.

    CrowdPose rules (14 joints) or COCO sigmas (17) with OKS area = 0.53 x the keypoint box."""
    from python_ref.evaluate import Annotations, ImageInfo, Results, evaluate_keypoints
    from python_ref.keypoints import dataset_for_joints

    names = dataset_for_joints(num_joints).joints
    images, ids, kps, boxes, nkp = [], [], [], [], []
    for i, ref in enumerate(ref_poses):
        images.append(ImageInfo(id=i + 1, file_name=f"{i + 1}.jpg", width=None, height=None))
        for p in ref:
            ids.append(i + 1)
            kps.append(np.concatenate([p[:, :2], np.where(p[:, 2:3] > 0, 2.0, 0.0)], 1))
            boxes.append(_keypoint_box(p))
            nkp.append(int(np.count_nonzero(p[:, 2] > 0)))
    n = len(ids)
    box = np.asarray(boxes, float).reshape(n, 4)
    ann = Annotations(path="reference poses", images=images, joint_names=tuple(names),
                      dataset="crowdpose" if num_joints == 14 else "coco", category_id=1,
                      image_id=np.asarray(ids, np.int64), annotation_id=np.arange(1, n + 1),
                      keypoints=np.asarray(kps, float).reshape(n, num_joints, 3), bbox=box,
                      area=0.53 * box[:, 2] * box[:, 3], iscrowd=np.zeros(n, bool),
                      num_keypoints=np.asarray(nkp, np.int64),
                      _by_id={im.id: im for im in images}, _by_name={im.file_name: im for im in images})
    rid, rkp, rsc = [], [], []
    for i, (poses, scores) in enumerate(zip(test_poses, test_scores)):
        for p, s in zip(poses, scores):
            rid.append(i + 1)
            rkp.append(p)
            rsc.append(float(s))
    res = Results(path="model poses", image_id=np.asarray(rid, np.int64),
                  keypoints=np.asarray(rkp, float).reshape(len(rid), num_joints, 3), score=np.asarray(rsc))
    if n == 0:
        return {"AP": None, "note": "the reference finds nobody (score > 0.1) on these images"}
    report = evaluate_keypoints(ann, res, joint_map="none")
    return {k: report[k] for k in ("AP", "AP50", "AP75", "AR")} | {"num_reference_people": n}


def pool_reports(reports: list[dict]) -> dict:
    """One set of numbers over several `validate` reports (e.g. held-out folds, each image evaluated by a
    model not calibrated on it): SQNR from the summed energies, OKS-AP over all images' people together."""
    rows = [row for r in reports for row in r["per_image"]]
    if not rows:
        raise LitePoseError("no evaluated images in these reports")
    if any("poses" not in row or "signal_energy" not in row["outputs"][OUTPUT_NAMES[0]] for row in rows):
        raise LitePoseError("a report predates pooling (no poses / energies per image); rerun litepose validate")
    joints = {len(p) for row in rows for p in row["poses"]["reference"] + row["poses"]["model"]
              + [q for key in ("reference", "model") for v in (row.get("views") or {}).get(key, []) for q in v]}
    if len(joints) > 1:
        raise LitePoseError(f"the reports mix joint counts {sorted(joints)}; pool models of one network only")
    num_joints = joints.pop() if joints else 14
    sqnr = {k: sqnr_from(sum(row["outputs"][k]["signal_energy"] for row in rows),
                         sum(row["outputs"][k]["noise_energy"] for row in rows)) for k in OUTPUT_NAMES}

    def poses(rows_key):
        return [np.asarray(row["poses"][rows_key], np.float32).reshape(-1, num_joints, 3) for row in rows]

    oks = oks_ap_against_reference(poses("reference"), poses("model"),
                                   [np.asarray(row["poses"]["model_scores"], float) for row in rows], num_joints)
    pooled = {"reports": len(reports), "images": len(rows), "sqnr_db": sqnr, "oks_ap_vs_reference": oks,
              "models": [r["model"]["file"] for r in reports]}
    per_image_views = {(r.get("views") or {}).get("per_image") for r in reports}
    if len(per_image_views) > 1:
        pooled["views_note"] = (f"views not pooled: the reports ran different numbers of views per image "
                                f"({', '.join(str(v or 0) for v in sorted(per_image_views, key=lambda v: v or 0))})")
    elif all(row.get("views") for row in rows):   # every report ran the same views: pool their people too
        def view_poses(key):
            return [np.asarray(v, np.float32).reshape(-1, num_joints, 3) for row in rows for v in row["views"][key]]

        pooled["views"] = {"inputs": sum(len(row["views"]["model"]) for row in rows),
                           "oks_ap_vs_reference": oks_ap_against_reference(
                               view_poses("reference"), view_poses("model"),
                               [np.asarray(v, float) for row in rows for v in row["views"]["model_scores"]],
                               num_joints)}
    return pooled


def latency(model_path: str, image_uint8: np.ndarray, threads: int, runs: int) -> dict:
    from python_ref.runner import TFLiteRunner

    runner = TFLiteRunner(model_path, num_threads=threads)
    batch = runner.prepare_input(image_uint8)
    for _ in range(2):
        runner.run_batch(batch)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        runner.run_batch(batch)
        times.append((time.perf_counter() - t0) * 1000.0)
    return {"threads": threads, "runs": runs, "median_ms": float(np.median(times)), "min_ms": float(np.min(times)),
            "p90_ms": float(np.percentile(times, 90))}


# ---- the command -----------------------------------------------------------------------------------

def _list_images(images_dir: Path, report_dir: Path | None = None) -> list[Path]:
    if images_dir.is_file():
        raise LitePoseError(f"{images_dir}: --images takes a folder (of images to validate on), this is a file")
    if not images_dir.is_dir():
        raise LitePoseError(f"{images_dir}: image folder not found")
    from python_ref.draw import without_overlays

    # a report folder inside the image folder is skipped whole; overlays litepose drew elsewhere in it are no
    # inputs either (a report written into the image folder itself, predict --draw overlays)
    files = without_overlays(images_in_folder(images_dir, skip=report_dir), images_dir)
    if not files:
        raise LitePoseError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)}) to validate on")
    return files


def _decode(outputs: dict, mode: str):
    from python_ref import decoder

    d = decoder.decode_official(outputs) if mode == "official" else decoder.decode_fast(outputs)
    return np.asarray(d.poses, np.float32), np.asarray(d.scores, np.float32)


def _to_image(poses: np.ndarray, box) -> np.ndarray:
    out = box.to_image(poses).astype(np.float32) if len(poses) else poses.copy()
    if len(out):
        out[out[..., 2] <= 0, :2] = 0.0
    return out


def _overlay(image, ref_poses, ref_scores, poses, scores, num_joints, ref_label, model_label) -> bytes:
    import cv2

    from python_ref.draw import draw_poses, tag_overlay
    from python_ref.keypoints import dataset_for_joints

    skeleton = dataset_for_joints(num_joints).skeleton
    left = draw_poses(image, ref_poses, ref_scores, skeleton, PERSON_SCORE)
    right = draw_poses(image, poses, scores, skeleton, PERSON_SCORE)
    panel = np.concatenate([left, np.full((image.shape[0], 8, 3), 255, np.uint8), right], 1)
    scale = 640.0 / panel.shape[1] if panel.shape[1] > 1280 else 1.0
    if scale != 1.0:
        panel = cv2.resize(panel, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    for x, text in ((6, ref_label), (panel.shape[1] // 2 + 6, model_label)):
        cv2.putText(panel, text, (x, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(panel, text, (x, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    return tag_overlay(png.tobytes())


def check_report_folder(report: str) -> Path:
    """The report folder, checked before any slow work: an existing folder we can write in, or a new one whose
    parent exists and is writable (it is created only when the report is written)."""
    report_dir = Path(report)
    if report_dir.exists() and not report_dir.is_dir():
        raise LitePoseError(f"{report}: exists and is not a folder")
    if report_dir.is_symlink() and not report_dir.exists():
        raise LitePoseError(f"{report}: a broken symbolic link")
    if report_dir.is_dir():
        probe_writable(report_dir, report)
        for name in ("report.json", "report.md"):
            if (report_dir / name).is_dir():
                raise LitePoseError(f"{report_dir / name}: is a folder; the report cannot be written there")
        return report_dir
    parent = report_dir.parent
    if parent.exists() and not parent.is_dir():
        raise LitePoseError(f"{report}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise LitePoseError(f"{report}: the folder {parent} does not exist")
    probe_writable(parent, report)
    return report_dir


def _manifest_to_update(model_path: Path, model_sha: str, card: dict | None, card_path: Path) -> Path:
    """The manifest.json whose entry for this model `--update-manifest` rewrites; every reason it could not be
    updated is an error now, before the slow work."""
    manifest = model_path.parent / "manifest.json"
    if card is None:
        raise LitePoseError(f"{card_path}: --update-manifest needs the model card (litepose convert writes it "
                            "next to the model)")
    if card.get("sha256") != model_sha:
        raise LitePoseError(f"{card_path}: the card describes another build (sha256 {str(card.get('sha256'))[:12]}, "
                            f"{model_path.name} is {model_sha[:12]}); convert again or drop --update-manifest")
    missing = [k for k in ("size_bytes", "variant", "precision", "input_size", "joints") if k not in card]
    if missing or not isinstance(card.get("inputs"), dict) or not isinstance(card["inputs"].get("image"), dict):
        raise LitePoseError(f"{card_path}: not a complete model card (missing {', '.join(missing) or 'inputs'}); "
                            "--update-manifest cannot write the entry")
    if not manifest.is_file():
        raise LitePoseError(f"{manifest}: not found; --update-manifest updates the model's entry in the "
                            "manifest.json next to it (litepose convert writes it)")
    try:
        data = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LitePoseError(f"{manifest}: unreadable manifest ({first_line(exc)})") from None
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise LitePoseError(f"{manifest}: not a litepose manifest (no 'models' list)")
    entry = next((m for m in entries if isinstance(m, dict) and m.get("file") == model_path.name), None)
    if entry is None:
        raise LitePoseError(f"{manifest}: no entry for {model_path.name} (litepose convert adds it)")
    if entry.get("sha256") != model_sha:
        raise LitePoseError(f"{manifest}: the entry for {model_path.name} describes another build (sha256 "
                            f"{str(entry.get('sha256'))[:12]}, the file is {model_sha[:12]}); convert again or drop "
                            "--update-manifest")
    probe_writable(manifest.parent, str(manifest))
    return manifest


def run_validate(*, model: str, reference: str, images: str, report: str, annotations: str | None = None,
                 min_sqnr: float | None = None, min_oks_ap: float | None = None, max_ap_drop: float | None = None,
                 threads=(1, 2), runs: int = 10, mode: str = "fast", joint_map: str = "auto",
                 exclude_calibration: bool = False, max_overlays: int = 12, input_sensitivity: bool = True,
                 views: int = 0, update_manifest: bool = False, allow_other_reference: bool = False) -> dict:
    """Validate `model` against `reference`; write the report; return it. Raises LitePoseError for user
    errors; sets report['passed'] (the CLI exits 1 when False). `views`: also pool the SQNR, the OKS-AP and
    the AP against the annotations over that many variations of each image (`view_plan`; reported, not a
    threshold). Nothing outside `report` is written
    unless `update_manifest`: then the model's entry in manifest.json next to it gets the accuracy and latency."""
    from python_ref.io_utils import make_folders, staged_outputs
    from python_ref.preprocess import letterbox, load_image_rgb
    from python_ref.runner import TFLiteRunner

    from .calibration import calibration_hashes
    from .export import build_environment, card_path_for

    report_dir = check_report_folder(report)
    if mode not in ("fast", "official"):
        raise LitePoseError(f"--mode {mode}: use fast or official")
    if not 0 <= views <= MAX_VIEWS:
        raise LitePoseError(f"--views {views}: use 0 to {MAX_VIEWS}")
    if max_ap_drop is not None and not annotations:
        raise LitePoseError(f"--max-ap-drop {max_ap_drop}: needs --annotations (the AP is measured against them)")
    files = _list_images(Path(images), report_dir)
    overlay_names = _overlay_names(files)
    from .export import card_path_for as _card_of

    check_distinct(  # a report folder that is also the image folder must not replace an input
        {"report": report_dir / "report.json", "markdown report": report_dir / "report.md",
         **{f"overlay {name}": report_dir / name for name in overlay_names}},
        {"model": model, "model card": _card_of(model), "reference": reference,
         "reference's card": _card_of(reference) if str(reference).endswith(".tflite") else None,
         "annotation file": annotations,
         **{f"input image {f.relative_to(images).as_posix()}": f for f in files}})
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        log(f"warning: {msg}")

    runner = TFLiteRunner(model)
    input_hw, num_joints = runner.input_hw, runner.num_joints
    for msg in runner.delegate_warnings():
        warn(msg)
    model_sha = hashlib.sha256(Path(model).read_bytes()).hexdigest()
    card_path = card_path_for(model)
    card = _read_card(card_path, warn)
    if card is None and not card_path.exists():
        warn(f"{card_path}: no model card next to the model; calibration overlap not checked")
    manifest = _manifest_to_update(Path(model), model_sha, card, card_path) if update_manifest else None
    if card is not None:
        from python_ref.predict import card_sha_mismatch

        for msg in card_sha_mismatch(model, card, card_path.name, model_sha):
            warn(msg + " (the calibration overlap is checked against that card)")
    try:
        calib = calibration_hashes(card)
    except (AttributeError, TypeError, KeyError):
        warn(f"{card_path}: malformed calibration manifest in the model card; calibration overlap not checked")
        calib = set()
    ann = None
    if annotations:
        from python_ref.evaluate import load_annotations, resolve_protocol

        ann = load_annotations(annotations)
        resolve_protocol(ann, num_joints, joint_map, Path(model).name)  # a joint mismatch fails before the work
    ref = load_reference(reference, input_hw, num_joints, Path(model).name)
    log(f"model {Path(model).name} ({input_hw[0]}x{input_hw[1]} {runner.input_dtype.name}), reference {ref.description}")
    for msg in reference_warnings(ref, reference, Path(model).name, card, allow_other_reference):
        warn(msg)

    energies = {k: _Energy() for k in OUTPUT_NAMES}
    jpeg_energies = {k: _Energy() for k in OUTPUT_NAMES}
    view_energies = {k: _Energy() for k in OUTPUT_NAMES}
    view_ref_people, view_model_all, view_model_scores = [], [], []
    view_results = []      # (annotation image id, its views, their decoded poses) per annotated file
    jpeg_all, jpeg_all_scores = [], []
    per_image, overlap = [], []
    ref_people, model_people, model_all, model_all_scores = [], [], [], []
    results = {"reference": [], "model": []}
    joint_err = [[] for _ in range(num_joints)]
    count_agree = 0
    overlays = []
    first_image = None
    evaluated = 0
    validated_ids: dict[int, str] = {}    # annotation image id -> validated file
    by_path = {} if ann is None else {im.path: im for im in ann.images}
    exact_ids = {info.id for path in files if (info := by_path.get(path.relative_to(images).as_posix()))}
    for n, path in enumerate(files):
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        in_calib = sha in calib
        if in_calib:
            overlap.append(path.name)
            log(f"warning: {path.name} was used for calibration (same sha256)"
                + ("; left out" if exclude_calibration else "; its numbers are optimistic"))
            if exclude_calibration:
                continue
        rgb = load_image_rgb(path)
        boxed, box = letterbox(rgb, input_hw)
        first_image = boxed if first_image is None else first_image
        out_ref, out_model = ref(boxed), runner(boxed)
        row = {"image": path.name, "sha256": sha, "calibration_image": in_calib, "outputs": {}}
        for k in OUTPUT_NAMES:
            row["outputs"][k] = energies[k].add(out_ref[k], out_model[k])
        rp, rs = _decode(out_ref, mode)
        mp, ms = _decode(out_model, mode)
        rp, mp = _to_image(rp, box), _to_image(mp, box)
        if input_sensitivity:
            out_jpeg = ref(jpeg_roundtrip(boxed))
            for k in OUTPUT_NAMES:
                row["outputs"][k]["reference_jpeg_sqnr_db"] = jpeg_energies[k].add(out_ref[k], out_jpeg[k])["sqnr_db"]
            jp, js = _decode(out_jpeg, mode)
            jpeg_all.append(_to_image(jp, box))
            jpeg_all_scores.append(js)
        plan = view_plan(*rgb.shape[:2], views)
        row_views = []
        for view in plan:
            view_boxed, view_box = letterbox(view.apply(rgb), input_hw)
            view_ref, view_model = ref(view_boxed), runner(view_boxed)
            for k in OUTPUT_NAMES:
                view_energies[k].add(view_ref[k], view_model[k])
            vr, vrs = _decode(view_ref, mode)
            vm, vms = _decode(view_model, mode)
            # the evaluators score the best MAX_DETECTIONS per input: keep those only (a bad build can
            # decode hundreds of junk people per view)
            vr, vrs = _people(_to_image(vr, view_box), vrs, threshold=-np.inf, limit=MAX_DETECTIONS)
            vm, vms = _people(_to_image(vm, view_box), vms, threshold=-np.inf, limit=MAX_DETECTIONS)
            row_views.append({"reference": vr, "reference_scores": vrs, "model": vm, "model_scores": vms})
        rp_keep, rs_keep = _people(rp, rs, limit=MAX_DETECTIONS)
        mp_keep, ms_keep = _people(mp, ms, limit=MAX_DETECTIONS)
        ref_people.append(rp_keep)
        model_people.append(mp_keep)
        model_all.append(mp)
        model_all_scores.append(ms)
        count_agree += int(len(rp_keep) == len(mp_keep))
        for a, b in match_people(rp_keep, mp_keep):
            both = (rp_keep[a, :, 2] > 0) & (mp_keep[b, :, 2] > 0)
            d = np.linalg.norm(rp_keep[a, :, :2] - mp_keep[b, :, :2], axis=-1)
            for j in np.flatnonzero(both):
                joint_err[j].append(float(d[j]))
        row.update({"reference_people": len(rp_keep), "model_people": len(mp_keep),
                    # in original-image pixels: the reference's people as scored, every model detection
                    "poses": {"reference": rp_keep.tolist(), "model": mp.tolist(), "model_scores": ms.tolist()}})
        if row_views:
            ref_kept = [_people(v["reference"], v["reference_scores"])[0] for v in row_views]   # score > 0.1
            view_ref_people.extend(ref_kept)
            view_model_all.extend(v["model"] for v in row_views)
            view_model_scores.extend(v["model_scores"] for v in row_views)

            def rounded(arrays, digits):   # for pooling: 0.01 px is far below what OKS sees; order kept
                return [np.round(a.astype(float), digits).tolist() for a in arrays]

            row["views"] = {"reference": rounded(ref_kept, 2), "model": rounded([v["model"] for v in row_views], 2),
                            "model_scores": rounded([v["model_scores"] for v in row_views], 6)}
        per_image.append(row)
        evaluated += 1
        if ann is not None:
            info = annotated_image(ann, by_path, path, Path(images), exact_ids)
            if info is not None and info.id in validated_ids:
                warn(f"{path}: its file name matches annotated image {info.file_name}, as "
                     f"{validated_ids[info.id]} did; only that file is scored against the annotations")
                info = None
            if info is not None:
                validated_ids[info.id] = str(path)
                for key, poses, scores in (("reference", rp, rs), ("model", mp, ms)):
                    for p, s in zip(poses, scores):
                        results[key].append({"image_id": info.id, "keypoints": p.reshape(-1).tolist(),
                                             "score": float(s)})
                if plan:
                    view_results.append((info.id, plan, row_views))
        if len(overlays) < max_overlays:
            overlays.append((overlay_names[n], _overlay(rgb, rp, rs, mp, ms, num_joints,
                                                           "reference", Path(model).name)))
        log(f"validated {n + 1}/{len(files)}: {path.name}: " + ", ".join(
            f"{k} {row['outputs'][k]['sqnr_db']:.1f} dB" for k in OUTPUT_NAMES)
            + f", people {len(rp_keep)}/{len(mp_keep)}")
    if evaluated == 0:
        raise LitePoseError(f"{images}: every image was a calibration image; nothing left to validate on")

    oks = oks_ap_against_reference(ref_people, model_all, model_all_scores, num_joints)
    sensitivity = None
    if input_sensitivity:
        sensitivity = {
            "perturbation": f"reference on a JPEG quality-{SENSITIVITY_JPEG_QUALITY} re-encode of the letterboxed input",
            "sqnr_db": {k: sqnr_from(e.signal, e.noise) for k, e in jpeg_energies.items()},
            "oks_ap_vs_reference": oks_ap_against_reference(ref_people, jpeg_all, jpeg_all_scores, num_joints)}
    joints = __import__("python_ref.keypoints", fromlist=["x"]).dataset_for_joints(num_joints).joints
    per_joint = {joints[j]: {"count": len(e), "mean_px": float(np.mean(e)) if e else None,
                             "median_px": float(np.median(e)) if e else None,
                             "max_px": float(np.max(e)) if e else None} for j, e in enumerate(joint_err)}
    ap = None
    if ann is not None:
        ap = _annotation_ap(ann, validated_ids, results, joint_map, num_joints)
        if ap["images_scored"] == 0:
            warn(f"{annotations}: none of the {evaluated} validated images is among its {ap['annotated_images']} "
                 "annotated images (matched by file name); AP not measured")
        elif ap["annotated_images_not_validated"]:
            warn(f"{annotations}: {ap['annotated_images_not_validated']} of {ap['annotated_images']} annotated "
                 f"images were not validated and are left out of the AP (e.g. {ap['not_validated_example']}); "
                 f"AP over the other {ap['images_scored']}")
    views_ap = None
    if ann is not None and views and not view_results:
        views_ap = {"drop": None, "note": f"AP not measured: none of the validated images is in {Path(annotations).name}"}
    elif view_results:
        view_ann, view_ids = annotations_for_views(ann, [(image_id, plan) for image_id, plan, _ in view_results])
        view_rows = {"reference": [], "model": []}
        for (_, _, decoded), ids in zip(view_results, view_ids):
            for v, view_id in zip(decoded, ids):
                for key in ("reference", "model"):
                    for p, sc in zip(v[key], v[f"{key}_scores"]):
                        view_rows[key].append({"image_id": view_id, "keypoints": p.reshape(-1).tolist(),
                                               "score": float(sc)})
        views_ap = _annotation_ap(view_ann, {i: None for ids in view_ids for i in ids}, view_rows, joint_map,
                                  num_joints)
        views_ap = {k: views_ap[k] for k in ("reference", "model", "drop", "num_people", "images_scored",
                                             "protocol", "joint_map", "note") if k in views_ap}
    timings = [latency(model, first_image, t, runs) for t in threads]
    for t in timings:
        log(f"latency {t['threads']} thread(s): median {t['median_ms']:.1f} ms over {t['runs']} runs")

    outputs = {k: {"sqnr_db": sqnr_from(e.signal, e.noise), "max_abs_error": e.max_abs_error} for k, e in
               energies.items()}
    checks = []
    if min_sqnr is not None:
        for k, v in outputs.items():
            checks.append({"check": f"{k} SQNR >= {min_sqnr} dB", "value": v["sqnr_db"],
                           "passed": v["sqnr_db"] >= min_sqnr})
    if min_oks_ap is not None:
        val = oks["AP"]
        checks.append({"check": f"OKS-AP vs reference >= {min_oks_ap}", "value": val,
                       "passed": val is not None and val >= min_oks_ap})
    if max_ap_drop is not None:
        check = {"check": f"AP drop <= {max_ap_drop}", "value": ap["drop"]}
        if ap["drop"] is None:
            check.update(passed=False, note=ap["note"])
        else:
            check["passed"] = ap["drop"] <= max_ap_drop
        checks.append(check)
    result = {
        "format": REPORT_FORMAT,
        "model": {"file": Path(model).name, "sha256": model_sha,
                  "input_size": f"{input_hw[0]}x{input_hw[1]}", "input_dtype": runner.input_dtype.name,
                  "precision": (card or {}).get("precision")},
        "reference": {"file": Path(reference).name, "description": ref.description},
        "warnings": warnings,
        "decoder": mode, "person_score_threshold": PERSON_SCORE,
        "images": {"folder": Path(images).name, "evaluated": evaluated, "calibration_overlap": overlap,
                   "calibration_images_excluded": bool(exclude_calibration and overlap)},
        "outputs": outputs,
        "person_count_agreement": {"images_with_equal_counts": count_agree, "images": evaluated,
                                   "reference_people": int(sum(len(p) for p in ref_people)),
                                   "model_people": int(sum(len(p) for p in model_people))},
        "oks_ap_vs_reference": oks,
        "input_sensitivity": sensitivity,
        "views": None if not views else {
            "per_image": views, "inputs": evaluated * views,
            "description": "mirrored / shifted / rescaled (0.8-0.95) copies of each image",
            "sqnr_db": {k: sqnr_from(e.signal, e.noise) for k, e in view_energies.items()},
            "oks_ap_vs_reference": oks_ap_against_reference(view_ref_people, view_model_all, view_model_scores,
                                                            num_joints),
            "annotations": views_ap},
        "per_joint_error_px": per_joint,
        "annotations": ap,
        "latency": timings,
        # XNNPACK picks its kernels for this CPU: the latency holds for this host
        "host": {**build_environment(), "xnnpack_delegate": runner.xnnpack},
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
        "per_image": per_image,
    }
    created_dirs = make_folders(report_dir, "report folder")
    try:
        with staged_outputs() as stage:   # all of the report or none of it; report.json, the main file, last
            for name, png in overlays:
                stage(report_dir / name, png)
            stage(report_dir / "report.md", format_markdown(result).encode("utf-8"))
            stage(report_dir / "report.json", report_json(_finite(result)).encode("utf-8"))
    except BaseException:
        for folder in created_dirs:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    removed = 0
    for path in _stale_overlays(report_dir, {name for name, _ in overlays}):   # the folder describes this run only
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    log(f"wrote {report_dir / 'report.md'}, report.json and {len(overlays)} overlays"
        + (f"; removed {removed} overlays of an earlier report" if removed else ""))
    if manifest is not None:
        _update_manifest(Path(model), manifest, card, result)
    return result


def _update_manifest(model_path: Path, manifest: Path, card: dict, result: dict) -> None:
    """Record accuracy and latency in this model's manifest entry (checked by `_manifest_to_update`)."""
    from .convert import update_manifest

    accuracy = {"reference": result["reference"]["file"], "images": result["images"]["folder"],
                "evaluated": result["images"]["evaluated"],
                "sqnr_db": {k: round(v["sqnr_db"], 2) for k, v in result["outputs"].items()},
                "oks_ap_vs_reference": result["oks_ap_vs_reference"].get("AP")}
    a = result["annotations"]
    if a and a["drop"] is not None:
        accuracy["ap"] = {"annotations": a["file"], "images": a["images_scored"], "reference": a["reference"]["AP"],
                          "model": a["model"]["AP"], "drop_points": a["drop"]}
    latency_ms = {str(t["threads"]): round(t["median_ms"], 1) for t in result["latency"]}
    host = {k: result["host"][k] for k in ("cpu", "cpu_features", "ai-edge-litert") if k in result["host"]}
    old = next(m for m in json.loads(manifest.read_text())["models"]
               if isinstance(m, dict) and m.get("file") == model_path.name)      # checked by _manifest_to_update
    old_latency = old.get("latency") if isinstance(old.get("latency"), dict) else {}
    if old_latency.get("host") == host and isinstance(old_latency.get("median_ms_by_threads"), dict):
        # the same file on the same host and runtime: thread counts not timed now keep their medians
        latency_ms = {**old_latency["median_ms_by_threads"], **latency_ms}
    dropped = sorted(set(old.get("accuracy") or {}) - set(accuracy))
    if dropped:
        log(f"note: {manifest}: the entry's earlier {', '.join(dropped)} is dropped: this run did not measure it "
            "(the accuracy block is one run's numbers)")
    update_manifest(model_path, {**card, "accuracy": accuracy, "latency": {
        "median_ms_by_threads": dict(sorted(latency_ms.items(), key=lambda kv: int(kv[0]))), "host": host}},
                    extra={"graph": card.get("graph")})
    log(f"updated {manifest}: entry {model_path.name} (accuracy, latency)")


def _stale_overlays(report_dir: Path, current: set[str]) -> list[Path]:
    """The overlays an earlier report left in `report_dir` (litepose-tagged `overlay_*.png` not written now)."""
    from python_ref.draw import is_litepose_overlay

    return sorted(p for p in report_dir.glob("overlay_*.png")
                  if p.name not in current and p.is_file() and is_litepose_overlay(p))


def _overlay_names(files: list[Path]) -> list[str]:
    """`overlay_<stem>.png`, with `-2`, `-3`... when two images share a stem (a.jpg and a.png)."""
    return [f"overlay_{stem}.png" for stem in numbered_stems(f.stem for f in files)]


def _finite(v):
    """JSON has no Infinity / NaN: an SQNR of identical outputs (inf) is written as null."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
        return None
    return v


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    raise TypeError(type(v).__name__)


_NUMBER_LIST = re.compile(r"\[\n\s*([-+0-9.eE,\s]+?)\n\s*\]")   # a raw newline is never inside a JSON string


def report_json(result: dict) -> str:
    """Indented JSON with each innermost list of numbers on one line (a joint's x, y, score): poses of many
    views stay readable and several times smaller than one number per line."""
    text = json.dumps(result, indent=2, default=_json_default, allow_nan=False)
    return _NUMBER_LIST.sub(lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text) + "\n"


def restrict_annotations(ann, image_ids):
    """The annotation file reduced to the images `image_ids` (and their people): what AP is computed over."""
    ids = set(image_ids)
    keep = np.isin(ann.image_id, sorted(ids))
    n = len(ann.image_id)
    per_person = {f.name: getattr(ann, f.name)[keep] for f in dataclasses.fields(ann)
                  if isinstance(getattr(ann, f.name), np.ndarray) and getattr(ann, f.name).shape[:1] == (n,)}
    images = [im for im in ann.images if im.id in ids]
    return dataclasses.replace(ann, images=images, **per_person, _by_id={im.id: im for im in images},
                               _by_name={k: v for k, v in ann._by_name.items() if v.id in ids})


def annotated_image(ann, by_path: dict, path: Path, images_dir: Path, exact_ids: set | None):
    """The annotated image a validated file is: the one whose `file_name` is the file's path under the image
    folder (`by_path`: normalised file_name -> image); else (unless `exact_ids` is None) the one with its base
    name, when no file matched that image by path (`exact_ids`): a/x.jpg is not the annotation b/x.jpg when
    b/x.jpg is there too."""
    info = by_path.get(path.relative_to(images_dir).as_posix())
    if info is not None or exact_ids is None:
        return info
    info = ann.find_image(path.name)
    return None if info is None or info.id in exact_ids else info


def _annotation_ap(ann, validated: dict, results: dict, joint_map: str, num_joints: int) -> dict:
    """AP of both models over the annotated images that were validated (`validated`: annotation image id ->
    file); annotated images that were not validated are left out (their people could only count as missed)."""
    from python_ref.evaluate import Results, evaluate_keypoints

    not_validated = [im.file_name for im in ann.images if im.id not in validated]
    out = {"file": Path(ann.path).name, "annotated_images": len(ann.images), "images_scored": len(validated),
           "annotated_images_not_validated": len(not_validated),
           "not_validated_example": not_validated[0] if not_validated else None}
    empty = {k: None for k in ("AP", "AP50", "AP75", "AR")}
    if not validated:
        return out | {"reference": empty, "model": empty, "protocol": None, "joint_map": None, "num_people": 0,
                      "drop": None, "note": f"AP not measured: none of the validated images is in {out['file']}"}
    sub = restrict_annotations(ann, validated)
    for key in ("reference", "model"):
        rows = results[key]
        res = Results(path=f"{key} poses", image_id=np.asarray([r["image_id"] for r in rows], np.int64),
                      keypoints=np.asarray([r["keypoints"] for r in rows], float).reshape(len(rows), num_joints, 3),
                      score=np.asarray([r["score"] for r in rows], float))
        rep = evaluate_keypoints(sub, res, joint_map=joint_map)
        out[key] = {k: rep[k] for k in ("AP", "AP50", "AP75", "AR")}
        out["protocol"], out["joint_map"], out["num_people"] = rep["protocol"], rep["joint_map"], rep["num_people"]
    r, m = out["reference"]["AP"], out["model"]["AP"]
    out["drop"] = None if r is None or m is None else 100.0 * (r - m)   # AP points
    if out["drop"] is None:
        out["note"] = (f"AP not measured: the {len(validated)} validated images annotated in {out['file']} have "
                       "no scorable people")
    return out


def _fmt(v, digits=1, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.{digits}f}{unit}"


def format_markdown(r: dict) -> str:
    lines = [f"# litepose validate: {r['model']['file']} vs {r['reference']['file']}", "",
             f"Input {r['model']['input_size']} ({r['model']['input_dtype']}), decoder {r['decoder']}, "
             f"{r['images']['evaluated']} images from `{r['images']['folder']}`.", ""]
    for w in r.get("warnings") or []:
        lines += [f"**Warning:** {w}", ""]
    if r["images"]["calibration_overlap"]:
        lines += [f"**Warning:** {len(r['images']['calibration_overlap'])} evaluation image(s) were calibration "
                  f"images: {', '.join(r['images']['calibration_overlap'])}"
                  + (" (left out)." if r["images"]["calibration_images_excluded"] else
                     " (included; their numbers are optimistic)."), ""]
    sens = r.get("input_sensitivity")
    lines += ["## Outputs", "", "| output | SQNR (dB) | max abs error |"
              + (" reference vs itself, JPEG-95 input (dB) |" if sens else ""), "|---|---|---|" + ("---|" if sens else "")]
    for k, v in r["outputs"].items():
        lines.append(f"| {k} | {_fmt(v['sqnr_db'])} | {_fmt(v['max_abs_error'], 4)} |"
                     + (f" {_fmt(sens['sqnr_db'][k])} |" if sens else ""))
    if sens:
        lines += ["", "The last column is the float reference against itself when each input is saved once as JPEG "
                  "(quality 95, invisible): how much an imperceptible input change moves the outputs."]
    views = r.get("views")
    if views:
        va = views.get("annotations")
        lines += ["", f"Over {views['inputs']} views ({views['per_image']} {views['description']}): SQNR "
                  + ", ".join(f"{k} {_fmt(v)} dB" for k, v in views["sqnr_db"].items())
                  + f"; OKS-AP vs reference {_fmt((views.get('oks_ap_vs_reference') or {}).get('AP'), 3)}"
                  + (f"; AP against the annotations moved with the pixels ({va['num_people']} people on "
                     f"{va['images_scored']} views): reference {_fmt(va['reference']['AP'], 3)}, model "
                     f"{_fmt(va['model']['AP'], 3)}, drop {_fmt(va['drop'], 2)} points" if va and va["drop"] is not None
                     else f"; {va['note']}" if va else "") + "."]
    pc, oks = r["person_count_agreement"], r["oks_ap_vs_reference"]
    lines += ["", "## Poses", "",
              f"- OKS-AP of the model's poses against the reference's (score > {r['person_score_threshold']}): "
              f"**{_fmt(oks.get('AP'), 3)}** (AP50 {_fmt(oks.get('AP50'), 3)}, AP75 {_fmt(oks.get('AP75'), 3)})"
              + (f"; the reference against itself on JPEG-95 inputs: "
                 f"{_fmt(sens['oks_ap_vs_reference'].get('AP'), 3)}" if sens else ""),
              f"- person counts equal on {pc['images_with_equal_counts']}/{pc['images']} images "
              f"(reference {pc['reference_people']} people, model {pc['model_people']})"]
    a = r["annotations"]
    if a and a["drop"] is None:
        lines.append(f"- AP against `{a['file']}`: {a.get('note', 'not measured')}")
    elif a:
        lines.append(f"- AP against `{a['file']}` ({a['protocol']}, joint map {a['joint_map']}, {a['num_people']} "
                     f"people on {a['images_scored']} of its {a['annotated_images']} images): reference "
                     f"{_fmt(a['reference']['AP'], 3)}, model {_fmt(a['model']['AP'], 3)}, drop {_fmt(a['drop'], 2)} "
                     "points")
    lines += ["", "| joint | matched | mean px | median px | max px |", "|---|---|---|---|---|"]
    for j, v in r["per_joint_error_px"].items():
        lines.append(f"| {j} | {v['count']} | {_fmt(v['mean_px'], 2)} | {_fmt(v['median_px'], 2)} | "
                     f"{_fmt(v['max_px'], 2)} |")
    host = r.get("host") or {}
    lines += ["", "## Latency (LiteRT default CPU path)", "",
              f"Host: {host.get('cpu', '?')} ({host.get('machine', '?')}; {', '.join(host.get('cpu_features') or []) or '?'}), "
              f"ai-edge-litert {host.get('ai-edge-litert', '?')}. "
              + ("XNNPACK picks its kernels for the CPU: another host can rank int8 and float differently."
                 if host.get("xnnpack_delegate") is not False else
                 "**LiteRT's builtin kernels: the XNNPACK delegate did not apply here, so these are not XNNPACK's "
                 "times or results.**"), "", "| threads | median ms | min ms | p90 ms |", "|---|---|---|---|"]
    for t in r["latency"]:
        lines.append(f"| {t['threads']} | {_fmt(t['median_ms'])} | {_fmt(t['min_ms'])} | {_fmt(t['p90_ms'])} |")
    if r["checks"]:
        lines += ["", "## Checks", ""]
        for c in r["checks"]:
            val = c["value"]
            lines.append(f"- {'PASS' if c['passed'] else 'FAIL'}: {c['check']} (got "
                         f"{_fmt(val, 3) if isinstance(val, float) else val}"
                         + (f"; {c['note']}" if c.get("note") else "") + ")")
    lines += ["", "## Per image", "", "SQNR in dB" + (" (in brackets: the reference against itself on the JPEG-95 "
              "input)." if sens else "."), "", "| image | " + " | ".join(OUTPUT_NAMES) + " | people ref/model |",
              "|---|" + "---|" * (len(OUTPUT_NAMES) + 1)]

    def cell(v):
        return _fmt(v["sqnr_db"]) + (f" ({_fmt(v['reference_jpeg_sqnr_db'])})" if "reference_jpeg_sqnr_db" in v else "")

    for row in r["per_image"]:
        lines.append(f"| {row['image']}{' (calib)' if row['calibration_image'] else ''} | "
                     + " | ".join(cell(row["outputs"][k]) for k in OUTPUT_NAMES)
                     + f" | {row['reference_people']}/{row['model_people']} |")
    lines += ["", "Overlays: `overlay_<image>.png` (left reference, right model).", ""]
    return "\n".join(lines)


def thread_counts(ctx, param, text) -> tuple[int, ...]:
    """Click callback for `--threads 1,2`: a usage error (exit 2) unless every count is a positive integer."""
    import click

    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1 or max(values) > 256:
        raise click.BadParameter(f"{text!r}: expected thread counts from 1 to 256, like 1,2")
    return values


def _command():
    import click

    from python_ref.predict import FiniteFloat

    @click.command("validate")
    @click.argument("model")
    @click.option("--reference", required=True, help="The float reference: a checkpoint or a float .tflite.")
    @click.option("--images", required=True, help="Folder of evaluation images.")
    @click.option("--annotations", default=None, help="CrowdPose/COCO/AIC annotation JSON for these images (AP).")
    @click.option("--report", required=True, help="Report folder (report.md, report.json, overlay_*.png; the "
                  "overlays of an earlier report there are replaced).")
    @click.option("--min-sqnr", type=FiniteFloat(allow_inf=True), default=None,
                  help="Fail when any output's SQNR (dB) is lower (inf: outputs must be identical).")
    @click.option("--min-oks-ap", type=FiniteFloat(0, 1), default=None,
                  help="Fail when OKS-AP vs the reference (0 to 1) is lower.")
    @click.option("--max-ap-drop", type=FiniteFloat(), default=None,
                  help="Fail when AP vs --annotations drops more (points); AP is over the validated images the "
                  "annotations list, and fails when there are none.")
    @click.option("--threads", default="1,2", show_default=True, callback=thread_counts,
                  help="Thread counts to time.")
    @click.option("--runs", type=click.IntRange(1, 1000), default=10, show_default=True, help="Timed runs each.")
    @click.option("--mode", type=click.Choice(["fast", "official"]), default="fast", show_default=True,
                  help="Decoder for both models.")
    @click.option("--joint-map", type=click.Choice(["auto", "none", "coco", "aic", "crowdpose"]), default="auto",
                  show_default=True, help="As `litepose evaluate --joint-map`.")
    @click.option("--exclude-calibration-images", is_flag=True,
                  help="Leave out images the model card lists as calibration images.")
    @click.option("--input-sensitivity/--no-input-sensitivity", default=True, show_default=True,
                  help="Also run the reference on a JPEG-95 copy of each input, for scale (one more reference run).")
    @click.option("--views", type=click.IntRange(0, MAX_VIEWS), default=0, show_default=True,
                  help="Also report SQNR, OKS-AP vs the reference and (with --annotations, moved with the "
                  "pixels) the AP drop over N mirrored / shifted / rescaled copies of each image: steadier than "
                  "the few images themselves. Thresholds still apply to the images.")
    @click.option("--update-manifest", is_flag=True,
                  help="Record the accuracy and latency in the model's entry of the manifest.json next to it "
                  "(default: nothing outside --report is written).")
    @click.option("--allow-other-reference", is_flag=True,
                  help="Compare with a reference made from another checkpoint than the model card records "
                  "(refused by default: the numbers would compare different weights).")
    def validate_command(model, reference, images, annotations, report, min_sqnr, min_oks_ap, max_ap_drop, threads,
                         runs, mode, joint_map, exclude_calibration_images, input_sensitivity, views, update_manifest,
                         allow_other_reference):
        """Compare a deployed model with its float reference: SQNR, poses, AP, latency (exit 1 below thresholds)."""
        if max_ap_drop is not None and not annotations:
            raise click.UsageError("--max-ap-drop needs --annotations (the AP is measured against them)")
        result = run_validate(model=model, reference=reference, images=images, annotations=annotations,
                              report=report, min_sqnr=min_sqnr, min_oks_ap=min_oks_ap, max_ap_drop=max_ap_drop,
                              threads=threads, runs=runs, mode=mode, joint_map=joint_map,
                              exclude_calibration=exclude_calibration_images, input_sensitivity=input_sensitivity,
                              views=views, update_manifest=update_manifest,
                              allow_other_reference=allow_other_reference)
        failed = [c["check"] + (f" ({c['note']})" if c.get("note") else "")
                  for c in result["checks"] if not c["passed"]]
        if failed:
            raise LitePoseError(f"{model}: below the thresholds: {'; '.join(failed)} (report in {report})")

    return validate_command


validate_command = _command()
