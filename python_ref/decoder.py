"""Bottom-up pose decoders for LitePose outputs: official-parity mode and the fast (on-device) mode.

Both turn the three network outputs into people, following the associative-embedding parser of
HigherHRNet/LitePose stage by stage: aggregate -> nms -> top_k -> match_by_tag -> adjust -> score
-> refine. Pure vectorised numpy (+ SciPy's assignment solver for the fast mode).

Conventions (docs/design.md): points are (x, y), arrays are indexed [y, x] (maps are HWC: [y, x, j]).
Poses are returned as float32 (P, J, 3) = (x, y, val) in model-input pixels, corner convention
(input pixel (u, v) covers [u, u+1) x [v, v+1)); mapping back to the original image is
`python_ref.preprocess`'s job.

* `decode_official`: the official `valid.py` pipeline (spec section 5), same steps, order, defaults
  and float32/float64 arithmetic, including the quirks (torch's top-k order for equal peaks on maps of
  at least 64 x top_k pixels, float person keys, Munkres tie-breaking, half-to-even rounding, the COCO
  joint order reused for CrowdPose, score before refine). Matches every case of shared/fixtures/decode, top-k indices included.
* `decode_fast`: the algorithm of docs/fast-decoder.md, which the Kotlin decoder implements too.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from .errors import LitePoseError
from .keypoints import joint_order_for

F32 = np.float32
OUTPUT_NAMES = ("heatmaps_s4", "tags_s4", "heatmaps_s2")


def linear_sum_assignment(cost):
    """SciPy's Hungarian solver, imported on first use: importing scipy.optimize takes about a second, which
    every `litepose` command (even --help) paid at start."""
    from scipy.optimize import linear_sum_assignment as solve

    return solve(cost)


# ----------------------------------------------------------------------------------------------
# Parameters and results
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OfficialDecoderParams:
    """The effective TEST config of LitePose (spec 5.1). `top_k` is MAX_NUM_PEOPLE in the official
    code (HeatmapParser.top_k uses it); `matcher` "munkres" reproduces munkres 1.1.4's tie-breaking,
    "scipy" uses linear_sum_assignment (same optimum, ties may differ)."""
    detection_threshold: float = 0.1
    tag_threshold: float = 1.0
    top_k: int = 30
    max_num_people: int = 30
    nms_kernel: int = 5
    adjust: bool = True
    refine: bool = True
    matcher: str = "munkres"


@dataclass(frozen=True)
class FastDecoderParams:
    """docs/fast-decoder.md, table "Parameters" (Kotlin `DecoderParams`)."""
    detection_threshold: float = 0.1
    tag_threshold: float = 1.0
    top_k: int = 30
    max_num_people: int = 30
    nms_kernel: int = 5          # at half resolution; chosen by measurement (docs/fast-decoder.md)
    adjust: bool = True
    refine: bool = True


@dataclass
class TopK:
    """Per-joint peak candidates. val (J, K) float32 descending, loc (J, K, 2) int64 (x, y),
    tag (J, K, T) float32. With fewer positive peaks than K, the rest are what torch's top-k gives: zero-valued
    pixels (or negative peaks) and their tags, in its order (fast mode and tiny maps: val 0, loc (0, 0))."""
    val: np.ndarray
    loc: np.ndarray
    tag: np.ndarray


@dataclass
class Decoded:
    """Decoder result. poses (P, J, 3) float32 (x, y, val) in model-input pixels; scores (P,)
    float32 (mean joint val before refine); tags (P, J, T) float32 (0 for joints not matched).
    `stages` keeps the intermediates (official layout (P, J, 3+T): grouped, adjusted, refined; topk)."""
    poses: np.ndarray
    scores: np.ndarray
    tags: np.ndarray
    stages: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.poses)


def _empty(num_joints: int, num_tags: int) -> Decoded:
    z = np.zeros((0, num_joints, 3 + num_tags), F32)
    return Decoded(np.zeros((0, num_joints, 3), F32), np.zeros((0,), F32),
                   np.zeros((0, num_joints, num_tags), F32),
                   {"grouped": z, "adjusted": z, "refined": z})


# ----------------------------------------------------------------------------------------------
# Input checks and shared map operations
# ----------------------------------------------------------------------------------------------
LIMIT = F32(1e6)   # |values| above this are clamped: no overflow anywhere downstream


def _finite32(a: np.ndarray) -> np.ndarray:
    """float32, C-contiguous; NaN/+-inf -> 0 and values clamped to [-1e6, 1e6] (real outputs are
    within +-100), so garbage in can neither crash nor hang the decoders."""
    a = np.ascontiguousarray(a, dtype=F32)
    if a.size and not (a.min() >= -LIMIT and a.max() <= LIMIT):   # False for NaN too
        a = np.clip(np.where(np.isfinite(a), a, F32(0)), -LIMIT, LIMIT).astype(F32)
    return a


def check_outputs(outputs: dict, what: str = "outputs") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and sanitise {heatmaps_s4 [h4,w4,J], tags_s4 [h4,w4,J], heatmaps_s2 [2h4,2w4,J]}."""
    try:
        hm4, tg4, hm2 = (_finite32(outputs[k]) for k in OUTPUT_NAMES)
    except KeyError as exc:
        raise LitePoseError(f"{what}: missing output {exc.args[0]!r} (need {', '.join(OUTPUT_NAMES)})") from None
    if hm4.ndim != 3 or tg4.shape != hm4.shape or hm2.shape != (2 * hm4.shape[0], 2 * hm4.shape[1], hm4.shape[2]):
        raise LitePoseError(
            f"{what}: shapes heatmaps_s4 {hm4.shape}, tags_s4 {tg4.shape}, heatmaps_s2 {hm2.shape} do not "
            "fit [h4, w4, J], [h4, w4, J], [2*h4, 2*w4, J] (HWC without batch)")
    return hm4, tg4, hm2


