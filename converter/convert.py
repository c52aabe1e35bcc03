"""`litepose convert`: checkpoint -> Keras -> TFLite, validated, with a model card and manifest entry."""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from python_ref.errors import LitePoseError
from python_ref.io_utils import (check_distinct, check_name_length, check_output_location, output_kind,
                                 probe_writable, refuse_folder_name, staged_outputs, write_text_atomic)

from .archs import load_arch, parse_input_size


MANIFEST_FORMAT = "litepose-manifest/1"


def log(msg: str) -> None:
    print(f"[litepose] {msg}", file=sys.stderr, flush=True)


# Peak memory of a conversion: about a base plus factors times the float network's activations of one image
# (float32 bytes), measured with /usr/bin/time on LitePose-M (session 15): fp32 7.7 GB at 1024x1024 (4.8 GB of
# activations); int8 (which measures every tensor) 4.0 / 4.1 / 4.6 GB at 448x448 (0.9 GB) with 2 / 4 / 24
# calibration images and 15.1 GB at 1024x1024 with 2.
CONVERT_BASE_BYTES = 1.4e9
CONVERT_ACTIVATION_FACTOR = {"fp32": 1.4, "fp16": 1.4, "dynamic": 1.4, "int8": 2.8}
CONVERT_PER_CALIBRATION_IMAGE = 0.03
CONVERT_BYTES_PER_BLOCKED_WEIGHT = 37   # float copies of the Toeplitz kernels (LitePose-M 448: 7.6 GB against 4.2)


def available_memory_bytes() -> int | None:
    """Memory this process can still take: MemAvailable, within a cgroup (container) limit if there is one;
    None where the system does not say (not Linux)."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
        available = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemAvailable:")))
        available *= 1024
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def check_conversion_memory(model, precision: str, input_hw, log=None, available: int | None = None,
                            calibration_images: int = 0, blocked: bool = False) -> float:
    """The estimated peak memory of converting `model` (bytes); refused in one line when it exceeds what is
    available, before the slow work (a 4096x4096 conversion was killed by the kernel at 20 GB, taking down
    whatever else ran), and a warning when it is close. `blocked`: the --depthwise-form blocked graph."""
    from .macs import activation_elements
    from .rewrites import blocked_weight_elements

    factor = CONVERT_ACTIVATION_FACTOR[precision] + CONVERT_PER_CALIBRATION_IMAGE * calibration_images
    need = CONVERT_BASE_BYTES + factor * 4 * activation_elements(model)
    if blocked:
        need += CONVERT_BYTES_PER_BLOCKED_WEIGHT * blocked_weight_elements(model)
    available = available_memory_bytes() if available is None else available
    if available is None:
        return need
    h, w = input_hw
    if need > available:
        what = f"{precision} {'blocked ' if blocked else ''}conversion"
        raise LitePoseError(f"--input-size {h}x{w}: a {what} at this size needs about "
                            f"{need / 1e9:.1f} GB of memory, and {available / 1e9:.1f} GB are available; choose a "
                            "smaller --input-size (the memory grows with H x W)")
    if need > 0.7 * available and log is not None:
        log(f"warning: a {precision} conversion at {h}x{w} needs about {need / 1e9:.1f} GB of memory, "
            f"{available / 1e9:.1f} GB are available")
    return need


def check_output_path(output: str | Path, suffix: str) -> Path:
    refuse_folder_name(output)   # before Path() drops the slash
    out = Path(output)
    if out.suffix.lower() != suffix:
        raise LitePoseError(f"{out}: the output file must end in {suffix}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise LitePoseError(f"{out}: the folder {parent} does not exist")
    check_name_length(out)
    if out.is_dir():
        raise LitePoseError(f"{out}: is a folder")
    if output_kind(out)[0] != "file":   # the model card and manifest go next to it
        raise LitePoseError(f"{out}: the output must be a file (this is a device, pipe or descriptor)")
    probe_writable(parent, str(out))
    return out


def _keras_bytes(model, keras_path) -> bytes:
    """The .keras file's content, saved in a scratch folder next to `keras_path` (checked writable before the
    work; /tmp may be small), so that it can be staged with the other outputs."""
    try:
        with tempfile.TemporaryDirectory(prefix=".litepose-keras-", dir=Path(keras_path).parent) as tmp:
            model.save(Path(tmp) / "model.keras")
            return (Path(tmp) / "model.keras").read_bytes()
    except OSError as exc:
        raise LitePoseError(f"{keras_path}: cannot write ({exc.strerror or exc})") from None


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio of `test` against `reference`, in dB."""
    reference = reference.astype(np.float64)
    noise = np.sum((reference - test.astype(np.float64)) ** 2)
    signal = np.sum(reference ** 2)
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(max(signal, 1e-30) / noise))


