"""Decoders: official mode against the official pipeline's stored results (every stage), fast mode
against hand-computed and synthetic cases and its written spec, and both against garbage inputs.

The fixtures (shared/fixtures/decode, README there) hold the official outputs (float16) and the
official decode of exactly those arrays: final poses, scores and every intermediate.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from python_ref import decoder as dec
from python_ref.bench_decoder import _outputs_from_fixture, synthetic_outputs
from python_ref.errors import LitePoseError
from python_ref.keypoints import dataset_for_joints
from python_ref.preprocess import OfficialTransform

FIXTURE_NAMES = [
    "aic-054d9ce9201beffc76e5ff2169d2af2f027002ca", "aic-fa436c914fe4a8ec1ec5474af4d3820b84d17561",
    "aic-ff945ae2e729f24eea992814639d59b3bdec8bd8", "coco-000000000785", "coco-000000040083",
    "coco-000000196141", "coco-000000197388", "coco17-random-l-000000197388", "crowdpose-103319",
    "crowdpose-106848", "people-astronaut", "people-grace_hopper", "xs-random-crowdpose-106848",
]
CASES = [(name, setting) for name in FIXTURE_NAMES for setting in ("noflip", "flip")]


@pytest.fixture(scope="session")
def decode_dir(shared_dir) -> Path:
    return shared_dir / "fixtures" / "decode"


def test_fixture_list_is_complete(decode_dir):
    assert sorted(p.stem for p in decode_dir.glob("*.npz")) == sorted(FIXTURE_NAMES)


@pytest.fixture(scope="session")
def official_runs(decode_dir):
    """name, setting -> (fixture arrays, Decoded), decoded once per session (the two random-weight
    stress cases with hundreds of people take a few seconds)."""
    cache: dict = {}

    def get(name: str, setting: str):
        if (name, setting) not in cache:
            with np.load(decode_dir / f"{name}.npz") as f:
                data = {k: f[k] for k in f.files}
            outputs = _outputs_from_fixture(data)
            if setting == "flip":
                flip_index = dataset_for_joints(outputs["heatmaps_s4"].shape[2]).flip_index
                decoded = dec.decode_official(outputs, _outputs_from_fixture(data, "_flip"), flip_index)
            else:
                decoded = dec.decode_official(outputs)
            cache[name, setting] = (data, decoded)
        return cache[name, setting]

    return get


def _to_image(poses: np.ndarray, data: dict) -> np.ndarray:
    w_in, h_in = (int(v) for v in data["base_size"])
    transform = OfficialTransform((int(data["image_height"]), int(data["image_width"])), (h_in, w_in),
                                  np.asarray(data["center"]), np.asarray(data["scale"]))
    return transform.to_image(poses)


@pytest.mark.needs_shared
@pytest.mark.parametrize("name,setting", CASES)
def test_official_decode_matches_fixture(official_runs, name, setting):
    data, decoded = official_runs(name, setting)
    ref, ref_scores = data[f"{setting}_final_poses"], data[f"{setting}_scores"]
    assert decoded.poses.shape == ref.shape                           # the same people, same order
    assert decoded.poses.dtype == np.float32 and decoded.scores.shape == ref_scores.shape
    if len(ref):
        got = _to_image(decoded.poses, data)
        dist = np.linalg.norm(got[:, :, :2] - ref[:, :, :2], axis=2)
        assert dist.mean() <= 0.5 and dist.max() <= 0.5
        assert np.array_equal(got[:, :, 2], ref[:, :, 2])
        assert np.abs(decoded.scores - ref_scores).max() <= 1e-3


@pytest.mark.needs_shared
@pytest.mark.parametrize("name,setting", CASES)
def test_official_stages_match_fixture(official_runs, name, setting):
    data, decoded = official_runs(name, setting)
    topk = decoded.stages["topk"]
    val, loc, tag = data[f"{setting}_topk_val"], data[f"{setting}_topk_loc"], data[f"{setting}_topk_tag"]
    # Every entry in torch's order, the zero-valued pads (non-peaks tied at 0, in heap order) included.
    assert np.array_equal(topk.loc, loc)
    np.testing.assert_allclose(topk.val, val, rtol=0, atol=1e-6)
    np.testing.assert_allclose(topk.tag, tag, rtol=0, atol=1e-5)
    for stage in ("grouped", "adjusted", "refined"):
        ref = data[f"{setting}_{stage}"]
        assert decoded.stages[stage].shape == ref.shape, stage
        np.testing.assert_allclose(decoded.stages[stage], ref, rtol=0, atol=1e-5, err_msg=stage)


@pytest.mark.needs_shared
@pytest.mark.parametrize("name", ["crowdpose-103319", "crowdpose-106848", "xs-random-crowdpose-106848"])
@pytest.mark.parametrize("setting", ["noflip", "flip"])
def test_official_aggregated_maps_match_samples(official_runs, name, setting):
    data, decoded = official_runs(name, setting)
    maps = decoded.stages["maps"]
    yx = data["sample_yx"]
    num_joints = maps.det.shape[2]
    np.testing.assert_allclose(maps.det[yx[:, 0], yx[:, 1]], data[f"{setting}_det_sample"], rtol=0, atol=1e-6)
    n = len(yx)
    tags = maps.tags_at(np.repeat(yx[:, 0], num_joints), np.repeat(yx[:, 1], num_joints),
                        np.tile(np.arange(num_joints), n)).reshape(n, num_joints, -1)
    np.testing.assert_allclose(tags, data[f"{setting}_tags_sample"], rtol=0, atol=1e-5)
    # The lazily projected whole tag map of a joint agrees with the point evaluation.
    j = 3
    np.testing.assert_array_equal(maps.tag_map(j)[yx[:, 0], yx[:, 1]], tags[:, j])


@pytest.mark.needs_shared
def test_official_quirk_float_keys_merge_people(official_runs):
    """The random-weights stress case: many people, >30 take no part in matching, and new people
    whose float32 key tag[0] already exists land on the old person (reproduced on purpose)."""
    data, decoded = official_runs("coco17-random-l-000000197388", "flip")
    assert len(decoded.poses) == len(data["flip_final_poses"]) > 300
    params = dec.OfficialDecoderParams(matcher="scipy")
    scipy_grouped = dec.match_by_tag_official(decoded.stages["topk"], params, dataset_for_joints(17).joint_order)
    # SciPy's different tie-breaking changes the grouping here: Munkres' rules are needed for parity.
    assert scipy_grouped.shape != decoded.stages["grouped"].shape or \
        not np.array_equal(scipy_grouped, decoded.stages["grouped"])


# ---------------------------------------------------------------------------------------------
# Munkres port and the fast decoder's assignment rule
# ---------------------------------------------------------------------------------------------
# (cost, column per row from munkres 1.1.4 `Munkres().compute`, from scipy linear_sum_assignment):
# equal-cost optima where the two solvers choose differently (computed once with both libraries).
TIE_CASES = [
    ([[-0.5, 99.5, 1e10], [-0.5, -0.5, 1e10], [-0.5, 99.5, 1e10]], [2, 1, 0], [0, 1, 2]),
    ([[-0.25, 99.75, -0.25], [99.75, -0.25, 99.75], [99.5, -0.5, 99.5]], [2, 1, 0], [0, 1, 2]),
    ([[-0.25, 99.75, 99.75], [-0.5, 99.5, 99.5]], [0, 2], [0, 1]),
    ([[-0.5, -0.5, 1e10], [99.5, -0.5, 1e10], [-0.5, -0.5, 1e10]], [2, 1, 0], [0, 1, 2]),
    ([[99.5, -0.5, 1e10], [-0.9, 99.1, 1e10], [-0.7, -0.7, 1e10]], [2, 0, 1], [2, 0, 1]),
]


@pytest.mark.parametrize("cost,munkres_cols,scipy_cols", TIE_CASES)
def test_munkres_port_breaks_ties_like_munkres(cost, munkres_cols, scipy_cols):
    cost = np.array(cost)
    assert dec.munkres_assignment(cost).tolist() == munkres_cols
    assert linear_sum_assignment(cost)[1].tolist() == scipy_cols
    total = cost[np.arange(len(cost)), munkres_cols].sum()
    assert math.isclose(total, cost[np.arange(len(cost)), scipy_cols].sum())   # both optimal


def test_munkres_port_is_optimal_on_random_matrices():
    rng = np.random.default_rng(0)
    for _ in range(300):
        rows, cols = rng.integers(1, 9), rng.integers(1, 9)
        cost = np.round(np.abs(rng.normal(0, 1.5, (rows, 1)) - rng.normal(0, 1.5, (1, cols)))) * 100 \
            - rng.random((rows, 1)).astype(np.float32)
        if rows > cols:
            cost = np.concatenate([cost, np.full((rows, rows - cols), 1e10)], axis=1)
        got = dec.munkres_assignment(cost)
        assert len(set(got.tolist())) == len(got)
        r, c = linear_sum_assignment(cost)
        assert math.isclose(cost[np.arange(len(cost)), got].sum(), cost[r, c].sum(), rel_tol=1e-12)


def _spec_assignment(cost: np.ndarray) -> list[int]:
    """docs/fast-decoder.md step 5 "Assignment", transcribed line by line (what Kotlin implements)."""
    nr, nc = cost.shape
    u, v = [0.0] * nr, [0.0] * nc
    path, col4row, row4col = [-1] * nc, [-1] * nr, [-1] * nc
    for cur in range(nr):
        min_val, remaining = 0.0, [nc - 1 - k for k in range(nc)]
        sr, sc, spc = [False] * nr, [False] * nc, [math.inf] * nc
        i, sink = cur, -1
        while sink == -1:
            index, lowest = -1, math.inf
            sr[i] = True
            for it, j in enumerate(remaining):
                r = min_val + cost[i, j] - u[i] - v[j]
                if r < spc[j]:
                    path[j], spc[j] = i, r
                if spc[j] < lowest or (spc[j] == lowest and row4col[j] == -1):
                    lowest, index = spc[j], it
            min_val = lowest
            j = remaining[index]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            sc[j] = True
            remaining[index] = remaining[-1]
            remaining.pop()
        u[cur] += min_val
        for i in range(nr):
            if sr[i] and i != cur:
                u[i] += min_val - spc[col4row[i]]
        for j in range(nc):
            if sc[j]:
                v[j] -= min_val - spc[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            col4row[i], j = j, col4row[i]
            if i == cur:
                break
    return col4row


def test_fast_decoder_assignment_spec_equals_scipy():
    """The written rule is exactly what linear_sum_assignment does, ties included (guards SciPy updates)."""
    rng = np.random.default_rng(1)
    for t in range(600):
        rows, cols = rng.integers(1, 10), rng.integers(1, 10)
        if t % 3 == 0:
            cost = rng.integers(0, 3, (rows, cols)).astype(float)
        else:
            vals = rng.choice(np.array([0.3, 0.5, 0.7], np.float32), (rows, 1)) if t % 3 == 1 \
                else rng.random((rows, 1)).astype(np.float32)
            cost = np.round(np.abs(rng.normal(0, 1.2, (rows, 1)) - rng.normal(0, 1.2, (1, cols)))) * 100 - vals
        if rows > cols:
            cost = np.concatenate([cost, np.full((rows, rows - cols), 1e10)], axis=1)
        assert _spec_assignment(cost) == linear_sum_assignment(cost)[1].tolist()


# ---------------------------------------------------------------------------------------------
# Shared map operations
# ---------------------------------------------------------------------------------------------
def _upsample_rule(v: np.ndarray, fused: bool) -> np.ndarray:
    """The 1-D rule of the docstring / docs/fast-decoder.md, one output at a time."""
    n, out = len(v), []
    for o in range(2 * n):
        i = o // 2
        if o == 0:
            out.append(v[0])
        elif o % 2 == 0:
            out.append(np.float32(np.float32(0.25) * v[i - 1]) + np.float32(np.float32(0.75) * v[i]))
        elif fused:
            out.append(np.float32(0.75 * float(v[i]) + 0.25 * float(v[min(i + 1, n - 1)])))
        else:
            out.append(np.float32(np.float32(0.75) * v[i]) + np.float32(np.float32(0.25) * v[min(i + 1, n - 1)]))
    return np.array(out, np.float32)


@pytest.mark.parametrize("n,k,ones,expected", [
    # g++ 13 / libstdc++ std::partial_sort of (value, index) by value, as torch's CPU topk (64 k <= n)
    (256, 4, {3: .5, 17: .9, 40: .5, 41: .9, 90: .5, 200: .9, 255: .5}, [200, 41, 17, 40]),
    (640, 10, {**dict.fromkeys([5, 6, 7, 100, 300, 301, 500, 639], .7), 50: .8, 51: .8},
     [51, 50, 300, 500, 100, 7, 301, 639, 5, 6]),
])
def test_torch_topk_order_is_heap_order_for_ties(n, k, ones, expected):
    values = np.zeros(n, np.float32)
    values[list(ones)] = list(ones.values())
    assert dec.torch_topk_order(values, k).tolist() == expected


def test_top_k_of_zero_is_empty():
    det = np.random.default_rng(0).random((64, 64, 2)).astype(np.float32)
    topk = dec.top_k(det, dec.nms(det, 5), lambda ys, xs, js: np.zeros((len(ys), 1), np.float32), 0, 1)
    assert topk.val.shape == (2, 0) and topk.loc.shape == (2, 0, 2)


def test_torch_topk_order_selects_the_k_largest():
    rng = np.random.default_rng(3)
    for _ in range(50):
        values = (rng.integers(0, 6, int(rng.integers(64, 4000))) * 0.125).astype(np.float32)
        k = int(rng.integers(1, len(values) // 64 + 1))
        order = dec.torch_topk_order(values, k)
        assert len(set(order.tolist())) == k
        np.testing.assert_array_equal(values[order], np.sort(values)[::-1][:k])


@pytest.mark.parametrize("fused", [False, True])
def test_upsample_follows_the_rule_x_then_y(fused):
    rng = np.random.default_rng(2)
    a = (rng.normal(size=(5, 7, 3)) * 3).astype(np.float32)
    x_pass = np.stack([np.stack([_upsample_rule(a[r, :, c], fused) for c in range(3)], -1) for r in range(5)])
    expected = np.stack([np.stack([_upsample_rule(x_pass[:, col, c], fused) for c in range(3)], -1)
                         for col in range(14)], axis=1)
    got = dec.upsample2x(a, fused)
    assert got.shape == (10, 14, 3)
    np.testing.assert_array_equal(got, expected)
    ys, xs, js = rng.integers(0, 10, 50), rng.integers(0, 14, 50), rng.integers(0, 3, 50)
    np.testing.assert_array_equal(dec.upsample2x_at(a, ys, xs, js, fused), got[ys, xs, js])


def test_max_pool_and_nms_keep_plateaus_and_borders():
    det = np.zeros((6, 7, 2), np.float32) - 1
    det[0, 0, 0] = 5                     # corner peak
    det[3, 3, 0] = det[3, 4, 0] = 2      # plateau: both pixels survive
    det[:, :, 1] = np.arange(42, dtype=np.float32).reshape(6, 7)
    peaks = dec.nms(det, 3)
    assert {tuple(p) for p in np.argwhere(peaks[:, :, 0] & (det[:, :, 0] > 0))} == {(0, 0), (3, 3), (3, 4)}
    assert np.argwhere(peaks[:, :, 1]).tolist() == [[5, 6]]
    pooled = dec.max_pool(det, 5)
    assert pooled[2, 2, 0] == 5 and pooled[3, 3, 0] == 2 and pooled[2, 0, 0] == 5 and pooled[3, 0, 0] == -1 and pooled[3, 1, 0] == 2 and pooled[5, 0, 1] == 37
    assert pooled[0, 0, 1] == det[2, 2, 1] and pooled[5, 6, 1] == 41


# ---------------------------------------------------------------------------------------------
# Fast decoder
# ---------------------------------------------------------------------------------------------
def _blank(h4=4, w4=4, joints=2):
    return {"heatmaps_s4": np.zeros((h4, w4, joints), np.float32), "tags_s4": np.zeros((h4, w4, joints), np.float32),
            "heatmaps_s2": np.zeros((2 * h4, 2 * w4, joints), np.float32)}


def test_fast_decoder_hand_computed_case():
    """Two people on an 8x8 half-resolution grid, J = 2 (visiting order 0, 1), worked out by hand."""
    out = _blank(4, 4, 2)
    out["tags_s4"][:, 2:, :] = 5.0           # right half of the image: tag 5; left: 0
    hm2 = out["heatmaps_s2"]
    hm2[1, 1, 0], hm2[1, 2, 0] = 1.6, 0.4   # person A, joint 0 at cell (x=1, y=1); right neighbour higher
    hm2[6, 6, 0] = 1.2                      # person B, joint 0 at (6, 6)
    hm2[2, 1, 1] = 1.6                      # person A, joint 1 at (1, 2)
    hm2[5, 7, 1] = 1.0                      # person B, joint 1 at (7, 5) (right border)
    got = dec.decode_fast(out)
    # det = 0.5 * hm2 (heatmaps_s4 is 0). NMS 3x3 keeps (1,1) over its neighbour (1,2).
    # A: joint 0 x = 2*(1 + 0.5 + 0.25) = 3.5 (right > left), y = 2*(1 + 0.5 - 0.25) = 2.5 (tie -> -0.25).
    # B: joint 1 at the right border: right neighbour clamps to itself (0.5 > 0 on the left? no: left 0,
    #    right = itself 0.5 -> +0.25): x = 2*(7.75) = 15.5.
    expected = np.array([[[3.5, 2.5, 0.8], [2.5, 4.5, 0.8]],
                         [[12.5, 12.5, 0.6], [15.5, 10.5, 0.5]]], np.float32)
    np.testing.assert_allclose(got.poses, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.scores, [0.8, 0.55], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got.tags[:, :, 0], [[0, 0], [5, 5]])


def test_fast_decoder_equal_values_keep_flat_index_order_and_threshold_is_strict():
    out = _blank(4, 4, 1)
    hm2 = out["heatmaps_s2"]
    for x, y in [(6, 1), (1, 6), (3, 3)]:
        hm2[y, x, 0] = 1.0                   # three equal peaks (det 0.5)
    hm2[6, 6, 0] = np.float32(0.2)          # det = float32(0.1) > 0.1 in float64: a candidate
    out["tags_s4"][:, :, 0] = np.arange(16, dtype=np.float32).reshape(4, 4) * 10   # far-apart tags
    got = dec.decode_fast(out)
    # Candidates in order: value desc, then flat index y*8+x asc: (6,1)=14, (3,3)=27, (1,6)=49, then 0.1.
    # Isolated peaks: both neighbour comparisons tie -> -0.25 -> X = 2 * (x + 0.25).
    assert got.poses[:, 0, :2].tolist() == [[12.5, 2.5], [6.5, 6.5], [2.5, 12.5], [12.5, 12.5]]
    params = dec.FastDecoderParams(detection_threshold=float(np.float32(0.1)))
    assert len(dec.decode_fast(out, params)) == 3   # value == threshold is not a candidate


@pytest.mark.parametrize("people", [1, 5, 30])
@pytest.mark.parametrize("mode", ["fast", "official"])
def test_decoders_recover_synthetic_people(people, mode):
    outputs, truth = synthetic_outputs(people, (448, 448), 14, seed=people)
    got = dec.decode_fast(outputs) if mode == "fast" else dec.decode_official(outputs)
    kept = got.poses[got.scores > 0.5]
    assert len(kept) == people
    order = np.argmin(np.linalg.norm(kept[:, None, :, :2] - truth[None], axis=3).mean(axis=2), axis=1)
    assert sorted(order.tolist()) == list(range(people))
    err = np.linalg.norm(kept[:, :, :2] - truth[order], axis=2)
    assert err.max() <= (1.0 if mode == "fast" else 0.5)
    assert np.all(kept[:, :, 2] > 0.75)       # Gaussian peaks of 1, sampled off-centre


def test_fast_decoder_refine_fills_a_missing_joint_from_its_peaks():
    outputs, truth = synthetic_outputs(2, (448, 448), 14, seed=3)
    hm2, hm4 = outputs["heatmaps_s2"], outputs["heatmaps_s4"]
    hm2[:, :, 5] *= 0.08                     # joint 5 (right wrist) below the detection threshold
    hm4[:, :, 5] *= 0.08
    got = dec.decode_fast(outputs)
    assert len(got) == 2 and got.stages["refined_mask"][:, 5].all()
    assert np.all((got.poses[:, 5, 2] > 0) & (got.poses[:, 5, 2] < 0.1))
    err = np.linalg.norm(got.poses[:, 5, :2][:, None] - truth[None, :, 5], axis=2).min(axis=1)
    assert err.max() <= 1.0                  # right person's own wrist, not the other's
    others = np.delete(got.poses[:, :, 2], 5, axis=1).astype(np.float64)
    np.testing.assert_allclose(got.scores, others.sum(axis=1) / 14, rtol=1e-6)   # refined joints do not score


# ---------------------------------------------------------------------------------------------
# Robustness: any input, no crash, no hang, sensible output
# ---------------------------------------------------------------------------------------------
def _both(outputs):
    return [dec.decode_fast(outputs), dec.decode_official(outputs),
            dec.decode_official(outputs, outputs, tuple(range(outputs["heatmaps_s4"].shape[2])))]


def _sane(decoded, joints):
    assert decoded.poses.ndim == 3 and decoded.poses.shape[1:] == (joints, 3)
    assert np.isfinite(decoded.poses).all() and np.isfinite(decoded.scores).all()
    assert len(decoded.scores) == len(decoded.poses)


@pytest.mark.parametrize("h4,w4,joints", [(0, 0, 14), (0, 8, 14), (8, 8, 0)])
def test_empty_maps(h4, w4, joints):
    for decoded in _both(_blank(h4, w4, joints)):
        assert len(decoded) == 0
        _sane(decoded, joints)


def test_no_people_and_flat_maps():
    for decoded in _both(_blank(16, 16, 14)):
        assert len(decoded) == 0
    flat = _blank(16, 16, 14)
    for k in flat:
        flat[k][:] = 0.5
    for decoded in _both(flat):             # every pixel is a plateau peak: top_k by flat index
        _sane(decoded, 14)
        assert 1 <= len(decoded) <= 14 * 30


def test_nan_and_inf_are_treated_as_zero():
    outputs, _ = synthetic_outputs(3, (128, 128), 14, seed=1)
    dirty = {k: v.copy() for k, v in outputs.items()}
    rng = np.random.default_rng(0)
    for v in dirty.values():
        idx = rng.integers(0, v.size, 40)
        v.reshape(-1)[idx[:20]] = np.nan
        v.reshape(-1)[idx[20:30]] = np.inf
        v.reshape(-1)[idx[30:]] = -np.inf
    for decoded in _both(dirty):
        _sane(decoded, 14)
    garbage = {k: np.full_like(v, np.nan) for k, v in outputs.items()}
    for decoded in _both(garbage):
        assert len(decoded) == 0
    huge = {k: np.full_like(v, 3e38) * np.sign(rng.normal(size=v.shape)).astype(np.float32)
            for k, v in outputs.items()}
    for decoded in _both(huge):             # clamped to +-1e6: no overflow, finite output
        _sane(decoded, 14)


def test_noise_with_hundreds_of_peaks_and_100_people_finish():
    rng = np.random.default_rng(0)
    noise = {k: rng.random((64, 64, 14) if k != "heatmaps_s2" else (128, 128, 14), np.float32)
             for k in dec.OUTPUT_NAMES}
    noise["tags_s4"] *= 20
    t0 = time.perf_counter()
    for decoded in _both(noise):
        _sane(decoded, 14)
        assert len(decoded) <= 14 * 30
    crowd, _ = synthetic_outputs(100, (448, 448), 14, seed=0)
    fast = dec.decode_fast(crowd)
    _sane(fast, 14)
    assert 30 <= len(fast) <= 14 * 30       # only 30 candidates per joint, only 30 persons match
    _sane(dec.decode_official(crowd), 14)
    assert time.perf_counter() - t0 < 120    # generous: a hang guard, not a benchmark


def test_bad_shapes_and_params_are_user_errors():
    good = _blank(4, 4, 14)
    with pytest.raises(LitePoseError, match="missing output 'tags_s4'"):
        dec.decode_fast({"heatmaps_s4": good["heatmaps_s4"], "heatmaps_s2": good["heatmaps_s2"]})
    with pytest.raises(LitePoseError, match="do not fit"):
        dec.decode_fast({**good, "heatmaps_s2": np.zeros((4, 4, 14), np.float32)})
    with pytest.raises(LitePoseError, match="flip_index"):
        dec.decode_official(good, good)
    with pytest.raises(LitePoseError, match="not a permutation"):
        dec.decode_official(good, good, (0,) * 14)
    with pytest.raises(LitePoseError, match="nms_kernel 4"):
        dec.decode_fast(good, dec.FastDecoderParams(nms_kernel=4))


def test_decoder_cases_are_timed_in_turns_with_every_run_counted():
    """bench-decoder times its people counts in rounds, after one warm-up call each: the first case must not
    pay alone for the process warming up (it came out 1.5x slow), and each gets exactly `repeat` runs."""
    from python_ref.bench_decoder import _time_interleaved

    calls = []
    rows = _time_interleaved([lambda: calls.append("a"), lambda: calls.append("b")], repeat=7, rounds=3)
    assert calls[:2] == ["a", "b"]                                      # warm-ups
    assert "".join(calls[2:]) == "aaabbb" + "aabb" + "aabb"             # 7 runs in 3 turns: 3 + 2 + 2
    assert [r["repeat"] for r in rows] == [7, 7] and all(r["min_ms"] <= r["median_ms"] <= r["p90_ms"] for r in rows)
