"""Keypoint OKS evaluation: the CrowdPose protocol (14 joints) and the COCO protocol (17 joints).

Why our own evaluator and not a library: python_ref must stay numpy/OpenCV/SciPy/LiteRT for devices, and
the reference tools do not fit. xtcocotools 1.14.3 (the maintained tool with the CrowdPose protocol) ships
wheels built against numpy 1.x that fail to import with numpy 2.4 ("numpy.dtype size changed"); built from
source it works, but needs a C compiler + Cython and imports matplotlib. crowdposetools is not on PyPI and
uses the removed `np.float`. pycocotools 2.0.11 runs with numpy 2.4 but has no CrowdPose protocol
(0.53 x box area, easy/medium/hard) and is a compiled package too. So this is a compact numpy
implementation written from the protocol (spec section 6.2; the algorithm of COCOeval in pycocotools,
crowdposetools and xtcocotools `keypoints_crowd`). Checked: the golden case ../shared/fixtures/eval
(all nine crowdposetools/xtcocotools numbers, bit-identical), the full CrowdPose val annotation file with
noisy predictions against source-built xtcocotools (identical, 1.4 s vs 5.9 s), and 40 random cases with
crowd regions and score ties against xtcocotools (CrowdPose) and pycocotools (COCO) (identical), and the
`coco` joint map against pycocotools on a hand-reduced 12-joint file (identical).

Protocol, as the reference tools do it:
* OKS between a prediction and a GT person over the GT's labelled joints (v > 0):
  mean_j exp(-d_j^2 / (2 * area * (2 sigma_j)^2)); a GT without labelled joints uses the distance of
  each predicted joint to the GT box enlarged to 3x its size (the box-region rule of COCOeval).
  `area` is 0.53 * box w * h of the GT box (CrowdPose, use_area=False) or the GT `area` field (COCO;
  0.53 * box when the field is missing, as xtcocotools does).
* A GT is ignored when iscrowd = 1 or its `num_keypoints` is 0 (CrowdPose's files count the labelled limb
  joints there, never head and neck; we use the field as given). Per image the predictions are sorted by score (stable) and cut to maxDets = 20;
  greedy matching per OKS threshold .50:.05:.95, regular GT first, a crowd GT may absorb any number of
  predictions, predictions matched to an ignored GT are ignored.
* AP = mean of the 101-point interpolated precision over thresholds, AR = mean of the final recalls;
  COCO adds area ranges medium (32^2..96^2) and large (> 96^2) of the GT area; an unmatched prediction
  outside the range is ignored, sized by its keypoints' extent, or by its `bbox` when the first entry
  has one (pycocotools' loadRes).
* CrowdPose AP_easy / AP_medium / AP_hard: the whole evaluation restricted to the images with
  `crowdIndex` < 0.2 / < 0.8 / >= 0.8, mean over all 101 recall points, rounded to 4 decimals like the
  official `get_type_result`. Images without `crowdIndex` belong to no stratum; a file without any
  (COCO-style CrowdPose subsets, AI Challenger) gets null for all three.
Differences, all deliberate: undefined values (no GT in a subset, or annotations without `crowdIndex`)
are reported as null instead of the tools' -1; predictions whose joint scores are all 0 are kept
(crowdposetools and pycocotools keep them, xtcocotools drops them).

Joint maps (`--joint-map`, named after the annotations), to score a model on annotations of another joint
layout; joints are paired by name:
* `coco`: COCO annotations (17 joints), 14-joint CrowdPose-order predictions - the 12 limb joints COCO
  5..16 = CrowdPose 0..11; the COCO protocol.
* `aic`: AI Challenger annotations (14 joints, own order) - 14-joint predictions reordered, AIC head_top taken
  as the CrowdPose head, neck = neck; 17-joint COCO-order predictions: the 12 limb joints. The CrowdPose
  protocol, without easy/medium/hard (AIC has no crowdIndex -> null).
* `crowdpose`: CrowdPose annotations, 17-joint COCO-order predictions - the 12 limb joints; CrowdPose protocol.
The OKS then runs over the mapped joints only, with the sigmas of those joints (same values in the COCO
and CrowdPose tables), and a GT counts as ignored when none of the mapped joints is labelled (recounted,
since e.g. a COCO person with only face joints has nothing to score). `auto` picks the map from the
annotation file's joint names and the result's joint count.
"""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from .errors import LitePoseError
from .io_utils import atomic_path, check_distinct, check_output_location, check_stdout, read_user_file

from .keypoints import AIC_JOINTS as _AIC_NAMES
from .keypoints import COCO_JOINTS, COCO_SIGMAS, CROWDPOSE_JOINTS, CROWDPOSE_SIGMAS

# AI Challenger order, with head_top written as CrowdPose's `head` (AIC head top ~ CrowdPose head).
AIC_JOINTS = tuple("head" if n == "head_top" else n for n in _AIC_NAMES)

# OKS sigmas per joint name: the COCO values and CrowdPose's (the limb joints agree in both tables).
OKS_SIGMAS = {**dict(zip(COCO_JOINTS, COCO_SIGMAS)), **dict(zip(CROWDPOSE_JOINTS, CROWDPOSE_SIGMAS))}

OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)       # .50:.05:.95 (linspace, as the reference tools)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 20
AREA_RANGES = {"all": (0.0, 1e5 ** 2), "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, 1e5 ** 2)}
CROWD_INDEX_EASY_BELOW = 0.2    # easy: crowdIndex < 0.2; medium: < 0.8; hard: >= 0.8
CROWD_INDEX_HARD_FROM = 0.8
CROWDPOSE_AREA_FACTOR = 0.53

CROWDPOSE_METRIC_KEYS = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard")
COCO_METRIC_KEYS = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")
JOINT_MAP_CHOICES = ("auto", "none", "coco", "aic", "crowdpose")


def _canonical(name: str) -> str:
    name = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    return "head" if name == "head_top" else name


def crowd_stratum(crowd_index: float | None) -> str | None:
    """'easy' / 'medium' / 'hard' for a CrowdPose crowdIndex (None when the image has none)."""
    if crowd_index is None:
        return None
    if crowd_index < CROWD_INDEX_EASY_BELOW:
        return "easy"
    return "medium" if crowd_index < CROWD_INDEX_HARD_FROM else "hard"


# ---------------------------------------------------------------------------------------------------------
# Loading

@dataclass(frozen=True)
class ImageInfo:
    id: int
    file_name: str
    width: int | None
    height: int | None
    crowd_index: float | None = None

    @property
    def stratum(self) -> str | None:
        return crowd_stratum(self.crowd_index)

    @property
    def path(self) -> str:
        """`file_name` as a relative POSIX path (Windows separators and a leading slash dropped)."""
        return self.file_name.replace("\\", "/").lstrip("/")


@dataclass
class Annotations:
    """A COCO-style keypoint annotation file (CrowdPose, COCO, AI Challenger), as arrays.

    Per-person arrays are in file order (the order matters for tie-breaking in matching):
    `keypoints (N, J, 3)` x, y, v; `bbox (N, 4)` x, y, w, h; `area (N,)` (NaN when the file has none);
    `iscrowd (N,)` bool; `num_keypoints (N,)` (the field, or the count of v > 0 when absent).
    """
    path: str
    images: list[ImageInfo]
    joint_names: tuple[str, ...]
    dataset: str                      # 'crowdpose' | 'coco' | 'aic' | 'unknown' (from the joint names)
    category_id: int | None           # the keypoint (person) category; None when the file has no categories
    image_id: np.ndarray
    annotation_id: np.ndarray
    keypoints: np.ndarray
    bbox: np.ndarray
    area: np.ndarray
    iscrowd: np.ndarray
    num_keypoints: np.ndarray
    _by_id: dict = field(default_factory=dict, repr=False)
    _by_name: dict = field(default_factory=dict, repr=False)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def has_crowd_index(self) -> bool:
        return any(im.crowd_index is not None for im in self.images)

    def image(self, image_id: int) -> ImageInfo:
        return self._by_id[image_id]

    def has_image(self, image_id) -> bool:
        return image_id in self._by_id

    def find_image(self, file_name: str) -> ImageInfo | None:
        """The image whose file name (base name) is that of `file_name`; None if there is none."""
        return self._by_name.get(os.path.basename(str(file_name).replace("\\", "/")))

    def people(self, image_id: int) -> np.ndarray:
        """Indices (into the per-person arrays) of the annotations of one image, in file order."""
        return np.flatnonzero(self.image_id == image_id)


STDIN_NAME = "<stdin>"


def _read_stdin(what: str) -> bytes:
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None or sys.stdin.closed:
        raise LitePoseError(f"{STDIN_NAME}: standard input is closed; nothing to read the {what} from")
    if sys.stdin.isatty():
        raise LitePoseError(f"{STDIN_NAME}: standard input is a terminal; pipe the {what} in "
                            "(litepose predict ... --json - | litepose evaluate ... --results -)")
    return stream.read()


def _read_json(path: str | os.PathLike, what: str):
    data = _read_stdin(what) if str(path) == STDIN_NAME else read_user_file(path, what)
    if not data.strip():
        raise LitePoseError(f"{path}: empty, no {what}" + (" (did the command before the pipe fail?)"
                                                           if str(path) == STDIN_NAME else ""))
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LitePoseError(f"{path}: not a JSON {what} file ({exc})") from None


def _number(value, path, where) -> float:
    try:   # a 400-digit JSON integer is a Python int that no float holds
        finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(float(value))
    except OverflowError:
        finite = False
    if not finite:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise LitePoseError(f"{path}: {where} is {shown}, expected a finite number")
    return float(value)


def _count(value, path, where) -> int:
    """A whole number >= 0; only "is it 0" matters to the protocol, so counts above 2^62 are capped."""
    number = _number(value, path, where)
    if number < 0 or number != math.floor(number):
        raise LitePoseError(f"{path}: {where} is {value!r}, expected a whole number >= 0")
    return int(min(number, 2**62))


def _numbers(values, n, path, where) -> list[float]:
    if not isinstance(values, list) or (n is not None and len(values) != n):
        got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
        raise LitePoseError(f"{path}: {where} has {got}, expected a list of {n} numbers")
    return [_number(v, path, where) for v in values]


def load_annotations(path: str | os.PathLike) -> Annotations:
    """Read a COCO-style keypoint annotation file; errors name the file and the fault.

    Only annotations of the keypoint category ("person") are kept. `crowdIndex` is read when present.
    """
    path = str(path)
    data = _read_json(path, "annotation")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise LitePoseError(f"{path}: not a COCO-style annotation file (needs 'images' and 'annotations' lists)")
    categories = [c for c in data.get("categories") or [] if isinstance(c, dict) and c.get("keypoints")]
    if len(categories) > 1:
        raise LitePoseError(f"{path}: {len(categories)} keypoint categories; only one (person) is supported")
    category_id = categories[0].get("id") if categories else None
    names = tuple(_canonical(n) for n in categories[0]["keypoints"]) if categories else None

    images, by_id, by_name = [], {}, {}
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not isinstance(im.get("id"), int) or isinstance(im.get("id"), bool) \
                or not isinstance(im.get("file_name"), str):
            raise LitePoseError(f"{path}: images[{i}] needs an integer 'id' and a 'file_name'")
        if not -2**63 <= im["id"] < 2**63:
            raise LitePoseError(f"{path}: images[{i}] id {im['id']} does not fit in 64 bits")
        ci = im.get("crowdIndex")
        info = ImageInfo(id=im["id"], file_name=im["file_name"], width=im.get("width"), height=im.get("height"),
                         crowd_index=None if ci is None else _number(ci, path, f"images[{i}].crowdIndex"))
        if info.id in by_id:
            raise LitePoseError(f"{path}: image id {info.id} appears twice")
        images.append(info)
        by_id[info.id] = info
        base = os.path.basename(info.path)
        by_name[base] = None if base in by_name else info      # None marks an ambiguous name

    for i, a in enumerate(data["annotations"]):
        if not isinstance(a, dict):
            raise LitePoseError(f"{path}: annotations[{i}] is {type(a).__name__}, expected an object")
    kept = [a for a in data["annotations"]
            if category_id is None or a.get("category_id", category_id) == category_id]
    num_joints = len(names) if names else None
    if num_joints is None:
        lengths = {len(a.get("keypoints") or []) for a in kept}
        if len(lengths) != 1 or next(iter(lengths)) % 3 or not next(iter(lengths)):
            raise LitePoseError(f"{path}: cannot tell the joint count (no category keypoint names and "
                                f"keypoint lists of lengths {sorted(lengths)})")
        num_joints = next(iter(lengths)) // 3
        names = CROWDPOSE_JOINTS if num_joints == 14 else COCO_JOINTS if num_joints == 17 else \
            tuple(f"joint_{j}" for j in range(num_joints))

    n = len(kept)
    keypoints = np.zeros((n, num_joints, 3))
    bbox = np.zeros((n, 4))
    area = np.full(n, np.nan)
    iscrowd = np.zeros(n, bool)
    num_kp = np.zeros(n, np.int64)
    image_id = np.zeros(n, np.int64)
    ann_id = np.empty(n, object)   # any JSON value: ids are only carried, never scored
    for i, a in enumerate(kept):
        where = f"annotation id {a.get('id', i)}"
        if a.get("image_id") not in by_id:
            raise LitePoseError(f"{path}: {where} refers to image id {a.get('image_id')!r}, not in 'images'")
        keypoints[i] = np.asarray(_numbers(a.get("keypoints"), 3 * num_joints, path, f"{where} keypoints"),
                                  float).reshape(num_joints, 3)
        bbox[i] = _numbers(a.get("bbox"), 4, path, f"{where} bbox")
        if a.get("area") is not None:
            area[i] = _number(a["area"], path, f"{where} area")
        crowd = a.get("iscrowd", 0)
        if isinstance(crowd, bool) or crowd not in (0, 1):   # "0" would read as crowd
            raise LitePoseError(f"{path}: {where} iscrowd is {crowd!r}, expected 0 or 1")
        iscrowd[i] = crowd == 1
        nk = a.get("num_keypoints")
        num_kp[i] = _count(nk, path, f"{where} num_keypoints") if nk is not None \
            else int(np.count_nonzero(keypoints[i, :, 2] > 0))
        image_id[i] = a["image_id"]
        ann_id[i] = a.get("id", i + 1)
    if names == CROWDPOSE_JOINTS:
        dataset = "crowdpose"
    elif names == COCO_JOINTS:
        dataset = "coco"
    elif names == AIC_JOINTS:
        dataset = "aic"
    else:
        dataset = "unknown"
    return Annotations(path=path, images=images, joint_names=names, dataset=dataset, category_id=category_id,
                       image_id=image_id,
                       annotation_id=ann_id, keypoints=keypoints, bbox=bbox, area=area, iscrowd=iscrowd,
                       num_keypoints=num_kp, _by_id=by_id,
                       _by_name={k: v for k, v in by_name.items() if v is not None})


@dataclass
class Results:
    """Predictions as arrays: `image_id (D,)`, `keypoints (D, J, 3)` x, y, score, `score (D,)`, file order."""
    path: str
    image_id: np.ndarray
    keypoints: np.ndarray
    score: np.ndarray
    dropped_other_category: int = 0
    box_area: np.ndarray | None = None                  # (D,) w * h of each entry's `bbox`, when they carry one
    unknown_images: list = field(default_factory=list)  # left out with skip_unknown_images
    name_clashes: list = field(default_factory=list)    # different paths matched to one annotated image

    @property
    def num_joints(self) -> int:
        return int(self.keypoints.shape[1])


def load_results(path: str | os.PathLike, annotations: Annotations, skip_unknown_images: bool = False) -> Results:
    """Read `litepose predict` output (`image` = a path, matched to the annotations by file name) or COCO
    results (`image_id`, `category_id`); both may be mixed. Every image must be in the annotation file,
    unless `skip_unknown_images` (their predictions are then left out and counted)."""
    path = STDIN_NAME if str(path) == "-" else str(path)  # `litepose predict --json - | litepose evaluate --results -`
    unknown: set = set()
    paths_of: dict = {}  # image id -> the distinct `image` paths matched to it
    data = _read_json(path, "results")
    if not isinstance(data, list):
        raise LitePoseError(f"{path}: expected a JSON list of predictions, got {type(data).__name__}")
    cat_ids = {None, 1 if annotations.category_id is None else annotations.category_id}
    ids, kps, scores, num_joints, dropped, first = [], [], [], None, 0, 0
    # pycocotools' loadRes: when the first entry has a non-empty 'bbox', every detection is sized by its box
    # (w * h; used for the area ranges), else by its keypoints' extent.
    boxed = bool(data) and isinstance(data[0], dict) and data[0].get("bbox") not in (None, [])
    box_areas = []
    for i, r in enumerate(data):
        if not isinstance(r, dict):
            raise LitePoseError(f"{path}: entry {i} is {type(r).__name__}, expected an object")
        if "image" in r:
            info = annotations.find_image(r["image"]) if isinstance(r["image"], str) else None
            if info is None:
                if skip_unknown_images:
                    unknown.add(r["image"] if isinstance(r["image"], str) else repr(r["image"]))
                    continue
                raise LitePoseError(f"{path}: entry {i}: image {r['image']!r} is not (or not uniquely) "
                                    f"in {annotations.path} (matched by file name; --skip-unknown-images "
                                    "leaves such images out)")
            image_id = info.id
            given = r.get("image_id")
            if given is not None and (isinstance(given, bool) or given != image_id):    # 397133.0 is 397133
                raise LitePoseError(f"{path}: entry {i}: image {r['image']!r} is image id {image_id} in "
                                    f"{annotations.path}, but the entry says image_id {given!r}")
            paths_of.setdefault(image_id, set()).add(os.path.normpath(r["image"]))
        elif "image_id" in r:
            image_id = r["image_id"]
            if isinstance(image_id, float) and image_id.is_integer():   # 397133.0 from some exporters
                image_id = int(image_id)
            if isinstance(image_id, bool) or not isinstance(image_id, int):   # true == 1 in Python
                raise LitePoseError(f"{path}: entry {i}: image_id {image_id!r} is not an integer")
            if not annotations.has_image(image_id):
                if skip_unknown_images:
                    unknown.add(repr(image_id))
                    continue
                raise LitePoseError(f"{path}: entry {i}: image_id {image_id!r} is not in {annotations.path}")
        else:
            raise LitePoseError(f"{path}: entry {i} has neither 'image' nor 'image_id'")
        if r.get("category_id") not in cat_ids:
            dropped += 1
            continue
        flat = r.get("keypoints")
        if not isinstance(flat, list) or not flat or len(flat) % 3:
            got = f"{len(flat)} values" if isinstance(flat, list) else repr(flat)[:40]
            raise LitePoseError(f"{path}: entry {i}: 'keypoints' has {got}, expected 3 x joints (x, y, score)")
        if num_joints is None:
            num_joints, first = len(flat) // 3, i
        elif len(flat) != 3 * num_joints:
            ann = annotations.num_joints
            raise LitePoseError(f"{path}: entry {i}: 'keypoints' has {len(flat)} values but entry {first} has "
                                f"{3 * num_joints}; every entry needs the same joints ({ann} joints = {3 * ann} "
                                "values for these annotations)")
        kps.append(_numbers(flat, None, path, f"entry {i} keypoints"))
        if "score" not in r:
            raise LitePoseError(f"{path}: entry {i} has no 'score' (the person's score)")
        scores.append(_number(r["score"], path, f"entry {i} score"))
        ids.append(image_id)
        if boxed:
            if r.get("bbox") in (None, []):
                raise LitePoseError(f"{path}: entry {i} has no 'bbox' but entry 0 has one (as in pycocotools, "
                                    "boxes then size every prediction): give all entries a box or none")
            box = _numbers(r["bbox"], 4, path, f"entry {i} bbox")
            box_areas.append(box[2] * box[3])
    num_joints = num_joints or annotations.num_joints
    return Results(path=path, image_id=np.asarray(ids, np.int64),
                   keypoints=np.asarray(kps, float).reshape(len(kps), num_joints, 3),
                   score=np.asarray(scores, float), dropped_other_category=dropped,
                   box_area=np.asarray(box_areas, float) if boxed else None,
                   unknown_images=sorted(unknown),
                   name_clashes=sorted(sorted(v) for v in paths_of.values() if len(v) > 1))


# ---------------------------------------------------------------------------------------------------------
# Joint maps and protocol

@dataclass(frozen=True)
class Protocol:
    name: str                       # 'crowdpose' | 'coco'
    joint_map: str                  # 'none', or the annotations' dataset when joints are paired by name
    gt_joints: np.ndarray           # indices into the annotation joints
    result_joints: np.ndarray       # indices into the result joints (same length)
    joint_names: tuple[str, ...]
    sigmas: np.ndarray
    use_gt_area: bool               # COCO: the GT `area` field; CrowdPose: 0.53 * box
    area_ranges: tuple[str, ...]


def resolve_protocol(annotations: Annotations, result_joints: int, joint_map: str = "auto",
                     results_path: str = "results") -> Protocol:
    """Choose protocol and joint correspondence; the protocol follows the annotation file. A joint map
    (named after the annotations' dataset) pairs the joints both layouts have by name: 14-joint CrowdPose-order
    predictions on COCO or AI Challenger annotations, 17-joint COCO-order ones on CrowdPose or AIC annotations
    (the 12 limb joints)."""
    gt_names = annotations.joint_names
    layouts = {14: CROWDPOSE_JOINTS, 17: COCO_JOINTS}
    mismatch = (f"{results_path}: predictions have {result_joints} joints, {annotations.path} has "
                f"{annotations.num_joints} ({annotations.dataset})")
    if joint_map not in JOINT_MAP_CHOICES:
        raise LitePoseError(f"--joint-map {joint_map}: expected one of {', '.join(JOINT_MAP_CHOICES)}")
    if joint_map == "auto":
        if result_joints == annotations.num_joints and annotations.dataset != "aic":
            joint_map = "none"
        elif result_joints in layouts and annotations.dataset in ("coco", "aic", "crowdpose"):
            joint_map = annotations.dataset
        else:
            raise LitePoseError(f"{mismatch}; no joint map fits (14-joint CrowdPose-order or 17-joint COCO-order "
                                "predictions are paired by joint name with COCO, AI Challenger or CrowdPose "
                                "annotations)")
    if joint_map == "none":
        if result_joints != annotations.num_joints:
            fitting = (annotations.dataset if annotations.dataset in ("coco", "aic", "crowdpose")
                       and result_joints in layouts else None)
            if fitting is None and result_joints not in layouts:
                raise LitePoseError(f"{mismatch}; no joint map fits (14-joint CrowdPose-order or 17-joint "
                                    "COCO-order predictions are paired by joint name)")
            raise LitePoseError(f"{mismatch}; a different joint set needs "
                                + (f"--joint-map {fitting} (or auto)" if fitting else
                                   "--joint-map coco, aic or crowdpose, by the annotations' joints"))
        gt_idx = np.arange(annotations.num_joints)
        res_idx = gt_idx
    else:
        expected = {"coco": COCO_JOINTS, "aic": AIC_JOINTS, "crowdpose": CROWDPOSE_JOINTS}[joint_map]
        if gt_names != expected:
            raise LitePoseError(f"{annotations.path}: --joint-map {joint_map} needs {joint_map.upper()} "
                                f"annotations ({len(expected)} joints in that order); these are {annotations.dataset}")
        if result_joints not in layouts or layouts[result_joints] == expected:
            raise LitePoseError(f"{mismatch}; --joint-map {joint_map} pairs joints of other layouts by name "
                                f"({', '.join(f'{n}-joint' for n, names in layouts.items() if names != expected)} "
                                "predictions)")
        pairs = [(gt_names.index(n), j) for j, n in enumerate(layouts[result_joints]) if n in gt_names]
        gt_idx = np.array([p[0] for p in pairs])
        res_idx = np.array([p[1] for p in pairs])
    names = tuple(gt_names[i] for i in gt_idx)
    unknown = [n for n in names if n not in OKS_SIGMAS]
    if unknown:
        raise LitePoseError(f"{annotations.path}: no OKS sigma for joints {unknown}")
    coco = annotations.num_joints == 17
    return Protocol(name="coco" if coco else "crowdpose", joint_map=joint_map, gt_joints=gt_idx,
                    result_joints=res_idx, joint_names=names,
                    sigmas=np.array([OKS_SIGMAS[n] for n in names]), use_gt_area=coco,
                    area_ranges=("all", "medium", "large") if coco else ("all",))


# ---------------------------------------------------------------------------------------------------------
# Core: OKS, per-image matching, accumulation

def compute_oks(pred_xy: np.ndarray, gt_kp: np.ndarray, gt_bbox: np.ndarray, gt_area: np.ndarray,
                sigmas: np.ndarray) -> np.ndarray:
    """OKS matrix (D, G) between predictions `pred_xy (D, K, 2)` and GT `gt_kp (G, K, 3)` (x, y, v).

    GT without labelled joints: distance of each predicted joint to the GT box enlarged to 3x (COCOeval).
    """
    var = (sigmas * 2) ** 2
    vis = gt_kp[None, :, :, 2] > 0                                               # (1, G, K)
    n_vis = vis.sum(-1)                                                           # (1, G)
    xd, yd = pred_xy[:, None, :, 0], pred_xy[:, None, :, 1]                       # (D, 1, K)
    x0, y0, w, h = (gt_bbox[None, :, i, None] for i in range(4))                 # (1, G, 1)
    dx_box = np.maximum(0, (x0 - w) - xd) + np.maximum(0, xd - (x0 + 2 * w))
    dy_box = np.maximum(0, (y0 - h) - yd) + np.maximum(0, yd - (y0 + 2 * h))
    has = n_vis[..., None] > 0
    dx = np.where(has, xd - gt_kp[None, :, :, 0], dx_box)
    dy = np.where(has, yd - gt_kp[None, :, :, 1], dy_box)
    with np.errstate(over="ignore"):   # a joint 1e300 px away is infinitely far: exp(-inf) = 0, as it should be
        e = (dx ** 2 + dy ** 2) / var / (gt_area[None, :, None] + np.spacing(1)) / 2
    weight = np.where(has, vis, True)
    return np.sum(np.exp(-e) * weight, -1) / np.maximum(weight.sum(-1), 1)


def match_image(oks: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray,
                thresholds: np.ndarray = OKS_THRESHOLDS) -> tuple[np.ndarray, np.ndarray]:
    """Greedy COCOeval matching of score-sorted predictions, all thresholds at once.

    `oks (D, G)` with GT already ordered regular-first. Each prediction takes the best-OKS free GT
    (>= threshold; ties -> the later GT) among the regular GT; only if there is none, among the ignored
    ones. Crowd GT stay free. Returns `matched (T, D)` and `matched_ignored (T, D)` (matched an ignored GT).
    """
    n_det, n_gt = oks.shape
    n_thr = len(thresholds)
    matched = np.zeros((n_thr, n_det), bool)
    matched_ignored = np.zeros((n_thr, n_det), bool)
    if n_det == 0 or n_gt == 0:
        return matched, matched_ignored
    taken = np.zeros((n_thr, n_gt), bool)
    limit = np.minimum(thresholds, 1 - 1e-10)[:, None]
    rows = np.arange(n_thr)
    for d in range(n_det):
        ok = (~taken | gt_crowd) & (oks[d] >= limit)                               # (T, G)
        for group in (~gt_ignore, gt_ignore):
            cand = ok & group
            hit = cand.any(1) & ~matched[:, d]
            if not hit.any():
                continue
            vals = np.where(cand, oks[d], -np.inf)[:, ::-1]
            best = n_gt - 1 - np.argmax(vals, 1)                                   # last index of the max
            t = rows[hit]
            taken[t, best[hit]] = True
            matched[t, d] = True
            matched_ignored[t, d] = gt_ignore[best[hit]]
    return matched, matched_ignored


def accumulate(scores: np.ndarray, matched: np.ndarray, ignored: np.ndarray, num_gt: int):
    """Interpolated precision (T, R) at the 101 recall points and final recall (T,) (COCOeval.accumulate).

    Inputs are the concatenation over images (in image-id order) of the per-image, score-sorted,
    maxDets-cut predictions. Returns (None, None) when there is no regular GT.
    """
    if num_gt == 0:
        return None, None
    order = np.argsort(-scores, kind="mergesort")
    matched, ignored = matched[:, order], ignored[:, order]
    tp = np.cumsum(matched & ~ignored, 1, dtype=np.float64)
    fp = np.cumsum(~matched & ~ignored, 1, dtype=np.float64)
    n_thr, n_det = tp.shape
    precision = np.zeros((n_thr, len(RECALL_POINTS)))
    recall = np.zeros(n_thr)
    if n_det == 0:
        return precision, recall
    rc = tp / num_gt
    pr = tp / (fp + tp + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], 1)[:, ::-1]                            # precision envelope
    recall[:] = rc[:, -1]
    for t in range(n_thr):
        idx = np.searchsorted(rc[t], RECALL_POINTS, side="left")
        ok = idx < n_det
        precision[t, ok] = pr[t, idx[ok]]
    return precision, recall


