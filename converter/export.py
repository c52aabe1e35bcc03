"""Keras LitePose -> TFLite, table-driven, with the I/O contract asserted on every artefact.

Each precision is one row of `PRECISIONS`; `export_tflite` converts, `inspect_tflite` reads the result
back with LiteRT and `check_io_contract` fails loudly when the file does not keep the contract
(input `image` [1,H,W,3], outputs `heatmaps_s4`, `tags_s4`, `heatmaps_s2`, integer input scale 1).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from python_ref import __version__
from python_ref.errors import LitePoseError
from python_ref.runner import quantize_pixels

OUTPUT_NAMES = ("heatmaps_s4", "tags_s4", "heatmaps_s2")


@dataclass(frozen=True)
class Precision:
    name: str
    needs_calibration: bool
    description: str


PRECISIONS = {
    "fp32": Precision("fp32", False, "float32 weights and activations"),
    "fp16": Precision("fp16", False, "float16 weights, float32 compute on CPU (GPU delegates run fp16)"),
    "dynamic": Precision("dynamic", False, "int8 weights, float activations (dynamic-range quantisation)"),
    "int8": Precision("int8", True, "full-integer int8 weights and activations, uint8/int8 image input"),
}


def _saved_model(model, workdir: Path) -> Path:
    """A SavedModel whose serving signature has input `image` and the three named outputs."""
    import keras
    import tensorflow as tf

    h, w = model.input_shape[1:3]
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(image):
        out = model(image, training=False)
        return {k: out[k] for k in OUTPUT_NAMES}

    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32, name="image")])
    path = workdir / "saved_model"
    archive.write_out(str(path), verbose=False)
    return path


def export_tflite(model, precision: str, representative_images=None, input_dtype: str = "uint8",
                  output_dtype: str = "float32", log=print, recalibrate: bool = True,
                  range_method: str | None = None, bias_correction: bool | str = False,
                  narrow_sums: bool = True, weight_rounding: str | None = None, centre_sums: bool = True,
                  output_bias_correction: bool = True, details: dict | None = None) -> bytes:
    """Convert a Keras LitePose model. `representative_images` yields uint8/float [H, W, 3] RGB images
    (already letterboxed to the model input) for int8 calibration. `recalibrate` replaces the converter's
    activation ranges by ranges measured op by op (see `_calibration_hook`); `range_method` ("minmax"
    or a `MSE_SCOPES` key, default `DEFAULT_ACTIVATION_RANGES`) says how they are set. `bias_correction`
    (int8) folds the mean int8 weight error of every conv into its bias for the conversion
    (`empirical_bias_correction`); the Keras model's weights are restored afterwards. `narrow_sums` (int8,
    with `recalibrate`): see `saturating_sum_ranges`. `weight_rounding` (int8): "gptq" (default
    `DEFAULT_WEIGHT_ROUNDING`; `gptq_weight_rounding`, the Keras model's weights restored afterwards) or
    "nearest". `centre_sums` (int8): `centre_sum_addends`, the Keras model's weights restored afterwards.
    `output_bias_correction` (int8): `correct_output_biases`; its report goes to `details` when given."""
    import tensorflow as tf

    range_method = DEFAULT_ACTIVATION_RANGES if range_method is None else range_method
    weight_rounding = DEFAULT_WEIGHT_ROUNDING if weight_rounding is None else weight_rounding
    if weight_rounding not in ("gptq", "nearest"):
        raise LitePoseError(f"weight rounding {weight_rounding!r}: use gptq or nearest")
    if precision not in PRECISIONS:
        raise LitePoseError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
    with tempfile.TemporaryDirectory(prefix="litepose-export-") as tmp, contextlib.ExitStack() as stack:
        t0 = time.perf_counter()
        if precision == "int8" and bias_correction and representative_images is not None:
            representative_images = list(representative_images)
            stack.enter_context(_weights_restored(model))
            kinds = ("depthwise",) if bias_correction == "depthwise" else ("conv", "depthwise")
            empirical_bias_correction(model, representative_images, log, kinds)
        if precision == "int8" and centre_sums and representative_images is not None:
            representative_images = list(representative_images)
            stack.enter_context(_weights_restored(model))
            centre_sum_addends(model, representative_images, log)
        if precision == "int8" and weight_rounding == "gptq" and representative_images is not None:
            representative_images = list(representative_images)
            stack.enter_context(_weights_restored(model))
            gptq_weight_rounding(model, representative_images, log)
        conv = tf.lite.TFLiteConverter.from_saved_model(str(_saved_model(model, Path(tmp))))
        if precision == "fp16":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        elif precision == "dynamic":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        elif precision == "int8":
            if representative_images is None:
                raise LitePoseError("--precision int8 needs calibration images (--calib-images)")
            images = list(representative_images)
            if not images:
                raise LitePoseError("the calibration set is empty")

            def dataset():
                for i, img in enumerate(images):
                    log(f"calibrating {i + 1}/{len(images)}")
                    yield {"image": np.asarray(img, np.float32)[None]}

            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = dataset
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = {"uint8": tf.uint8, "int8": tf.int8}[input_dtype]
            conv.inference_output_type = {"int8": tf.int8, "float32": tf.float32}[output_dtype]
        log(f"converting to TFLite ({precision})")
        if precision == "dynamic":
            log("note: dynamic-range models are the smallest float-output files, but LiteRT's CPU path runs "
                "them slower than fp32 (LitePose-M 448x448 at 1 thread: 481 against 140 ms on an AMD EPYC, 368 "
                "against 179 ms on an Intel Xeon; int8 is faster than both): use int8 for speed")
        with warnings.catch_warnings():
            # TF's own calibrator still uses tf.lite.Interpreter; its deprecation notice is not for our users
            warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated")
            if precision == "int8":
                with _calibration_hook(images, log, range_method, narrow_sums, measure=recalibrate):
                    data = conv.convert()
            else:
                data = conv.convert()
        log(f"converted in {time.perf_counter() - t0:.1f} s, {len(data) / 1e6:.2f} MB")
    if precision == "int8" and output_bias_correction:   # after the with: the model has its own weights again
        data, report = correct_output_biases(data, model, images, log)
        if details is not None:
            details["output_bias_correction"] = report
    return data


@contextlib.contextmanager
def _calibration_hook(images, log, range_method="minmax", narrow_sums=True, measure=True):
    """Rewrite the calibrated float model's ranges before the quantiser runs.

    The image input always gets the contract's 0..255: its int8 parameters must be scale 1 and zero point 0
    (uint8) or -128 (int8) whatever pixels the calibration images hold (dim or night frames never reach 255).
    `measure`: every activation range is measured op by op (`measured_ranges_model`), because TFLite's
    calibrator reads tensors after the graph ran, and an ADD that works in place (the residual sums of every
    inverted bottleneck) overwrites its input buffer, so a point-wise conv's output gets the residual sum's
    (8x wider) range. Deterministic (same images, same order, same float kernels)."""
    from tensorflow.lite.python.optimize import calibrator as _calibrator

    original = _calibrator.Calibrator.calibrate

    def calibrate(self, dataset_gen):
        calibrated = bytes(original(self, dataset_gen))
        if measure:
            calibrated = measured_ranges_model(calibrated, images, log, method=range_method, narrow_sums=narrow_sums)
        return contract_input_range(calibrated)

    _calibrator.Calibrator.calibrate = calibrate
    try:
        yield
    finally:
        _calibrator.Calibrator.calibrate = original


def contract_input_range(calibrated: bytes) -> bytes:
    """The calibrated model with its graph input's range set to the I/O contract's pixel range, 0..255."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    graph = model.subgraphs[0]
    for i in graph.inputs:
        q = graph.tensors[i].quantization
        if q is not None and q.min is not None and len(q.min) == 1:
            q.min, q.max = [0.0], [255.0]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


@contextlib.contextmanager
def _weights_restored(model):
    saved = [w.copy() for w in model.get_weights()]
    try:
        yield
    finally:
        model.set_weights(saved)


def _conv_kind(layer) -> str | None:
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return "depthwise"
    if isinstance(layer, keras.layers.Conv2D) and type(layer) is keras.layers.Conv2D:
        return "conv"
    return None


def _bias_target(model, layer):
    """The layer whose bias absorbs `layer`'s correction: itself, or for a bias-free piece of a summed
    rewrite (`X_partK` of a split depthwise, `X_rest` of a two-term conv) the biased sibling."""
    if layer.use_bias:
        return layer
    name = layer.name
    for suffix, sibling in (("_rest", "_int8"),) + tuple((f"_part{k}", "_part0") for k in range(1, 8)):
        if name.endswith(suffix):
            try:
                other = model.get_layer(name[: -len(suffix)] + sibling)
            except ValueError:
                return None
            return other if other.use_bias else None
    return None


def weight_error_means(model, images, kinds=("conv", "depthwise")) -> dict[str, np.ndarray]:
    """Per conv layer, the mean over `images` and positions of conv(x, W - int8_grid(W)) per output
    channel, x being the layer's float input: the mean output shift that TFLite's per-channel symmetric
    int8 weights cause (what bias correction removes)."""
    import keras
    import tensorflow as tf

    from .rewrites import int8_grid

    convs = [l for l in model.layers if _conv_kind(l) in kinds]
    probe = keras.Model(model.inputs[0], [l.input for l in convs])
    deltas = []
    for l in convs:
        k = l.get_weights()[0]
        axis = 2 if _conv_kind(l) == "depthwise" else 3
        deltas.append(tf.constant((k.astype(np.float64) - int8_grid(k, axis).astype(np.float64)).astype(np.float32)))
    sums = [np.zeros(int(l.get_weights()[0].shape[2 if _conv_kind(l) == "depthwise" else 3]), np.float64)
            for l in convs]
    n = 0
    for img in images:
        xs = probe(np.asarray(img, np.float32)[None], training=False)
        xs = xs if isinstance(xs, (list, tuple)) else [xs]
        for i, (l, x, d) in enumerate(zip(convs, xs, deltas)):
            s = (1,) + tuple(l.strides) + (1,)
            pad = l.padding.upper()
            if _conv_kind(l) == "depthwise":
                y = tf.nn.depthwise_conv2d(x, d, s, pad, dilations=tuple(l.dilation_rate))
            else:
                y = tf.nn.conv2d(x, d, s, pad, dilations=tuple(l.dilation_rate))
            sums[i] += np.asarray(tf.reduce_mean(tf.cast(y, tf.float64), axis=(0, 1, 2)))
        n += 1
    if n == 0:
        raise LitePoseError("bias correction needs at least one calibration image")
    return {l.name: s / n for l, s in zip(convs, sums)}


def empirical_bias_correction(model, images, log=print, kinds=("conv", "depthwise")) -> dict[str, float]:
    """Add to every conv bias the mean (per output channel, over `images`) of float output minus output
    with int8 weights, so the quantised graph's outputs are unbiased; the graph and its ops are unchanged.
    Layers without a bias hand their correction to a summed sibling (`_bias_target`). Returns the
    largest |correction| per corrected layer. Mutates `model`'s weights."""
    means = weight_error_means(model, images, kinds)
    done, skipped = {}, []
    for name, m in means.items():
        target = _bias_target(model, model.get_layer(name))
        if target is None:
            skipped.append(name)
            continue
        w = target.get_weights()
        w[1] = (w[1].astype(np.float64) + m).astype(np.float32)
        target.set_weights(w)
        done[name] = float(np.max(np.abs(m)))
    log(f"bias correction: {len(done)} conv layers corrected, {len(skipped)} without a bias to absorb it")
    return done


def _same_pad(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    span = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _layer_patches(layer, x, rng, max_positions: int):
    """The layer's input windows at up to `max_positions` random output positions, as its kernel sees them:
    [P, kh*kw*C] for a conv, [P, kh*kw, C] for a depthwise conv (taps in the kernel's (kh, kw) order)."""
    x = np.asarray(x)[0]
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    h, w, c = x.shape
    if layer.padding == "same":
        (t, b), (l, r) = _same_pad(h, kh, sh, dh), _same_pad(w, kw, sw, dw)
        x = np.pad(x, ((t, b), (l, r), (0, 0)))
    elif getattr(layer, "pads", None):          # rewrites.BlockedDepthwise: 'valid' on its own zero padding
        x = np.pad(x, (*layer.pads, (0, 0)))
    oh, ow = (x.shape[0] - (kh - 1) * dh - 1) // sh + 1, (x.shape[1] - (kw - 1) * dw - 1) // sw + 1
    pos = rng.choice(oh * ow, min(oh * ow, max_positions), replace=False)
    ys, xs = (pos // ow) * sh, (pos % ow) * sw
    ty, tx = np.meshgrid(np.arange(kh) * dh, np.arange(kw) * dw, indexing="ij")
    p = x[ys[:, None] + ty.reshape(1, -1), xs[:, None] + tx.reshape(1, -1)]       # [P, kh*kw, C]
    return p if _conv_kind(layer) == "depthwise" else p.reshape(len(p), -1)


def _gptq_rows(w: np.ndarray, h: np.ndarray, damp: float = 0.01) -> np.ndarray:
    """Round rows of `w` ([..., R, K], one output channel per row) to TFLite's int8 grid (symmetric, scale
    max|row| / 127) so that the error e minimises e H e^T for the input second moments `h` ([..., K, K]):
    column by column, each rounding error is pushed onto the columns not rounded yet through the Cholesky
    factor of H^-1 (GPTQ, Frantar et al. 2022). Each row's largest weight stays put, so the converter
    finds the same scale and keeps these values exactly."""
    w = w.astype(np.float64)
    amax = np.max(np.abs(w), axis=-1, keepdims=True)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    frozen = np.abs(w) == amax
    original = w.copy()
    k = w.shape[-1]
    h = h + damp * np.mean(np.diagonal(h, axis1=-2, axis2=-1), axis=-1)[..., None, None] * np.eye(k) + 1e-12 * np.eye(k)
    u = np.swapaxes(np.linalg.cholesky(np.linalg.inv(h)), -1, -2)     # upper factor of H^-1
    for j in range(k):
        col = np.where(frozen[..., j], original[..., j], w[..., j])
        q = np.clip(np.round(col / scale[..., 0]), -127, 127) * scale[..., 0]
        err = (col - q) / u[..., j, j][..., None]
        w[..., j] = q
        if j + 1 < k:
            w[..., j + 1:] -= err[..., None] * u[..., j, j + 1:][..., None, :]
            w[..., j + 1:] = np.where(frozen[..., j + 1:], original[..., j + 1:], w[..., j + 1:])
    return w


def gptq_weight_rounding(model, images, log=print, max_images: int = 8, max_positions: int = 2048,
                         seed: int = 0) -> int:
    """Give every conv kernel of `model` the int8 rounding with the least output error on `images`
    (`_gptq_rows`, second moments of the layer's float inputs) instead of rounding to nearest: the graph,
    its ops and its int8 scales are unchanged, only which grid point each weight lands on. Layers already
    split into an int8 term and a remainder (`_int8` / `_rest`) and grouped convs are left alone. Mutates
    `model`'s weights; returns the number of layers re-rounded."""
    import keras

    convs = [l for l in model.layers if _conv_kind(l) and not l.name.endswith(("_int8", "_rest"))
             and int(getattr(l, "groups", 1)) == 1]
    images = list(images)[:max_images]
    if not images:
        raise LitePoseError("weight rounding needs at least one calibration image")
    probe = keras.Model(model.inputs[0], [l.input for l in convs])
    # Positions drawn per input tensor: layers that are copies of one another (the heads' depthwise conv,
    # duplicated for heatmaps and tags) get identical statistics and identical weights, which the converter
    # then merges back into one op as it does with nearest rounding.
    source = {}
    input_ids = [source.setdefault(id(l.input), len(source)) for l in convs]
    moments = [None] * len(convs)
    for n, img in enumerate(images):
        xs = probe(np.asarray(img, np.float32)[None], training=False)
        xs = xs if isinstance(xs, (list, tuple)) else [xs]
        for i, (layer, x) in enumerate(zip(convs, xs)):
            rng = np.random.default_rng((seed, n, input_ids[i]))
            p = _layer_patches(layer, x, rng, max_positions)
            m = np.einsum("pkc,plc->ckl", p, p) if p.ndim == 3 else p.T @ p
            m = m.astype(np.float64)
            moments[i] = m if moments[i] is None else moments[i] + m
        log(f"weight rounding: input statistics {n + 1}/{len(images)}")
    for layer, h in zip(convs, moments):
        kernel, *rest = layer.get_weights()
        kh, kw, cin, cout = kernel.shape
        if _conv_kind(layer) == "depthwise":           # rows: channels, columns: taps
            rows = kernel.reshape(kh * kw, cin).T[:, None, :]
            q = _gptq_rows(rows, h)[:, 0, :].T.reshape(kernel.shape)
        else:                                           # rows: output channels, columns: kh*kw*cin
            q = _gptq_rows(kernel.reshape(-1, cout).T, h).T.reshape(kernel.shape)
        layer.set_weights([q.astype(np.float32)] + rest)
    log(f"weight rounding: {len(convs)} conv layers rounded for the least output error")
    return len(convs)


def _summed_convs(model) -> list[list]:
    """The input convs of every Add whose inputs all come from linear convs with a bias, each read by that Add
    only (the pieces of a split depthwise conv, the two deconvolutions of a fusion phase): per-channel
    constants can move between those biases without changing the sum. (Offsets carried along the residual
    streams, with the 1x1 convs reading the stream absorbing them, were measured too: 1 dB worse on every
    output, docs/int8.md.)"""
    import keras

    uses = Counter(id(t) for layer in model.layers for node in layer._inbound_nodes for t in node.input_tensors)
    uses.update(id(t) for t in model.outputs)
    found = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Add):
            continue
        convs = [t._keras_history[0] for t in layer.input]
        if len(convs) >= 2 and all(_conv_kind(c) and c.use_bias and int(getattr(c, "groups", 1)) == 1
                                   and c.activation is keras.activations.linear and uses[id(t)] == 1
                                   for c, t in zip(convs, layer.input)):
            found.append(convs)
    return found


def _centring_shifts(lo: np.ndarray, hi: np.ndarray, eps: float = 1e-3, centre_weight: float = 1e-2) -> np.ndarray:
    """Per-channel constants d [n, C] (columns summing to 0) to add to n addends, chosen to minimise the summed
    width of the ranges TFLite quantises: each addend and each partial sum a0 + ... + ak (k = 1..n-2; a chain
    of ADDs). `lo`, `hi` [n + n - 2, C]: measured per-channel min/max of the addends, then of the partial
    sums. A linear programme: ranges [L_T, U_T] (L_T <= 0 <= U_T, as TFLite's) must hold every shifted channel;
    where the widths leave freedom, `centre_weight` prefers ranges centred on zero (MSE clipping shrinks a
    range towards zero) and `eps` channels centred in their tensor's range."""
    from scipy import sparse
    from scipy.optimize import linprog

    n_tensors, c = lo.shape
    n = (n_tensors + 2) // 2
    # shift of tensor T in channel j = sum over free addends i of member[T, i] * d[i, j]; addend n-1 = -sum
    member = np.zeros((n_tensors, n - 1))
    for i in range(n - 1):
        member[i, i] = 1.0
    member[n - 1, :] = -1.0
    for k in range(1, n - 1):
        member[n + k - 1, :k + 1] = 1.0
    nd, nb = (n - 1) * c, n_tensors
    n_var = nd + 2 * nb + n_tensors * c + nb   # d, U, L, |channel centre offset|, |U + L|
    rows, cols, vals, rhs = [], [], [], []
    r = 0

    def add_row(entries, bound):
        nonlocal r
        for col, v in entries:
            rows.append(r), cols.append(col), vals.append(v)
        rhs.append(bound)
        r += 1

    mid = (lo + hi) / 2
    for t in range(n_tensors):
        u, l_, a0 = nd + t, nd + nb + t, nd + 2 * nb + t * c
        for j in range(c):
            shift = [(i * c + j, member[t, i]) for i in range(n - 1) if member[t, i]]
            add_row(shift + [(u, -1.0)], -hi[t, j])                                  # hi + s <= U
            add_row([(col, -v) for col, v in shift] + [(l_, 1.0)], lo[t, j])           # L <= lo + s
            centre = [(u, -0.5), (l_, -0.5)]
            add_row(shift + centre + [(a0 + j, -1.0)], -mid[t, j])                     # |mid + s - (U+L)/2| <= a
            add_row([(col, -v) for col, v in shift] + [(u, 0.5), (l_, 0.5), (a0 + j, -1.0)], mid[t, j])
    z0 = nd + 2 * nb + n_tensors * c
    for t in range(n_tensors):                                                          # |U + L| <= z
        add_row([(nd + t, 1.0), (nd + nb + t, 1.0), (z0 + t, -1.0)], 0.0)
        add_row([(nd + t, -1.0), (nd + nb + t, -1.0), (z0 + t, -1.0)], 0.0)
    cost = np.zeros(n_var)
    cost[nd:nd + nb], cost[nd + nb:nd + 2 * nb] = 1.0, -1.0
    cost[nd + 2 * nb:z0] = eps / c
    cost[z0:] = centre_weight
    a_ub = sparse.csr_matrix((vals, (rows, cols)), shape=(r, n_var))
    # TFLite widens every activation range to hold 0, so a tensor's range is [min(L, 0), max(U, 0)]
    bounds = [(None, None)] * nd + [(0, None)] * nb + [(None, 0)] * nb + [(0, None)] * (n_tensors * c + nb)
    res = linprog(cost, A_ub=a_ub, b_ub=np.asarray(rhs), bounds=bounds, method="highs")
    if res.status != 0:
        raise LitePoseError(f"centring the summed convs failed: {res.message}")
    d = res.x[:nd].reshape(n - 1, c)
    return np.concatenate([d, -d.sum(0, keepdims=True)])


def centre_sum_addends(model, images, log=print, max_images: int = 32) -> int:
    """Move per-channel constants between the biases of convs that are summed (the pieces of a split
    depthwise conv, the two deconvolutions of a fusion step) so that each addend's channels, and each partial
    sum's, share one narrow range: TFLite quantises every addend and partial sum with one scale per tensor, and
    channels offset from one another widen it (e.g. a split 7x7 piece 44 wide where its channels centred need
    25). The sums, the graph and its ops are unchanged. Ranges from the first `max_images` images (the int8
    ranges themselves are measured on all of them later). Mutates `model`'s weights; returns the number of
    Adds centred."""
    import keras

    summed = _summed_convs(model)
    images = list(images)[:max_images]
    if not summed or not images:
        return 0
    leaves = [c for convs in summed for c in convs]
    probe = keras.Model(model.inputs[0], [c.output for c in leaves])
    lo = [None] * len(summed)
    hi = [None] * len(summed)
    for n_img, img in enumerate(images):
        ys = probe(np.asarray(img, np.float32)[None], training=False)
        ys = list(ys) if isinstance(ys, (list, tuple)) else [ys]
        k = 0
        for s, convs in enumerate(summed):
            parts = [np.asarray(y, np.float64).reshape(-1, y.shape[-1]) for y in ys[k:k + len(convs)]]
            k += len(convs)
            tensors = parts + list(np.cumsum(parts, axis=0)[1:len(parts) - 1])
            a = np.stack([t.min(0) for t in tensors])
            b = np.stack([t.max(0) for t in tensors])
            lo[s] = a if lo[s] is None else np.minimum(lo[s], a)
            hi[s] = b if hi[s] is None else np.maximum(hi[s], b)
        log(f"centring summed convs: ranges {n_img + 1}/{len(images)}")
    before = after = 0.0
    for s, convs in enumerate(summed):
        d = _centring_shifts(lo[s], hi[s])
        shifts = _tensor_shifts(d)
        before += float(np.sum(hi[s].max(1) - lo[s].min(1)))
        after += float(np.sum((hi[s] + shifts).max(1) - (lo[s] + shifts).min(1)))
        for conv, shift in zip(convs, d):
            kernel, bias = conv.get_weights()
            conv.set_weights([kernel, (bias.astype(np.float64) + shift).astype(np.float32)])
    log(f"centring summed convs: {len(summed)} sums, quantised ranges {before:.0f} -> {after:.0f} wide in total")
    return len(summed)


def _tensor_shifts(d: np.ndarray) -> np.ndarray:
    """Shifts of the addends and partial sums (the rows of `_centring_shifts`' lo/hi) for addend shifts d."""
    return np.concatenate([d, np.cumsum(d, axis=0)[1:len(d) - 1]])


MSE_SAMPLES = 20000


def mse_range(values: np.ndarray, lo: float, hi: float, levels: int = 256) -> tuple[float, float]:
    """The clipping range [a*lo, a*hi] (a in 0.3..1) whose 8-bit quantisation of `values` has the least
    mean squared error; a = 1 is plain min/max."""
    best, best_err = (lo, hi), np.inf
    v = values.astype(np.float64)
    for a in np.linspace(1.0, 0.3, 15):
        l, h = lo * a, hi * a
        if h - l <= 0:
            continue
        step = (h - l) / (levels - 1)
        q = np.clip(np.round((v - l) / step), 0, levels - 1) * step + l
        err = float(np.mean((q - v) ** 2))
        if err < best_err * (1 - 1e-9):
            best, best_err = (l, h), err
    return best


# range_method -> which tensors get MSE-optimal clipping, by the Keras layer that produces them
# (None: all); every other tensor keeps its measured min/max.
MSE_SCOPES = {"mse": None, "mse-backbone": ("normalize", "first_", "stage_"), "mse-heads": ("deconv_", "final_")}
# MSE-optimal clipping of the backbone's activations, min/max for the fusion and head tensors: higher SQNR on
# every output of all three held-out folds than min/max everywhere (+0.3 to +4.6 dB; docs/int8.md section 3).
DEFAULT_ACTIVATION_RANGES = "mse-backbone"
# GPTQ rounding of the int8 weights (gptq_weight_rounding): same graph and scales, less output error.
DEFAULT_WEIGHT_ROUNDING = "gptq"


def _producer_layer(tensor_name: str) -> str:
    first = tensor_name.split(";")[0]
    return first.split("/")[1] if "/" in first else ""


def measured_ranges_model(calibrated: bytes, images, log=print, method: str = "minmax",
                          narrow_sums: bool = True) -> bytes:
    """A copy of a calibrated (float, min/max-annotated) model whose activation min/max are measured
    by running it on `images` with every intermediate tensor kept. `method`: "minmax", or a key of
    `MSE_SCOPES` (MSE-optimal clipping for all or some tensors). `narrow_sums`: addends of a saturating
    ADD get only the range that can reach its output (`saturating_sum_ranges`)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    tensors = model.subgraphs[0].tensors
    stats = [i for i, t in enumerate(tensors)
             if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min) == 1]
    interp = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    lo = np.full(len(stats), np.inf)
    hi = np.full(len(stats), -np.inf)
    samples = [[] for _ in stats]
    rng = np.random.default_rng(0)
    if method != "minmax" and method not in MSE_SCOPES:
        raise LitePoseError(f"range method {method!r}: use minmax or one of {', '.join(MSE_SCOPES)}")
    scope = MSE_SCOPES.get(method)
    clip = [method != "minmax" and (scope is None or _producer_layer(
        tensors[i].name.decode() if isinstance(tensors[i].name, bytes) else str(tensors[i].name)).startswith(scope))
        for i in stats]
    for n, img in enumerate(images):
        interp.set_tensor(inp, np.asarray(img, np.float32)[None])
        interp.invoke()
        for k, i in enumerate(stats):
            v = interp.get_tensor(i)
            lo[k] = min(lo[k], float(v.min()))
            hi[k] = max(hi[k], float(v.max()))
            if clip[k]:
                flat = v.reshape(-1)
                samples[k].append(flat[rng.integers(0, flat.size, min(flat.size, MSE_SAMPLES))])
        log(f"measuring activation ranges {n + 1}/{len(images)}")
    outputs = {d["index"] for d in interp.get_output_details()}
    k_of = {i: k for k, i in enumerate(stats)}
    measured = {i: (lo[k_of[i]], hi[k_of[i]]) for i in stats if np.isfinite(lo[k_of[i]])}
    final: dict[int, tuple[float, float]] = {}

    def finalise(i: int, useful=None) -> tuple[float, float]:
        """Tensor i's int8 range, fixed once (measured, cut to `useful`, MSE-clipped in scope)."""
        if i in final:
            return final[i]
        k = k_of[i]
        a, b = measured[i]
        if useful is not None and max(a, useful[0]) < min(b, useful[1]):
            a, b = max(a, useful[0]), min(b, useful[1])
        else:
            useful = None
        if clip[k] and i not in outputs and b > a:
            values = np.concatenate(samples[k])
            a, b = mse_range(np.clip(values, a, b) if useful is not None else values, a, b)
        final[i] = (a, b)
        return final[i]

    useful = saturating_sum_ranges(model, measured, outputs, finalise) if narrow_sums else {}
    for k, i in enumerate(stats):
        if i in measured:
            lo[k], hi[k] = finalise(i, useful.get(i))
    if narrow_sums:
        narrowed = sum(1 for i in useful if final[i] != measured[i])
        log(f"activation ranges: {narrowed} addends of saturating sums narrowed to the values that reach the sum")
    changed = 0
    for k, i in enumerate(stats):
        q = tensors[i].quantization
        if not (np.isfinite(lo[k]) and np.isfinite(hi[k])):
            continue
        if abs(q.min[0] - lo[k]) > 1e-6 * max(1.0, abs(lo[k])) or abs(q.max[0] - hi[k]) > 1e-6 * max(1.0, abs(hi[k])):
            changed += 1
        q.min, q.max = [float(lo[k])], [float(hi[k])]
    log(f"activation ranges ({method}): {changed} of {len(stats)} differed from the converter's calibration")
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


_TFLITE_ADD = 0


def saturating_sum_ranges(model, measured: dict, graph_outputs: set, finalise) -> dict:
    """Ranges outside of which an addend of an int8 ADD cannot change the ADD's output.

    An int8 ADD clamps its result to its own range (for a fused ReLU6, [0, 6]). So an addend `a` of
    `o = a + b` can be clamped to [o_lo - b_hi, o_hi - b_lo] without changing `o` (b within its measured
    range): that is why a wide partial sum of a split depthwise kernel, or the two terms of a precise conv,
    need not spend their int8 steps on values the ReLU6 after the sum throws away. Walks the ADDs from the
    outputs back (so a partial sum's own narrowed range narrows its addends in turn); only tensors whose
    one consumer is that ADD. `finalise(i, useful)` gives tensor i's final range (fixed on first call).
    Returns {tensor index: (lo, hi)} of the narrowed addends."""
    graph = model.subgraphs[0]
    consumers: dict[int, int] = Counter(int(t) for op in graph.operators for t in op.inputs if t >= 0)
    useful: dict[int, tuple[float, float]] = {}
    for op in reversed(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != _TFLITE_ADD or len(op.inputs) != 2:
            continue
        o = int(op.outputs[0])
        a, b = (int(t) for t in op.inputs)
        if o not in measured or a not in measured or b not in measured or a == b:
            continue
        o_lo, o_hi = finalise(o, useful.get(o))
        for x, other in ((a, b), (b, a)):
            if consumers[x] == 1 and x not in graph_outputs:
                useful[x] = (o_lo - measured[other][1], o_hi - measured[other][0])
    return useful


_TFLITE_CONV_2D, _TFLITE_DEPTHWISE_CONV_2D, _TFLITE_DEQUANTIZE = 3, 4, 6


def _int8_outputs(runner, image) -> dict[str, np.ndarray]:
    """The model's outputs, float, for an RGB image of 0..255 values: an integer input gets the image through
    its own scale and zero point (the contract's: uint8 as is, int8 minus 128), integer outputs are
    dequantised."""
    detail = runner.get_input_details()["image"]
    x = np.asarray(image, np.float32)[None]
    dtype = np.dtype(detail["dtype"])
    if dtype.kind in "iu":
        scale, zero = detail["quantization"]
        x = quantize_pixels(np.round(x), scale or 1.0, zero, dtype)
    out = runner(image=x.astype(dtype))
    result = {}
    for name, d in runner.get_output_details().items():
        v = np.asarray(out[name])[0]
        scale, zero = d["quantization"]
        result[name] = (v.astype(np.float32) - zero) * scale if np.dtype(d["dtype"]).kind in "iu" else v
    return result


def _output_bias_tensors(fb) -> dict[str, int]:
    """Output name -> index of the int32 bias tensor of the conv that produces it (through the float output's
    DEQUANTIZE), for the outputs made by a quantised CONV_2D / DEPTHWISE_CONV_2D with a bias."""
    if not fb.signatureDefs:
        return {}
    sg = fb.subgraphs[fb.signatureDefs[0].subgraphIndex]
    producer = {o: op for op in sg.operators for o in op.outputs}
    readers = Counter(i for op in sg.operators for i in op.inputs)

    def code(op):
        c = fb.operatorCodes[op.opcodeIndex]
        return max(int(c.builtinCode), int(c.deprecatedBuiltinCode))

    found = {}
    for tm in fb.signatureDefs[0].outputs:
        name = tm.name.decode() if isinstance(tm.name, bytes) else str(tm.name)
        op = producer.get(tm.tensorIndex)
        if op is not None and code(op) == _TFLITE_DEQUANTIZE:
            op = producer.get(op.inputs[0])
        if op is None or code(op) not in (_TFLITE_CONV_2D, _TFLITE_DEPTHWISE_CONV_2D) or len(op.inputs) < 3:
            continue
        bias = sg.tensors[op.inputs[2]] if op.inputs[2] >= 0 and readers[op.inputs[2]] == 1 else None
        if bias is not None and bias.type == 2 and bias.quantization is not None \
                and bias.quantization.scale is not None and fb.buffers[bias.buffer].data is not None:  # 2: INT32
            found[name] = int(op.inputs[2])
    return found


def _shift_biases(data: bytes, shifts: dict[str, np.ndarray]) -> bytes:
    """`data` with `shifts[name]` (output units, per channel) added to the int32 bias of the conv that makes
    output `name`. A bias buffer the converter shares with other tensors (identical constants are stored
    once) is copied first, so that only this conv's bias moves."""
    from tensorflow.lite.tools import flatbuffer_utils

    fb = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    tensors = fb.subgraphs[fb.signatureDefs[0].subgraphIndex].tensors if fb.signatureDefs else []
    for name, index in _output_bias_tensors(fb).items():
        if name not in shifts:
            continue
        tensor = tensors[index]
        values = np.frombuffer(bytes(bytearray(fb.buffers[tensor.buffer].data)), "<i4").astype(np.int64)
        scales = np.broadcast_to(np.asarray(tensor.quantization.scale, np.float64), values.shape)
        shifted = np.clip(values + np.round(np.asarray(shifts[name], np.float64) / scales), -2**31, 2**31 - 1)
        if sum(1 for t in tensors if t.buffer == tensor.buffer) > 1:
            fb.buffers.append(type(fb.buffers[tensor.buffer])())
            tensor.buffer = len(fb.buffers) - 1
        fb.buffers[tensor.buffer].data = np.frombuffer(shifted.astype("<i4").tobytes(), np.uint8).copy()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(fb))


def correct_output_biases(data: bytes, model, images, log=print, max_images: int = 32) -> tuple[bytes, dict]:
    """Fold the mean int8 error of each output channel, measured on the calibration images against the float
    `model`, into the int32 bias of the conv that makes that output. Rounding noise is not zero-mean after a
    ReLU, and on LitePose-M heatmaps_s4 carries a per-channel offset over the whole map (measured on held-out
    images: +0.4 to +0.8 dB SQNR on heatmaps_s4 once removed; docs/int8.md, session 9). Same graph, same
    ops, same scales: only bias values change. A correction that does not lower the output's error on the
    calibration images is left out. The int8 model runs on LiteRT's reference kernels, as for the activation
    ranges, so that the file does not depend on the host's XNNPACK kernels. Returns the model and, per output,
    the SQNR on the calibration images before and after."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tensorflow.lite.tools import flatbuffer_utils

    images = list(images)[:max_images]
    fb = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    biases = _output_bias_tensors(fb)
    if not images or not biases:
        log("output bias correction: no output comes from a conv with a bias of its own; nothing to correct")
        return data, {}
    references = []
    for n, img in enumerate(images):
        out = model(np.asarray(img, np.float32)[None], training=False)
        references.append({k: np.asarray(out[k], np.float32)[0] for k in biases})
        log(f"output bias correction: float outputs {n + 1}/{len(images)}")

    def errors(content: bytes):
        runner = Interpreter(model_content=content, num_threads=1,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                             ).get_signature_runner()
        mean, signal, noise = {}, dict.fromkeys(biases, 0.0), dict.fromkeys(biases, 0.0)
        for img, ref in zip(images, references):
            out = _int8_outputs(runner, img)
            for k in biases:
                e = out[k].astype(np.float64) - ref[k].astype(np.float64)
                mean[k] = mean.get(k, 0.0) + e.reshape(-1, e.shape[-1]).mean(0) / len(images)
                signal[k] += float(np.sum(ref[k].astype(np.float64) ** 2))
                noise[k] += float(np.sum(e ** 2))
        return mean, {k: 10 * np.log10(signal[k] / max(noise[k], 1e-30)) for k in biases}

    mean, before = errors(data)
    corrected = _shift_biases(data, {k: -mean[k] for k in biases})
    _, after = errors(corrected)
    # The shift moves values before the output's int8 rounding and clamp, so it usually gains more than the
    # offset's own energy, but on an output with almost no offset the rounding can also make it worse.
    worse = [k for k in biases if after[k] <= before[k]]
    if worse:
        kept = {k: -mean[k] for k in biases if k not in worse}
        corrected = _shift_biases(data, kept) if kept else data
        after.update({k: before[k] for k in worse})
    report = {k: {"sqnr_db_before": round(float(before[k]), 2), "sqnr_db_after": round(float(after[k]), 2),
                  "corrected": k not in worse} for k in biases}
    log("output bias correction (calibration images): " + ", ".join(
        f"{k} {v['sqnr_db_before']:.1f} -> {v['sqnr_db_after']:.1f} dB" + ("" if v["corrected"] else " (not corrected)")
        for k, v in report.items()))
    return corrected, report


def inspect_tflite(data_or_path) -> dict:
    """Signature I/O (name, shape, dtype, quantisation) and op counts, read back through LiteRT."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - tflite-runtime installs
        from tflite_runtime.interpreter import Interpreter

    if isinstance(data_or_path, (bytes, bytearray)):
        interp = Interpreter(model_content=bytes(data_or_path))
    else:
        interp = Interpreter(model_path=str(data_or_path))
    sig = interp.get_signature_runner()
    details = {}
    for kind, d in (("inputs", sig.get_input_details()), ("outputs", sig.get_output_details())):
        details[kind] = {
            name: {"shape": [int(v) for v in info["shape"]], "dtype": np.dtype(info["dtype"]).name,
                   "scale": float(info["quantization"][0]), "zero_point": int(info["quantization"][1])}
            for name, info in d.items()}
    ops = Counter(op["op_name"] for op in interp._get_ops_details())
    details["ops"] = dict(sorted(ops.items()))
    return details


def check_io_contract(io: dict, precision: str, input_hw, num_joints: int, input_dtype: str = "uint8",
                      output_dtype: str = "float32", source: str = "model") -> None:
    h, w = input_hw
    j = num_joints
    want_in = {"image": [1, h, w, 3]}
    want_out = {"heatmaps_s4": [1, h // 4, w // 4, j], "tags_s4": [1, h // 4, w // 4, j],
                "heatmaps_s2": [1, h // 2, w // 2, j]}
    problems = []
    if {k: v["shape"] for k, v in io["inputs"].items()} != want_in:
        problems.append(f"inputs {io['inputs']} != {want_in}")
    if {k: v["shape"] for k, v in io["outputs"].items()} != want_out:
        problems.append(f"outputs {sorted(io['outputs'])} shapes differ from {want_out}")
    image = io["inputs"].get("image", {})
    if precision == "int8":
        zp = {"uint8": 0, "int8": -128}[input_dtype]
        if image.get("dtype") != input_dtype or image.get("scale") != 1.0 or image.get("zero_point") != zp:
            problems.append(f"image input must be {input_dtype} scale 1 zero point {zp}, got {image}")
        for name, o in io["outputs"].items():
            if o["dtype"] != output_dtype:
                problems.append(f"output {name} is {o['dtype']}, expected {output_dtype}")
        if "DEQUANTIZE" in io["ops"] and output_dtype == "int8":
            problems.append("float ops left in a full-integer graph")
    elif image.get("dtype") != "float32":
        problems.append(f"image input must be float32, got {image.get('dtype')}")
    if "SHAPE" in io["ops"]:
        problems.append("the graph computes shapes at run time (SHAPE op)")
    if problems:
        raise LitePoseError(f"{source}: the converted model breaks the I/O contract: " + "; ".join(problems))


# CPU features that decide which float kernels oneDNN, Eigen's contraction kernel and OpenBLAS pick at run time
# the CPU features that choose kernels, by the /proc/cpuinfo line that lists them (x86 "flags", ARM "Features";
# a name can mean something else on the other: AMD's "sme" is memory encryption)
FLOAT_KERNEL_FEATURES = {
    "flags": ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
              "amx_tile", "amx_bf16", "amx_int8"),
    "Features": ("asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2", "sme"),
}

# TensorFlow ships under several names; the card names the one installed as "tensorflow"
TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos",
                            "tensorflow-aarch64", "tf-nightly", "tf-nightly-cpu")
# environment variables that change those choices (each gave another file on the same machine)
FLOAT_KERNEL_SETTINGS = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE")


def cpu_from_cpuinfo(cpuinfo: str, machine: str, processor: str = "") -> tuple[str, list[str]]:
    """The CPU's name and its kernel-choosing features (FLOAT_KERNEL_FEATURES) from /proc/cpuinfo's text."""
    info: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())     # the first core's
    key = "flags" if "flags" in info else "Features"
    features = [f for f in FLOAT_KERNEL_FEATURES[key] if f in set(info.get(key, "").split())]
    if info.get("model name"):
        # a cloud host's name ("AMD EPYC") can cover generations whose int8 kernels differ 2x: say which one
        generation = (f" (family {info['cpu family']}, model {info['model']})"
                      if info.get("cpu family") and info.get("model") else "")
        return info["model name"] + generation, features
    if info.get("CPU part"):   # ARM names no model: its implementer and part codes say which core it is
        return f"{machine} (implementer {info.get('CPU implementer', '?')}, part {info['CPU part']})", features
    return processor or machine, features


def build_environment() -> dict:
    """What a build's bytes depend on besides its inputs. The same command gives the same file wherever these
    are equal; on another CPU the float libraries choose other kernels, the calibration statistics differ in
    their last bits, and a few quantisation constants of the file move (docs/int8.md, "Reproducibility")."""
    import platform
    from importlib import metadata

    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:   # not Linux: the processor name is all there is
        cpuinfo = ""
    cpu, features = cpu_from_cpuinfo(cpuinfo, platform.machine(), platform.processor())
    versions = {}
    for package, distributions in (("tensorflow", TENSORFLOW_DISTRIBUTIONS), ("numpy", ("numpy",)),
                                   ("scipy", ("scipy",)), ("ai-edge-litert", ("ai-edge-litert",))):
        for distribution in distributions:
            with contextlib.suppress(metadata.PackageNotFoundError):
                versions[package] = metadata.version(distribution)
                break
    settings = {k: os.environ[k] for k in FLOAT_KERNEL_SETTINGS if k in os.environ}
    return {"python": platform.python_version(), **versions, "machine": platform.machine(), "cpu": cpu,
            "cpu_features": features,
            **({"float_kernel_settings": settings} if settings else {})}


def model_card(*, variant: str, arch: dict, num_joints: int, input_hw, precision: str, io: dict,
               checkpoint: str | None, checkpoint_sha256: str | None, tflite_sha256: str, size_bytes: int,
               extra: dict | None = None) -> dict:
    card = {
        "format": "litepose-model-card/1",
        "tool": "litepose-edge", "tool_version": __version__, "built_with": build_environment(),
        "variant": variant, "arch": arch, "joints": num_joints,
        "dataset": {14: "crowdpose", 17: "coco"}.get(num_joints, "custom"),
        "input_size": f"{input_hw[0]}x{input_hw[1]}",
        "precision": precision,
        "normalisation": "inside the graph: (x / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225], RGB",
        "inputs": io["inputs"], "outputs": io["outputs"], "ops": io["ops"],
        "checkpoint": checkpoint, "checkpoint_sha256": checkpoint_sha256,
        "sha256": tflite_sha256, "size_bytes": size_bytes,
    }
    card.update(extra or {})
    return card


def card_path_for(tflite_path: str | Path) -> Path:
    p = Path(tflite_path)
    return p.with_name(p.stem + ".json")