def _along(a: np.ndarray, axis: int, fused: bool) -> np.ndarray:
    """x2 bilinear (half-pixel) resize along axis 0 or 1 of a C-contiguous array (see upsample2x).

    Along axis 0 the outputs are written in place (contiguous rows); along axis 1 the even and odd
    outputs are computed as contiguous arrays (long inner loops) and interleaved once.
    """
    def sl(s):
        return (slice(None),) * axis + (s,)
    n = a.shape[axis]
    first, last, lo, hi = sl(slice(0, 1)), sl(slice(n - 1, n)), sl(slice(0, n - 1)), sl(slice(1, n))
    if axis == 0:
        out = np.empty((n, 2) + a.shape[1:], F32)
        even, odd = out[:, 0], out[:, 1]
    else:
        even, odd = np.empty_like(a), np.empty_like(a)
    q, t = a * F32(0.25), a * F32(0.75)
    even[first] = a[first]
    np.add(q[lo], t[hi], out=even[hi])
    if fused:   # single rounding of 0.75*v[i] + 0.25*v[i+1]: exact in float64 (0.75*v = 3*(0.25*v))
        q64 = q.astype(np.float64)
        np.add(q64[lo] * 3.0, q64[hi], out=odd[lo], casting="same_kind")
        odd[last] = a[last]
    else:
        np.add(t[lo], q[hi], out=odd[lo])
        np.add(t[last], q[last], out=odd[last])
    shape = a.shape[:axis] + (2 * n,) + a.shape[axis + 1:]
    return out.reshape(shape) if axis == 0 else np.stack((even, odd), axis=axis + 1).reshape(shape)


def upsample2x(a: np.ndarray, fused: bool = False) -> np.ndarray:
    """Bilinear x2 resize of (H, W, ...) -> (2H, 2W, ...) with half-pixel centres (align_corners=False).

    1-D rule for output o from v[0..n-1], i = o // 2: o = 0 -> v[0]; other even o ->
    0.25*v[i-1] + 0.75*v[i] (float32 products, one float32 add); odd o -> 0.75*v[i] + 0.25*v[min(i+1, n-1)],
    float32 products and add (fused=False, docs/fast-decoder.md) or rounded once from the exact sum
    (fused=True: what torch's CPU kernel computes with FMA; official mode). x (axis 1) first, then y.
    """
    return _along(_along(np.ascontiguousarray(a, dtype=F32), 1, fused), 0, fused)


def _taps(o: np.ndarray, n: int):
    """Source indices, float32 weights and oddness of output indices `o` of upsample2x on an axis of length n."""
    i = o // 2
    even = (o % 2) == 0
    i0 = np.clip(np.where(even, i - 1, i), 0, n - 1)
    i1 = np.clip(np.where(even, i, i + 1), 0, n - 1)
    w0 = np.where(o == 0, F32(1), np.where(even, F32(0.25), F32(0.75))).astype(F32)
    w1 = np.where(o == 0, F32(0), np.where(even, F32(0.75), F32(0.25))).astype(F32)
    return i0, i1, w0, w1, ~even


def _lerp(a, b, w0, w1, odd, fused):
    """a*w0 + b*w1 as upsample2x computes it (w0, w1, odd broadcast against a, b)."""
    plain = a * w0 + b * w1
    if not fused:
        return plain
    exact = (a.astype(np.float64) * w0.astype(np.float64) + b.astype(np.float64) * w1.astype(np.float64))
    return np.where(odd, exact.astype(F32), plain)


def upsample2x_at(a: np.ndarray, ys, xs, js, fused: bool = False) -> np.ndarray:
    """`upsample2x(a, fused)[ys, xs, js]` (bit-identical) without the whole map. a: (H, W, J, ...)
    -> (N, ...)."""
    y0, y1, wy0, wy1, yodd = _taps(np.asarray(ys), a.shape[0])
    x0, x1, wx0, wx1, xodd = _taps(np.asarray(xs), a.shape[1])
    shape = (-1,) + (1,) * (a.ndim - 3)
    wy0, wy1, yodd, wx0, wx1, xodd = (v.reshape(shape) for v in (wy0, wy1, yodd, wx0, wx1, xodd))
    r0 = _lerp(a[y0, x0, js], a[y0, x1, js], wx0, wx1, xodd, fused)
    r1 = _lerp(a[y1, x0, js], a[y1, x1, js], wx0, wx1, xodd, fused)
    return _lerp(r0, r1, wy0, wy1, yodd, fused)


_CV_MAX_CHANNELS = 512