@dataclass
class _ImageEval:
    scores: np.ndarray
    oks: np.ndarray                  # (D, G), GT in file order
    gt_ignore: np.ndarray            # protocol ignore (crowd / no keypoints)
    gt_crowd: np.ndarray
    gt_area: np.ndarray              # area used for the area ranges
    det_area: np.ndarray


def _prepare_images(annotations: Annotations, results: Results, protocol: Protocol) -> dict[int, _ImageEval]:
    gt_kp_all = annotations.keypoints[:, protocol.gt_joints]
    box_area = CROWDPOSE_AREA_FACTOR * annotations.bbox[:, 2] * annotations.bbox[:, 3]
    if protocol.use_gt_area:
        oks_area = np.where(np.isnan(annotations.area), box_area, annotations.area)
    else:
        oks_area = box_area
    if protocol.joint_map == "none":
        labelled = annotations.num_keypoints
    else:
        labelled = np.count_nonzero(gt_kp_all[:, :, 2] > 0, axis=1)
    ignore_all = annotations.iscrowd | (labelled == 0)
    res_xy = results.keypoints[:, protocol.result_joints, :2]

    gt_by_image: dict[int, list[int]] = {}
    for i, im in enumerate(annotations.image_id.tolist()):
        gt_by_image.setdefault(im, []).append(i)
    det_by_image: dict[int, list[int]] = {}
    for i, im in enumerate(results.image_id.tolist()):
        det_by_image.setdefault(im, []).append(i)

    out = {}
    for image_id in sorted(set(gt_by_image) | set(det_by_image)):
        g = np.asarray(gt_by_image.get(image_id, []), np.int64)
        d = np.asarray(det_by_image.get(image_id, []), np.int64)
        if len(d):
            d = d[np.argsort(-results.score[d], kind="mergesort")][:MAX_DETECTIONS]
        xy = res_xy[d]
        if results.box_area is not None:
            det_area = results.box_area[d]
        elif len(d):
            det_area = (xy[:, :, 0].max(1) - xy[:, :, 0].min(1)) * (xy[:, :, 1].max(1) - xy[:, :, 1].min(1))
        else:
            det_area = np.zeros(0)
        oks = compute_oks(xy, gt_kp_all[g], annotations.bbox[g], oks_area[g], protocol.sigmas)
        out[image_id] = _ImageEval(scores=results.score[d], oks=oks, gt_ignore=ignore_all[g],
                                   gt_crowd=annotations.iscrowd[g], gt_area=oks_area[g], det_area=det_area)
    return out