def compare_outputs(reference: dict, test: dict) -> dict:
    out = {}
    for name in ("heatmaps_s4", "tags_s4", "heatmaps_s2"):
        r, t = np.asarray(reference[name], np.float32), np.asarray(test[name], np.float32)
        out[name] = {"max_abs_error": float(np.max(np.abs(r - t))), "sqnr_db": sqnr_db(r, t),
                     "max_abs_reference": float(np.max(np.abs(r)))}
    return out


def read_manifest(manifest_path: Path) -> dict:
    """The litepose manifest at `manifest_path` (a new one when absent); anything else there is an error, so
    `convert` can refuse before the slow work rather than fail after it."""
    if not manifest_path.exists():
        return {"format": MANIFEST_FORMAT, "models": []}
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LitePoseError(f"{manifest_path}: unreadable manifest ({exc}); fix or delete it") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), list) \
            or manifest.get("format", MANIFEST_FORMAT) != MANIFEST_FORMAT \
            or not all(isinstance(m, dict) for m in manifest["models"]):
        raise LitePoseError(f"{manifest_path}: not a litepose manifest ({MANIFEST_FORMAT} with a 'models' list); "
                            "write the model into another folder, or fix or delete the file")
    manifest.setdefault("models", [])
    return manifest


def update_manifest(model_path: Path, card: dict, extra: dict | None = None) -> Path:
    """Add or replace this model's entry in `manifest.json` next to it (paths relative to it). Re-making a
    byte-identical file keeps the accuracy and latency that `validate --update-manifest` recorded for it."""
    manifest_path, text = manifest_with_entry(model_path, card, extra)
    write_text_atomic(manifest_path, text)
    return manifest_path


def manifest_with_entry(model_path: Path, card: dict, extra: dict | None = None) -> tuple[Path, str]:
    """`update_manifest`'s path and new text, nothing written (for a caller that stages all its files)."""
    manifest_path = model_path.parent / "manifest.json"
    manifest = read_manifest(manifest_path)
    old = next((m for m in manifest["models"] if m.get("file") == model_path.name), {})
    same_build = old.get("sha256") == card["sha256"]
    entry = {
        "file": model_path.name, "sha256": card["sha256"], "size_bytes": card["size_bytes"],
        "variant": card["variant"], "precision": card["precision"], "input_size": card["input_size"],
        "joints": card["joints"], "input_dtype": card["inputs"]["image"]["dtype"],
        "output_dtype": ((card.get("outputs") or {}).get("heatmaps_s4") or {}).get("dtype"),
        "checkpoint_sha256": card.get("checkpoint_sha256"),
        "accuracy": card.get("accuracy") or (old.get("accuracy") if same_build else None),
        "latency": card.get("latency") or (old.get("latency") if same_build else None),
        "graph": card.get("graph"),
    }
    form = ((card.get("rewrites") or {}).get("depthwise_form") or {}).get("form")
    if form:     # the Android build leaves "blocked" files (x86 hosts only) out of the app
        entry["depthwise_form"] = form
    entry.update(extra or {})
    manifest["models"] = [m for m in manifest["models"] if m.get("file") != model_path.name] + [entry]
    manifest["models"].sort(key=lambda m: m["file"])
    return manifest_path, json.dumps(manifest, indent=2) + "\n"


