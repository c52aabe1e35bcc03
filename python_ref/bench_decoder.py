"""Decoder benchmark (`litepose bench-decoder`): speed of both decoders, and the fast mode's accuracy cost.

Speed: the fast decoder on synthetic LitePose-M-shaped outputs (448x448 input, J = 14) with
1..30 well-separated Gaussian people of distinct tags; with `--fixture` (a shared/fixtures/decode
npz) also the official decoder, without and with flip, on those real outputs. Times are wall-clock
per decode, one thread (the decoders are single-threaded numpy/SciPy/OpenCV; OpenCV is pinned to 1).

Accuracy (`--accuracy-dir`, a folder of decode fixtures): fast mode (no flip) against the official
results stored in each fixture, in original-image pixels, for nms_kernel 3 and 5; with `--data-dir`
also keypoint AP on the annotated shared images (CrowdPose; COCO and AI Challenger through the
14-joint maps). Nothing here is a test: it measures and writes JSON.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

import click
import numpy as np

from .decoder import FastDecoderParams, OfficialDecoderParams, decode_fast, decode_official, linear_sum_assignment
from .errors import LitePoseError
from .io_utils import atomic_path, check_distinct, check_output_location, check_stdout
from .keypoints import CROWDPOSE_JOINTS, dataset_for_joints

PEOPLE_COUNTS = (1, 5, 10, 20, 30)
# Normalised (x, y) of the 14 CrowdPose joints inside a person's box (a standing person, facing us).
_TEMPLATE_14 = np.array([
    (0.68, 0.25), (0.32, 0.25), (0.78, 0.42), (0.22, 0.42), (0.82, 0.58), (0.18, 0.58),
    (0.60, 0.58), (0.40, 0.58), (0.62, 0.78), (0.38, 0.78), (0.63, 0.96), (0.37, 0.96),
    (0.50, 0.04), (0.50, 0.16)])


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Synthetic outputs with known content
# ----------------------------------------------------------------------------------------------
def synthetic_outputs(num_people: int, input_hw=(448, 448), num_joints: int = 14, seed: int = 0,
                      sigma: float = 4.0, tag_spacing: float = 3.0):
    """Network-shaped outputs of `num_people` separated people, and their true joints.

    People sit in a grid of boxes; joint j of person p is a Gaussian (sigma in input pixels, peak 1)
    at the template position (+ jitter) in both heatmaps; tags_s4 holds the person's tag
    `p * tag_spacing` around each of its joints (nearest-joint regions). Returns (outputs dict of
    float32 HWC maps, truth (P, J, 2) float32 x, y in input pixels, corner convention).
    """
    rng = np.random.default_rng(seed)
    height, width = input_hw
    rows = max(1, int(np.floor(np.sqrt(num_people * height / width))))
    cols = int(np.ceil(num_people / rows)) if num_people else 1
    cell_w, cell_h = width / cols, height / rows
    template = _TEMPLATE_14 if num_joints == 14 else rng.uniform(0.1, 0.9, (num_joints, 2))
    truth = np.zeros((num_people, num_joints, 2), np.float32)
    for p in range(num_people):
        r, c = divmod(p, cols)
        box = np.array([c * cell_w + 0.15 * cell_w, r * cell_h + 0.05 * cell_h])
        size = np.array([0.7 * cell_w, 0.9 * cell_h])
        truth[p] = box + template * size + rng.uniform(-0.02, 0.02, (num_joints, 2)) * size
    tags = np.arange(num_people, dtype=np.float32) * tag_spacing

    def render(stride: int):
        h, w = height // stride, width // stride
        centres = (np.arange(h) + 0.5) * stride, (np.arange(w) + 0.5) * stride   # pixel centres, input px
        heat = np.zeros((h, w, num_joints), np.float32)
        tag = np.zeros((h, w, num_joints), np.float32)
        if not num_people:
            return heat, tag
        for j in range(num_joints):
            dy = centres[0][None, :, None] - truth[:, j, 1][:, None, None]               # (P, h, 1)
            dx = centres[1][None, None, :] - truth[:, j, 0][:, None, None]               # (P, 1, w)
            d2 = dy * dy + dx * dx                                                        # (P, h, w)
            nearest = np.argmin(d2, axis=0)
            heat[:, :, j] = np.exp(-np.min(d2, axis=0) / (2 * sigma * sigma))
            tag[:, :, j] = tags[nearest]
        heat[heat < 1e-6] = 0        # no subnormal tails (they slow float ops ~100x, real maps have none)
        return heat, tag

    hm4, tg4 = render(4)
    hm2, _ = render(2)
    return {"heatmaps_s4": hm4, "tags_s4": tg4, "heatmaps_s2": hm2}, truth


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------
def _time(fn, repeat: int) -> dict:
    fn()  # warm-up (allocator, caches)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return _stats(times)


def _stats(times_ms: list[float]) -> dict:
    t = np.array(times_ms)
    return {"median_ms": round(float(np.median(t)), 3), "min_ms": round(float(t.min()), 3),
            "p90_ms": round(float(np.percentile(t, 90)), 3), "repeat": len(times_ms)}


def _outputs_from_fixture(data, suffix: str = "") -> dict:
    """The stored official outputs (float16 -> float32) as the decoders' HWC dict."""
    out0 = np.asarray(data["out0" + suffix][0], np.float32)
    out1 = np.asarray(data["out1" + suffix][0], np.float32)
    j = out1.shape[0]
    return {"heatmaps_s4": np.ascontiguousarray(out0[:j].transpose(1, 2, 0)),
            "tags_s4": np.ascontiguousarray(out0[j:].transpose(1, 2, 0)),
            "heatmaps_s2": np.ascontiguousarray(out1.transpose(1, 2, 0))}