def _evaluate_subset(images: dict[int, _ImageEval], image_ids, area_range: tuple[float, float]):
    lo, hi = area_range
    scores, matched, ignored, num_gt = [], [], [], 0
    for image_id in sorted(image_ids):
        ev = images.get(image_id)
        if ev is None:
            continue
        gt_ignore = ev.gt_ignore | (ev.gt_area < lo) | (ev.gt_area > hi)
        order = np.argsort(gt_ignore, kind="mergesort")
        m, m_ign = match_image(ev.oks[:, order], gt_ignore[order], ev.gt_crowd[order])
        outside = (ev.det_area < lo) | (ev.det_area > hi)
        scores.append(ev.scores)
        matched.append(m)
        ignored.append(m_ign | (~m & outside[None, :]))
        num_gt += int(np.count_nonzero(~gt_ignore))
    if not scores:
        return None, None
    return accumulate(np.concatenate(scores), np.concatenate(matched, 1), np.concatenate(ignored, 1), num_gt)


def _mean_or_none(values) -> float | None:
    return None if values is None else float(np.mean(values))


def evaluate_keypoints(annotations: Annotations, results: Results, joint_map: str = "auto") -> dict:
    """All metrics of the annotation file's protocol, plus what was evaluated (protocol, joints, counts)."""
    protocol = resolve_protocol(annotations, results.num_joints, joint_map, results.path)
    images = _prepare_images(annotations, results, protocol)
    all_ids = [im.id for im in annotations.images]
    metrics: dict = {}
    i50, i75 = 0, 5                                       # OKS_THRESHOLDS[0] = .50, [5] = .75
    for rng in protocol.area_ranges:
        precision, recall = _evaluate_subset(images, all_ids, AREA_RANGES[rng])
        suffix = {"all": "", "medium": "_M", "large": "_L"}[rng]
        metrics["AP" + suffix] = _mean_or_none(precision)
        metrics["AR" + suffix] = _mean_or_none(recall)
        if rng == "all":
            metrics["AP50"] = None if precision is None else float(np.mean(precision[i50]))
            metrics["AP75"] = None if precision is None else float(np.mean(precision[i75]))
            metrics["AR50"] = None if recall is None else float(recall[i50])
            metrics["AR75"] = None if recall is None else float(recall[i75])
    if protocol.name == "crowdpose":
        for stratum in ("easy", "medium", "hard"):
            ids = [im.id for im in annotations.images if im.stratum == stratum]
            precision, _ = _evaluate_subset(images, ids, AREA_RANGES["all"]) if ids else (None, None)
            metrics[f"AP_{stratum}"] = None if precision is None else float(round(np.mean(precision), 4))  # numpy's rounding, as crowdposetools
    keys = CROWDPOSE_METRIC_KEYS if protocol.name == "crowdpose" else COCO_METRIC_KEYS
    ordered = {k: metrics[k] for k in keys}
    scored = list(images.values())
    return {
        **ordered,
        "protocol": protocol.name,
        "joint_map": protocol.joint_map,
        "joints": list(protocol.joint_names),
        "num_images": len(annotations.images),
        "num_people": int(sum(np.count_nonzero(~e.gt_ignore) for e in scored)),
        "num_ignored_people": int(sum(np.count_nonzero(e.gt_ignore) for e in scored)),
        "num_predictions": int(len(results.score)),
        "num_predictions_scored": int(sum(len(e.scores) for e in scored)),
        "annotations": annotations.path,
        "results": results.path,
    }


