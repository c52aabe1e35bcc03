"""Every deploy-graph rewrite keeps the float function (converter/rewrites.py), checked one by one."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from converter.rewrites import (BlockedDepthwise, DeployOptions, blocked_depthwise_taps,  # noqa: E402
                                build_deploy_model, depthwise_block_size, depthwise_kernel_taps,
                                depthwise_pieces_stride1, equalisation_scales, int8_grid, measure_channel_ranges,
                                same_piece_candidates, subpixel_kernel)

HW = (128, 192)  # non-square, so a swapped axis shows


@pytest.fixture(scope="session")
def xs_float(shared_dir):
    from converter.checkpoint import build_keras_from_checkpoint

    model, info = build_keras_from_checkpoint(shared_dir / "checkpoints" / "litepose-xs-crowdpose-random.pth",
                                              input_hw=HW)
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, HW + (3,)).astype(np.float32)
    image[:20] = 0  # a black letterbox band, as deployed
    ref = {k: np.asarray(v)[0] for k, v in model(image[None]).items()}
    return model, info, image, ref


ALL_OFF = DeployOptions(fold_bn=False, split_depthwise=False, subpixel_deconv=False, deconv_phases=False,
                        normalize_pixel_groups=1,
                        stem_pad_top_left=False,
                        equalize_stem=False, merge_stem_expand=False, equalize_heads=False, equalize_relu=False,
                        precise_layers=())
SINGLE = {
    "none": {},
    "fold_bn": {"fold_bn": True},
    "split_depthwise": {"split_depthwise": True},
    "split_depthwise_cols": {"split_depthwise": True, "depthwise_layout": "cols"},
    "split_depthwise_rows": {"split_depthwise": True, "depthwise_layout": "rows"},
    "blocked_depthwise": {"fold_bn": True, "split_depthwise": True, "depthwise_layout": "blocked"},
    # the 5x5 head depthwise convs blocked too, with ReLU and the split ranges' shifted ReLU copies
    "blocked_depthwise_heads": {"fold_bn": True, "split_depthwise": True, "depthwise_layout": "blocked",
                                "equalize_heads": True, "joint_heads": True, "split_head_ranges": True},
    "subpixel_deconv": {"subpixel_deconv": True},
    "normalize_pixel_groups": {"normalize_pixel_groups": 16},
    "deconv_phases": {"fold_bn": True, "subpixel_deconv": True, "deconv_phases": True},
    "stem_pad_top_left": {"stem_pad_top_left": True},
    "equalize_stem": {"fold_bn": True, "equalize_stem": True, "merge_stem_expand": False},
    "merge_stem_expand": {"fold_bn": True, "merge_stem_expand": True},
    "equalize_heads": {"fold_bn": True, "equalize_heads": True},
    "equalize_heads_balanced": {"fold_bn": True, "equalize_heads": True, "head_balance": True},
    "joint_heads": {"joint_heads": True},
    "joint_heads_equalised": {"fold_bn": True, "equalize_heads": True, "joint_heads": True},
    "split_head_ranges": {"fold_bn": True, "equalize_heads": True, "joint_heads": True, "split_head_ranges": True},
    "split_head_ranges_separate": {"fold_bn": True, "equalize_heads": True, "split_head_ranges": True},
    "equalize_relu": {"fold_bn": True, "equalize_relu": True},
    "precise_layers": {"precise_layers": ("first_1", "final_refined_0_conv_3_heatmaps", "stage_0_0_point_conv")},
    "all (default)": None,
}


@pytest.mark.needs_shared
@pytest.mark.parametrize("name", list(SINGLE))
def test_each_rewrite_is_exact_in_float(xs_float, name):
    model, info, image, ref = xs_float
    opts = DeployOptions() if SINGLE[name] is None else dataclasses.replace(ALL_OFF, **SINGLE[name])
    ranges = measure_channel_ranges(model, info["arch"], [image]) if name.startswith(("equal", "all")) else None
    deploy = build_deploy_model(model, info["arch"], info["num_joints"], opts, ranges=ranges)
    out = {k: np.asarray(v)[0] for k, v in deploy(image[None]).items()}
    for k in ref:
        err = np.max(np.abs(out[k] - ref[k]))
        assert err <= 2e-5 * max(1.0, np.max(np.abs(ref[k]))), f"{name}: {k} differs by {err}"


@pytest.mark.needs_shared
def test_rewrites_are_exact_at_a_size_whose_deepest_map_is_odd(shared_dir):
    """Any multiple of 16 is a valid input (archs.INPUT_MULTIPLE): at 144 x 208 the stride-16 map is 9 x 13, so
    the deconvolution phases, the stride-2 pieces and the pixel blocks all meet odd sizes and partial blocks."""
    from converter.checkpoint import build_keras_from_checkpoint

    hw = (144, 208)
    model, info = build_keras_from_checkpoint(shared_dir / "checkpoints" / "litepose-xs-crowdpose-random.pth",
                                              input_hw=hw)
    image = np.random.default_rng(11).integers(0, 256, hw + (3,)).astype(np.float32)
    ref = {k: np.asarray(v)[0] for k, v in model(image[None]).items()}
    assert ref["heatmaps_s4"].shape[:2] == (36, 52) and ref["heatmaps_s2"].shape[:2] == (72, 104)
    ranges = measure_channel_ranges(model, info["arch"], [image])
    for name, opts in (("default", DeployOptions()),
                       ("blocked", DeployOptions(depthwise_layout="blocked", split_head_ranges=True))):
        deploy = build_deploy_model(model, info["arch"], info["num_joints"], opts, ranges=ranges)
        out = {k: np.asarray(v)[0] for k, v in deploy(image[None]).items()}
        for k in ref:
            err = np.max(np.abs(out[k] - ref[k]))
            assert err <= 2e-5 * max(1.0, np.max(np.abs(ref[k]))), f"{name}: {k} differs by {err}"


def test_subpixel_kernel_equals_transpose_conv():
    rng = np.random.default_rng(0)
    cin, cout = 5, 3
    kernel = rng.normal(size=(4, 4, cout, cin)).astype(np.float32)      # Keras Conv2DTranspose layout
    x = rng.normal(size=(1, 6, 7, cin)).astype(np.float32)
    deconv = tf.nn.conv2d_transpose(x, kernel, (1, 12, 14, cout), 2, padding="SAME").numpy()
    y = tf.nn.conv2d(x, subpixel_kernel(kernel.astype(np.float64)).astype(np.float32), 1, "SAME")
    np.testing.assert_allclose(tf.nn.depth_to_space(y, 2).numpy(), deconv, atol=1e-5)


@pytest.mark.parametrize("layout,slots", [("lattice", 59), ("cols", 75), ("rows", 75)])
def test_depthwise_pieces_cover_the_kernel_once(layout, slots):
    """Placing every piece's taps where TF 'same' padding reads them rebuilds the 7x7 kernel exactly.
    `slots`: taps XNNPACK computes, each piece rounded up to its 9- or 25-tap kernel (the cost)."""
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(7, 7, 4, 1))
    pieces = depthwise_pieces_stride1(kernel, layout)
    rebuilt = np.zeros_like(kernel)
    cost = 0
    for piece, (dy, dx) in pieces:
        kh, kw = piece.shape[:2]
        assert kh * kw <= 25                       # XNNPACK's fast unipass depthwise kernels
        cost += 9 if kh * kw <= 9 else 25
        top, left = ((kh - 1) * dy) // 2, ((kw - 1) * dx) // 2   # TF 'same', stride 1: padding before
        for i in range(kh):
            for j in range(kw):
                y, x = 3 - top + i * dy, 3 - left + j * dx
                assert 0 <= y < 7 and 0 <= x < 7
                assert not rebuilt[y, x].any(), "tap covered twice"
                rebuilt[y, x] = piece[i, j]
    np.testing.assert_array_equal(rebuilt, kernel)
    assert cost == slots


def _same_piece_masks():
    """Every 'same' piece inside the 7x7 window as (49-bit mask, cost): the taps of the XNNPACK int8 kernel that
    runs it (3, 9 or 25; docs/bench/depthwise_session11.json)."""
    return [(mask, depthwise_kernel_taps(len(rows) * len(cols))) for mask, rows, cols in same_piece_candidates()]


def test_lattice_split_is_the_cheapest_three_piece_cover():
    """Exhaustive: no three 'same' pieces cover the 7x7 window for fewer XNNPACK kernel taps than 25+25+9, with
    the 3-tap kernels counted too (25+25+3 would need a 5x5 and a 21-tap piece inside the ring around it)."""
    pieces = _same_piece_masks()
    masks = np.array([m for m, _ in pieces], dtype=np.uint64)
    costs = np.array([c for _, c in pieces])
    full = (1 << 49) - 1
    best = None
    for i, (a, ca) in enumerate(pieces):
        for b, cb in pieces[i:]:
            need = np.uint64(full & ~(a | b))
            fits = (masks & need) == need
            if fits.any():
                total = ca + cb + int(costs[fits].min())
                best = total if best is None else min(best, total)
    assert best == 59
    lattice = depthwise_pieces_stride1(np.zeros((7, 7, 1, 1), np.float32), "lattice")
    assert sum(depthwise_kernel_taps(k.shape[0] * k.shape[1]) for k, _ in lattice) == best


def test_int8_grid_is_what_tflite_stores():
    rng = np.random.default_rng(2)
    k = rng.normal(size=(3, 3, 8, 5)).astype(np.float32)
    g = int8_grid(k, channel_axis=3)
    scale = np.max(np.abs(k), axis=(0, 1, 2)) / 127
    q = g / scale
    np.testing.assert_allclose(q, np.round(q), atol=1e-4)                  # on the grid
    np.testing.assert_allclose(np.max(np.abs(q), axis=(0, 1, 2)), 127, atol=1e-4)  # same scale found again
    assert np.max(np.abs(g - k) / scale) <= 0.5 + 1e-4


def test_equalisation_scales_equalise_and_stay_bounded():
    r = np.array([0.0, 1e-9, 1.0, 2.0, 8.0])
    s = equalisation_scales(r)
    assert np.all(s > 0) and np.all(s <= 32) and np.all(s >= 1 / 32)
    np.testing.assert_allclose((r / s)[2:], 1.0)      # live channels all end at the median range (1)
    np.testing.assert_allclose(s[:2], 1 / 32)        # dead channels: amplification capped


@pytest.mark.needs_shared
def test_deploy_graph_ops_are_on_the_fast_path(xs_float, tmp_path):
    """fp32 TFLite of the deploy graph: no TRANSPOSE_CONV / MUL / runtime shapes, depthwise <= 25 taps,
    PAD only before the stem conv (top/left, on the 3-channel image) and the three stride-2 7x7 depthwise convs."""
    from ai_edge_litert.interpreter import Interpreter

    from converter.export import export_tflite, inspect_tflite

    model, info, image, ref = xs_float
    deploy = build_deploy_model(model, info["arch"], info["num_joints"])
    data = export_tflite(deploy, "fp32", log=lambda m: None)
    ops = inspect_tflite(data)["ops"]
    assert "TRANSPOSE_CONV" not in ops and "MUL" not in ops and "SHAPE" not in ops
    assert ops.get("PAD", 0) == 4 and ops["DEPTH_TO_SPACE"] == 3
    interp = Interpreter(model_content=data)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    for op in interp._get_ops_details():
        if op["op_name"] == "DEPTHWISE_CONV_2D":
            kh, kw = tensors[op["inputs"][1]]["shape"][1:3]
            assert kh * kw <= 25, (kh, kw)
    path = tmp_path / "deploy.tflite"
    path.write_bytes(data)
    from python_ref.runner import TFLiteRunner

    out = TFLiteRunner(path)(image.astype(np.uint8))
    for k in ref:
        assert np.max(np.abs(out[k] - ref[k])) <= 1e-4 * max(1.0, np.max(np.abs(ref[k])))


def _graph(fn):
    """A stand-in network: any callable returning the three outputs, as the check calls Keras models."""
    return lambda x, training=False: {k: fn(x, i) for i, k in
                                      enumerate(("heatmaps_s4", "tags_s4", "heatmaps_s2"))}


def test_float_check_accepts_rounding_of_an_ill_conditioned_network_and_refuses_a_real_change():
    from converter.rewrites import verify_deploy_model
    from python_ref.errors import LitePoseError

    image = np.random.default_rng(2).uniform(1, 255, (4, 4, 3)).astype(np.float32)
    calm = _graph(lambda x, i: np.tanh(x / 255.0 + i))
    with pytest.raises(LitePoseError, match="a rewrite is wrong"):       # an offset is no rounding error
        verify_deploy_model(calm, _graph(lambda x, i: np.tanh(x / 255.0 + i) + 0.01), image)
    assert "float_sensitivity" not in verify_deploy_model(calm, calm, image)
    # chaotic in float32: one ulp of input moves the outputs by O(100), as random He-scaled weights do
    chaos = _graph(lambda x, i: 300.0 * np.sin(np.float32(1e6) * x + i).astype(np.float32))
    ulp_later = _graph(lambda x, i: 300.0 * np.sin(np.float32(1e6) * np.nextafter(x, np.float32(np.inf)) + i)
                       .astype(np.float32))
    check = verify_deploy_model(chaos, ulp_later, image)
    assert check["max_abs_error"] > 1.0 and min(check["float_sensitivity"].values()) > 1.0
    with pytest.raises(LitePoseError, match="a rewrite is wrong"):       # beyond even that sensitivity
        verify_deploy_model(chaos, _graph(lambda x, i: 300.0 * np.sin(np.float32(1e6) * x + i) + 5000.0), image)


@pytest.mark.parametrize("k,b,s", [(7, 8, 1), (7, 7, 1), (7, 6, 1), (9, 8, 1), (5, 4, 1), (7, 4, 2), (7, 3, 2),
                                   (9, 4, 2)])
def test_blocked_depthwise_taps_place_each_tap_once_per_output(k, b, s):
    """For every output pixel of a block, the 2 x 2 neighbourhood of input blocks (s * b pixels each) holds each
    of the k*k taps exactly once, at the input pixel the tap reads: s * (output pixel) + tap offset."""
    idx = blocked_depthwise_taps(k, b, s)
    n = s * b
    assert idx.shape == (2, 2, n * n, b * b)
    for oy in range(b):
        for ox in range(b):
            col = idx[:, :, :, oy * b + ox]
            taps = col[col < k * k]
            assert sorted(taps.tolist()) == list(range(k * k))
            for ky, kx, i in zip(*np.nonzero(col < k * k)):
                dy, dx = divmod(int(col[ky, kx, i]), k)
                iy, ix = divmod(int(i), n)
                assert (ky * n + iy, kx * n + ix) == (s * oy + dy, s * ox + dx)


@pytest.mark.parametrize("h,w,k,s", [(16, 24, 7, 1), (14, 21, 7, 1), (13, 10, 7, 1), (12, 16, 9, 1), (16, 24, 5, 1),
                                     (11, 20, 5, 1), (32, 24, 7, 2), (29, 22, 7, 2), (18, 18, 9, 2)])
def test_blocked_depthwise_equals_the_depthwise_conv(h, w, k, s):
    """Float: the grouped conv on pixel blocks (padding and the crop of a partial last block included) is the
    depthwise conv + ReLU6: 'same' at stride 1; at stride 2 on the input padded as PyTorch pads (k // 2)."""
    import keras

    rng = np.random.default_rng(h * w + k + s)
    c = 5
    kernel = rng.normal(size=(k, k, c, 1)).astype(np.float32)
    bias = rng.normal(size=c).astype(np.float32)
    x = rng.normal(size=(1, h, w, c)).astype(np.float32) * 3
    p = k // 2
    if s == 1:
        padding, pads = "same", None
        expected = tf.nn.depthwise_conv2d(x, kernel, (1, 1, 1, 1), "SAME")
    else:
        padding, pads = "valid", ((p, p), (p, p))
        expected = tf.nn.depthwise_conv2d(np.pad(x, ((0, 0), (p, p), (p, p), (0, 0))), kernel, (1, s, s, 1), "VALID")
    expected = tf.nn.relu6(expected + bias).numpy()
    oh, ow = expected.shape[1:3]
    b = depthwise_block_size(oh, ow, k, s)
    assert s * (b - 1) + k <= 2 * s * b
    layer = BlockedDepthwise.make(k, b, strides=s, padding=padding, pads=pads, activation="relu6", name="blocked")
    inp = keras.Input(x.shape[1:], batch_size=1)
    model = keras.Model(inp, layer(inp))
    layer.set_weights([kernel, bias])
    np.testing.assert_allclose(model(x).numpy(), expected, atol=2e-5 * np.abs(expected).max())


def test_blocked_depthwise_block_size_keeps_the_weights_near_the_pixels():
    assert depthwise_block_size(112, 112, 7) == 8     # 4 * 8^4 = 16384 weight bytes a channel <= 4 * 12544 pixels
    assert depthwise_block_size(224, 224, 5) == 8
    assert depthwise_block_size(64, 64, 7) == 8       # 16384 <= 4 * 4096
    assert depthwise_block_size(56, 56, 7) == 7       # 16384 > 4 * 3136 >= 4 * 7^4
    assert depthwise_block_size(28, 28, 7) == 6       # even 6^4 * 4 > 4 * 784: the smallest block
    assert depthwise_block_size(28, 40, 5) == 6
    assert depthwise_block_size(16, 16, 11) == 10     # a block must hold k - 1 pixels
    assert depthwise_block_size(56, 56, 7, 2) == 4    # input blocks of 8
    assert depthwise_block_size(56, 56, 13, 2) == 6   # 2 * 5 + 13 > 2 * 2 * 5


def _int8_single_layer(layer_fn, x_samples, h, w, c):
    import keras

    inp = keras.Input((h, w, c), batch_size=1, name="x")
    model = keras.Model(inp, layer_fn(inp))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ({"x": s} for s in x_samples)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return model, conv.convert()


def test_blocked_depthwise_in_int8_is_one_depthwise_conv_with_the_same_weights():
    """int8: the blocked form is a single 7x7 depthwise conv. Its grouped conv's per-channel weight scales are
    the depthwise conv's, repeated for the b*b pixels of a block (every output channel holds all 49 taps), and
    both int8 models give the same outputs (the float ranges differ only in float rounding)."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    h, w, c, k = 24, 16, 32, 7
    rng = np.random.default_rng(3)
    kernel = rng.normal(0, 0.2, (k, k, c, 1)).astype(np.float32)
    bias = rng.normal(0, 0.5, c).astype(np.float32)
    samples = [rng.uniform(0, 6, (1, h, w, c)).astype(np.float32) for _ in range(4)]
    x = rng.uniform(0, 6, (1, h, w, c)).astype(np.float32)

    def blocked(x):
        layer = BlockedDepthwise.make(k, depthwise_block_size(h, w, k), padding="same", activation="relu6")
        # (no name: the default one must be a valid TensorFlow name, or the converter fails)
        y = layer(x)
        layer.set_weights([kernel, bias])
        return y

    def plain(x):
        layer = keras.layers.DepthwiseConv2D(k, padding="same", activation="relu6", name="plain")
        y = layer(x)
        layer.set_weights([kernel, bias])
        return y

    runs = {}
    for name, fn in (("blocked", blocked), ("plain", plain)):
        _, data = _int8_single_layer(fn, samples, h, w, c)
        it = Interpreter(model_content=data)
        it.allocate_tensors()
        ops = [o["op_name"] for o in it._get_ops_details()]
        tensors = {t["index"]: t for t in it.get_tensor_details()}
        weights = [tensors[o["inputs"][1]] for o in it._get_ops_details() if "CONV" in o["op_name"]]
        assert len(weights) == 1, ops
        d_in, d_out = it.get_input_details()[0], it.get_output_details()[0]
        s, z = d_in["quantization"]
        it.set_tensor(d_in["index"], np.clip(np.round(x / s + z), -128, 127).astype(np.int8))
        it.invoke()
        runs[name] = (ops, weights[0], it.get_tensor(d_out["index"]).astype(int), d_out["quantization"])
    ops, wb, yb, qb = runs["blocked"]
    ops_p, wp, yp, qp = runs["plain"]
    assert "DEPTHWISE_CONV_2D" not in ops and "CONV_2D" in ops and "TRANSPOSE" in ops
    b = depthwise_block_size(h, w, k)
    scales_b = wb["quantization_parameters"]["scales"]
    scales_p = wp["quantization_parameters"]["scales"]
    np.testing.assert_allclose(scales_b, np.repeat(scales_p, b * b), rtol=1e-6)
    np.testing.assert_allclose(qb[0], qp[0], rtol=1e-5)
    assert np.abs(yb - yp).max() <= 1 and np.mean(yb == yp) > 0.99
