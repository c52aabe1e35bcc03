"""Golden vectors for the Kotlin pose core: model outputs + the poses `decode_fast` finds in them.

Format `litepose-golden/1` (android_demo/posecore/GOLDEN_FORMAT.md): per case a JSON (metadata, decoder
parameters, poses) and the three outputs as float32 little-endian .bin files next to it; optionally the
raw integer outputs with their quantisation, and the letterbox with the poses in image pixels. The Kotlin
`GoldenVectorsTest` decodes the .bin files and must find the same people. No TensorFlow here.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .errors import LitePoseError
from .io_utils import final_mode, numbered_stems, write_bytes_atomic, write_text_atomic

FORMAT = "litepose-golden/1"
OUTPUT_NAMES = ("heatmaps_s4", "tags_s4", "heatmaps_s2")
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def _hwc(name: str, what: str, array) -> np.ndarray:
    """float32 [h, w, J], accepting a leading batch dimension of 1."""
    a = np.asarray(array)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise LitePoseError(f"{name}: output {what} has shape {a.shape}, expected [h, w, J] or [1, h, w, J]")
    return a


def _floats(a: np.ndarray) -> list:
    """float32 values as the float64 numbers that read back to the same float32 (nested lists)."""
    return np.asarray(a, np.float32).astype(np.float64).tolist()


def write_golden_case(out_dir: str | os.PathLike, name: str, outputs: dict, poses, scores, *,
                      params=None, quantization: dict | None = None, raw_outputs: dict | None = None,
                      letterbox=None, source: dict | None = None) -> Path:
    """Write one case from explicit poses (P, J, 3) / scores (P,) in model-input pixels; returns the JSON path.

    outputs: {heatmaps_s4, tags_s4, heatmaps_s2} float32 (batch dim optional), exactly what was decoded.
    quantization: {output: (scale, zero_point)} and raw_outputs: {output: int8/uint8 array} for integer
    models; the raw tensors must dequantise (float32 `scale * (q - zp)`) to `outputs` bit for bit.
    letterbox: a `python_ref.preprocess.Letterbox`; adds the poses in image pixels.
    """
    from .decoder import FastDecoderParams

    out_dir = Path(out_dir)
    if not _NAME.match(name):
        raise LitePoseError(f"{out_dir / name}: case name must match [A-Za-z0-9._-]+")
    if not out_dir.is_dir():
        raise LitePoseError(f"{out_dir}: not a folder")
    params = params if params is not None else FastDecoderParams()
    arrays = {k: _hwc(name, k, outputs[k]).astype(np.float32) for k in OUTPUT_NAMES}
    h4, w4, joints = arrays["heatmaps_s4"].shape
    if arrays["tags_s4"].shape != (h4, w4, joints) or arrays["heatmaps_s2"].shape != (2 * h4, 2 * w4, joints):
        raise LitePoseError(f"{name}: output shapes {[a.shape for a in arrays.values()]} do not fit "
                            "[h4, w4, J], [h4, w4, J], [2*h4, 2*w4, J]")
    poses = np.asarray(poses, np.float32).reshape(-1, joints, 3)
    scores = np.asarray(scores, np.float32).reshape(-1)
    if len(scores) != len(poses):
        raise LitePoseError(f"{name}: {len(poses)} poses but {len(scores)} scores")

    doc: dict = {
        "format": FORMAT,
        "name": name,
        "joints": int(joints),
        "input_hw": [4 * int(h4), 4 * int(w4)],
        "outputs": {k: {"file": f"{name}.{k}.bin", "shape": list(a.shape), "dtype": "float32"}
                    for k, a in arrays.items()},
        "decoder": dataclasses.asdict(params),
        "poses": _floats(poses),
        "scores": _floats(scores),
    }
    files: dict[str, bytes] = {f"{name}.{k}.bin": a.astype("<f4").tobytes() for k, a in arrays.items()}

    if quantization:
        doc["quantization"] = {}
        for k, (scale, zero_point) in quantization.items():
            if k not in OUTPUT_NAMES or raw_outputs is None or k not in raw_outputs:
                raise LitePoseError(f"{name}: quantisation of {k!r} needs its raw output")
            raw = _hwc(name, k, raw_outputs[k])
            if raw.dtype not in (np.int8, np.uint8):
                raise LitePoseError(f"{name}: raw output {k} has dtype {raw.dtype}, expected int8 or uint8")
            real = np.float32(scale) * (raw.astype(np.int32) - int(zero_point)).astype(np.float32)
            if not np.array_equal(real.view(np.uint32), arrays[k].view(np.uint32)):
                raise LitePoseError(f"{name}: raw output {k} does not dequantise to the float32 output")
            doc["quantization"][k] = {"file": f"{name}.{k}.raw.bin", "dtype": str(raw.dtype),
                                      "scale": float(np.float32(scale)), "zero_point": int(zero_point)}
            files[f"{name}.{k}.raw.bin"] = raw.tobytes()

    if letterbox is not None:
        doc["letterbox"] = {"image_hw": list(letterbox.image_hw), "input_hw": list(letterbox.input_hw),
                            "resized_hw": list(letterbox.resized_hw), "offset_xy": list(letterbox.offset_xy)}
        in_image = letterbox.to_image(poses).astype(np.float32) if len(poses) else poses.copy()
        in_image[in_image[..., 2] <= 0, :2] = 0.0
        doc["poses_image"] = _floats(in_image)
    if source:
        doc["source"] = source

    for fname, data in files.items():
        write_bytes_atomic(out_dir / fname, data)
    json_path = out_dir / f"{name}.json"
    write_text_atomic(json_path, json.dumps(doc, separators=(",", ":")) + "\n")  # last: the case is complete
    return json_path


def export_golden(out_dir: str | os.PathLike, name: str, outputs: dict, *, params=None,
                  quantization: dict | None = None, raw_outputs: dict | None = None,
                  letterbox=None, source: dict | None = None) -> Path:
    """Decode `outputs` with `python_ref.decoder.decode_fast` and write the case (see write_golden_case)."""
    from .decoder import FastDecoderParams, decode_fast

    params = params if params is not None else FastDecoderParams()
    arrays = {k: _hwc(name, k, outputs[k]) for k in OUTPUT_NAMES}
    decoded = decode_fast(arrays, params)
    return write_golden_case(out_dir, name, arrays, decoded.poses, decoded.scores, params=params,
                             quantization=quantization, raw_outputs=raw_outputs, letterbox=letterbox,
                             source=source)


def read_golden_case(json_path: str | os.PathLike) -> dict:
    """The case as a dict with the outputs loaded as float32 arrays under doc["arrays"]."""
    json_path = Path(json_path)
    try:
        doc = json.loads(json_path.read_text())
    except (OSError, ValueError) as exc:
        raise LitePoseError(f"{json_path}: cannot read golden case ({exc})") from None
    if doc.get("format") != FORMAT:
        raise LitePoseError(f"{json_path}: format is {doc.get('format')!r}, expected {FORMAT!r}")
    arrays = {}
    for k, spec in doc["outputs"].items():
        data = np.fromfile(json_path.parent / spec["file"], dtype="<f4")
        if data.size != int(np.prod(spec["shape"])):
            raise LitePoseError(f"{json_path.parent / spec['file']}: {data.size} values, shape says {spec['shape']}")
        arrays[k] = data.reshape(spec["shape"]).astype(np.float32)
    doc["arrays"] = arrays
    return doc


def export_golden_for_model(model_path: str | os.PathLike, images: list[str], out_dir: str | os.PathLike,
                            prefix: str | None = None, num_threads: int | None = None, log=None) -> list[Path]:
    """Run a deployed .tflite on each image (letterbox, like the app) and write one golden case per image.

    Cases are built in a staging folder and moved into `out_dir` only when every image went through, so a
    bad image or model leaves `out_dir` as it was."""
    from .preprocess import letterbox, load_image_rgb
    from .runner import TFLiteRunner

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LitePoseError(f"{out_dir}: exists and is not a folder")
    parent = out_dir.parent if str(out_dir.parent) else Path(".")
    if not parent.is_dir():
        raise LitePoseError(f"{out_dir}: the folder {parent} does not exist")
    if prefix is None:
        prefix = re.sub(r"[^A-Za-z0-9._-]", "_", Path(model_path).stem).lstrip("._-")[:64] or "model"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", prefix):
        raise LitePoseError(f"--prefix {prefix!r}: up to 64 letters, digits, '.', '_' and '-', starting with a "
                            "letter or digit")
    names = [f"{prefix}__{stem}" for stem in numbered_stems(  # one case per image; equal stems get -2, -3, ...
        re.sub(r"[^A-Za-z0-9._-]", "_", Path(image_path).stem) or "image" for image_path in images)]
    runner = TFLiteRunner(model_path, num_threads=num_threads)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=parent))
    except OSError as exc:
        raise LitePoseError(f"{out_dir}: cannot write here ({exc.strerror})") from None
    try:
        for i, (image_path, name) in enumerate(zip(images, names)):
            image = load_image_rgb(image_path)
            net_input, box = letterbox(image, runner.input_hw)
            raw = runner.run_raw(runner.prepare_input(net_input))
            outputs = runner.dequantize(raw)
            quant = {k: runner.output_quantization[k] for k in OUTPUT_NAMES if raw[k].dtype in (np.int8, np.uint8)}
            case = export_golden(staging, name, outputs, quantization=quant or None,
                                 raw_outputs=raw if quant else None, letterbox=box,
                                 source={"image": Path(image_path).name, "model": Path(model_path).name})
            if log:
                log(f"golden {i + 1}/{len(images)}: {case.name}")
        out_dir.mkdir(exist_ok=True)
        # data files first, each case's JSON last: a reader never sees a case without its arrays
        for f in sorted(staging.iterdir(), key=lambda f: f.suffix == ".json"):
            os.chmod(f, final_mode(out_dir / f.name))
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / f"{name}.json" for name in names]