FIXTURE_ARRAYS = ("out0", "out1", "out0_flip", "out1_flip")


ACCURACY_ARRAYS = FIXTURE_ARRAYS + ("noflip_final_poses", "noflip_scores", "flip_final_poses", "flip_scores",
                                    "image_file", "data_path")


def _load_fixture(path, needs: tuple[str, ...] = FIXTURE_ARRAYS, arrays: bool = True) -> dict:
    """The fixture's arrays; with `arrays=False` only their names are checked (nothing decompressed), so
    bad inputs fail before the timings without reading the files twice."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":      # an .npz is a zip archive
                raise LitePoseError(f"{path}: not a decode fixture (.npz archive of the official outputs)")
        with np.load(path) as data:
            missing = [k for k in needs if k not in data.files]
            found = {k: data[k] for k in data.files} if arrays and not missing else {}
    except (ValueError, EOFError, zipfile.BadZipFile):
        raise LitePoseError(f"{path}: not a decode fixture (a damaged .npz archive)") from None
    except OSError as exc:
        raise LitePoseError(f"{path}: cannot read the decode fixture ({exc.strerror or exc})") from None
    if missing:
        raise LitePoseError(f"{path}: not a decode fixture (no {', '.join(missing)} arrays)")
    return found


def _time_interleaved(fns: list, repeat: int, rounds: int = 5) -> list[dict]:
    """`_time` for several cases measured in turns, so that whichever runs first does not also pay for the
    process warming up (allocator, CPU clock): timed one after the other, the first case came out 1.5x slow."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    per_round = [repeat // rounds + (r < repeat % rounds) for r in range(rounds)]
    for count in per_round:
        for fn, t in zip(fns, times):
            for _ in range(count):
                t0 = time.perf_counter()
                fn()
                t.append((time.perf_counter() - t0) * 1e3)
    return [_stats(t) for t in times]


def bench_fast(repeat: int, people_counts=PEOPLE_COUNTS, input_hw=(448, 448), num_joints: int = 14) -> dict:
    cases = [synthetic_outputs(n, input_hw, num_joints, seed=n)[0] for n in people_counts]
    timings = _time_interleaved([lambda o=o: decode_fast(o) for o in cases], repeat)
    rows = []
    for n, outputs, timing in zip(people_counts, cases, timings):
        decoded = decode_fast(outputs)
        rows.append({"people": n, "decoded_people": int(np.count_nonzero(decoded.scores > 0.1)), **timing})
        _progress(f"fast decoder, {n:2d} people: median {rows[-1]['median_ms']:.2f} ms")
    return {"input_hw": list(input_hw), "num_joints": num_joints, "params": asdict(FastDecoderParams()),
            "target_median_ms_30_people": 5.0, "by_people": rows}


def bench_official_fixture(path, repeat: int) -> dict:
    data = _load_fixture(path)
    outputs = _outputs_from_fixture(data)
    num_joints = outputs["heatmaps_s4"].shape[2]
    flip_outputs = _outputs_from_fixture(data, "_flip")
    flip_index = dataset_for_joints(num_joints).flip_index
    h4, w4 = outputs["heatmaps_s4"].shape[:2]
    result = {"fixture": str(path), "input_hw": [4 * h4, 4 * w4], "num_joints": num_joints,
              "params": asdict(OfficialDecoderParams())}
    result["official_noflip"] = {**_time(lambda: decode_official(outputs), repeat), "target_ms": 43.0}
    _progress(f"official decoder, no flip: median {result['official_noflip']['median_ms']:.1f} ms")
    result["official_flip"] = {**_time(lambda: decode_official(outputs, flip_outputs, flip_index), repeat),
                               "target_ms": 94.0}
    _progress(f"official decoder, flip: median {result['official_flip']['median_ms']:.1f} ms")
    result["fast"] = _time(lambda: decode_fast(outputs), repeat)
    _progress(f"fast decoder on the same outputs: median {result['fast']['median_ms']:.2f} ms")
    return result


