"""`litepose bench`: latency, size, memory and cost of LitePose variants, baselines and peer models.

Every network is converted by the project's own export path (the one `litepose convert` uses), and
every model is then measured in a fresh subprocess (`python -m converter.bench --worker SPEC`) that
imports no TensorFlow, so `peak_rss_mb` is the runtime's own footprint for that one model. The worker
times three things separately: pre-processing (letterbox of a camera-sized frame + input
quantisation), inference (LiteRT, outputs read and dequantised) and decoding (`decode_fast` on the
model's actual outputs). Weights do not change latency, so the networks have random weights unless a
checkpoint is given; the report says which.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from python_ref.errors import LitePoseError
from python_ref.io_utils import atomic_path, probe_writable

from .validate import thread_counts

FORMAT = "litepose-bench/1"
LITEPOSE_VARIANTS = ("XS", "S", "M", "L")
DEFAULT_PRECISIONS = ("fp32", "fp16", "int8")
# Extra --precisions names: int8 with another form of the deploy graph, as `litepose convert --depthwise-form`
# builds it, so that one report times both forms (name -> (precision, DeployOptions fields)).
BENCH_FORMS = {"int8-blocked": ("int8", {"depthwise_layout": "blocked"})}

FRAME_HW = (480, 640)  # the pre-processing input: a VGA camera frame (H x W), letterboxed to the model
PEOPLE_COUNTS = (1, 5, 10, 20, 30)

# Published numbers (spec §7.1: paper Table 1 / README, CrowdPose test). Latencies in ms on
# Jetson Nano GPU / Snapdragon 855 GPU ("mobile") / Raspberry Pi 4B+ CPU. M and L latencies were
# only plotted (README figure / paper Fig. 8): read from the plot, approximate.
PAPER = {
    "litepose-XS": {"input": 256, "params_m": 1.7, "macs_g": 1.2, "ap": 49.5, "nano": 22, "mobile": 27, "pi": 109},
    "litepose-S": {"input": 448, "params_m": 2.7, "macs_g": 5.0, "ap": 58.3, "nano": 97, "mobile": 76, "pi": 420},
    "litepose-M": {"input": 448, "params_m": 3.5, "macs_g": 7.8, "ap": 59.9, "nano": 144, "mobile": 97, "pi": 590,
                   "latency_note": "read from the README figure"},
    "litepose-L": {"input": 512, "params_m": 5.7, "macs_g": 13.7, "ap": 61.9, "nano": 210, "mobile": 168, "pi": 1050,
                   "latency_note": "read from the paper's Fig. 8 / README figure"},
    "higherhrnet-w24": {"input": 512, "params_m": 14.9, "macs_g": 25.3, "ap": 57.4, "nano": 330, "mobile": 289, "pi": 1414},
    "higherhrnet-w16": {"input": 512, "params_m": 7.2, "macs_g": 12.5, "ap": 50.4, "nano": 172, "mobile": 170, "pi": 898},
    "efficienthrnet-h1": {"input": 480, "params_m": 13.0, "macs_g": 14.2, "ap": 56.3, "nano": 283, "mobile": 267, "pi": 1229},
    "efficienthrnet-h3": {"input": 416, "params_m": 5.3, "macs_g": 4.3, "ap": 46.1, "nano": 111, "mobile": 132, "pi": 544},
}

# The paper's headline comparisons: (ours, reference, what the paper's number is).
HEADLINE_RATIOS = (
    ("litepose-S", "efficienthrnet-h1", "macs", "2.8x MACs reduction (abstract): 14.2G / 5.0G"),
    ("litepose-XS", "efficienthrnet-h3", "latency", "up to 5.0x latency reduction (abstract, Fig. 9)"),
    ("litepose-S", "higherhrnet-w24", "both", "Table 1 upper block: 5.1x MACs, 3.4-3.8x latency"),
    ("litepose-XS", "higherhrnet-w16", "both", "Table 1 lower block: 10.4x MACs, 6.3-8.2x latency"),
)


def log(msg: str) -> None:
    print(f"[litepose bench] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Model sources
# ------------------------------------------------------------------------------------------------
def git_commit(repo: Path | None = None) -> str | None:
    repo = repo or Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "converter", "python_ref"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def synthetic_images(input_hw, count: int, seed: int = 0) -> list[np.ndarray]:
    """Deterministic uint8 RGB images with smooth structure and noise: int8 calibration when no
    image folder is given (random-weight models only need plausible activation ranges)."""
    h, w = input_hw
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(count):
        fx, fy, phase = rng.uniform(0.5, 4.0), rng.uniform(0.5, 4.0), rng.uniform(0, 2 * np.pi)
        base = np.stack([np.sin(2 * np.pi * fx * xx / w + phase), np.cos(2 * np.pi * fy * yy / h + phase),
                         np.sin(2 * np.pi * (fx * xx / w + fy * yy / h))], -1)
        img = 127.5 + 90 * base + rng.normal(0, 25, (h, w, 3))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def calibration_images(input_hw, calib_images: str | None, count: int) -> tuple[list[np.ndarray], str]:
    if calib_images:
        from .calibration import build_calibration_set

        calib = build_calibration_set(calib_images, input_hw, count=count, log=lambda m: None)
        return list(calib.images), f"{len(calib.images)} images from {Path(calib_images).name}"
    return synthetic_images(input_hw, count), f"{count} synthetic images"


def litepose_to_tflite(model, arch: dict, num_joints: int, precision: str, representative=None,
                       graph: str = "deploy", options=None) -> tuple[bytes, str]:
    """The graph `litepose convert --graph deploy|plain` converts, by the same steps as
    converter.convert.run_convert: for "deploy", per-channel ranges measured on the calibration images
    (int8), the rewritten graph of converter.rewrites (default options unless `options`), checked equal in
    float; then converter.export.export_tflite."""
    from .convert import graph_for_export
    from .export import export_tflite

    export_model, report = graph_for_export(model, arch, num_joints, graph, representative, log=lambda m: None,
                                            options=options)
    which = "default options" if options is None else f"depthwise_layout={options.depthwise_layout}"
    note = "plain Keras graph" if report is None else (
        f"deploy graph (converter.rewrites, {which}, ranges from {report['ranges']}; "
        f"float max |diff| {report['float_check']['max_abs_error']:.1e})")
    data = export_tflite(export_model, precision, representative_images=representative, log=lambda m: None)
    return data, note


def _build_litepose(variant: str, checkpoint: str | None):
    from .archs import PRESETS
    from .network import build_litepose

    if checkpoint:
        from .checkpoint import build_keras_from_checkpoint

        model, info = build_keras_from_checkpoint(checkpoint, arch=variant)
        return model, info["arch"], info["num_joints"], os.path.basename(checkpoint)
    arch = PRESETS[variant]
    size = arch["img_size"]
    return build_litepose(arch, 14, (size, size), name=f"litepose_{variant}"), arch, 14, "random"


def _checkpoint_variant(path: str) -> str:
    from .checkpoint import load_checkpoint

    return load_checkpoint(path).arch_name


# ------------------------------------------------------------------------------------------------
# The measuring subprocess (no TensorFlow)
# ------------------------------------------------------------------------------------------------
def set_random_inputs(interp, seed: int = 0) -> None:
    """Image-like random data (integers 0..255 within the type's range, floats 0..1) on every input of an
    allocated interpreter: for timing models whose inputs we know nothing about."""
    rng = np.random.default_rng(seed)
    for d in interp.get_input_details():
        dt = np.dtype(d["dtype"])
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            data = rng.integers(max(info.min, 0), min(info.max, 255) + 1, d["shape"]).astype(dt)
        else:
            data = rng.uniform(0, 1, d["shape"]).astype(dt)
        interp.set_tensor(d["index"], data)


def interleaved_times_ms(interps: dict, rounds: int, runs: int, log=None) -> dict:
    """{key: [ms, ...]} for ready interpreters, timed round after round over all of them (`runs` invocations
    each per round), so that a drift of the shared host hits every model alike."""
    times = {key: [] for key in interps}
    for r in range(rounds):
        for key, it in interps.items():
            for _ in range(runs):
                t0 = time.perf_counter()
                it.invoke()
                times[key].append((time.perf_counter() - t0) * 1e3)
        if log:
            log(f"timing round {r + 1}/{rounds}")
    return times


def depthwise_form_timings(h: int, w: int, c: int, k: int = 7, rounds: int = 5, runs: int = 4,
                           threads: int = 1, seed: int = 0) -> dict[str, float]:
    """Median int8 latency (ms, LiteRT default CPU path, int8 in and out) of one stride-1 k x k depthwise
    conv + ReLU6 on [1, h, w, c] in each `depthwise_layout` form that the int8 export chooses between
    ("lattice" pieces summed, "blocked" grouped conv), timed interleaved on this computer."""
    import keras
    import tensorflow as tf

    from python_ref.runner import _interpreter_class

    from .rewrites import DeployOptions, _Builder

    rng = np.random.default_rng(seed)
    kernel = rng.normal(0, 0.1, (k, k, c, 1)).astype(np.float32)
    bias = rng.normal(0, 0.1, c).astype(np.float32)
    samples = [rng.uniform(0, 6, (1, h, w, c)).astype(np.float32) for _ in range(2)]
    interpreters = {}
    for layout in ("lattice", "blocked"):
        b = _Builder(None, DeployOptions(depthwise_layout=layout))
        x = keras.Input((h, w, c), batch_size=1, name="x")
        y = (b.blocked_depthwise(x, kernel, bias, "dw", "relu6") if layout == "blocked"
             else b.act(b.depthwise(x, kernel, bias, 1, "dw"), "relu6", "dw_relu6"))
        model = keras.Model(x, y)
        for name, weights in b.weights.items():
            model.get_layer(name).set_weights(weights)
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ({"x": s} for s in samples)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
        it = _interpreter_class()(model_content=conv.convert(), num_threads=threads)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        it.invoke()
        interpreters[layout] = it
    times = interleaved_times_ms(interpreters, rounds, runs)
    return {layout: float(np.median(t)) for layout, t in times.items()}


def _stats(times_s: list[float]) -> tuple[float, float]:
    ms = np.asarray(times_s, np.float64) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 90))


def _proc_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _rss_mb() -> float | None:
    return _proc_status_mb("VmRSS")


def _peak_rss_mb() -> float | None:
    """Peak resident memory of this process. VmHWM belongs to the address space, which execve
    replaces, so it is this worker's own; ru_maxrss is NOT: Linux keeps it across fork + execve, and
    the worker would report the (TensorFlow-sized) parent's peak."""
    peak = _proc_status_mb("VmHWM")
    if peak is None:  # not Linux: the best available figure
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024.0 * (1024.0 if sys.platform == "darwin" else 1))
    return peak