def max_pool(a: np.ndarray, kernel: int) -> np.ndarray:
    """kernel x kernel max filter of (H, W, C) (stride 1, centred, borders ignored = -inf padding).

    OpenCV's dilation: a max is exact, so this equals the numpy/torch max-pool bit for bit, 10-20x
    faster than numpy shifts at input resolution. (cv2's default border for dilate ignores outside
    pixels for every channel; an explicit scalar border value would only fill 4 channels.)
    """
    if kernel == 1 or a.size == 0:
        return a.copy()
    element = np.ones((kernel, kernel), np.uint8)
    parts = [cv2.dilate(np.ascontiguousarray(a[:, :, c:c + _CV_MAX_CHANNELS]), element)
             .reshape(a.shape[0], a.shape[1], -1) for c in range(0, a.shape[2], _CV_MAX_CHANNELS)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def nms(det: np.ndarray, kernel: int) -> np.ndarray:
    """Peak mask (H, W, J) bool: det == maxpool(det). Plateaus keep all their pixels (as official)."""
    if kernel < 1 or kernel % 2 == 0:
        raise LitePoseError(f"nms_kernel {kernel}: must be a positive odd number")
    return det == max_pool(det, kernel)


def _sorted_peaks(det: np.ndarray, peaks: np.ndarray, above: float, k: int):
    """Peaks with det > above (float64 comparison), per joint by value descending, ties by flat index
    y*W + x ascending, first k per joint. Returns (j, y, x, val, rank) 1-D arrays sorted by (j, rank).
    `above` >= 0 (the sort key uses the bit pattern of non-negative float32 values)."""
    h, w, num_joints = det.shape
    above32 = F32(above)   # float32 v > above (float64) <=> v > above32, or v >= above32 if it rounded up
    flat = np.flatnonzero(peaks & ((det > above32) if float(above32) <= above else (det >= above32)))
    vals = det.reshape(-1)[flat]                                # HWC order: pixel-major, then joint
    pixel, js = np.divmod(flat, num_joints)
    # Sort key: joint ascending, value descending (the int32 bits of positive floats are monotonic);
    # stable, so equal values keep the ascending pixel order of flatnonzero.
    key = (js.astype(np.int64) << 31) | (0x7FFFFFFF - vals.view(np.int32)).astype(np.int64)
    order = np.argsort(key, kind="stable")
    pixel, js, vals = pixel[order], js[order], vals[order]
    rank = np.arange(len(js)) - np.searchsorted(js, js, side="left")
    keep = rank < k
    ys, xs = np.divmod(pixel[keep], w)
    return js[keep], ys, xs, vals[keep], rank[keep]


def torch_topk_order(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest of 1-D `values`, in the order torch's CPU `topk` gives them when
    64 * k <= len(values): libstdc++'s std::partial_sort of (value, index) pairs compared by value only
    (heap select, then heap sort), so equal values come out in heap order, not index order."""
    if not 0 < 64 * k <= len(values):
        raise ValueError(f"torch uses partial_sort for 64 * k <= n only (k {k}, n {len(values)})")
    later = np.flatnonzero(values[k:] > values[:k].min()) + k
    return _partial_sort_order(values[:k], later, values[later])


def _partial_sort_order(head: np.ndarray, later: np.ndarray, later_values: np.ndarray) -> np.ndarray:
    """std::partial_sort's order given the first k values (`head`) and, in index order, the later
    elements that exceed their minimum (no other element can ever enter the heap, whose top only rises).
    Reproduces every top-k index of shared/fixtures/decode, the zero pads included."""
    k = len(head)
    hv, hi = head.tolist(), list(range(k))             # the heap: values and indices

    def adjust(hole: int, length: int, value: float, index: int) -> None:   # std::__adjust_heap
        top = child = hole
        while child < (length - 1) // 2:
            child = 2 * (child + 1)
            if hv[child] > hv[child - 1]:
                child -= 1
            hv[hole], hi[hole] = hv[child], hi[child]
            hole = child
        if length % 2 == 0 and child == (length - 2) // 2:
            child = 2 * (child + 1)
            hv[hole], hi[hole] = hv[child - 1], hi[child - 1]
            hole = child - 1
        parent = (hole - 1) // 2                        # std::__push_heap
        while hole > top and hv[parent] > value:
            hv[hole], hi[hole] = hv[parent], hi[parent]
            hole = parent
            parent = (hole - 1) // 2
        hv[hole], hi[hole] = value, index

    for parent in range((k - 2) // 2, -1, -1):          # std::__make_heap
        adjust(parent, k, hv[parent], hi[parent])
    while len(later):                                   # std::__heap_select, in chunks refiltered
        for index, value in zip(later[:64].tolist(), later_values[:64].tolist()):   # against the top
            if value > hv[0]:
                adjust(0, k, value, index)
        keep = later_values[64:] > hv[0]
        later, later_values = later[64:][keep], later_values[64:][keep]
    for last in range(k - 1, 0, -1):                    # std::__sort_heap
        value, index = hv[last], hi[last]
        hv[last], hi[last] = hv[0], hi[0]
        adjust(0, last, value, index)
    return np.asarray(hi, np.int64)


def top_k(det: np.ndarray, peaks: np.ndarray, tags_at: Callable, k: int, num_tags: int) -> TopK:
    """Stage top_k: torch.topk(det * peaks, k) per joint over the y*W + x pixels, equal values in torch's
    order (`torch_topk_order`), which decides the matching order of tied peaks (common in int8 outputs).
    Maps under 64 * k pixels (torch then uses nth_element + sort) keep positive peaks in index order."""
    h, w, num_joints = det.shape
    out = TopK(np.zeros((num_joints, k), F32), np.zeros((num_joints, k, 2), np.int64),
               np.zeros((num_joints, k, num_tags), F32))
    if k == 0 or 64 * k > h * w:
        js, ys, xs, vals, rank = _sorted_peaks(det, peaks, 0.0, k)
    else:
        flat_det, flat_peaks = det.reshape(h * w, num_joints), peaks.reshape(h * w, num_joints)
        head = np.where(flat_peaks[:k], flat_det[:k], F32(0))
        floor = head.min(axis=0)                        # (J,): the heap's first top, as torch sees it
        # Only later elements above the floor can enter the heap: peaks, and non-peaks (0) if it is < 0.
        pixel, joint = np.divmod(np.flatnonzero(peaks & (det > np.maximum(floor, 0))), num_joints)
        by_joint = np.argsort(joint, kind="stable")     # pixel order within each joint
        pixel, joint = pixel[by_joint], joint[by_joint]
        bounds = np.searchsorted(joint, np.arange(num_joints + 1))
        order = np.empty((num_joints, k), np.int64)
        for j in range(num_joints):
            if floor[j] >= 0:
                later = pixel[bounds[j]:bounds[j + 1]]
                later = later[later >= k]
                later_values = flat_det[later, j]
            else:                                      # a negative plateau at the first pixels: rare
                row = np.where(flat_peaks[:, j], flat_det[:, j], F32(0))
                later = np.flatnonzero(row[k:] > floor[j]) + k
                later_values = row[later]
            order[j] = _partial_sort_order(head[:, j], later, later_values)
        js, rank = np.divmod(np.arange(num_joints * k), k)
        ys, xs = np.divmod(order.ravel(), w)
        vals = np.where(peaks[ys, xs, js], det[ys, xs, js], F32(0))
    out.val[js, rank] = vals
    out.loc[js, rank, 0] = xs
    out.loc[js, rank, 1] = ys
    if len(js):
        out.tag[js, rank] = tags_at(ys, xs, js)
    return out


# ----------------------------------------------------------------------------------------------
# Munkres (munkres 1.1.4 step rules, vectorised per step) for the official tie-breaking
# ----------------------------------------------------------------------------------------------
def munkres_assignment(cost: np.ndarray) -> np.ndarray:
    """Column for each row of `cost` (rows <= cols), as `munkres.Munkres().compute` returns it.

    Same steps and float64 operations as munkres 1.1.4 (pad with zero rows, row reduction, starring,
    covering, priming with its cyclic zero search, augmenting paths, the +min/-min update), so that
    among equal-cost assignments the same one is chosen as by the official code. Falls back to
    SciPy after an (unreachable in practice) iteration cap, so it can never hang.
    """
    n_rows, n = cost.shape
    if n_rows == 0:
        return np.zeros(0, np.int64)
    C = np.zeros((n, n))
    C[:n_rows] = cost
    marked = np.zeros((n, n), np.int8)                 # 1 = star, 2 = prime
    row_cov = np.zeros(n, bool)
    col_cov = np.zeros(n, bool)
    C -= C.min(axis=1, keepdims=True)                   # step 1
    for i in range(n):                                  # step 2
        free = np.flatnonzero((C[i] == 0) & ~col_cov)
        if free.size:
            marked[i, free[0]] = 1
            col_cov[free[0]] = True
    col_cov[:] = False
    budget = 50 * n * n * n + 100
    while budget > 0:
        col_cov[:] = (marked == 1).any(axis=0)          # step 3
        if col_cov.sum() >= n:
            return np.argmax(marked[:n_rows] == 1, axis=1).astype(np.int64)
        row, col = 0, 0                                 # step 4
        while budget > 0:
            budget -= 1
            row, col = _find_a_zero(C, row_cov, col_cov, row, col)
            if row < 0:                                 # step 6
                uncovered = ~row_cov[:, None] & ~col_cov[None, :]
                minval = C[uncovered].min() if uncovered.any() else float(sys.maxsize)
                C[row_cov] += minval
                C[:, ~col_cov] -= minval
                row, col = 0, 0
                continue
            marked[row, col] = 2
            stars = np.flatnonzero(marked[row] == 1)
            if stars.size:
                col = int(stars[0])
                row_cov[row] = True
                col_cov[col] = False
                continue
            path = [(row, col)]                         # step 5
            while True:
                rows = np.flatnonzero(marked[:, path[-1][1]] == 1)
                if not rows.size:
                    break
                r = int(rows[0])
                path.append((r, path[-1][1]))
                path.append((r, int(np.flatnonzero(marked[r] == 2)[0])))
            for r, c in path:
                marked[r, c] = 0 if marked[r, c] == 1 else 1
            row_cov[:] = False
            col_cov[:] = False
            marked[marked == 2] = 0
            break
    return linear_sum_assignment(cost)[1].astype(np.int64)  # safety net only


def _find_a_zero(C, row_cov, col_cov, i0, j0):
    """munkres' __find_a_zero: the first row (cyclic from i0) holding an uncovered zero, and in it
    the LAST uncovered zero met scanning the columns cyclically from j0 (its loop does not break)."""
    zeros = (C == 0) & ~row_cov[:, None] & ~col_cov[None, :]
    rows = np.flatnonzero(zeros.any(axis=1))
    if not rows.size:
        return -1, -1
    later = rows[rows >= i0]
    r = int(later[0] if later.size else rows[0])
    cols = np.flatnonzero(zeros[r])
    before = cols[cols < j0]
    return r, int(before[-1] if before.size else cols[-1])


# ----------------------------------------------------------------------------------------------
# Official mode (spec 5.2-5.7)
# ----------------------------------------------------------------------------------------------
@dataclass
class OfficialMaps:
    """Aggregated maps at model-input resolution (H, W) = 4 x (h4, w4).

    det (H, W, J) float32 is computed in full. The tags are only ever read at peaks (top-k, refine's
    mean tag) and, for refine, as whole maps of single joints, so they stay lazy: `tags_at` and
    `tag_map` evaluate the official chain (x2 to stride 2, flip back + flip permutation for the
    flip branch, x2 to input size) exactly, from `tags_s4` (one (h4, w4, J) array per branch).
    """
    det: np.ndarray
    tags_s4: list
    flip_index: np.ndarray | None = None
    _tag_maps: dict = field(default_factory=dict)

    @property
    def num_tags(self) -> int:
        return len(self.tags_s4)

    def _tags_half_at(self, yh, xh, js) -> np.ndarray:
        """(N, T) tags at stride-2 cells (yh, xh)."""
        cols = [upsample2x_at(self.tags_s4[0], yh, xh, js, fused=True)]
        if len(self.tags_s4) > 1:   # flip branch: flipped back along W, channel flip_index[j]
            w2 = 2 * self.tags_s4[1].shape[1]
            cols.append(upsample2x_at(self.tags_s4[1], yh, w2 - 1 - np.asarray(xh), self.flip_index[js], fused=True))
        return np.stack(cols, axis=-1)

    def tags_at(self, ys, xs, js) -> np.ndarray:
        """(N, T) tags at input pixels (ys, xs) of joints js (bit-identical to the projected maps)."""
        ys, xs, js = np.asarray(ys), np.asarray(xs), np.asarray(js)
        h2, w2 = 2 * self.tags_s4[0].shape[0], 2 * self.tags_s4[0].shape[1]
        y0, y1, wy0, wy1, yodd = (v[:, None] for v in _taps(ys, h2))
        x0, x1, wx0, wx1, xodd = (v[:, None] for v in _taps(xs, w2))
        r0 = _lerp(self._tags_half_at(y0[:, 0], x0[:, 0], js), self._tags_half_at(y0[:, 0], x1[:, 0], js),
                   wx0, wx1, xodd, True)
        r1 = _lerp(self._tags_half_at(y1[:, 0], x0[:, 0], js), self._tags_half_at(y1[:, 0], x1[:, 0], js),
                   wx0, wx1, xodd, True)
        return _lerp(r0, r1, wy0, wy1, yodd, True)

    def tag_map(self, j: int) -> np.ndarray:
        """(H, W, T) projected tag map of joint j (cached)."""
        if j not in self._tag_maps:
            half = [upsample2x(self.tags_s4[0][:, :, j:j + 1], fused=True)]
            if len(self.tags_s4) > 1:
                c = int(self.flip_index[j])
                half.append(upsample2x(self.tags_s4[1][:, :, c:c + 1], fused=True)[:, ::-1])
            self._tag_maps[j] = upsample2x(np.concatenate(half, axis=2), fused=True)
        return self._tag_maps[j]


def aggregate_official(outputs: dict, flip_outputs: dict | None = None,
                       flip_index=None) -> OfficialMaps:
    """Stage aggregate (get_multi_stage_outputs + aggregate_results, PROJECT2IMAGE, one scale).

    heatmaps = (up2(heatmaps_s4) + heatmaps_s2) / 2 at stride 2; the flip branch is resized, flipped
    back along W and its joints permuted by flip_index (heatmaps and tags); each branch's heatmaps
    are projected x2 to the input size and the two averaged; tags (lazy) stack to T = 2.
    """
    hm4, tg4, hm2 = check_outputs(outputs)
    num_joints = hm4.shape[2]
    det = upsample2x((upsample2x(hm4, fused=True) + hm2) / F32(2), fused=True)
    if flip_outputs is None:
        return OfficialMaps(det, [tg4])
    fhm4, ftg4, fhm2 = check_outputs(flip_outputs, "flip outputs")
    if fhm4.shape != hm4.shape:
        raise LitePoseError(f"flip outputs: shape {fhm4.shape} differs from outputs {hm4.shape}")
    flip = np.asarray(flip_index, np.int64)
    if sorted(flip.tolist()) != list(range(num_joints)):
        raise LitePoseError(f"flip_index {flip.tolist()}: not a permutation of {num_joints} joints")
    hm_f = (upsample2x(fhm4, fused=True)[:, ::-1][:, :, flip] + fhm2[:, ::-1][:, :, flip]) / F32(2)
    det = (det + upsample2x(hm_f, fused=True)) / F32(2)
    return OfficialMaps(det, [tg4, ftg4], flip)


def match_by_tag_official(topk: TopK, params: OfficialDecoderParams, joint_order) -> np.ndarray:
    """Stage match_by_tag (spec 5.4) -> grouped (P, J, 3+T) float32 (x, y, val, tag...), input pixels.

    Reproduces the official quirks on purpose: persons live in an insertion-ordered dict keyed by the
    float32 `tag[0]` of the candidate that created them; a new person whose key already exists
    overwrites that person's joint and resets its tag list; only the first `max_num_people` persons
    take part in matching, the person count is not capped; cost = round(dist)*100 - val (numpy
    half-to-even) solved by Munkres (munkres 1.1.4 tie-breaking); joints are float64 until the end.
    """
    num_joints, _, num_tags = topk.tag.shape
    persons: list[np.ndarray] = []            # (J, 3+T) float64 each
    person_tags: list[list[np.ndarray]] = []  # the (T,) float32 tags assigned to each person
    mean_cache: list[np.ndarray | None] = []
    key_to_person: dict[float, int] = {}
    thr = params.detection_threshold

    def new_person(key: float, joint: int, row: np.ndarray, tag: np.ndarray) -> None:
        p = key_to_person.get(key)
        if p is None:
            key_to_person[key] = p = len(persons)
            persons.append(np.zeros((num_joints, 3 + num_tags)))
            person_tags.append([])
            mean_cache.append(None)
        persons[p][joint] = row
        person_tags[p] = [tag]
        mean_cache[p] = None

    for idx in joint_order:
        tags = topk.tag[idx]
        joints = np.concatenate([topk.loc[idx], topk.val[idx, :, None], tags], axis=1)  # float64
        mask = joints[:, 2] > thr
        tags, joints = tags[mask], joints[mask]
        if not len(joints):
            continue
        if not persons:
            for tag, joint in zip(tags, joints):
                new_person(float(tag[0]), idx, joint, tag)
            continue
        active = min(len(persons), params.max_num_people)
        for p in range(active):
            if mean_cache[p] is None:
                mean_cache[p] = np.mean(person_tags[p], axis=0)
        grouped_tags = np.array(mean_cache[:active])                       # (C, T) float32
        diff = joints[:, None, 3:] - grouped_tags[None, :, :]
        dist = np.sqrt(np.add.reduce(diff * diff, axis=2))                  # float64 L2
        cost = np.round(dist) * 100 - joints[:, 2:3]
        cost[~np.isfinite(cost)] = 1e30      # only for absurd tags (float32 mean overflow)
        num_added = len(joints)
        if num_added > active:
            cost = np.concatenate([cost, np.zeros((num_added, num_added - active)) + 1e10], axis=1)
        if params.matcher == "munkres":
            cols = munkres_assignment(cost)
        else:
            cols = linear_sum_assignment(cost)[1]
        for row, col in enumerate(cols):
            if col < active and dist[row, col] < params.tag_threshold:
                persons[col][idx] = joints[row]
                person_tags[col].append(tags[row])
                mean_cache[col] = None
            else:
                new_person(float(tags[row][0]), idx, joints[row], tags[row])
    if not persons:
        return np.zeros((0, num_joints, 3 + num_tags), F32)
    return np.array(persons).astype(F32)


def _quarter_offsets(det: np.ndarray, xs, ys, js) -> tuple[np.ndarray, np.ndarray]:
    """+0.25 towards the larger neighbour, else -0.25 (ties -0.25), per axis; edge-clamped."""
    h, w = det.shape[:2]
    dx = np.where(det[ys, np.minimum(xs + 1, w - 1), js] > det[ys, np.maximum(xs - 1, 0), js], 0.25, -0.25)
    dy = np.where(det[np.minimum(ys + 1, h - 1), xs, js] > det[np.maximum(ys - 1, 0), xs, js], 0.25, -0.25)
    return dx.astype(F32), dy.astype(F32)


def adjust_official(grouped: np.ndarray, det: np.ndarray) -> np.ndarray:
    """Stage adjust (spec 5.5): (x, y) -> (x +- 0.25 + 0.5, y +- 0.25 + 0.5) for joints with val > 0."""
    out = grouped.copy()
    ps, js = np.nonzero(grouped[:, :, 2] > 0)
    xs, ys = grouped[ps, js, 0], grouped[ps, js, 1]
    dx, dy = _quarter_offsets(det, xs.astype(np.int64), ys.astype(np.int64), js)
    out[ps, js, 0] = (xs + dx) + F32(0.5)
    out[ps, js, 1] = (ys + dy) + F32(0.5)
    return out


def score_poses(poses: np.ndarray) -> np.ndarray:
    """Stage score (spec 5.6): mean of the J vals (0 for undetected joints), float32."""
    return poses[:, :, 2].mean(axis=1).astype(F32) if len(poses) else np.zeros(0, F32)


def _tag_distance(tags: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """float32 L2 distance over the last axis (T); for T = 1 |d|, which equals sqrt(d*d) bit for bit."""
    if tags.shape[-1] == 1:
        return np.abs(tags[..., 0] - mean[..., 0])
    if tags.shape[-1] == 2:   # = numpy's sum over a length-2 axis, without its slow reduction
        d0, d1 = tags[..., 0] - mean[..., 0], tags[..., 1] - mean[..., 1]
        return np.sqrt(d0 * d0 + d1 * d1)
    diff = tags - mean
    return np.sqrt((diff * diff).sum(axis=-1))


def _refine_argmax(det_j: np.ndarray, tag_j: np.ndarray, means: np.ndarray) -> np.ndarray:
    """For each mean tag (n, T): the first row-major argmax of det_j - round(dist(tag_j, mean)).

    det_j (H, W), tag_j (H, W, T) float32 -> flat indices (n,). Up to 8 persons: one pass over the
    map each. Many persons: scan the pixels in decreasing det order in growing chunks (all persons at
    once) and stop a person once the next det is below its best value (det - round(.) <= det), so
    crowded/garbage maps cost a fraction of the map per person. Same float32 values, same ties.
    """
    n, size = len(means), det_j.size
    if n <= 8:
        return np.array([int(np.argmax(det_j - np.round(_tag_distance(tag_j, m)))) for m in means], np.int64)
    det_flat = det_j.reshape(-1)
    order = np.argsort(-det_flat)
    det_sorted = det_flat[order]
    tag_sorted = tag_j.reshape(size, -1)[order]
    best_val = np.full(n, -np.inf, F32)
    best_idx = np.full(n, size, np.int64)
    active = np.arange(n)
    start, chunk = 0, 2048
    while active.size and start < size:
        stop = min(size, start + chunk)
        val = det_sorted[None, start:stop] - np.round(
            _tag_distance(tag_sorted[None, start:stop], means[active, None, :]))   # (a, c) float32
        chunk_max = val.max(axis=1)
        chunk_idx = np.where(val == chunk_max[:, None], order[None, start:stop], size).min(axis=1)
        old_val, old_idx = best_val[active], best_idx[active]
        best_idx[active] = np.where(chunk_max > old_val, chunk_idx,
                                    np.where(chunk_max == old_val, np.minimum(old_idx, chunk_idx), old_idx))
        best_val[active] = np.maximum(old_val, chunk_max)
        if stop == size:
            break
        active = active[~(det_sorted[stop] < best_val[active])]
        start, chunk = stop, min(4 * chunk, max(2048, 4_000_000 // max(1, active.size)))
    return best_idx


def refine_official(adjusted: np.ndarray, maps: OfficialMaps) -> np.ndarray:
    """Stage refine (spec 5.7) on (P, J, 3+T): fill undetected joints of each person.

    mean_tag = float32 mean of the tags (tag maps at the integer peak) of its detected joints, in
    joint index order; for joint j the first row-major argmax of det[j] - round(||tag[j] - mean||)
    (float32 over the whole map); set if its det > 0, position + 0.5 and the +-0.25 rule.
    Tag columns stay 0. Refined joints do not change the score (taken before).
    """
    out = adjusted.copy()
    det = maps.det
    width = det.shape[1]
    vals = out[:, :, 2]
    persons = np.flatnonzero((vals > 0).any(axis=1))
    means = np.zeros((len(out), maps.num_tags), F32)
    rows, js = np.nonzero(vals[persons] > 0)            # person by person, joints ascending
    tags = maps.tags_at(out[persons[rows], js, 1].astype(np.int64), out[persons[rows], js, 0].astype(np.int64), js)
    bounds = np.searchsorted(rows, np.arange(len(persons) + 1))
    for i, p in enumerate(persons):
        means[p] = np.mean(tags[bounds[i]:bounds[i + 1]], axis=0)
    for j in range(det.shape[2]):
        need = persons[vals[persons, j] == 0]
        if not need.size:
            continue
        flat = _refine_argmax(det[:, :, j], maps.tag_map(j), means[need])
        ys, xs = np.divmod(flat, width)
        js = np.full(len(flat), j)
        val = det[ys, xs, js]
        dx, dy = _quarter_offsets(det, xs, ys, js)
        ok = val > 0
        out[need[ok], j, 0] = (xs[ok] + 0.5) + dx[ok]
        out[need[ok], j, 1] = (ys[ok] + 0.5) + dy[ok]
        out[need[ok], j, 2] = val[ok]
    return out


def decode_official(outputs: dict, flip_outputs: dict | None = None, flip_index=None,
                    params: OfficialDecoderParams = OfficialDecoderParams()) -> Decoded:
    """The official LitePose decode (valid.py + HeatmapParser.parse) of one image's outputs.

    outputs: {heatmaps_s4 [h4,w4,J], tags_s4 [h4,w4,J], heatmaps_s2 [2h4,2w4,J]} (official out0[:J],
    out0[J:], out1 as HWC); flip_outputs: the same for the W-flipped input (raw, not flipped back);
    flip_index: the dataset's flip permutation (keypoints.*_FLIP_INDEX), needed with flip_outputs.
    """
    hm4 = np.asarray(outputs.get("heatmaps_s4", np.zeros((0, 0, 0))))
    num_joints = hm4.shape[2] if hm4.ndim == 3 else 0
    num_tags = 2 if flip_outputs is not None else 1
    if flip_outputs is not None and flip_index is None:
        raise LitePoseError("flip outputs given without a flip_index (keypoints.*_FLIP_INDEX)")
    if hm4.ndim == 3 and min(hm4.shape) == 0:
        check_outputs(outputs)
        return _empty(num_joints, num_tags)
    maps = aggregate_official(outputs, flip_outputs, flip_index)
    peaks = nms(maps.det, params.nms_kernel)
    topk = top_k(maps.det, peaks, maps.tags_at, params.top_k, num_tags)
    grouped = match_by_tag_official(topk, params, joint_order_for(num_joints))
    adjusted = adjust_official(grouped, maps.det) if params.adjust else grouped
    scores = score_poses(adjusted)
    refined = refine_official(adjusted, maps) if params.refine else adjusted
    return Decoded(np.ascontiguousarray(refined[:, :, :3]), scores, np.ascontiguousarray(refined[:, :, 3:]),
                   {"maps": maps, "topk": topk, "grouped": grouped, "adjusted": adjusted, "refined": refined})


# ----------------------------------------------------------------------------------------------
# Fast mode (docs/fast-decoder.md)
# ----------------------------------------------------------------------------------------------
def decode_fast(outputs: dict, params: FastDecoderParams = FastDecoderParams()) -> Decoded:
    """docs/fast-decoder.md: no flip, decoding at the stride-2 resolution, refine among NMS peaks.

    Steps (numbers as in the doc): 1-2 aggregate at half resolution, 3 nms, 4 top_k, 5 match_by_tag
    (persons in a list, float64 tag sums, SciPy's shortest-augmenting-path assignment), 6 adjust,
    7 score, 8 refine, 9 output in model-input pixels.
    """
    hm4, tg4, hm2 = check_outputs(outputs)
    num_joints = hm4.shape[2]
    if min(hm4.shape) == 0:
        return _empty(num_joints, 1)
    det = upsample2x(hm4)                                                   # steps 1-2
    det += hm2
    det *= F32(0.5)                                                         # = 0.5f * (up + s2)
    peaks = nms(det, params.nms_kernel)                                     # step 3
    # Step 4: refine's candidate lists (det > 0, first top_k); matching uses the ones > threshold.
    js, ys, xs, vals, rank = _sorted_peaks(det, peaks, 0.0, params.top_k)
    tags = upsample2x_at(tg4, ys, xs, js)                                 # (N,) float32
    thr = params.detection_threshold
    joint_starts = np.searchsorted(js, np.arange(num_joints + 1))

    # Step 5: match by tag. Persons in creation order; every candidate joins or creates one person,
    # so J * top_k bounds their number.
    capacity = num_joints * params.top_k
    cells = np.zeros((capacity, num_joints, 3))          # x cell, y cell, val (0 = none), float64
    joint_tag = np.zeros((capacity, num_joints), F32)
    tag_sum = np.zeros(capacity)                         # float64
    tag_count = np.zeros(capacity, np.int64)
    num_people = 0
    for idx in joint_order_for(num_joints):
        lo, hi = joint_starts[idx], joint_starts[idx + 1]
        cand = lo + np.flatnonzero(vals[lo:hi].astype(np.float64) > thr)
        if not cand.size:
            continue
        cand_tag, cand_val = tags[cand].astype(np.float64), vals[cand].astype(np.float64)
        joins = np.zeros(len(cand), bool)
        cols = np.zeros(len(cand), np.int64)
        if num_people:
            active = min(num_people, params.max_num_people)
            dist = np.abs(cand_tag[:, None] - (tag_sum[:active] / tag_count[:active])[None, :])
            cost = np.round(dist) * 100 - cand_val[:, None]
            if len(cand) > active:
                cost = np.concatenate([cost, np.full((len(cand), len(cand) - active), 1e10)], axis=1)
            cols = linear_sum_assignment(cost)[1]
            joins = cols < active
            joins[joins] = dist[np.flatnonzero(joins), cols[joins]] < params.tag_threshold
        new = np.flatnonzero(~joins)
        person = cols.copy()
        person[new] = num_people + np.arange(len(new))   # new persons in candidate order
        num_people += len(new)
        cells[person, idx] = np.stack([xs[cand], ys[cand], vals[cand]], axis=1)
        joint_tag[person, idx] = tags[cand]
        tag_sum[person] += cand_tag                      # distinct persons: no repeated index
        tag_count[person] += 1
    if not num_people:
        return _empty(num_joints, 1)
    cells, joint_tag = cells[:num_people], joint_tag[:num_people]
    tag_sum, tag_count = tag_sum[:num_people], tag_count[:num_people]
    scores = np.zeros(num_people)                                           # step 7: float64,
    for j in range(num_joints):                                             # joint index order
        scores += cells[:, j, 2]
    scores /= num_joints

    # Step 8: refine among the peaks of each missing joint.
    refined = np.zeros((num_people, num_joints), bool)
    if params.refine:
        mean_tag = tag_sum / tag_count                                      # (P,) float64
        for j in range(num_joints):
            lo, hi = joint_starts[j], joint_starts[j + 1]
            need = np.flatnonzero(cells[:, j, 2] == 0)
            if hi == lo or not need.size:
                continue
            score = vals[lo:hi].astype(np.float64)[None, :] - np.round(
                np.abs(tags[lo:hi].astype(np.float64)[None, :] - mean_tag[need, None]))
            best = lo + np.argmax(score, axis=1)                            # first max = earlier peak
            cells[need, j] = np.stack([xs[best], ys[best], vals[best]], axis=1)
            refined[need, j] = True

    # Steps 6 and 9: quarter-cell adjust at half resolution, then to model-input pixels.
    poses = np.zeros((num_people, num_joints, 3), F32)
    ps, jj = np.nonzero(cells[:, :, 2] > 0)
    cx, cy = cells[ps, jj, 0].astype(np.int64), cells[ps, jj, 1].astype(np.int64)
    if params.adjust:
        dx, dy = _quarter_offsets(det, cx, cy, jj)
    else:
        dx = dy = np.zeros(len(ps), F32)
    poses[ps, jj, 0] = F32(2) * ((cx.astype(F32) + F32(0.5)) + dx)
    poses[ps, jj, 1] = F32(2) * ((cy.astype(F32) + F32(0.5)) + dy)
    poses[ps, jj, 2] = cells[ps, jj, 2]
    return Decoded(poses, scores.astype(F32), joint_tag[:, :, None],
                   {"det": det, "peaks": (js, ys, xs, vals, rank), "refined_mask": refined,
                    "scores_f64": scores})