def _validation_image(input_hw, seed=0) -> np.ndarray:
    """A deterministic structured test image (smooth gradients + blocks), 0..255 float."""
    h, w = input_hw
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w * 255, yy / h * 255, (xx + yy) / (h + w) * 255], -1)
    img += rng.normal(0, 20, img.shape)
    return np.clip(img, 0, 255).round().astype(np.float32)


def ill_conditioned_warning(sensitivity: dict) -> str:
    worst = max(sensitivity, key=sensitivity.get)
    return (f"warning: this network amplifies float32 rounding: a 1e-6 change of the input moves {worst} by "
            f"{sensitivity[worst]:.2g}, so float results are only defined to that level and int8 will not "
            "follow them (checkpoint weights or batch-norm statistics far from a trained network's?)")


DEPTHWISE_FORMS = {"split": "lattice", "blocked": "blocked"}
BLOCKED_MIN_GAIN = 1.5   # auto picks the blocked form only this much faster: a near tie keeps builds repeatable


def choose_depthwise_layout(form: str, model, log=log) -> tuple[str, dict]:
    """`DeployOptions.depthwise_layout` for `--depthwise-form` ("split" | "blocked" | "auto") and what the
    choice rests on. "auto" times both int8 forms of the network's largest stride-1 depthwise conv of more
    than 25 taps on this computer (`bench.depthwise_form_timings`): which form is faster depends on the
    CPU's int8 kernels (docs/int8.md, session 12), not on the network."""
    from .bench import depthwise_form_timings
    from .rewrites import large_depthwise_shapes

    if form in DEPTHWISE_FORMS:
        return DEPTHWISE_FORMS[form], {"form": form, "chosen_by": "--depthwise-form"}
    if form != "auto":
        raise LitePoseError(f"--depthwise-form {form}: use auto, split or blocked")
    shapes = large_depthwise_shapes(model)
    if not shapes:
        return "lattice", {"form": "split", "chosen_by": "no depthwise conv of more than 25 taps"}
    h, w, c, k = max(shapes, key=lambda s: s[0] * s[1] * s[2])
    log(f"timing the two int8 forms of a {k}x{k} depthwise conv on {h}x{w}x{c} on this computer")
    ms = depthwise_form_timings(h, w, c, k)
    blocked = ms["blocked"] * BLOCKED_MIN_GAIN <= ms["lattice"]
    form = "blocked" if blocked else "split"
    log(f"depthwise form: {form} (split {ms['lattice']:.2f} ms, blocked {ms['blocked']:.2f} ms; blocked is "
        f"chosen when {BLOCKED_MIN_GAIN}x faster). The model is fastest on CPUs like this one: for another "
        "device, time both forms there or pass --depthwise-form")
    return DEPTHWISE_FORMS[form], {"form": form, "chosen_by": "auto: timed on this computer",
                                   "layer": {"h": h, "w": w, "channels": c, "kernel": k},
                                   "int8_ms": {"split": round(ms["lattice"], 3), "blocked": round(ms["blocked"], 3)}}


def graph_for_export(model, arch: dict, num_joints: int, graph: str = "deploy", representative=None, log=log,
                     options=None):
    """The Keras graph that gets converted. "deploy": the rewritten graph of `converter.rewrites` (same
    function, fast kernels; per-channel ranges measured on the calibration images when there are any),
    checked equal to `model` in float. "plain": `model` itself. Returns (graph, rewrite report or None)."""
    if graph == "plain":
        return model, None
    if graph != "deploy":
        raise LitePoseError(f"--graph {graph}: use deploy or plain")
    from .rewrites import DeployOptions, build_deploy_model, measure_channel_ranges, verify_deploy_model

    ranges = None
    if representative is not None:
        log(f"measuring per-channel activation ranges on {len(representative)} calibration images")
        ranges = measure_channel_ranges(model, arch, representative)
    options = options or DeployOptions()
    export_model = build_deploy_model(model, arch, num_joints, options, ranges=ranges)
    check = verify_deploy_model(model, export_model, representative[0] if representative is not None
                                else _validation_image(tuple(model.input_shape[1:3])))
    if "float_sensitivity" in check:
        log(f"deploy graph equals the float network within its float32 sensitivity: max |difference| "
            f"{check['max_abs_error']:.2e}")
        log(ill_conditioned_warning(check["float_sensitivity"]))
    else:
        log(f"deploy graph equals the float network: max |difference| {check['max_abs_error']:.2e}")
    return export_model, {"options": dict(options.__dict__),
                          "ranges": "calibration images" if ranges else "batch-norm statistics",
                          "float_check": check}