def measure_model(spec: dict) -> dict:
    """Run in the worker: time pre-processing, inference and decoding of one .tflite file."""
    path, threads, runs, warmup = spec["path"], int(spec["threads"]), int(spec["runs"]), int(spec.get("warmup", 2))
    result = {"rss_before_load_mb": _rss_mb()}
    if spec.get("contract", True):
        from python_ref.decoder import decode_fast
        from python_ref.preprocess import letterbox
        from python_ref.runner import TFLiteRunner

        runner = TFLiteRunner(path, num_threads=threads)
        frame = synthetic_images(tuple(spec.get("frame_hw", FRAME_HW)), 1, seed=1)[0]
        pre_t = []
        for _ in range(max(runs, 5)):
            t0 = time.perf_counter()
            boxed, _box = letterbox(frame, runner.input_hw)
            batch = runner.prepare_input(boxed)
            pre_t.append(time.perf_counter() - t0)
        for _ in range(warmup):
            outputs = runner.run_batch(batch)
        inf_t = []
        for _ in range(runs):
            t0 = time.perf_counter()
            outputs = runner.run_batch(batch)
            inf_t.append(time.perf_counter() - t0)
        dec_t, people = [], None
        if spec.get("decode", True):
            for _ in range(max(runs, 3)):
                t0 = time.perf_counter()
                decoded = decode_fast(outputs)
                dec_t.append(time.perf_counter() - t0)
            people = len(decoded)
        result.update(input_hw=list(runner.input_hw), input_dtype=str(runner.input_dtype))
        result["pre_ms_median"], result["pre_ms_p90"] = _stats(pre_t)
        result["decode_ms_median"], result["decode_ms_p90"] = _stats(dec_t) if dec_t else (None, None)
        result["decoded_people"] = people
    else:  # a peer model: any inputs, random data, inference only
        from python_ref.runner import _interpreter_class

        interp = _interpreter_class()(model_path=path, num_threads=threads)
        interp.allocate_tensors()
        set_random_inputs(interp)
        shape = [int(v) for v in interp.get_input_details()[0]["shape"]]
        result.update(input_hw=shape[1:3] if len(shape) == 4 else None,
                      input_dtype=str(np.dtype(interp.get_input_details()[0]["dtype"])))
        for _ in range(warmup):
            interp.invoke()
        inf_t = []
        for _ in range(runs):
            t0 = time.perf_counter()
            interp.invoke()
            inf_t.append(time.perf_counter() - t0)
        result.update(pre_ms_median=None, pre_ms_p90=None, decode_ms_median=None, decode_ms_p90=None,
                      decoded_people=None)
    result["infer_ms_median"], result["infer_ms_p90"] = _stats(inf_t)
    result["infer_ms_min"] = float(min(inf_t) * 1e3)
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def run_worker(spec: dict, timeout_s: float = 3600.0) -> dict:
    """Measure one model in a fresh Python process; its stdout's last line is the JSON result."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "converter.bench", "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=timeout_s)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise LitePoseError(f"{spec['path']}: measuring failed ({lines[-1] if lines else 'no message'})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------
# Decoder cost vs number of people
# ------------------------------------------------------------------------------------------------
def decoder_scaling(input_hw=(448, 448), num_joints: int = 14, people=PEOPLE_COUNTS, runs: int = 20) -> list[dict]:
    """decode_fast time on maps with a known number of people: python_ref.bench_decoder's synthetic
    outputs and timing (the same numbers `litepose bench-decoder` reports)."""
    from python_ref.bench_decoder import bench_fast

    result = bench_fast(runs, people_counts=tuple(people), input_hw=tuple(input_hw), num_joints=num_joints)
    return [{"people": r["people"], "decoded_people": r["decoded_people"],
             "input_size": f"{input_hw[0]}x{input_hw[1]}", "decode_ms_median": r["median_ms"],
             "decode_ms_p90": r["p90_ms"], "maps": "python_ref.bench_decoder.synthetic_outputs"}
            for r in result["by_people"]]


# ------------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------------
def _parse_list(text: str | None, allowed=None, what="value") -> list[str]:
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    if allowed is not None:
        for t in items:
            if t not in allowed:
                raise LitePoseError(f"--{what} {t}: use one of {', '.join(allowed)}")
    return items


def _check_out(path: str | None, suffix: str) -> None:
    if path:
        from .convert import check_output_path

        check_output_path(path, suffix)


def _check_peer(path: str) -> None:
    p = Path(path)
    if not p.is_file():
        raise LitePoseError(f"{p}: --peer model file not found")
    with open(p, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise LitePoseError(f"{p}: not a TFLite model (no TFL3 FlatBuffer identifier)")


def _machine() -> dict:
    """The host the timings come from: LiteRT's kernels (XNNPACK) are chosen per CPU at run time, and the
    same file has run 2x slower on another host of this machine kind (docs/int8.md, "Session 10")."""
    from .export import build_environment

    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), **build_environment()}


def run_bench(*, variants=LITEPOSE_VARIANTS, precisions=DEFAULT_PRECISIONS, threads=(1,), peers=(), baselines=(),
              checkpoints=(), json_out: str, markdown_out: str | None = None, plot_out: str | None = None,
              runs: int = 10, calib_images: str | None = None, calib_count: int = 8, input_size: str | None = None,
              people=PEOPLE_COUNTS, onnx_variant: str | None = None, keep_models: str | None = None,
              graph: str = "deploy", command: str | None = None) -> dict:
    from .baselines import BASELINES
    from .export import PRECISIONS

    _check_out(json_out, ".json")
    _check_out(markdown_out, ".md")
    _check_out(plot_out, ".png")
    for v in variants:
        if v not in LITEPOSE_VARIANTS:
            raise LitePoseError(f"--variants {v}: use any of {', '.join(LITEPOSE_VARIANTS)}")
    for p in precisions:
        if p not in PRECISIONS and p not in BENCH_FORMS:
            raise LitePoseError(f"--precisions {p}: use any of {', '.join([*PRECISIONS, *BENCH_FORMS])}")
    for b in baselines:
        if b not in BASELINES:
            raise LitePoseError(f"--baselines {b}: use any of {', '.join(BASELINES)}")
    for t in threads:
        if t < 1:
            raise LitePoseError(f"--threads {t}: must be at least 1")
    if runs < 1:
        raise LitePoseError(f"--runs {runs}: must be at least 1")
    if graph not in ("deploy", "plain"):
        raise LitePoseError(f"--graph {graph}: use deploy or plain")
    forms = [p for p in precisions if p in BENCH_FORMS]
    if forms and graph != "deploy":
        raise LitePoseError(f"--precisions {forms[0]}: a form of the deploy graph; drop it or --graph {graph}")
    for peer in peers:
        _check_peer(peer)
    for n in people:
        if n < 1:
            raise LitePoseError(f"--people {n}: people counts start at 1 ('' skips the table)")
    if keep_models:
        keep = Path(keep_models)
        if keep.exists() and not keep.is_dir():
            raise LitePoseError(f"{keep_models}: --keep-models wants a folder; this is a file")
        if not keep.exists() and not keep.parent.is_dir():
            raise LitePoseError(f"{keep_models}: the folder {keep.parent} does not exist")
        probe_writable(keep if keep.is_dir() else keep.parent, keep_models)
    if calib_images:
        from .calibration import calibration_candidates

        calibration_candidates(calib_images, log=lambda m: None)   # missing or empty folders fail before the work
    override_hw = None
    if input_size:
        from .archs import parse_input_size
        override_hw = parse_input_size(input_size)
    ckpt_by_variant = {}
    for c in checkpoints:
        if not Path(c).is_file():
            raise LitePoseError(f"{c}: checkpoint not found")
        ckpt_by_variant[_checkpoint_variant(c)] = c

    from .macs import count_cost

    t_start = time.perf_counter()
    commit = git_commit()  # at the start: the code that gets imported is the code measured
    records: list[dict] = []
    models_meta: dict[str, dict] = {}
    workdir_ctx = tempfile.TemporaryDirectory(prefix="litepose-bench-") if not keep_models else None
    workdir = Path(keep_models) if keep_models else Path(workdir_ctx.name)
    workdir.mkdir(parents=True, exist_ok=True)
    jobs = [("litepose", v) for v in variants] + [("baseline", b) for b in baselines]
    try:
        for n, (kind, name) in enumerate(jobs, 1):
            if kind == "litepose":
                if override_hw is not None:
                    from .archs import PRESETS
                    from .network import build_litepose
                    if name in ckpt_by_variant:
                        from .checkpoint import build_keras_from_checkpoint
                        model, info = build_keras_from_checkpoint(ckpt_by_variant[name], arch=name, input_hw=override_hw)
                        arch, joints, weights = info["arch"], info["num_joints"], os.path.basename(ckpt_by_variant[name])
                    else:
                        arch, joints, weights = PRESETS[name], 14, "random"
                        model = build_litepose(arch, joints, override_hw, name=f"litepose_{name}")
                else:
                    model, arch, joints, weights = _build_litepose(name, ckpt_by_variant.get(name))
                label = f"litepose-{name}"
            else:
                entry = BASELINES[name]
                model = entry.build(14, override_hw)
                arch, joints, weights, label = None, 14, "random", name
            hw = tuple(int(v) for v in model.input_shape[1:3])
            cost = count_cost(model)
            models_meta[label] = {"kind": kind, "input_size": f"{hw[0]}x{hw[1]}", "weights": weights,
                                  **cost.as_dict(), "paper": PAPER.get(label) if override_hw is None else None,
                                  "definition": None if kind == "litepose" else BASELINES[name].definition}
            log(f"[{n}/{len(jobs)}] {label} {hw[0]}x{hw[1]}: {cost.params / 1e6:.2f} M params, "
                f"{cost.macs_paper_convention / 1e9:.2f} G MACs (paper convention), "
                f"{cost.macs_correct / 1e9:.2f} G (deconv at input resolution); weights: {weights}")
            for precision in precisions:
                export_precision, fields = BENCH_FORMS.get(precision, (precision, None))
                if fields is not None and kind != "litepose":
                    log(f"  {label}: {precision} is a form of the LitePose deploy graph; skipped")
                    continue
                options = None
                if fields is not None:
                    from .rewrites import DeployOptions
                    options = DeployOptions(**fields)
                representative, calib_note = None, None
                if PRECISIONS[export_precision].needs_calibration:
                    representative, calib_note = calibration_images(hw, calib_images, calib_count)
                t0 = time.perf_counter()
                log(f"  converting {label} to {precision}" + (f" (calibration: {calib_note})" if calib_note else ""))
                if kind == "litepose":
                    data, graph_note = litepose_to_tflite(model, arch, joints, export_precision, representative, graph,
                                                          options)
                else:
                    from .export import export_tflite
                    data = export_tflite(model, precision, representative_images=representative, log=lambda m: None)
                    graph_note = "plain Keras graph (the rewrites are LitePose-specific)"
                path = workdir / f"{label}-{hw[0]}x{hw[1]}-{precision}.tflite"
                path.write_bytes(data)
                log(f"  converted in {time.perf_counter() - t0:.0f} s, {len(data) / 1e6:.2f} MB ({graph_note})")
                for t in threads:
                    try:
                        res = run_worker({"path": str(path), "threads": t, "runs": runs, "contract": True})
                    except LitePoseError as exc:  # e.g. LiteRT cannot prepare this graph: report, go on
                        res = {"error": str(exc).split(": ", 1)[-1]}
                        log(f"  {label} {precision} {t} thread(s): FAILED {res['error']}")
                    rec = _record(label, precision, t, hw, len(data), weights, cost, res, kind=kind,
                                  graph=graph_note, calibration=calib_note)
                    records.append(rec)
                    if rec["error"] is None:
                        log(f"  {label} {precision} {t} thread(s): infer {rec['infer_ms_median']:.1f} ms "
                            f"(p90 {rec['infer_ms_p90']:.1f}), pre {rec['pre_ms_median']:.2f} ms, "
                            f"decode {rec['decode_ms_median']:.1f} ms, peak RSS {rec['peak_rss_mb']:.0f} MB")
            del model
        for peer in peers:
            size = Path(peer).stat().st_size
            for t in threads:
                res = run_worker({"path": str(peer), "threads": t, "runs": runs, "contract": False})
                hw = tuple(res["input_hw"]) if res.get("input_hw") else None
                rec = _record(f"peer:{Path(peer).name}", "as-is", t, hw, size, "as shipped", None, res, kind="peer",
                              graph="external file")
                records.append(rec)
                log(f"  peer {Path(peer).name} {t} thread(s): infer {rec['infer_ms_median']:.1f} ms")
        log("decoder vs number of people")
        scaling = decoder_scaling(people=people) if people else []
        onnx = None
        if onnx_variant:
            from .onnx_route import compare_routes
            log(f"ONNX route for LitePose-{onnx_variant}")
            onnx = compare_routes(onnx_variant, checkpoint=ckpt_by_variant.get(onnx_variant), runs=runs, input_hw=override_hw,
                                  calib_images=calib_images, calib_count=calib_count, log=log)
    finally:
        if workdir_ctx is not None:
            workdir_ctx.cleanup()

    report = {
        "format": FORMAT,
        "command": command,
        "git_commit": commit,
        "machine": _machine(),
        "weights_note": ("latency, size and memory do not depend on the weights. decode_ms decodes the model's "
                         "outputs for one synthetic frame, where few or no people are found (decoded_people), so "
                         "it is a lower bound; decoder_vs_people gives the cost on maps with known people counts"),
        "timing": {"runs": runs, "warmup": 2, "statistic": "median and 90th percentile of per-run wall time",
                   "pre": f"letterbox of a {FRAME_HW[0]}x{FRAME_HW[1]} (HxW) uint8 frame + input quantisation",
                   "infer": "LiteRT default delegate (XNNPACK), signature call incl. reading and dequantising outputs; "
                            "peers: interpreter.invoke() only",
                   "decode": "python_ref.decoder.decode_fast on the model's own outputs",
                   "peak_rss": "VmHWM of a fresh worker process (no TensorFlow) that loads and runs only this model"},
        "models": models_meta,
        "records": records,
        "ratios": headline_ratios(records, models_meta),
        "decoder_vs_people": scaling,
        "onnx_route": onnx,
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }
    with atomic_path(json_out) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2) + "\n")
    if markdown_out:
        with atomic_path(markdown_out) as tmp:
            Path(tmp).write_text(markdown_report(report))
    if plot_out:
        plot_accuracy_vs_latency(report, plot_out)
    log(f"wrote {json_out}" + (f", {markdown_out}" if markdown_out else "") + (f", {plot_out}" if plot_out else "")
        + f" in {report['elapsed_s']:.0f} s")
    return report


def _record(label, precision, threads, hw, size, weights, cost, res, *, kind, graph, calibration=None) -> dict:
    return {
        "model": label, "kind": kind, "precision": precision, "threads": int(threads),
        "input_size": f"{hw[0]}x{hw[1]}" if hw else None, "size_bytes": int(size),
        "infer_ms_median": res.get("infer_ms_median"), "infer_ms_p90": res.get("infer_ms_p90"),
        "infer_ms_min": res.get("infer_ms_min"),
        "pre_ms_median": res.get("pre_ms_median"), "pre_ms_p90": res.get("pre_ms_p90"),
        "decode_ms_median": res.get("decode_ms_median"), "decode_ms_p90": res.get("decode_ms_p90"),
        "decoded_people": res.get("decoded_people"),
        "peak_rss_mb": res.get("peak_rss_mb"), "rss_before_load_mb": res.get("rss_before_load_mb"),
        "error": res.get("error"),
        "weights": weights,
        "params": cost.params if cost else None,
        "macs_paper_convention": cost.macs_paper_convention if cost else None,
        "macs_correct": cost.macs_correct if cost else None,
        "graph": graph, "calibration": calibration,
    }


def headline_ratios(records: list[dict], models: dict) -> list[dict]:
    """The paper's comparisons next to ours: MAC ratios (both conventions) and measured latency ratios."""
    out = []
    for ours, ref, kind, paper_text in HEADLINE_RATIOS:
        if ours not in models or ref not in models:
            continue
        po, pr = PAPER[ours], PAPER[ref]
        row = {"ours": ours, "reference": ref, "paper_claim": paper_text,
               "paper_macs_ratio": round(pr["macs_g"] / po["macs_g"], 2),
               "paper_latency_ratio": {k: round(pr[k] / po[k], 2) for k in ("nano", "mobile", "pi")},
               "macs_ratio_paper_convention": models[ref]["macs_paper_convention"] / models[ours]["macs_paper_convention"],
               "macs_ratio_correct": models[ref]["macs_correct"] / models[ours]["macs_correct"],
               "latency_ratio": {}}
        for r in records:
            if r["model"] != ours:
                continue
            match = [x for x in records if x["model"] == ref and x["precision"] == r["precision"]
                     and x["threads"] == r["threads"] and x["infer_ms_median"] is not None]
            if match and r["infer_ms_median"] is not None:
                row["latency_ratio"][f"{r['precision']}/{r['threads']}t"] = match[0]["infer_ms_median"] / r["infer_ms_median"]
        out.append(row)
    return out