def _joint_order_warning(annotations: Annotations, results: Results, report: dict) -> str | None:
    """AI Challenger and CrowdPose both have 14 joints, in different orders: 14-joint predictions are taken as
    CrowdPose order (what LitePose models give) unless `--joint-map none`. When the other reading scores far
    better, the predictions are most likely in the other order: say so."""
    if annotations.dataset != "aic" or results.num_joints != annotations.num_joints or report["AP"] is None:
        return None
    other = "none" if report["joint_map"] == "aic" else "aic"
    alternative = evaluate_keypoints(annotations, results, other)["AP"]
    if alternative is None or alternative < report["AP"] + 0.1:
        return None
    order = "AI Challenger" if other == "none" else "CrowdPose"
    return (f"AP {report['AP']:.3f} with --joint-map {report['joint_map']}, but {alternative:.3f} with --joint-map "
            f"{other}: are the predictions in {order} joint order? Then pass --joint-map {other}")


# ---------------------------------------------------------------------------------------------------------
# Report and command

def format_table(report: dict) -> str:
    keys = CROWDPOSE_METRIC_KEYS if report["protocol"] == "crowdpose" else COCO_METRIC_KEYS
    head = (f"{report['protocol']} protocol, {len(report['joints'])} joints (joint map {report['joint_map']}), "
            f"{report['num_images']} images, {report['num_people']} people (+{report['num_ignored_people']} "
            f"ignored), {report['num_predictions_scored']}/{report['num_predictions']} predictions scored")
    lines = [head, f"{'metric':<10} {'value':>7}"]
    for k in keys:
        v = report[k]
        lines.append(f"{k:<10} {'n/a' if v is None else f'{v:.4f}':>7}")
    return "\n".join(lines)


