"""The representative data set for INT8 calibration, pre-processed exactly like deployed inference.

Sources: one or more folders of images (searched with their sub-folders; candidates ordered by file name,
then path, so the layout of the folders does not change the set), or CrowdPose/COCO-style annotations + one
folder (only the annotated images, by image id, stratified by `crowdIndex` easy / medium / hard when the
file has it). `count` images
are drawn with `seed` (numpy PCG64), so the same inputs always give the same set in the same order.
Each image is decoded like `python_ref.preprocess.load_image_rgb` and letterboxed to the model input
(`python_ref.preprocess.letterbox`), the deployed-mode geometry. The manifest records every image used
(file, image id, sha256 of the file bytes, original size, how it was decoded) and every file skipped
with the reason; it goes into the model card so `litepose validate` can detect overlap.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from python_ref.errors import LitePoseError, first_line
from python_ref.io_utils import IMAGE_SUFFIXES, images_in_folder

MIN_SIDE = 32  # smaller images say nothing about the activations of a 448-pixel input
MANIFEST_FORMAT = "litepose-calibration/1"


@dataclass
class CalibrationSet:
    images: list[np.ndarray]            # letterboxed uint8 (H, W, 3) RGB, the model input
    manifest: dict
    skipped: list[dict] = field(default_factory=list)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_for_calibration(path: Path) -> tuple[np.ndarray, dict]:
    """Decode one image file to uint8 RGB; return it and a note of what conversion was needed.

    Grayscale is replicated to three channels, an alpha channel is dropped (composited on nothing, as the
    deployed app's camera frames have none), 16-bit samples are reduced to 8 bits - the same decoding the
    deployed pipeline and the official code use. Raises LitePoseError for unreadable or tiny images.
    """
    import cv2

    from python_ref.preprocess import load_image_rgb

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LitePoseError(f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        raise LitePoseError(f"{path}: the file is empty, not an image")
    try:
        raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as exc:    # e.g. a header claiming more pixels than CV_IO_MAX_IMAGE_PIXELS
        raise LitePoseError(f"{path}: OpenCV cannot decode this image ({first_line(exc.err or str(exc))})") from None
    if raw is None or raw.size == 0:
        raise LitePoseError(f"{path}: not an image OpenCV can read (corrupt, truncated or unsupported format)")
    channels = 1 if raw.ndim == 2 else raw.shape[2]
    notes = []
    if channels == 1:
        notes.append("grayscale -> RGB")
    elif channels == 4:
        notes.append("alpha dropped")
    elif channels != 3:
        raise LitePoseError(f"{path}: {channels} channels; expected gray, RGB or RGBA")
    if raw.dtype != np.uint8:
        notes.append(f"{raw.dtype.name} samples -> 8 bit")
    h, w = raw.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise LitePoseError(f"{path}: {w}x{h} pixels is too small for calibration (shorter side < {MIN_SIDE})")
    rgb = load_image_rgb(path)
    return rgb, {"sha256": sha256_bytes(data), "width": int(w), "height": int(h),
                 "decoded": ", ".join(notes) or "rgb8"}


def _folder_candidates(images_dir: Path, log=print) -> list[dict]:
    """Every image file under the folder (sub-folders too, e.g. ../shared/data), by relative path; not the
    overlays litepose drew there (pictures of poses are not what the camera sees)."""
    from python_ref.draw import without_overlays

    files = [p.relative_to(images_dir).as_posix()
             for p in without_overlays(images_in_folder(images_dir), images_dir, log)]
    return [{"file": f, "image_id": None, "stratum": None} for f in files]


def _annotation_candidates(images_dir: Path, annotations: str, log) -> list[dict]:
    from python_ref.evaluate import load_annotations

    ann = load_annotations(annotations)
    base_count = Counter(os.path.basename(im.path) for im in ann.images)
    out, missing, ambiguous = [], 0, 0
    for im in sorted(ann.images, key=lambda i: i.id):
        rel = im.path
        name = os.path.basename(rel)
        if ".." not in rel.split("/") and (images_dir / rel).is_file():    # file_name with its sub-folders
            out.append({"file": rel, "image_id": int(im.id), "stratum": im.stratum})
        elif not (images_dir / name).is_file():
            missing += 1
        elif base_count[name] > 1:   # a/x.jpg and b/x.jpg, but only x.jpg on disk: whose is it?
            ambiguous += 1
        else:
            out.append({"file": name, "image_id": int(im.id), "stratum": im.stratum})
    if missing:
        log(f"calibration: {missing} of {len(ann.images)} annotated images are not in {images_dir} (skipped)")
    if ambiguous:
        log(f"calibration: {ambiguous} annotated images share a file name and are found only by that name in "
            f"{images_dir}; which image is which cannot be told (skipped)")
    return out


def _draw(candidates: list[dict], count: int, seed: int) -> list[dict]:
    """`count` candidates: equal shares per crowdIndex stratum (round-robin over the strata in a seeded
    order, so small counts and remainders fall on any stratum; images without a crowdIndex form one more),
    or a seeded sample when there are no strata. Order of the result is deterministic."""
    rng = np.random.default_rng(seed)
    strata: dict[str, list[dict]] = {}
    for c in candidates:
        strata.setdefault(c["stratum"] or "none", []).append(c)
    queues = {k: [v[i] for i in rng.permutation(len(v))] for k, v in sorted(strata.items())}
    keys = sorted(queues)
    keys = [keys[i] for i in rng.permutation(len(keys))]
    chosen = []
    while len(chosen) < count and any(queues.values()):
        for k in keys:
            if queues[k] and len(chosen) < count:
                chosen.append(queues[k].pop(0))
    return chosen


def _as_folders(images_dirs) -> list[Path]:
    dirs = [images_dirs] if isinstance(images_dirs, (str, os.PathLike)) else list(images_dirs)
    if not dirs:
        raise LitePoseError("--calib-images: no calibration folder given")
    out = []
    for raw in dirs:
        if not str(raw).strip():  # Path("") is the current folder: searched recursively, a surprise
            raise LitePoseError("--calib-images: an empty folder name (an unset shell variable?)")
        d = Path(raw)
        if d.is_file():
            raise LitePoseError(f"{d}: is a file; --calib-images wants a folder of images")
        if not d.is_dir():
            raise LitePoseError(f"{d}: calibration image folder not found")
        out.append(d)
    return out


def calibration_candidates(images_dirs, annotations=None, log=print) -> list[dict]:
    """Every image the set may be drawn from (cheap: no decoding), so a bad source fails before slow work.

    Several folders are searched in the order given; with more than one, each file is named
    `<folder name>/<relative path>` in the manifest (one folder: the relative path, as before)."""
    folders = _as_folders(images_dirs)
    if annotations and len(folders) > 1:
        raise LitePoseError(f"{annotations}: --calib-annotations works with one --calib-images folder, "
                            f"got {len(folders)}")
    labels = _folder_labels(folders)
    candidates = []
    for d, label in zip(folders, labels):
        found = _annotation_candidates(d, annotations, log) if annotations else _folder_candidates(d, log)
        if not found:
            what = f"images listed in {annotations}" if annotations else f"image files ({', '.join(IMAGE_SUFFIXES)})"
            raise LitePoseError(f"{d}: no {what} found; the calibration set would be empty")
        for c in found:
            c["path"] = d / c["file"]
            if len(folders) > 1:
                c["file"] = f"{label}/{c['file']}"
        candidates.extend(found)
    seen, unique = set(), []
    for c in candidates:  # nested folders (data and data/coco/images) would offer an image twice
        key = c["path"].resolve()
        if key not in seen:
            seen.add(key)
            unique.append(c)
    if len(unique) < len(candidates):
        log(f"calibration: {len(candidates) - len(unique)} candidate files are the same file as another (a link, "
            "or a folder inside another given folder); each is used once")
    candidates = unique
    if not annotations:
        # By file name first: the same images give the same set and order however they are spread over folders.
        candidates.sort(key=lambda c: (Path(c["file"]).name, c["file"]))
    return candidates


def _folder_labels(folders: list[Path]) -> list[str]:
    """The shortest trailing part of each folder's path that tells it from the others (coco/images, aic/images)."""
    parts = [d.resolve().parts for d in folders]
    for n in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-n:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    raise LitePoseError(f"{folders[0]}: the same calibration folder is given twice")


def build_calibration_set(images_dirs, input_hw, annotations=None, count: int = 100, seed: int = 0,
                          log=print, candidates: list[dict] | None = None) -> CalibrationSet:
    """Select, decode and letterbox up to `count` representative images (see module docstring).

    `images_dirs`: one folder or a list of folders; `candidates`: the result of `calibration_candidates`
    when the caller already checked the sources."""
    from python_ref.preprocess import letterbox

    if count < 1:
        raise LitePoseError(f"--calib-count {count}: must be at least 1")
    folders = _as_folders(images_dirs)
    if candidates is None:
        candidates = calibration_candidates(folders, annotations, log)
    images_dir = folders[0] if len(folders) == 1 else ", ".join(str(d) for d in folders)
    ordered = _draw(candidates, len(candidates), seed)  # full seeded order; take `count` readable ones
    images, used, skipped, by_sha = [], [], [], {}
    for c in ordered:
        if len(images) >= count:
            break
        path = c["path"]
        try:
            rgb, info = decode_for_calibration(path)
            if info["sha256"] in by_sha:     # the same bytes under two names would count twice
                raise LitePoseError(f"{path}: the same file as {by_sha[info['sha256']]} (sha256), used once")
        except LitePoseError as exc:
            log(f"calibration: skipping {exc}")
            skipped.append({"file": c["file"], "reason": str(exc).split(": ", 1)[-1]})
            continue
        by_sha[info["sha256"]] = c["file"]
        boxed, _box = letterbox(rgb, tuple(input_hw))
        images.append(boxed)
        used.append({"file": c["file"], "image_id": c["image_id"], "stratum": c["stratum"], **info})
        log(f"calibration image {len(images)}/{min(count, len(ordered))}: {c['file']}"
            + (f" ({info['decoded']})" if info["decoded"] != "rgb8" else ""))
    if not images:
        raise LitePoseError(f"{images_dir}: none of the {len(candidates)} candidate images is usable; "
                            "the calibration set would be empty")
    if len(images) < count:
        log(f"calibration: {len(images)} usable images, fewer than the --calib-count of {count}: all are used")
    strata = {}
    if any(u["stratum"] for u in used):   # images without a crowdIndex next to stratified ones count as "none"
        for u in used:
            strata[u["stratum"] or "none"] = strata.get(u["stratum"] or "none", 0) + 1
    manifest = {
        "format": MANIFEST_FORMAT,
        "source": {"images_dir": folders[0].name if len(folders) == 1 else _folder_labels(folders),
                   "annotations": os.path.basename(annotations) if annotations else None},
        "count_requested": int(count), "count": len(images), "seed": int(seed),
        "input_size": f"{input_hw[0]}x{input_hw[1]}", "preprocessing": "letterbox (deployed mode)",
        "strata": strata or None,
        "images": used, "skipped": skipped,
    }
    return CalibrationSet(images, manifest, skipped)


def calibration_hashes(card: dict | None) -> set[str]:
    """sha256 of every calibration image recorded in a model card (empty when none)."""
    if not card:
        return set()
    manifest = card.get("calibration") or {}
    return {im["sha256"] for im in manifest.get("images", []) if isinstance(im, dict) and im.get("sha256")}