def run_convert(*, checkpoint: str, arch: str | None, joints: int | None, input_size: str | None,
                precision: str, output: str, keras_path: str | None = None, calib_images: str | None = None,
                calib_annotations: str | None = None, calib_count: int = 100, input_dtype: str = "uint8",
                output_dtype: str = "float32", calib_seed: int = 0, graph: str = "deploy",
                activation_ranges: str | None = None, weight_rounding: str | None = None,
                split_head_ranges: bool = False, output_bias_correction: bool = True,
                depthwise_form: str = "split") -> dict:
    """Checkpoint -> validated .tflite + model card + manifest entry.

    `graph="deploy"` (default) converts the rewritten graph of `converter.rewrites` (same function, fast
    kernels, int8-friendly ranges); `"plain"` converts the Keras network as built (for comparisons)."""
    from .export import (DEFAULT_ACTIVATION_RANGES, DEFAULT_WEIGHT_ROUNDING, MSE_SCOPES, PRECISIONS,
                         card_path_for, check_io_contract, export_tflite, inspect_tflite, model_card)

    if precision not in PRECISIONS:
        raise LitePoseError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
    for option, value in (("--checkpoint", checkpoint), ("--output", output), ("--arch", arch),
                          ("--input-size", input_size), ("--keras", keras_path),
                          ("--calib-annotations", calib_annotations)):
        if value is not None and not str(value).strip():
            raise LitePoseError(f"{option}: an empty value (an unset shell variable?)")
    out_path = check_output_path(output, ".tflite")
    if keras_path:
        check_output_path(keras_path, ".keras")
    if isinstance(calib_images, (str, os.PathLike)):
        calib_images = [calib_images]
    calib_images = list(calib_images or [])
    if PRECISIONS[precision].needs_calibration and not calib_images:
        raise LitePoseError(f"--precision {precision} needs --calib-images DIR (representative images)")
    if precision != "int8":
        # Options that would be silently ignored: refuse them, as --activation-ranges below.
        for flag, given in (("--input-dtype", input_dtype != "uint8"), ("--output-dtype", output_dtype != "float32"),
                            ("--calib-images", bool(calib_images)), ("--calib-annotations", bool(calib_annotations))):
            if given:
                raise LitePoseError(f"{flag} applies to --precision int8 only (the {precision} model has float "
                                    "inputs and outputs and needs no calibration)")
    if graph not in ("deploy", "plain"):
        raise LitePoseError(f"--graph {graph}: use deploy or plain")
    explicit_ranges = activation_ranges is not None
    activation_ranges = activation_ranges or DEFAULT_ACTIVATION_RANGES
    if activation_ranges != "minmax" and activation_ranges not in MSE_SCOPES:
        raise LitePoseError(f"--activation-ranges {activation_ranges}: use minmax or one of {', '.join(MSE_SCOPES)}")
    if explicit_ranges and precision != "int8":
        raise LitePoseError(f"--activation-ranges {activation_ranges} applies to --precision int8 only")
    if weight_rounding is not None and precision != "int8":
        raise LitePoseError(f"--weight-rounding {weight_rounding} applies to --precision int8 only")
    weight_rounding = weight_rounding or DEFAULT_WEIGHT_ROUNDING
    if split_head_ranges and (precision != "int8" or graph != "deploy"):
        raise LitePoseError("--split-head-ranges applies to --precision int8 with the deploy graph only "
                            "(it narrows an int8 range; in float it changes nothing)")
    if weight_rounding not in ("gptq", "nearest"):
        raise LitePoseError(f"--weight-rounding {weight_rounding}: use gptq or nearest")
    if depthwise_form not in ("auto", *DEPTHWISE_FORMS):
        raise LitePoseError(f"--depthwise-form {depthwise_form}: use auto, split or blocked")
    if depthwise_form != "split" and (precision != "int8" or graph != "deploy"):
        raise LitePoseError(f"--depthwise-form {depthwise_form} applies to --precision int8 with the deploy graph "
                            "only (float models keep the split form: float GEMMs gain nothing from it)")
    if arch is not None:
        load_arch(arch)  # fail on a bad --arch before the slow work
    input_hw = parse_input_size(input_size) if input_size is not None else None
    for path, what in ((card_path_for(out_path), "the model card"), (out_path.parent / "manifest.json", "the manifest")):
        if path.is_dir():
            raise LitePoseError(f"{path}: is a folder, where {what} of {out_path.name} goes")
        check_output_location(path, str(path))   # a link to a missing or read-only folder fails now too
    read_manifest(out_path.parent / "manifest.json")  # a foreign or broken manifest fails now, not after the work
    check_distinct({"model": out_path, "model card": out_path.with_suffix(".json"),
                    "manifest": out_path.parent / "manifest.json", "Keras model": keras_path},
                   {"checkpoint": checkpoint, "arch file": arch if arch and arch.lower().endswith(".json") else None,
                    "calibration annotations": calib_annotations})

    t0 = time.perf_counter()
    from .checkpoint import build_keras_from_checkpoint, load_checkpoint

    log(f"reading {checkpoint}")
    ckpt = load_checkpoint(checkpoint)  # a bad file fails here, before TensorFlow loads
    calib_candidates = None
    if PRECISIONS[precision].needs_calibration:
        from .calibration import calibration_candidates

        calib_candidates = calibration_candidates(calib_images, calib_annotations, log)
    model, info = build_keras_from_checkpoint(ckpt, arch=arch, joints=joints, input_hw=input_hw)
    input_hw = tuple(info["input_hw"])
    log(f"built {info['arch_name']} ({info['num_joints']} joints) at {input_hw[0]}x{input_hw[1]} "
        f"in {time.perf_counter() - t0:.1f} s")
    for warning in info["warnings"]:
        log(f"warning: {warning}")
    calib_used = min(calib_count, len(calib_candidates or []))
    check_conversion_memory(model, precision, input_hw, log, calibration_images=calib_used,
                            blocked=precision == "int8" and graph == "deploy" and depthwise_form == "blocked")

    calib_manifest = None
    representative = None
    if PRECISIONS[precision].needs_calibration:
        from .calibration import build_calibration_set

        calib = build_calibration_set(calib_images, input_hw, annotations=calib_annotations, count=calib_count,
                                      seed=calib_seed, log=log, candidates=calib_candidates)
        representative, calib_manifest = calib.images, calib.manifest

    from .rewrites import DeployOptions

    layout, depthwise_choice = "lattice", None
    if precision == "int8" and graph == "deploy":
        layout, depthwise_choice = choose_depthwise_layout(depthwise_form, model, log)
        if depthwise_form == "auto" and depthwise_choice["form"] == "blocked":   # its weights need more memory
            check_conversion_memory(model, precision, input_hw, log, calibration_images=calib_used, blocked=True)
    export_model, rewrites = graph_for_export(model, info["arch"], info["num_joints"], graph, representative, log,
                                              options=DeployOptions(split_head_ranges=split_head_ranges,
                                                                    depthwise_layout=layout))
    if rewrites is not None and depthwise_choice is not None:
        rewrites["depthwise_form"] = depthwise_choice

    export_details: dict = {}
    data = export_tflite(export_model, precision, representative_images=representative, input_dtype=input_dtype,
                         output_dtype=output_dtype, log=log, range_method=activation_ranges,
                         weight_rounding=weight_rounding, output_bias_correction=output_bias_correction,
                         details=export_details)
    io = inspect_tflite(data)
    check_io_contract(io, precision, input_hw, info["num_joints"], input_dtype, output_dtype, source=str(out_path))

    # Validate the artefact against the Keras model it came from.
    from python_ref.runner import TFLiteRunner

    test_image = (representative[0] if representative is not None else _validation_image(input_hw))
    keras_out = {k: np.asarray(v)[0] for k, v in model(np.asarray(test_image, np.float32)[None]).items()}
    with tempfile.TemporaryDirectory(prefix="litepose-check-") as tmp:
        check_path = Path(tmp) / "model.tflite"
        check_path.write_bytes(data)
        tflite_out = TFLiteRunner(check_path)(np.asarray(test_image).astype(np.uint8))
    validation = compare_outputs(keras_out, tflite_out)
    worst = min(v["sqnr_db"] for v in validation.values())
    log(f"validated against Keras on the {'first calibration' if representative is not None else 'synthetic test'} "
        "image: " + ", ".join(f"{k} SQNR {v['sqnr_db']:.1f} dB, max err {v['max_abs_error']:.2e} of values up to "
                              f"{v['max_abs_reference']:.2g}" for k, v in validation.items()))
    if precision != "fp32":
        log("  (" + ("a synthetic image gives weak heatmaps, so SQNR here is a smoke test" if representative is None
                     else "one image: a check that the file works, not a measure of its accuracy")
            + "; measure accuracy on held-out images with `litepose validate`)")
    if precision == "fp32":
        from .rewrites import within_float_rounding

        wrong, floor = within_float_rounding({k: v["max_abs_error"] for k, v in validation.items()},
                                             {k: v["max_abs_reference"] for k, v in validation.items()}, 1e-4,
                                             model, np.asarray(test_image, np.float32)[None])
        if wrong:
            raise LitePoseError(f"{out_path}: fp32 TFLite differs from Keras on {wrong[0]} (max error "
                                f"{validation[wrong[0]]['max_abs_error']:.2e}, more than float32 rounding "
                                f"explains: {floor[wrong[0]]:.2e}); not written")
        if floor and "float_sensitivity" not in ((rewrites or {}).get("float_check") or {}):  # not said yet
            log(ill_conditioned_warning(floor))

    sha = hashlib.sha256(data).hexdigest()
    card = model_card(
        variant=info["arch_name"], arch=info["arch"], num_joints=info["num_joints"], input_hw=input_hw,
        precision=precision, io=io, checkpoint=os.path.basename(checkpoint),
        checkpoint_sha256=info["checkpoint_sha256"], tflite_sha256=sha, size_bytes=len(data),
        extra={"validation_vs_keras": {"image": "calibration image 0" if representative is not None
                                       else "synthetic test image", "outputs": validation,
                                       "min_sqnr_db": worst},
               "graph": graph, "rewrites": rewrites, "calibration": calib_manifest,
               **({"activation_ranges": activation_ranges, "weight_rounding": weight_rounding,
                   "saturating_sums_narrowed": True, "summed_biases_centred": True,
                   "output_bias_correction": export_details.get("output_bias_correction", {})
                   if output_bias_correction else False}
                  if precision == "int8" else {})})
    # All files or none: the Keras model, the card, the model, and the manifest last (an entry there means
    # its files are in place). A manifest made unreadable during the run fails here, before any is written.
    card_file = card_path_for(out_path)
    manifest, manifest_text = manifest_with_entry(out_path, card)
    with staged_outputs() as stage:
        if keras_path:
            stage(keras_path, _keras_bytes(model, keras_path))
        stage(card_file, (json.dumps(card, indent=2) + "\n").encode())
        stage(out_path, data)
        stage(manifest, manifest_text.encode())
    log(f"wrote {out_path} ({len(data) / 1e6:.2f} MB), {card_file}, " + (f"{keras_path}, " if keras_path else "")
        + f"{manifest} in {time.perf_counter() - t0:.1f} s")
    skipped = (calib_manifest or {}).get("skipped") or []
    if skipped:   # said once more at the end: the lines above scroll away during a long conversion
        log(f"warning: {len(skipped)} calibration file(s) skipped, listed with the reason in {card_file.name} "
            f"(calibration.skipped): {', '.join(s['file'] for s in skipped[:3])}" + (", ..." if len(skipped) > 3 else ""))
    return card