def run_evaluate(annotations_path, results_path, json_path=None, joint_map="auto",
                 skip_unknown_images: bool = False) -> dict:
    to_stdout = json_path is not None and str(json_path) == "-"
    if to_stdout:
        check_stdout("--json -")
    if json_path is not None and not to_stdout:
        if Path(json_path).is_dir():
            raise LitePoseError(f"{json_path}: --json needs a file name, this is a folder")
        check_output_location(json_path, str(json_path))   # the string as given: `out/` names a folder
        json_path = Path(json_path)
        check_distinct({"--json output": json_path},
                       {"annotation file": annotations_path, "results file": results_path})
    results_label = STDIN_NAME if str(results_path) == "-" else results_path
    annotations = load_annotations(annotations_path)
    results = load_results(results_path, annotations, skip_unknown_images=skip_unknown_images)
    resolve_protocol(annotations, results.num_joints, joint_map, results.path)   # a misfit fails before warnings
    if results.dropped_other_category:
        print(f"{results_label}: {results.dropped_other_category} predictions of another category skipped",
              file=sys.stderr)
    if results.unknown_images:
        print(f"{results_label}: {len(results.unknown_images)} image(s) not in {annotations_path} left out "
              f"(e.g. {results.unknown_images[0]})", file=sys.stderr)
    for clash in results.name_clashes:
        print(f"{results_label}: warning: {len(clash)} different files are matched by file name to one annotated "
              f"image ({', '.join(clash[:3])}); their predictions are pooled", file=sys.stderr)
    predicted = set(results.image_id.tolist())
    missing = [im for im in annotations.images if im.id not in predicted]
    if missing:
        print(f"{results_label}: {len(missing)} of {len(annotations.images)} annotated images have no "
              f"predictions (their people count as missed), e.g. {missing[0].file_name}", file=sys.stderr)
    report = evaluate_keypoints(annotations, results, joint_map)
    warning = _joint_order_warning(annotations, results, report)
    if warning:
        print(f"{results_label}: warning: {warning}", file=sys.stderr)
    if to_stdout:
        sys.stdout.write(json.dumps(report, indent=1) + "\n")
    elif json_path is not None:
        with atomic_path(json_path) as tmp:
            Path(tmp).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


