"""Image -> poses, the pipeline behind `litepose predict`.

Two model sources, one flow (preprocess -> network -> decode -> map back to the image):
* `--model FILE.tflite` (`DeployedModel`): a deployed LiteRT file at its fixed input size, letterboxed
  (python_ref.preprocess.letterbox); needs only python_ref. Default: fast decoder, no flip.
* `--checkpoint PATH` (`converter.float_model.CheckpointModel`, plugged in by the `litepose` command): the
  float Keras network at the official per-image input size with the official preprocessing, for parity with
  published numbers. TensorFlow is imported lazily, only there. Default: official decoder with flip test.

Flip test with any model = run it again on the W-flipped network input; the official decoder flips those
outputs back and permutes the joints.
"""
from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable

import click
import numpy as np

from .draw import tag_overlay, without_overlays
from .errors import LitePoseError
from .io_utils import (IMAGE_SUFFIXES, check_distinct, check_output_location, check_stdout, images_in_folder, make_folders,
                       numbered_stems, probe_writable, staged_outputs)
from .preprocess import (EXIF_ORIENTATIONS, InputTooLarge, letterbox, load_image, official_input_size)

MODES = ("official", "fast")
PERSON_SCORE_SHOWN = 0.1  # progress lines count and overlays draw people at or above this score


class UnusableImage(LitePoseError):
    """An image that was read but cannot be run (too large for the official mode): `--skip-unreadable` skips it."""


class DeployedModel:
    """A `.tflite` file following the model I/O contract, fed letterboxed uint8 RGB (`predict_image`).

    `num_joints` (14 CrowdPose, 17 COCO), `runner.input_hw` (H, W) and `description` say what it is;
    `warnings` lists what a caller should tell its user (e.g. the file differs from its model card: damaged or
    replaced after conversion); the `litepose` commands print them, library code should too.
    """

    default_mode, default_flip = "fast", False

    def __init__(self, path, num_threads: int | None = None, joints: int | None = None):
        from .runner import TFLiteRunner, runtime_name

        self.runner = TFLiteRunner(path, num_threads=num_threads)
        self.num_joints = self.runner.num_joints
        if joints is not None and joints != self.num_joints:
            raise LitePoseError(f"{path}: --joints {joints}, but the model has {self.num_joints} joints")
        h, w = self.runner.input_hw
        self.description = (f"{Path(path).name} ({h}x{w} {self.runner.input_dtype.name} input, {self.num_joints} "
                            f"joints; {runtime_name()})")
        self.warnings = card_mismatch(path) + self.runner.delegate_warnings()

    def prepare(self, image_rgb: np.ndarray):
        """(network input uint8 RGB at the model's size, its `Letterbox` to map poses back)."""
        return letterbox(image_rgb, self.runner.input_hw)

    def shrink_vs_official(self, image_hw: tuple[int, int]) -> tuple[float, tuple[int, int]]:
        """How many times smaller people appear in the letterboxed input than in the official pre-processing
        (short side to the model's short side, long side to a multiple of 64), and that official input size.
        A square model letterboxes a 16:9 photo into 448x252 of its 448x448: people 1.8x smaller, and the
        small ones are lost."""
        h, w = self.runner.input_hw
        ih, iw = image_hw
        try:
            (ow, oh), _, _ = official_input_size((ih, iw), min(h, w))
        except InputTooLarge:
            return 1.0, (h, w)
        return min(oh / ih, ow / iw) / min(h / ih, w / iw), (oh, ow)

    def __call__(self, net_input: np.ndarray) -> dict[str, np.ndarray]:
        return self.runner(net_input)


def card_mismatch(path) -> list[str]:
    """A warning when the model card next to a .tflite records another sha256 than the file's: a damaged or
    replaced file still runs and quietly finds nobody, so say so first."""
    card_path = Path(path).with_suffix(".json")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    return card_sha_mismatch(path, card, card_path.name)


def card_sha_mismatch(path, card, card_name: str, sha256: str | None = None) -> list[str]:
    """`card_mismatch` for a card already read (`card_name`: its file name, for the message; `sha256`: the
    file's, when the caller has it)."""
    import hashlib

    recorded = card.get("sha256") if isinstance(card, dict) else None
    if not isinstance(recorded, str) or not isinstance(card.get("precision"), str):
        return []  # not a model card
    actual = sha256 or hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if actual == recorded:
        return []
    return [f"{path}: sha256 {actual[:12]} differs from its model card {card_name} ({recorded[:12]}): "
            "the file was changed or damaged after conversion, or the card belongs to another build"]