# ------------------------------------------------------------------------------------------------
# Reports
# ------------------------------------------------------------------------------------------------
def _f(v, fmt="{:.1f}"):
    return "–" if v is None else fmt.format(v)


def markdown_report(report: dict) -> str:
    m = report["machine"]
    lines = ["# LitePose Edge benchmark", "",
             f"Command: `{report.get('command') or 'litepose bench ...'}`  ",
             f"Commit: `{report.get('git_commit')}`; machine: {m.get('cpu', '?')}, {m.get('cpu_count')} cores; "
             f"ai-edge-litert {m.get('ai-edge-litert')}, tensorflow {m.get('tensorflow')}; CPU features "
             f"{', '.join(m.get('cpu_features') or []) or '?'}.  ",
             f"Timing: {report['timing']['runs']} runs after {report['timing']['warmup']} warm-up runs; "
             f"pre = {report['timing']['pre']}; infer = {report['timing']['infer']}; "
             f"decode = {report['timing']['decode']}; peak RSS = {report['timing']['peak_rss']}.  ",
             f"Weights: {report['weights_note']}.", "",
             "## Latency, size, memory", "",
             "| model | input | weights | precision | threads | size MB | pre ms | infer ms (median / p90) | "
             "decode ms | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["records"]:
        lines.append(f"| {r['model']} | {r['input_size'] or '–'} | {r['weights']} | {r['precision']} | {r['threads']} | "
                     f"{r['size_bytes'] / 1e6:.2f} | {_f(r['pre_ms_median'], '{:.2f}')} | "
                     f"{_f(r['infer_ms_median'])} / {_f(r['infer_ms_p90'])} | {_f(r['decode_ms_median'])} | "
                     f"{_f(r['peak_rss_mb'], '{:.0f}')} |" + (f" failed: {r['error']}" if r.get("error") else ""))
    lines += ["", "## Cost: ours vs the paper", "",
              "MACs in two conventions (spec §2.6): *paper* = ptflops 0.6.x, transposed convolutions counted at "
              "their output resolution (the paper's numbers); *correct* = counted at their input resolution.", "",
              "| model | input | params (ours / paper) | MACs paper conv. (ours / paper) | MACs correct | paper AP |",
              "|---|---|---|---|---|---|"]
    for label, meta in report["models"].items():
        p = meta.get("paper") or {}
        lines.append(f"| {label} | {meta['input_size']} | {meta['params'] / 1e6:.2f} M / {_f(p.get('params_m'))} M | "
                     f"{meta['macs_paper_convention'] / 1e9:.2f} G / {_f(p.get('macs_g'))} G | "
                     f"{meta['macs_correct'] / 1e9:.2f} G | {_f(p.get('ap'))} |")
    if report["ratios"]:
        lines += ["", "## The paper's ratios vs ours", "",
                  "| ours vs reference | paper claim | paper MACs ratio | our MACs ratio (paper conv. / correct) | "
                  "paper latency ratio (Nano / Snapdragon / Pi) | our measured latency ratio (precision/threads) |",
                  "|---|---|---|---|---|---|"]
        for r in report["ratios"]:
            pl = r["paper_latency_ratio"]
            ours_lat = ", ".join(f"{k}: {v:.2f}x" for k, v in r["latency_ratio"].items()) or "–"
            lines.append(f"| {r['ours']} vs {r['reference']} | {r['paper_claim']} | {r['paper_macs_ratio']:.2f}x | "
                         f"{r['macs_ratio_paper_convention']:.2f}x / {r['macs_ratio_correct']:.2f}x | "
                         f"{pl['nano']:.1f}x / {pl['mobile']:.1f}x / {pl['pi']:.1f}x | {ours_lat} |")
    if report["decoder_vs_people"]:
        lines += ["", "## Fast decoder vs number of people", "",
                  "| people on the maps | decoded | maps | median ms | p90 ms |", "|---|---|---|---|---|"]
        for r in report["decoder_vs_people"]:
            lines.append(f"| {r['people']} | {r['decoded_people']} | {r['input_size']} | "
                         f"{r['decode_ms_median']:.2f} | {r['decode_ms_p90']:.2f} |")
    if report.get("onnx_route"):
        from .onnx_route import markdown_section
        lines += ["", markdown_section(report["onnx_route"])]
    defs = [(k, v["definition"]) for k, v in report["models"].items() if v.get("definition")]
    if defs:
        lines += ["", "## Baseline definitions", ""] + [f"* **{k}**: {d}" for k, d in defs]
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_latency(report: dict, out: str) -> None:
    """Paper AP (CrowdPose test) against measured latency at the fewest threads, as a PNG."""
    import matplotlib.pyplot as plt

    fig = accuracy_vs_latency_figure(report)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def accuracy_vs_latency_figure(report: dict):
    """One colour per precision, LitePose variants joined by a line, baselines as open markers; each model named
    once, at its fastest point (a label per point piled names on top of each other)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(7.5, 5))
    threads = min((r["threads"] for r in report["records"]), default=1)
    markers = {"fp32": "o", "fp16": "s", "dynamic": "^", "int8": "D", "int8-blocked": "X"}
    plotted = [(r, (PAPER.get(r["model"]) or {}).get("ap")) for r in report["records"]
               if r["threads"] == threads and r["infer_ms_median"] is not None]
    fastest: dict[str, tuple[float, float, bool]] = {}
    for i, precision in enumerate(sorted({r["precision"] for r in report["records"] if r["kind"] != "peer"})):
        colour = f"C{i}"
        for litepose, kind in ((True, "litepose"), (False, "baseline")):
            pts = sorted((r["infer_ms_median"], ap, r["model"]) for r, ap in plotted
                         if ap and r["kind"] == kind and r["precision"] == precision)
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="-" if litepose else "none", color=colour,
                    marker=markers.get(precision, "x"), markerfacecolor=colour if litepose else "none",
                    label=f"{'LitePose' if litepose else 'baselines'} {precision}")
            for x, y, name in pts:
                if name not in fastest or x < fastest[name][0]:
                    fastest[name] = (x, y, litepose)
    for name, (x, y, litepose) in fastest.items():   # LitePose left of its line, baselines right of their marker
        ax.annotate(name.replace("litepose-", "LitePose-"), (x, y), textcoords="offset points",
                    xytext=(-6, 4) if litepose else (6, -3), ha="right" if litepose else "left", fontsize=7)
    ax.set_xscale("log")
    ax.margins(x=0.12)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))     # 100 rather than 10^2
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "235" else ""))
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"measured inference latency, ms ({threads} thread{'s' if threads > 1 else ''}, log scale)")
    ax.set_ylabel("CrowdPose test AP (paper)")
    ax.set_title("Accuracy (published) vs latency (measured here)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    return fig


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(t) for t in _parse_list(text)]
    except ValueError:
        raise LitePoseError(f"--{what} {text}: expected comma-separated integers, e.g. 1,2") from None


@click.command("bench")
@click.option("--variants", default="XS,S,M,L", show_default=True, help="LitePose variants (comma-separated); '' for none.")
@click.option("--precisions", default="fp32,fp16,int8", show_default=True,
              help="fp32, fp16, dynamic, int8, int8-blocked (int8 built with --depthwise-form blocked).")
@click.option("--threads", default="1", show_default=True, callback=thread_counts, help="LiteRT thread counts, e.g. 1,2.")
@click.option("--peer", "peers", multiple=True, help="An external .tflite model (inference latency only); repeatable.")
@click.option("--baselines", default="", help="Any of higherhrnet-w16, higherhrnet-w24, efficienthrnet-h1, "
              "efficienthrnet-h3 (comma-separated), or 'all'.")
@click.option("--checkpoint", "checkpoints", multiple=True,
              help="Official checkpoint(s); the matching variant uses its weights (default: random weights).")
@click.option("--json", "json_out", required=True, help="Output JSON report (one record per model/precision/threads).")
@click.option("--markdown", "markdown_out", default=None, help="Also write a markdown report.")
@click.option("--plot", "plot_out", default=None, help="Also write a PNG plot: paper AP vs measured latency.")
@click.option("--runs", type=click.IntRange(1, 10000), default=10, show_default=True, help="Timed runs per model.")
@click.option("--calib-images", default=None, help="Image folder for int8 calibration (default: synthetic images).")
@click.option("--calib-count", type=click.IntRange(1, 10000), default=8, show_default=True)
@click.option("--input-size", default=None, help="HxW for every LitePose variant and baseline (default: paper sizes).")
@click.option("--people", default="1,5,10,20,30", show_default=True,
              help="People counts for the decoder-vs-people table ('' to skip).")
@click.option("--onnx-route", "onnx_variant", default=None, type=click.Choice(list(LITEPOSE_VARIANTS)),
              help="Also compare the ONNX -> onnx2tf route with the native route for this variant.")
@click.option("--keep-models", default=None, help="Keep the converted .tflite files in this folder.")
@click.option("--graph", type=click.Choice(["deploy", "plain"]), default="deploy", show_default=True,
              help="LitePose graph to convert, as `litepose convert --graph`.")
def bench_command(variants, precisions, threads, peers, baselines, checkpoints, json_out, markdown_out, plot_out,
                  runs, calib_images, calib_count, input_size, people, onnx_variant, keep_models, graph):
    """Benchmark LitePose variants, paper baselines and peer .tflite models (latency, size, memory, MACs)."""
    from .baselines import BASELINE_NAMES

    base = list(BASELINE_NAMES) if baselines.strip() == "all" else _parse_list(baselines)
    run_bench(variants=_parse_list(variants), precisions=_parse_list(precisions), threads=list(threads),
              peers=list(peers), baselines=base, checkpoints=list(checkpoints), json_out=json_out,
              markdown_out=markdown_out, plot_out=plot_out, runs=runs, calib_images=calib_images,
              calib_count=calib_count, input_size=input_size, people=_ints(people, "people"),
              onnx_variant=onnx_variant, keep_models=keep_models, graph=graph,
              command=shlex.join(["litepose", *sys.argv[1:]]) if sys.argv and "bench" in sys.argv else None)


def _main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--worker":
        print(json.dumps(measure_model(json.loads(argv[1]))))
        return 0
    print("usage: python -m converter.bench --worker SPEC_JSON (internal; use `litepose bench`)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