@click.command("evaluate")
@click.option("--annotations", "annotations_path", required=True, metavar="GT.json",
              help="COCO-style keypoint annotations (CrowdPose, COCO or AI Challenger).")
@click.option("--results", "results_path", required=True, metavar="OUT.json",
              help="`litepose predict` output (matched by image file name) or COCO results (image_id); "
              "'-' reads standard input.")
@click.option("--json", "json_path", default=None, metavar="METRICS.json",
              help="Write the metrics here; '-' writes them to standard output (the table then goes to stderr).")
@click.option("--joint-map", type=click.Choice(JOINT_MAP_CHOICES), default="auto", show_default=True,
              help="Pair joints by name with annotations of another layout: 14-joint CrowdPose-order results on "
              "COCO or AIC annotations, 17-joint COCO-order ones on CrowdPose or AIC annotations (auto: when needed).")
@click.option("--skip-unknown-images", is_flag=True,
              help="Leave out predictions for images that are not in --annotations (default: an error).")
def evaluate_command(annotations_path, results_path, json_path, joint_map, skip_unknown_images):
    """OKS keypoint AP/AR: the CrowdPose protocol (14 joints, with easy/medium/hard) or COCO (17 joints).

    Every annotated image counts: one without predictions has its people missed."""
    if json_path is None:
        check_stdout("the metrics table (no --json)")   # the command's only output
    report = run_evaluate(annotations_path, results_path, json_path, joint_map, skip_unknown_images)
    click.echo(format_table(report), err=json_path == "-")