# ----------------------------------------------------------------------------------------------
# Accuracy of the fast mode against the official mode
# ----------------------------------------------------------------------------------------------
def _to_image(poses: np.ndarray, data: dict) -> np.ndarray:
    """Input pixels -> original pixels with the fixture's official affine (spec 5.8)."""
    from .preprocess import OfficialTransform

    w_in, h_in = (int(v) for v in data["base_size"])
    transform = OfficialTransform((int(data["image_height"]), int(data["image_width"])), (h_in, w_in),
                                  np.asarray(data["center"]), np.asarray(data["scale"]))
    return transform.to_image(poses) if len(poses) else poses


def _agreement(test: np.ndarray, test_scores, ref: np.ndarray, ref_scores, min_score: float = 0.1) -> dict:
    """Match people (score > min_score) by mean joint distance (Hungarian); distances in pixels."""
    a, b = test[test_scores > min_score], ref[ref_scores > min_score]
    out = {"people_test": int(len(a)), "people_ref": int(len(b)), "matched": 0, "joint_dists": []}
    if not len(a) or not len(b):
        return out
    dist = np.linalg.norm(a[:, None, :, :2] - b[None, :, :, :2], axis=3)         # (A, B, J)
    rows, cols = linear_sum_assignment(dist.mean(axis=2))
    good = dist[rows, cols].mean(axis=1) < 50.0                                   # same person
    out["matched"] = int(good.sum())
    out["joint_dists"] = dist[rows[good], cols[good]].reshape(-1).tolist()
    return out


def _summary(dists: list, agreements: list) -> dict:
    d = np.array(dists) if dists else np.zeros(0)
    return {"people_test": sum(a["people_test"] for a in agreements),
            "people_ref": sum(a["people_ref"] for a in agreements),
            "matched": sum(a["matched"] for a in agreements),
            "mean_joint_dist_px": round(float(d.mean()), 3) if d.size else None,
            "median_joint_dist_px": round(float(np.median(d)), 3) if d.size else None,
            "joints_within_2px": round(float((d <= 2).mean()), 4) if d.size else None,
            "joints_within_5px": round(float((d <= 5).mean()), 4) if d.size else None}


def _ap(entries_by_set: dict, data_dir: Path) -> dict:
    """Keypoint AP per annotated set, from `litepose predict`-style entries."""
    from .evaluate import evaluate_keypoints, load_annotations, load_results

    report = {}
    for name, entries in sorted(entries_by_set.items()):
        ann_path = data_dir / name / "annotations.json"
        if not ann_path.is_file():
            continue
        annotations = load_annotations(ann_path)
        with tempfile.TemporaryDirectory() as tmp:
            res_path = Path(tmp) / "results.json"
            res_path.write_text(json.dumps(entries))
            metrics = evaluate_keypoints(annotations, load_results(res_path, annotations))
        report[name] = {k: metrics.get(k) for k in ("AP", "AP50", "AP75", "AR")} | {"num_people": metrics["num_people"]}
    return report