# The float checkpoint route needs TensorFlow and the Keras network, which live in `converter`; the
# `litepose` command plugs its loader in here (converter.cli), so python_ref never imports converter.
# Called as checkpoint_model_factory(path, arch=, joints=, num_threads=) -> a model with `prepare`,
# `__call__`, `input_size`, `num_joints`, `description`, `warnings`, `default_mode`, `default_flip`.
checkpoint_model_factory: Callable | None = None


def _mode_and_flip(model, mode: str | None, flip: bool | None) -> tuple[str, bool]:
    """The decoder and flip test to use: the model's defaults where not given; flip by default only with the
    official decoder (the fast one has no flip test)."""
    mode = model.default_mode if mode is None else mode
    flip = model.default_flip and mode == "official" if flip is None else flip
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if flip and mode == "fast":
        raise LitePoseError("--flip: the fast decoder has no flip test; use --mode official --flip")
    return mode, flip


def predict_image(model, image_rgb: np.ndarray, mode: str | None = None, flip: bool | None = None,
                  source: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """Poses (P, J, 3) float32 x, y, score in ORIGINAL image pixels and person scores (P,).

    Pixel u covers [u, u+1) (corner convention: subtract 0.5 to draw at OpenCV pixel centres). A joint
    with no detection has score 0 and x = y = 0. `mode` / `flip` default to the model's own defaults
    (fast without flip for a .tflite model, official with flip for a checkpoint); `source` names the image
    in error messages.
    """
    from . import decoder, keypoints

    mode, flip = _mode_and_flip(model, mode, flip)
    if not isinstance(image_rgb, np.ndarray):
        raise ValueError(f"{source}: expected a uint8 RGB image (numpy array), got a {type(image_rgb).__name__}; "
                         "load_image_rgb(path) reads one from a file")
    if image_rgb.dtype != np.uint8:
        raise ValueError(f"{source}: expected a uint8 RGB image, got {image_rgb.dtype} (0..255 pixels as uint8: "
                         "load_image_rgb(path) reads one from a file)")
    shape = image_rgb.shape
    if len(shape) != 3 or shape[2] != 3 or 0 in shape[:2]:
        raise ValueError(f"{source}: expected an RGB image of shape (H, W, 3), got {shape}; load_image_rgb "
                         "gives one from any file (grayscale and RGBA included)")
    try:
        net_input, transform = model.prepare(image_rgb)
    except InputTooLarge as exc:
        raise UnusableImage(f"{source}: {exc}") from None
    outputs = model(net_input)
    if mode == "official":
        flip_outputs = model(np.ascontiguousarray(net_input[:, ::-1])) if flip else None
        flip_index = keypoints.dataset_for_joints(model.num_joints).flip_index if flip else None
        decoded = decoder.decode_official(outputs, flip_outputs=flip_outputs, flip_index=flip_index)
    else:
        decoded = decoder.decode_fast(outputs)
    poses = np.asarray(decoded.poses, np.float32).reshape(-1, model.num_joints, 3)
    scores = np.asarray(decoded.scores, np.float32).reshape(-1)
    poses = transform.to_image(poses).astype(np.float32)
    poses[poses[..., 2] <= 0, :2] = 0.0
    return poses, scores


def _short(value) -> float:
    """float32 -> the shortest decimal that reads back to the same float32 (compact, lossless JSON)."""
    return float(np.format_float_positional(np.float32(value), unique=True, trim="0"))


def result_entries(image: str, poses: np.ndarray, scores: np.ndarray) -> list[dict]:
    """The `litepose predict` JSON entries of one image: one per person, in decoder order."""
    return [{"image": image, "keypoints": [_short(v) for v in pose.reshape(-1)], "score": _short(score)}
            for pose, score in zip(poses, scores)]


def _overlay_names(images: list[str]) -> list[str]:
    """`<stem>_pose.jpg`, with `-2`, `-3`... when two inputs share a stem."""
    return [f"{stem}_pose.jpg" for stem in numbered_stems(Path(image).stem or "image" for image in images)]


def expand_images(images, skip_folder=None) -> list[str]:
    """Image arguments with every folder replaced by the image files below it (sorted; not those in
    `skip_folder`, the overlay folder); missing paths fail."""
    if not images:
        raise LitePoseError("no images given")
    out: list[str] = []
    for image in images:
        path = Path(image)
        if str(image).strip() == "":
            raise LitePoseError("an empty image path was given (an unset shell variable?)")
        if path.is_dir():
            found = without_overlays(images_in_folder(path, skip=skip_folder), image)
            if not found:
                raise LitePoseError(f"{image}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            out.extend(str(f) for f in found)
        elif not path.is_file():
            raise LitePoseError(f"{image}: no such image file or folder")
        else:
            out.append(str(image))
    seen: set[Path] = set()
    unique = []
    for image in out:  # the same file twice (a folder and a file in it, ./x and x) would be counted twice
        key = Path(image).resolve()
        if key not in seen:
            seen.add(key)
            unique.append(image)
    if len(unique) < len(out):
        print(f"warning: {len(out) - len(unique)} image path(s) given twice; each file is used once",
              file=sys.stderr)
    return unique


def check_json_path(json_path) -> Path | None:
    """The --json file (None for `-`, standard output), checked before any slow work."""
    if str(json_path) == "-":
        check_stdout("--json -")
        return None
    if Path(json_path).is_dir():
        raise LitePoseError(f"{json_path}: --json needs a file name, this is a folder")
    check_output_location(json_path, str(json_path))   # the string as given: `out/` names a folder
    return Path(json_path)


SHRINK_NOTE = 1.25  # people this much smaller than in the official pre-processing: say so after the run


def run_predict(model, images: list[str], json_path, mode: str | None = None, flip: bool | None = None,
                draw_dir=None, progress: Callable[[str], None] | None = None, skip_unreadable: bool = False,
                min_joint_score: float = 0.1, model_files: dict | None = None, exif_rotate: bool = False,
                min_person_score: float = 0.0) -> list[dict]:
    """Predict every image, then write the JSON list (`-`: standard output) and, optionally, one overlay per
    image into `draw_dir`. Nothing is written if an image fails, unless `skip_unreadable` (an image that
    cannot be read is then left out with a warning). `exif_rotate` turns each photo upright (EXIF
    orientation) first; the poses are then in the upright picture's pixels. Returns the entries."""
    mode, flip = _mode_and_flip(model, mode, flip)
    images = expand_images(images, skip_folder=draw_dir)
    progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    json_path = check_json_path(json_path)
    skeleton = None
    overlay_paths = [None] * len(images)
    if draw_dir is not None:
        from . import keypoints

        draw_dir = Path(draw_dir)
        if draw_dir.exists() and not draw_dir.is_dir():
            raise LitePoseError(f"{draw_dir}: --draw needs a folder, this is a file")
        overlay_paths = [draw_dir / name for name in _overlay_names(images)]
        try:
            skeleton = keypoints.dataset_for_joints(model.num_joints).skeleton
        except LitePoseError:  # an unknown joint layout: draw the joints without limbs
            skeleton = ()
    inputs = {f"input image {image}": image for image in images}
    inputs.update(model_files or {})
    check_distinct({"--json output": json_path, **{f"overlay {p.name}": p for p in overlay_paths if p}}, inputs)
    created_dirs = make_folders(draw_dir, "--draw folder") if draw_dir is not None else []
    try:
        if draw_dir is not None:
            probe_writable(draw_dir, str(draw_dir))
        return _predict_all(model, images, json_path, mode, flip, overlay_paths, skeleton, progress, skip_unreadable,
                            min_joint_score, exif_rotate, min_person_score)
    except BaseException:
        for folder in created_dirs:   # made for this run (early, to fail before the slow work): leave none behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _people(n: int) -> str:
    return f"{n} person" if n == 1 else f"{n} people"


def _overlay_jpeg(rgb, poses, scores, skeleton, min_joint_score, overlay_path) -> bytes:
    """The tagged JPEG overlay of one image's poses."""
    import cv2

    from .draw import draw_poses

    overlay = draw_poses(rgb, poses, scores, skeleton, min_person_score=PERSON_SCORE_SHOWN,
                         min_joint_score=min_joint_score)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise LitePoseError(f"{overlay_path}: OpenCV cannot encode the overlay")
    return tag_overlay(buf.tobytes())


def _predict_all(model, images, json_path, mode, flip, overlay_paths, skeleton, progress, skip_unreadable,
                 min_joint_score, exif_rotate, min_person_score):
    for warning in getattr(model, "warnings", []):
        progress(f"warning: {warning}")
    progress(f"{model.description}: {len(images)} image(s), {mode} decoder, flip {'on' if flip else 'off'}")
    entries: list[dict] = []
    skipped = 0
    shrunk: list[tuple[float, str, tuple[int, int]]] = []
    # Everything is staged (`staged_outputs`): each overlay goes to a hidden file next to its place as it is made
    # (memory stays flat), and all are put in place only once every image went through, the JSON last, so a
    # failure (a bad image, a full disk, Ctrl-C) leaves none behind and a reader of the JSON finds the overlays
    # there. Standard output comes after the files.
    def skip(exc: LitePoseError) -> None:
        """`--skip-unreadable`: leave the image out with a line; otherwise the error stops the run."""
        nonlocal skipped
        if not skip_unreadable:
            raise exc
        skipped += 1
        progress(f"[{i}/{len(images)}] skipped: {exc}")

    with staged_outputs() as stage:
        for i, (image, overlay_path) in enumerate(zip(images, overlay_paths), 1):
            start = time.perf_counter()
            try:
                rgb, orientation = load_image(image, upright=exif_rotate)
            except LitePoseError as exc:
                skip(exc)
                continue
            if orientation != 1 and not exif_rotate:
                progress(f"warning: {image}: EXIF orientation {orientation}, stored {EXIF_ORIENTATIONS[orientation]}: "
                         "used as stored, like the official code (poses in stored pixels, and people lying on their "
                         "side are found worse); --exif-rotate turns it upright first")
            if hasattr(model, "shrink_vs_official"):
                factor, official_hw = model.shrink_vs_official(rgb.shape[:2])
                if factor >= SHRINK_NOTE:
                    shrunk.append((factor, image, official_hw))
            try:
                poses, scores = predict_image(model, rgb, mode, flip, source=image)
            except UnusableImage as exc:
                skip(exc)
                continue
            keep = scores >= min_person_score
            entries.extend(result_entries(str(image), poses[keep], scores[keep]))
            shown = int((scores >= PERSON_SCORE_SHOWN).sum())
            line = (f"[{i}/{len(images)}] {image}: {_people(len(scores))} ({shown} with score >= {PERSON_SCORE_SHOWN}), "
                    f"{(time.perf_counter() - start) * 1000:.0f} ms")
            if overlay_path is not None:
                stage(overlay_path, _overlay_jpeg(rgb, poses, scores, skeleton, min_joint_score, overlay_path))
                line += f" -> {overlay_path}"
            progress(line)
        if skipped == len(images):
            raise LitePoseError(f"{images[0]}: none of the {len(images)} images could be read (this is the first); "
                                "nothing written")
        text = json.dumps(entries, separators=(",", ":")) + "\n"
        if json_path is not None:
            stage(json_path, text.encode("utf-8"))
    if json_path is None:
        try:
            if sys.stdout is None:
                raise OSError("standard output is closed")
            sys.stdout.write(text)
            sys.stdout.flush()
        except OSError as exc:
            raise LitePoseError(f"standard output: cannot write the JSON ({exc.strerror or exc})") from None
    done = f"wrote {_people(len(entries))} from {len(images) - skipped} image(s) to {json_path or 'standard output'}"
    progress(done + (f" ({skipped} unreadable or unusable image(s) skipped)" if skipped else ""))
    if shrunk:
        factor, image, (oh, ow) = max(shrunk)
        h, w = model.runner.input_hw
        progress(f"note: {len(shrunk)} image(s) differ in shape from the {h}x{w} model input: letterboxed, "
                 f"their people are up to {factor:.1f}x smaller than with the official pre-processing (e.g. "
                 f"{image}), and small people are missed. A model converted with --input-size {oh}x{ow} "
                 "(the official input for that image) sees them at full size.")
    return entries


class FiniteFloat(click.FloatRange):
    """click.FloatRange that also refuses nan and infinities (FloatRange lets nan through every bound);
    `allow_inf`: +inf is a limit too (SQNR >= inf: bit-exact outputs)."""

    name = "float"

    def __init__(self, *args, allow_inf: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.allow_inf = allow_inf

    def _describe_range(self) -> str:
        """No bounds: no range in the help (click would print `x<=None`)."""
        return super()._describe_range() if self.min is not None or self.max is not None else ""

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        if not math.isfinite(value) and not (self.allow_inf and value == math.inf):
            self.fail(f"{value} is not a finite number", param, ctx)
        return value


@click.command("predict")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE_OR_FOLDER...")
@click.option("--model", "model_path", default=None, metavar="FILE.tflite",
              help="Deployed LiteRT model (letterboxed input; needs no TensorFlow).")
@click.option("--checkpoint", default=None, metavar="PATH",
              help="Official checkpoint: the float network at the official per-image input size (imports TensorFlow).")
@click.option("--arch", default=None, help="With --checkpoint: XS|S|M|L|prune-S|prune-M|prune-L or an arch JSON "
              "(default: detected from the checkpoint).")
@click.option("--joints", type=click.Choice(["14", "17"]), default=None,
              help="14 CrowdPose, 17 COCO (default: from the model / checkpoint).")
@click.option("--flip/--no-flip", default=None,
              help="Flip test (run the network on the mirrored input too; official decoder only). Default: on for "
              "--checkpoint with the official decoder, off otherwise.")
@click.option("--mode", type=click.Choice(MODES), default=None,
              help="Decoder. Default: official for --checkpoint, fast for --model.")
@click.option("--threads", type=click.IntRange(1, 256), default=None, help="CPU threads for the network.")
@click.option("--json", "json_path", required=True, metavar="OUT.json",
              help="Output: a JSON list, one entry per person {image, keypoints [x, y, score]*J, score}, in "
              "original-image pixels with pixel u covering [u, u+1) (joints of people cut by the image border "
              "may lie outside it, as with the official decoder); `-` writes it to standard output.")
@click.option("--draw", "draw_dir", default=None, metavar="DIR",
              help="Also write one overlay per image into DIR (<image>_pose.jpg, tagged by a JPEG comment: found "
              "in a folder of images later, litepose's overlays are never read back as inputs).")
@click.option("--min-joint-score", type=FiniteFloat(0, 1), default=0.1, show_default=True,
              help="Overlays: draw joints (and limbs) whose score is at least this.")
@click.option("--min-person-score", type=FiniteFloat(0), default=0.0, show_default=True,
              help="Write only people with at least this score to --json (keep 0 for AP: `evaluate` wants every "
              "detection; 0.1 gives the people the progress lines count and the overlays draw).")
@click.option("--skip-unreadable", is_flag=True,
              help="Leave out images that cannot be read or run (too large for the official mode), with a warning, "
              "instead of stopping.")
@click.option("--exif-rotate", is_flag=True,
              help="Turn photos upright by their EXIF orientation first (poses then in the upright picture's "
              "pixels). Default: stored pixels, as the official code and the datasets' annotations.")
def predict_command(images, model_path, checkpoint, arch, joints, flip, mode, threads, json_path, draw_dir,
                    min_joint_score, min_person_score, skip_unreadable, exif_rotate):
    """Detect the poses in each IMAGE (a folder: every image below it) and write them, in original image
    pixels, to --json."""
    if (model_path is None) == (checkpoint is None):
        raise click.UsageError("give exactly one of --model FILE.tflite or --checkpoint PATH")
    if model_path is not None and arch is not None:
        raise click.UsageError("--arch applies to --checkpoint only (a .tflite model knows its architecture)")
    default_mode = "fast" if model_path is not None else "official"
    if flip and (mode or default_mode) == "fast":
        raise click.UsageError("--flip needs --mode official (the fast decoder has no flip test; "
                               "--model defaults to it)")
    joints = int(joints) if joints else None
    images = expand_images(images, skip_folder=draw_dir)
    check_json_path(json_path)
    model_files = ({"model": model_path, "model card": Path(model_path).with_suffix(".json")} if model_path
                   else {"checkpoint": checkpoint, "arch file": arch if arch and arch.endswith(".json") else None})
    check_distinct({"--json output": None if json_path == "-" else json_path}, model_files)
    if model_path is not None:
        model = DeployedModel(model_path, num_threads=threads, joints=joints)
    else:
        if checkpoint_model_factory is None:
            raise LitePoseError(f"{checkpoint}: --checkpoint needs the converter package (TensorFlow); run it "
                                "through the litepose command, or convert the checkpoint and use --model")
        import importlib.util

        if importlib.util.find_spec("tensorflow") is None:   # said before the progress line, not after it
            raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")
        click.echo(f"loading {checkpoint} (TensorFlow) ...", err=True)
        model = checkpoint_model_factory(checkpoint, arch=arch, joints=joints, num_threads=threads)
    run_predict(model, images, json_path, mode=mode, flip=flip, draw_dir=draw_dir,
                progress=lambda line: click.echo(line, err=True), skip_unreadable=skip_unreadable,
                min_joint_score=min_joint_score, model_files=model_files, exif_rotate=exif_rotate,
                min_person_score=min_person_score)