def compare_fast_to_official(decode_dir, data_dir=None, nms_kernels=(3, 5)) -> dict:
    """Fast (no flip) vs the official decodes stored in every real-weights fixture of `decode_dir`."""
    decode_dir = Path(decode_dir)
    files = sorted(p for p in decode_dir.glob("*.npz") if "random" not in p.name)
    if not files:
        raise LitePoseError(f"{decode_dir}: no decode fixtures (*.npz)")
    variants = {"official_noflip": None, "official_flip": None} | {f"fast_nms{k}": k for k in nms_kernels}
    entries = {v: {} for v in variants}
    agree = {f"fast_nms{k} vs {ref}": [] for k in nms_kernels for ref in ("official_noflip", "official_flip")}
    agree["official_noflip vs official_flip"] = []
    for path in files:
        data = _load_fixture(path, ACCURACY_ARRAYS)
        outputs = _outputs_from_fixture(data)
        if outputs["heatmaps_s4"].shape[2] != len(CROWDPOSE_JOINTS):
            continue
        poses = {"official_noflip": (data["noflip_final_poses"], data["noflip_scores"]),
                 "official_flip": (data["flip_final_poses"], data["flip_scores"])}
        for k in nms_kernels:
            decoded = decode_fast(outputs, FastDecoderParams(nms_kernel=k))
            poses[f"fast_nms{k}"] = (_to_image(decoded.poses, data), decoded.scores)
        for key in agree:
            test, ref = key.split(" vs ")
            agree[key].append(_agreement(*poses[test], *poses[ref]))
        dataset = str(data["data_path"]).split("/")[-3]                      # shared/data/<set>/images/x
        for v in variants:
            entries[v].setdefault(dataset, []).extend(
                {"image": str(data["image_file"]), "keypoints": p.reshape(-1).astype(float).tolist(),
                 "score": float(s)} for p, s in zip(*poses[v]))
        _progress(f"accuracy: {path.name}")
    report = {"fixtures": [p.name for p in files],
              "agreement": {k: _summary([d for a in v for d in a["joint_dists"]], v) for k, v in agree.items()}}
    if data_dir is not None and Path(data_dir).is_dir():
        report["ap"] = {v: _ap(entries[v], Path(data_dir)) for v in variants}
    return report


# ----------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------
def run_decoder_benchmark(repeat: int = 30, fixture=None, accuracy_dir=None, data_dir=None,
                          people_counts=PEOPLE_COUNTS) -> dict:
    """All measurements as one JSON-able dict (see the module docstring)."""
    import cv2

    cv2.setNumThreads(1)
    if fixture is not None:      # bad inputs fail now, not after the timings
        _load_fixture(fixture, arrays=False)
    if accuracy_dir is not None:
        files = [p for p in sorted(Path(accuracy_dir).glob("*.npz")) if "random" not in p.name]
        if not files:
            raise LitePoseError(f"{accuracy_dir}: no real-weight decode fixtures (*.npz) in this folder")
        for path in files:
            _load_fixture(path, ACCURACY_ARRAYS, arrays=False)
    report = {
        "tool": "litepose bench-decoder",
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
                    "threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}},
        "fast_synthetic": bench_fast(repeat, people_counts),
    }
    if fixture is not None:
        report["official_fixture"] = bench_official_fixture(fixture, repeat)
    if accuracy_dir is not None:
        report["fast_vs_official"] = compare_fast_to_official(accuracy_dir, data_dir)
    return report


@click.command("bench-decoder")
@click.option("--json", "json_path", required=True, metavar="OUT.json",
              help="Write the measurements here ('-': standard output).")
@click.option("--repeat", type=click.IntRange(1, 10000), default=30, show_default=True, help="Timed runs per case.")
@click.option("--fixture", type=click.Path(exists=True, dir_okay=False), default=None, metavar="DECODE.npz",
              help="A shared/fixtures/decode npz: also time the official decoder (no flip, flip) on it.")
@click.option("--accuracy-dir", type=click.Path(exists=True, file_okay=False), default=None, metavar="DIR",
              help="Folder of decode fixtures: fast vs official agreement (original pixels).")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False), default=None, metavar="DIR",
              help="shared/data: with --accuracy-dir also keypoint AP on the annotated images.")
def bench_decoder_command(json_path, repeat, fixture, accuracy_dir, data_dir):
    """Decoder speed (fast mode vs people count; official mode on a fixture) and fast-mode accuracy, as JSON.

    Run on one core for the documented numbers: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1.
    """
    if data_dir is not None and accuracy_dir is None:
        raise click.UsageError("--data-dir applies with --accuracy-dir only (the AP is of the accuracy fixtures)")
    if json_path == "-":
        check_stdout("--json -")
    else:
        check_output_location(json_path, json_path)
        fixtures = {"--fixture": fixture, **{f"fixture {p.name}": p for d in (accuracy_dir, data_dir) if d
                                             for p in Path(d).iterdir() if p.is_file()}}
        check_distinct({"--json output": json_path}, fixtures)
    if data_dir is not None and not any(Path(data_dir).glob("*/annotations.json")):
        raise LitePoseError(f"{data_dir}: no <set>/annotations.json in this folder (--data-dir wants shared/data)")
    report = run_decoder_benchmark(repeat, fixture, accuracy_dir, data_dir)
    text = json.dumps(report, indent=1) + "\n"
    if json_path == "-":                 # as predict and evaluate: standard output
        click.echo(text, nl=False)
        return
    with atomic_path(json_path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    _progress(f"wrote {json_path}")
