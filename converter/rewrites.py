"""Exact graph rewrites: the float LitePose re-expressed with ops that LiteRT's XNNPACK path runs fast.

`build_deploy_model(float_model, arch, num_joints)` walks the same architecture as `network.py` and
builds a second Keras model from the float model's weights. Every rewrite keeps the function equal in
float (tests/test_rewrites.py checks each one and the whole graph); what changes is which ops the
converter emits (docs/int8.md has the measurements behind each choice):

* BatchNorm folded into the convolution before it (conv kernels scaled, one bias), including the BN
  after each deconvolution sum, folded into both deconvolutions.
* ImageNet normalisation as a 1x1 depthwise convolution with bias (one op, per-channel int8 weights), run
  on the image reshaped to [H, W/g, 3g] (g pixels side by side, weights tiled g times): the same
  arithmetic, but XNNPACK's depthwise kernels work on 16+ channels at a time, so 3 channels waste most
  of each vector (0.53 ms -> 0.08 ms at 448x448).
* Stem 3x3/2 conv with PyTorch padding 1: PAD 1 row above and 1 column left, then a 'valid' 3x3/2 conv
  (for an even input the bottom/right padding is never read). Cheaper than TF 'same' padding with a
  4x4 kernel whose last row and column are zero (0.77 vs 0.98 ms at 448x448: 7 of 16 taps were zeros).
* 7x7 depthwise, stride 1 (`split_depthwise`): three 'same' depthwise convs summed with ADD, no pads, no
  crops, each tap once: rows -3..3 x columns {-2,0,2} (7x3 dilated (1,2)), rows -2..2 x columns
  {-3,-1,1,3} (5x4 dilated (1,2)), rows {-3,3} x columns {-3,-1,1,3} (2x4 dilated (6,2)). XNNPACK's int8
  depthwise kernels come in 3, 9 and 25 taps (a kernel of k taps costs as much as the next size up) and a
  49-tap kernel falls to a ~30x slower path, so 21 + 20 + 8 taps (cost 25 + 25 + 9) is the cheapest
  exact cover; the earlier column split (`depthwise_layout="cols"`: 21 + 14 + 14) costs 25 + 25 + 25.
* 7x7 depthwise, stride 2: one PAD (3 before, 2 after), then 7x3, 7x3 and 7x1 'valid' stride-2
  depthwise convs on column crops starting at 0, 3 and 6, summed.
* Or (`depthwise_layout="blocked"`, int8 `--depthwise-form blocked`): each depthwise conv of 25 taps or more as
  one grouped CONV_2D on pixel blocks (`BlockedDepthwise`), on XNNPACK's int8 GEMM instead of its depthwise
  kernels: 3x faster per layer where those are slow (Intel AVX-512 / AMX hosts), ~20x the weight bytes.
* TRANSPOSE_CONV(4x4, stride 2, pad 1) -> 3x3 'same' conv to 4*C channels + DEPTH_TO_SPACE(2)
  (sub-pixel form); the two deconvolutions of a fusion step are summed before DEPTH_TO_SPACE with the
  ReLU fused into the ADD. With `deconv_phases` each output phase gets its own conv of only the rows and
  columns it reads (3x3, 3x2, 2x3, 2x2: 25 kernel taps instead of 4 x 9), concatenated before
  DEPTH_TO_SPACE.
* Cross-layer equalisation of the stem output (linear BN, no activation): channel c is divided by
  s_c and the consumer's input channel c multiplied by s_c, which narrows the int8 range of that tensor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


OUTPUT_NAMES = ("heatmaps_s4", "tags_s4", "heatmaps_s2")
MAX_EQUALISATION = 32.0
RELU6_SPLIT = 6.0
HIGH_HALF_SCALE = 31.0 / 32.0

# Deconvolution k=4, s=2, p=1 as a 3x3 kernel per output phase: for phase a (output row 2m + a) and
# 3x3 offset index o (input row m - 1 + o), the deconvolution tap used, or None.
_SUBPIXEL_TAPS = ((3, 1, None), (None, 2, 0))


@dataclass(frozen=True)
class DeployOptions:
    """Which rewrites to apply (all on by default; switches exist to measure each one)."""
    fold_bn: bool = True
    split_depthwise: bool = True
    subpixel_deconv: bool = True
    deconv_phases: bool = True      # one conv per sub-pixel phase, only the taps it reads (needs subpixel_deconv)
    stem_pad_top_left: bool = True   # stride-2 convs: PAD top/left only + 'valid' (else PAD k//2 all round)
    equalize_stem: bool = True
    merge_stem_expand: bool = True
    equalize_heads: bool = True
    equalize_relu: bool = True      # deconvolution outputs (ReLU) equalised into their consumers
    head_balance: bool = False      # heads: sqrt(activation / weight) balance instead of full equalisation
    joint_heads: bool = True        # head(refined) + head(raw) as one 1x1 conv on both depthwise outputs
    # heatmap heads at 1/4: each depthwise ReLU output as relu6(z) and relu(z - 6), stacked, channels
    # brought to a range of 12, so the int8 tensor spans 6 instead of 12 (exact: relu = relu6 + relu(. - 6))
    split_head_ranges: bool = False
    # Layers whose int8 weights cost the most accuracy (measured, docs/int8.md): each becomes two convs,
    # the kernel rounded to its int8 grid plus the remainder, summed (~15-bit weights, same function).
    # (With joint_heads the head-0 heatmap 1x1 is part of `heatmaps_s4_conv`, one term: measured equal.)
    precise_layers: tuple = ("first_1", "final_refined_0_conv_3_heatmaps")
    normalize_pixel_groups: int = 16  # normalisation on [H, W/g, 3g]; 1 = on [H, W, 3] (g is lowered to divide W)
    # 7x7 split: "lattice" (7x3 + 5x4 + 2x4), "cols" (7x3 + 7x2 + 7x2), "rows"; "blocked": every depthwise conv
    # (stride 1 or 2) of 25 taps or more as one `BlockedDepthwise` (grouped CONV_2D on pixel blocks)
    depthwise_layout: str = "lattice"


# ---- weight helpers --------------------------------------------------------------------------------

def _w(model, name) -> list[np.ndarray]:
    return [np.asarray(v, np.float32) for v in model.get_layer(name).get_weights()]


def bn_scale_shift(model, name) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm (inference) as y = x * scale + shift, in float64 for exact folding."""
    layer = model.get_layer(name)
    gamma, beta, mean, var = (np.asarray(v, np.float64) for v in layer.get_weights())
    scale = gamma / np.sqrt(var + layer.epsilon)
    return scale, beta - mean * scale


def fold_conv_bn(kernel: np.ndarray, scale: np.ndarray, shift: np.ndarray, depthwise: bool = False):
    """Conv (no bias) followed by BN -> one conv with bias. Kernel: Keras layout."""
    k = kernel.astype(np.float64)
    if depthwise:  # (kh, kw, C, 1)
        k = k * scale[None, None, :, None]
    else:          # (kh, kw, in, out)
        k = k * scale[None, None, None, :]
    return k.astype(np.float32), shift.astype(np.float32)


def int8_grid(kernel: np.ndarray, channel_axis: int) -> np.ndarray:
    """The kernel rounded the way TFLite quantises weights: symmetric per channel, scale max|w| / 127.
    Values on this grid convert to int8 exactly (the converter finds the same scale)."""
    k = kernel.astype(np.float64)
    axes = tuple(i for i in range(k.ndim) if i != channel_axis)
    amax = np.max(np.abs(k), axis=axes, keepdims=True)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    return (np.clip(np.round(k / scale), -127, 127) * scale).astype(np.float32)


def subpixel_kernel(deconv_kernel: np.ndarray) -> np.ndarray:
    """Keras Conv2DTranspose(4, 2, 'same') kernel (4, 4, out, in) -> 3x3 conv kernel (3, 3, in, 4*out)
    whose output, rearranged by DEPTH_TO_SPACE(2), equals the deconvolution. Channel (a*2+b)*out + c
    holds output phase (row 2m+a, column 2n+b)."""
    kh, kw, cout, cin = deconv_kernel.shape
    if (kh, kw) != (4, 4):
        raise ValueError(f"sub-pixel rewrite needs a 4x4 deconvolution kernel, got {kh}x{kw}")
    out = np.zeros((3, 3, cin, 4 * cout), np.float64)
    for a in range(2):
        for b in range(2):
            phase = (a * 2 + b) * cout
            for oy in range(3):
                ty = _SUBPIXEL_TAPS[a][oy]
                for ox in range(3):
                    tx = _SUBPIXEL_TAPS[b][ox]
                    if ty is not None and tx is not None:
                        out[oy, ox, :, phase:phase + cout] = deconv_kernel[ty, tx].T
    return out


def depthwise_pieces_stride1(kernel: np.ndarray, layout: str = "lattice"):
    """Split a (7, 7, C, 1) depthwise kernel into 'same' pieces of <= 25 taps with no crops.

    Returns [(piece_kernel, dilation_rate)] whose 'same' convolutions sum to the 7x7 one. A TF 'same' piece
    of n taps and dilation d reads offsets -((n - 1) d // 2) + i d; every piece here has an odd span, so it
    is centred. "lattice": rows -3..3 x cols {-2,0,2}, rows -2..2 x cols {-3,-1,1,3}, rows {-3,3} x cols
    {-3,-1,1,3} (21 + 20 + 8 taps). "cols": cols {-1,0,1}, {-2,2}, {-3,3} (7x3, 7x2, 7x2); "rows": the
    transpose of "cols".
    """
    if kernel.shape[0] != 7 or kernel.shape[1] != 7:
        raise ValueError(f"depthwise split needs a 7x7 kernel, got {kernel.shape[:2]}")
    if layout == "rows":
        pieces = depthwise_pieces_stride1(kernel.transpose(1, 0, 2, 3), "cols")
        return [(p.transpose(1, 0, 2, 3), (d[1], d[0])) for p, d in pieces]
    if layout == "cols":
        return [(kernel[:, 2:5], (1, 1)), (kernel[:, [1, 5]], (1, 4)), (kernel[:, [0, 6]], (1, 6))]
    if layout == "lattice":
        odd_cols = [0, 2, 4, 6]
        return [(kernel[:, [1, 3, 5]], (1, 2)),
                (kernel[1:6][:, odd_cols], (1, 2)),
                (kernel[[0, 6]][:, odd_cols], (6, 2))]
    raise ValueError(f"unknown depthwise layout {layout!r}: use lattice, cols or rows")


# XNNPACK's int8 depthwise kernels: a piece of k taps runs on the smallest of these that holds it, and costs
# what that kernel costs; more than 25 taps falls to a far slower path (docs/bench/depthwise_session11.json).
INT8_DEPTHWISE_KERNEL_TAPS = (3, 9, 25)


def depthwise_kernel_taps(taps: int) -> int:
    """Taps of the XNNPACK int8 depthwise kernel that runs a piece of `taps` taps (ValueError above 25)."""
    for size in INT8_DEPTHWISE_KERNEL_TAPS:
        if taps <= size:
            return size
    raise ValueError(f"{taps} taps: no XNNPACK int8 depthwise kernel holds more than 25")


def same_piece_candidates(window: int = 7) -> list[tuple[int, tuple, tuple]]:
    """Every stride-1 'same' depthwise piece inside a window x window kernel, at most 25 taps: rows and columns
    each n taps at dilation d, offsets -((n - 1) d // 2) + i d (TF 'same'). As (49-bit tap mask, row offsets,
    column offsets): the candidates a split of the 7x7 kernel is chosen from."""
    half = window // 2
    axis = {tuple(-((n - 1) * d // 2) + i * d for i in range(n))
            for n in range(1, window + 1) for d in (range(1, window) if n > 1 else (1,))}
    axis = [a for a in axis if -half <= a[0] and a[-1] <= half]
    return [(sum(1 << ((r + half) * window + c + half) for r in rows for c in cols), rows, cols)
            for rows in sorted(axis) for cols in sorted(axis) if len(rows) * len(cols) <= 25]


# ---- the deploy graph ------------------------------------------------------------------------------

class DepthToSpace:
    """Factory for a Keras layer wrapping tf.nn.depth_to_space (TFLite DEPTH_TO_SPACE)."""

    _cls = None

    @classmethod
    def make(cls, block_size: int, name: str):
        if cls._cls is None:
            import keras

            class _DepthToSpace(keras.layers.Layer):
                def __init__(self, block_size, **kwargs):
                    super().__init__(**kwargs)
                    self.block_size = int(block_size)

                def call(self, x):
                    import tensorflow as tf
                    return tf.nn.depth_to_space(x, self.block_size)

                def compute_output_shape(self, s):
                    b = self.block_size
                    return (s[0], s[1] * b, s[2] * b, s[3] // (b * b))

                def get_config(self):
                    return {**super().get_config(), "block_size": self.block_size}

            cls._cls = _DepthToSpace
        return cls._cls(block_size, name=name)


def depthwise_block_size(h: int, w: int, k: int, stride: int = 1) -> int:
    """Output block side b for `BlockedDepthwise` with an [h, w] output. The input blocks (stride * b) must
    hold a window's overhang, stride * (b - 1) + k <= 2 * stride * b, so that an output block reads 2 x 2
    input blocks. Stride 1: the largest of 8, 7, 6 whose Toeplitz weights (4 b^4 bytes a channel) are at most
    4x the channel's h * w pixels, else 6: 8 x 8 blocks (64 channels a group) suit the int8 GEMM best, but a
    small tensor would then stream far more weight bytes than pixels; in LitePose-M at 448 x 448 blocks of
    8 / 7 / 6 at 112 / 56 / 28 pixels give the speed of 8 everywhere with a 110 MB file instead of 176 MB
    (docs/int8.md, session 13). Stride 2: 4 (input groups of 64)."""
    if stride == 1:
        b = next((b for b in (8, 7, 6) if 4 * b ** 4 <= 4 * h * w), 6)
    else:
        b = max(1, 8 // stride)
    return max(b, -(-(k - stride) // stride))


def blocked_depthwise_taps(k: int, b: int, stride: int = 1) -> np.ndarray:
    """[2, 2, (sb)^2, b^2] int index into a flattened k x k kernel (k*k = zero) for `BlockedDepthwise`, s the
    stride: entry [ky, kx, iy*sb + ix, oy*b + ox] is the tap that pixel (iy, ix) of input block (Y + ky, X + kx)
    has for pixel (oy, ox) of output block (Y, X) (input blocks of sb pixels, starting where output block 0's
    window starts)."""
    s, n = stride, stride * b
    ky, kx, iy, ix, oy, ox = np.meshgrid(*(np.arange(m) for m in (2, 2, n, n, b, b)), indexing="ij")
    dy, dx = ky * n + iy - s * oy, kx * n + ix - s * ox
    inside = (dy >= 0) & (dy < k) & (dx >= 0) & (dx < k)
    idx = np.where(inside, dy * k + dx, k * k)
    return idx.reshape(2, 2, n * n, b * b).astype(np.int32)


class BlockedDepthwise:
    """Factory for a Keras DepthwiseConv2D (odd k; stride 1 'same', or any stride 'valid') that computes as a
    grouped CONV_2D.

    The input is cut into blocks of stride * b pixels whose pixels become channels (one group per input
    channel; PAD, SPACE_TO_DEPTH, TRANSPOSE), a 2 x 2 grouped conv maps each block's 2 x 2 neighbourhood to the b x b
    outputs of the block with Toeplitz weights built from the k x k kernel, and the blocks go back to pixels
    (TRANSPOSE, DEPTH_TO_SPACE).
    About 5x the multiplies of the depthwise conv, but on XNNPACK's int8 GEMM kernels (VNNI / AMX), which
    run them 3x faster than its int8 depthwise kernels run a 7x7 split into pieces on CPUs whose depthwise
    kernels are slow (docs/int8.md, session 12). Every output channel (c, oy, ox) holds all k*k taps of
    channel c, so its per-channel int8 weight scale is the depthwise one: the int8 function is a single
    k x k depthwise conv, no pieces or partial sums. To the converter's other passes (weight rounding,
    bias correction) it is a plain depthwise conv with a k x k kernel."""

    _cls = None

    @classmethod
    def make(cls, kernel_size: int, block: int, **kwargs):
        if cls._cls is None:
            import keras

            class BlockedDepthwiseConv2D(keras.layers.DepthwiseConv2D):  # default names must not start with "_"
                def __init__(self, kernel_size, block, pads=None, **kw):
                    super().__init__(kernel_size, **kw)
                    self.block = int(block)
                    # 'valid' on the input zero-padded by ((top, bottom), (left, right)), in the layer's one PAD
                    self.pads = None if pads is None else tuple(tuple(int(v) for v in p) for p in pads)

                def call(self, x):
                    import tensorflow as tf
                    k, b, s = self.kernel_size[0], self.block, self.strides[0]
                    _, h, w, c = x.shape
                    if self.padding == "same":
                        (top, bottom), (left, right) = (k // 2, k // 2), (k // 2, k // 2)
                    else:
                        (top, bottom), (left, right) = self.pads or ((0, 0), (0, 0))
                    oh, ow = (h + top + bottom - k) // s + 1, (w + left + right - k) // s + 1
                    n = s * b
                    nh, nw = -(-oh // b), -(-ow // b)
                    if x.shape[1] > (nh + 1) * n - top or x.shape[2] > (nw + 1) * n - left:
                        x = x[:, :(nh + 1) * n - top, :(nw + 1) * n - left]   # rows and columns no output reads
                    x = tf.pad(x, [[0, 0], [top, (nh + 1) * n - top - x.shape[1]],
                                   [left, (nw + 1) * n - left - x.shape[2]], [0, 0]])
                    # Blocks to channels in two moves, each of long runs (SPACE_TO_DEPTH: rows of n * c bytes; then
                    # one [pixel, channel] transpose per block): 15-25 % faster per layer than one 6-d TRANSPOSE,
                    # whose innermost runs are single bytes (docs/int8.md, session 13).
                    x = tf.reshape(tf.nn.space_to_depth(x, n), [(nh + 1) * (nw + 1), n * n, c])
                    x = tf.reshape(tf.transpose(x, [0, 2, 1]), [1, nh + 1, nw + 1, c * n * n])
                    taps = tf.reshape(self.kernel, [k * k, c])
                    taps = tf.concat([taps, tf.zeros([1, c], taps.dtype)], axis=0)
                    filt = tf.gather(taps, blocked_depthwise_taps(k, b, s))          # [2, 2, nn, bb, c]
                    filt = tf.reshape(tf.transpose(filt, [0, 1, 2, 4, 3]), [2, 2, n * n, c * b * b])
                    y = tf.nn.conv2d(x, filt, 1, "VALID")
                    if self.use_bias:   # a gather of constants folds into the conv's bias (a repeat stays a TILE)
                        y = tf.nn.bias_add(y, tf.gather(self.bias, np.repeat(np.arange(c), b * b)))
                    if self.activation is not None:
                        y = self.activation(y)
                    y = tf.reshape(tf.transpose(tf.reshape(y, [nh * nw, c, b * b]), [0, 2, 1]), [1, nh, nw, b * b * c])
                    y = tf.nn.depth_to_space(y, b)
                    return y[:, :oh, :ow] if (nh * b, nw * b) != (oh, ow) else y

                def compute_output_shape(self, shape):
                    if self.pads is None:
                        return super().compute_output_shape(shape)
                    k, s = self.kernel_size[0], self.strides[0]
                    (top, bottom), (left, right) = self.pads
                    return (shape[0], (shape[1] + top + bottom - k) // s + 1, (shape[2] + left + right - k) // s + 1,
                            shape[3])

                def get_config(self):
                    return {**super().get_config(), "block": self.block, "pads": self.pads}

            cls._cls = BlockedDepthwiseConv2D
        return cls._cls(kernel_size, block, **kwargs)


class _Builder:
    def __init__(self, src, opts: DeployOptions):
        from keras import layers

        self.src, self.opts, self.L = src, opts, layers
        self.weights: dict[str, list[np.ndarray]] = {}

    def _set(self, layer, weights):
        self.weights[layer.name] = weights
        return layer

    # plain layers with given weights
    def conv(self, x, kernel, bias, stride, padding, name, act=None):
        if name in self.opts.precise_layers:
            return self._two_term(x, kernel, bias, name, lambda k, b_, n: self.conv(x, k, b_, stride, padding, n),
                                  channel_axis=3)
        kh, kw, _cin, cout = kernel.shape
        layer = self.L.Conv2D(cout, (kh, kw), stride, padding=padding, use_bias=bias is not None,
                              activation=act, name=name)
        y = layer(x)
        self._set(layer, [kernel] + ([bias] if bias is not None else []))
        return y

    def _two_term(self, x, kernel, bias, name, make, channel_axis):
        hi = int8_grid(kernel, channel_axis)
        lo = (kernel.astype(np.float64) - hi.astype(np.float64)).astype(np.float32)
        return self.L.Add(name=f"{name}_sum")([make(hi, bias, f"{name}_int8"), make(lo, None, f"{name}_rest")])

    def dwconv(self, x, kernel, bias, stride, padding, name, dilation=(1, 1), act=None):
        if name in self.opts.precise_layers:
            return self._two_term(x, kernel, bias, name,
                                  lambda k, b_, n: self.dwconv(x, k, b_, stride, padding, n, dilation), channel_axis=2)
        kh, kw = kernel.shape[:2]
        layer = self.L.DepthwiseConv2D((kh, kw), stride, padding=padding, dilation_rate=dilation,
                                       use_bias=bias is not None, activation=act, name=name)
        y = layer(x)
        self._set(layer, [kernel] + ([bias] if bias is not None else []))
        return y

    @staticmethod
    def _zero_bias(bias, kernel):
        """A zero bias for a summed piece when the sum has one: int8 export may move per-channel constants
        between the pieces (`export.centre_sum_addends`), which needs a bias on each."""
        return None if bias is None else np.zeros(kernel.shape[2] * kernel.shape[3], np.float32)

    def act(self, x, kind, name):
        if kind is None:
            return x
        return self.L.ReLU(6.0 if kind == "relu6" else None, name=name)(x)

    # folded conv + BN (+ activation)
    def conv_bn(self, x, conv_name, bn_name, stride, act, name, depthwise=False, scale_in=None, scale_out=None,
                bias_shift: float = 0.0):
        (kernel,) = _w(self.src, conv_name)
        if bn_name is not None and self.opts.fold_bn:
            scale, shift = bn_scale_shift(self.src, bn_name)
            kernel, bias = fold_conv_bn(kernel, scale, shift, depthwise)
        else:
            bias = None
        if scale_in is not None:  # equalisation: multiply input channels
            kernel = (kernel.astype(np.float64) * scale_in[None, None, :, None]).astype(np.float32)
        if scale_out is not None:  # equalisation: divide output channels
            div = scale_out[None, None, :, None] if depthwise else scale_out
            kernel = (kernel.astype(np.float64) / div).astype(np.float32)
            bias = (bias.astype(np.float64) / scale_out).astype(np.float32)
        if bias_shift:
            bias = (bias.astype(np.float64) + bias_shift).astype(np.float32)
        if depthwise and act in ("relu6", "relu", None) and self.blocked(kernel, stride):
            return self.blocked_depthwise(x, kernel, bias, name, act, stride)
        if depthwise:
            y = self.depthwise(x, kernel, bias, stride, name)
        else:
            y = self._conv_padded(x, kernel, bias, stride, name)
        if bn_name is not None and not self.opts.fold_bn:
            y = self.L.BatchNormalization(epsilon=self.src.get_layer(bn_name).epsilon, name=f"{name}_bn")(y)
            self._set(y._keras_history[0], _w(self.src, bn_name))
        return self.act(y, act, f"{name}_{act}") if act else y

    def _conv_padded(self, x, kernel, bias, stride, name):
        k = kernel.shape[0]
        if stride == 1:
            return self.conv(x, kernel, bias, 1, "same", name)
        h, w = x.shape[1:3]
        if self.opts.stem_pad_top_left and k % 2 == 1 and stride == 2 and h % 2 == 0 and w % 2 == 0:
            # PyTorch pads k//2 all round; with stride 2 and an even input the last k//2 - 1 padded rows and
            # columns are read by no output, so padding only the top/left k//2 gives the same windows.
            pad = ((k // 2, k // 2 - 1), (k // 2, k // 2 - 1))
        else:
            pad = k // 2
        x = self.L.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        return self.conv(x, kernel, bias, stride, "valid", name)

    def blocked(self, kernel, stride) -> bool:
        k = kernel.shape[0]
        return (self.opts.split_depthwise and self.opts.depthwise_layout == "blocked" and self.opts.fold_bn
                and stride in (1, 2) and k == kernel.shape[1] and k % 2 == 1 and k * k >= 25)

    def blocked_depthwise(self, x, kernel, bias, name, act, stride: int = 1):
        """Stride 1: 'same'. Stride 2: PyTorch's padding k // 2 (PAD, then 'valid'; an even input's last
        padded row and column are read by no output)."""
        k = kernel.shape[0]
        (h, w), pads, padding = x.shape[1:3], None, "same"
        if stride != 1:
            pads, padding = ((k // 2, k // 2 - (h % 2 == 0)), (k // 2, k // 2 - (w % 2 == 0))), "valid"
        oh, ow = -(-h // stride), -(-w // stride)
        layer = BlockedDepthwise.make(k, depthwise_block_size(oh, ow, k, stride), strides=stride, padding=padding,
                                      pads=pads, activation=act, use_bias=bias is not None, name=name)
        y = layer(x)
        self._set(layer, [kernel] + ([bias] if bias is not None else []))
        return y

    def depthwise(self, x, kernel, bias, stride, name):
        k = kernel.shape[0]
        if stride == 1 and (not self.opts.split_depthwise or k * k <= 25 or k != 7):
            return self.dwconv(x, kernel, bias, 1, "same", name)
        if stride == 1:
            parts = []
            layout = "lattice" if self.opts.depthwise_layout == "blocked" else self.opts.depthwise_layout
            for i, (piece, dil) in enumerate(depthwise_pieces_stride1(kernel, layout)):
                piece_bias = bias if i == 0 else self._zero_bias(bias, kernel)
                parts.append(self.dwconv(x, piece, piece_bias, 1, "same", f"{name}_part{i}", dilation=dil))
            return self.L.Add(name=f"{name}_sum")(parts)
        # stride 2
        if self.opts.split_depthwise and k == 7:
            x = self.L.ZeroPadding2D(((3, 2), (3, 2)), name=f"{name}_pad")(x)
            parts = []
            for i, (c0, kw) in enumerate(((0, 3), (3, 3), (6, 1))):
                right = 7 - c0 - kw
                view = self.L.Cropping2D(((0, 0), (c0, right)), name=f"{name}_view{i}")(x) if (c0 or right) else x
                piece_bias = bias if i == 0 else self._zero_bias(bias, kernel)
                parts.append(self.dwconv(view, kernel[:, c0:c0 + kw], piece_bias, 2, "valid", f"{name}_part{i}"))
            return self.L.Add(name=f"{name}_sum")(parts)
        x = self.L.ZeroPadding2D(k // 2, name=f"{name}_pad")(x)
        return self.dwconv(x, kernel, bias, stride, "valid", name)


def large_depthwise_shapes(model) -> list[tuple[int, int, int, int]]:
    """(h, w, channels, k) of each stride-1 k x k depthwise conv of `model` with more than 25 taps: the bulk
    of the layers `depthwise_layout` decides about (the few stride-2 ones follow the same choice)."""
    import keras

    return [(*layer.input.shape[1:4], layer.kernel_size[0]) for layer in model.layers
            if isinstance(layer, keras.layers.DepthwiseConv2D) and tuple(layer.strides) == (1, 1)
            and layer.kernel_size[0] == layer.kernel_size[1] and layer.kernel_size[0] % 2 == 1
            and layer.kernel_size[0] ** 2 > 25]


def blocked_weight_elements(model) -> int:
    """Weights of the Toeplitz kernels `--depthwise-form blocked` gives `model` (4 (s b)^2 b^2 a channel for every
    depthwise conv of 25 taps or more): what a blocked conversion's extra memory grows with."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D) and layer.kernel_size[0] * layer.kernel_size[1] >= 25:
            k, s = layer.kernel_size[0], layer.strides[0]
            _, h, w, channels = layer.output.shape
            b = depthwise_block_size(h, w, k, s)
            total += channels * 4 * (s * b) ** 2 * b ** 2
    return total


def equalised_layers(arch: dict) -> list[str]:
    """Float-model layers whose per-channel output ranges drive the equalisation rewrites."""
    names = ["first_3"] + [f"deconv_bnrelu_{i}_1" for i in range(3)]
    names += [f"final_{p}_{h}_conv_2" for p in ("refined", "raw") for h in (0, 1)]
    return names


def measure_channel_ranges(src, arch: dict, images, batch: int = 1) -> dict[str, np.ndarray]:
    """Per-channel max |activation| of `equalised_layers` on `images` (uint8 HxWx3, model input size),
    computed with the float model: the data-driven input of the equalisation rewrites."""
    import keras

    names = equalised_layers(arch)
    probe = keras.Model(src.input, {n: src.get_layer(n).output for n in names})
    out = {n: None for n in names}
    for i in range(0, len(images), batch):
        x = np.stack([np.asarray(im, np.float32) for im in images[i:i + batch]])
        for n, v in probe(x, training=False).items():
            r = np.max(np.abs(np.asarray(v)), axis=(0, 1, 2)).astype(np.float64)
            out[n] = r if out[n] is None else np.maximum(out[n], r)
    return out


def data_free_ranges(src, arch: dict) -> dict[str, np.ndarray]:
    """Range estimates from BatchNorm statistics alone: a BN output is about beta +- 4|gamma| (its running
    statistics standardise the input); after ReLU the upper end counts."""
    out = {}
    for n in equalised_layers(arch):
        bn = {"first_3": "first_3"}.get(n) or n[:-2] + ("_0" if n.startswith("deconv") else "_1")
        gamma, beta, *_ = (np.asarray(v, np.float64) for v in src.get_layer(bn).get_weights())
        out[n] = np.abs(beta) + 4 * np.abs(gamma) if n == "first_3" else np.maximum(beta + 4 * np.abs(gamma), 0)
    return out


def equalisation_scales(r1: np.ndarray, r2: np.ndarray | None = None) -> np.ndarray:
    """Per-channel s_c > 0 for a tensor whose channel c is divided by s_c and whose consumers multiply
    their input channel c by s_c (exact when the op between is linear or ReLU).

    Without `r2`: s_c = r1_c / median(r1), every channel gets the same range (best for per-tensor int8
    activations when the consumer has per-channel weights, i.e. depthwise). With `r2` (the consumer's
    largest weight on channel c, relative to its output channel's largest): s_c = sqrt(r1_c / r2_c),
    balancing activation and weight resolution (Nagel et al. 2019)."""
    r1 = np.asarray(r1, np.float64)
    floor = 1e-3 * max(float(np.median(r1)), 1e-12)
    r1 = np.maximum(r1, floor)
    if r2 is None:
        s = r1 / np.median(r1)
    else:
        s = np.sqrt(r1 / np.maximum(np.asarray(r2, np.float64), 1e-4))
        s = s / np.exp(np.mean(np.log(s)))
    # Bounded: a near-dead channel amplified 1000x would give its producer's weights a quantisation scale
    # that XNNPACK's int8 requantisation cannot take (input * filter / output scale must stay < 256).
    return np.clip(s, 1.0 / MAX_EQUALISATION, MAX_EQUALISATION)


def relative_weight_range(kernel_1x1: np.ndarray) -> np.ndarray:
    """r2_c: largest |w| a 1x1 conv (1, 1, in, out) gives input channel c, relative to the largest
    weight of the same output channel (what per-output-channel int8 resolves)."""
    w = np.abs(kernel_1x1[0, 0].astype(np.float64))
    return np.max(w / np.maximum(w.max(axis=0, keepdims=True), 1e-12), axis=1)


def build_deploy_model(src, arch: dict, num_joints: int, options: DeployOptions | None = None,
                       ranges: dict | None = None, name: str = "litepose_deploy"):
    """The float LitePose `src` (network.build_litepose, weights loaded) rebuilt with the rewrites.

    `ranges` (from `measure_channel_ranges` on calibration images) steer the equalisation; without them
    BatchNorm statistics are used. Returns a Keras model with the same input `image` and outputs
    `heatmaps_s4`, `tags_s4`, `heatmaps_s2`, equal in float to `src` (up to float32 rounding)."""
    import keras

    opts = options or DeployOptions()
    b = _Builder(src, opts)
    b.ranges = ranges if ranges is not None else data_free_ranges(src, arch)
    L = b.L
    h, w = src.input_shape[1:3]
    image = keras.Input(shape=(h, w, 3), batch_size=1, name="image")

    norm = src.get_layer("normalize")
    mean = np.asarray(norm.mean, np.float64).reshape(-1)
    std = np.sqrt(np.asarray(norm.variance, np.float64).reshape(-1))
    g = max(d for d in range(1, max(1, opts.normalize_pixel_groups) + 1) if w % d == 0)
    x = L.Reshape((h, w // g, 3 * g), name="normalize_group")(image) if g > 1 else image
    x = b.dwconv(x, np.tile(1.0 / std, g).reshape(1, 1, 3 * g, 1).astype(np.float32),
                 np.tile(-mean / std, g).astype(np.float32), 1, "valid", "normalize")
    x = L.Reshape((h, w, 3), name="normalize_ungroup")(x) if g > 1 else x

    x = b.conv_bn(x, "first_0_0", "first_0_1", 2, "relu6", "first_0")
    x = b.conv_bn(x, "first_1_0", "first_1_1", 1, "relu6", "first_1", depthwise=True)
    stem_input = x
    stem_scale = None
    if opts.equalize_stem and opts.fold_bn:
        # With the merged expand conv the stem tensor's only consumer is a depthwise conv: equalise fully.
        r2 = None if opts.merge_stem_expand else relative_weight_range(_w(src, "stage_0_0_inv_0")[0])
        stem_scale = equalisation_scales(b.ranges["first_3"], r2)
    x = b.conv_bn(x, "first_2", "first_3", 1, None, "first_2", scale_out=stem_scale)

    features = [x]
    for s, stage in enumerate(arch["backbone_setting"]):
        for blk, (expansion, kernel) in enumerate(stage["block_setting"]):
            stride = stage["stride"] if blk == 0 else 1
            p = f"stage_{s}_{blk}"
            inp = x.shape[-1]
            if s == 0 and blk == 0 and opts.merge_stem_expand and opts.fold_bn:
                y = _merged_stem_expand(b, stem_input, p)
            else:
                scale_in = stem_scale if (s == 0 and blk == 0) else None
                y = b.conv_bn(x, f"{p}_inv_0", f"{p}_inv_1", 1, "relu6", f"{p}_inv", scale_in=scale_in)
            y = b.conv_bn(y, f"{p}_depth_conv_0", f"{p}_depth_conv_1", stride, "relu6", f"{p}_depth_conv",
                          depthwise=True)
            y = b.conv_bn(y, f"{p}_point_conv_0", f"{p}_point_conv_1", 1, None, f"{p}_point_conv")
            if stride == 1 and inp == stage["channel"]:
                y = L.Add(name=f"{p}_add")([y, x])
            x = y
        features.append(x)

    refined, raw = features[4], features[3]
    outputs = {}
    up_scale = None
    for i, width in enumerate(arch["deconv_setting"]):
        scale_in = up_scale
        up_scale = (equalisation_scales(b.ranges[f"deconv_bnrelu_{i}_1"])
                    if (opts.equalize_relu and opts.fold_bn) else None)
        refined = _fusion_upsample(b, refined, raw, i, scale_in, up_scale)
        raw = features[-i - 3]
        if i == 1 and opts.joint_heads:
            outputs.update(_joint_heads(b, refined, raw, ("final_refined_0", "final_raw_0"),
                                        ("heatmaps_s4", "tags_s4"), True, scale_ref=up_scale))
        elif i == 1:
            hm_ref, tag_ref = _head(b, refined, "final_refined_0", split=True, scale_in=up_scale)
            hm_raw, tag_raw = _head(b, raw, "final_raw_0", split=True)
            outputs["heatmaps_s4"] = L.Add(name="heatmaps_s4")([hm_ref, hm_raw])
            outputs["tags_s4"] = L.Add(name="tags_s4")([tag_ref, tag_raw])
        elif i == 2 and opts.joint_heads:
            # raw is the stem output here: its second consumer, so it undoes the equalisation too.
            outputs.update(_joint_heads(b, refined, raw, ("final_refined_1", "final_raw_1"), ("heatmaps_s2",),
                                        False, scale_ref=up_scale, scale_raw=stem_scale))
        elif i == 2:
            outputs["heatmaps_s2"] = L.Add(name="heatmaps_s2")(
                [_head(b, refined, "final_refined_1", scale_in=up_scale),
                 _head(b, raw, "final_raw_1", scale_in=stem_scale)])
    model = keras.Model(image, {k: outputs[k] for k in OUTPUT_NAMES}, name=name)
    for layer_name, weights in b.weights.items():
        model.get_layer(layer_name).set_weights(weights)
    return model


def _merged_stem_expand(b: _Builder, x, p: str):
    """first_2 (1x1 + linear BN) followed by the first block's 1x1 expand (+ BN + ReLU6): two linear maps
    with nothing between them, so one 1x1 conv computes both (W = W1 W2, b = b1 W2 + b2). The stem's
    wide-range output tensor then only feeds the stride-2 head and one weight quantisation step is gone."""
    src = b.src
    (k1,) = _w(src, "first_2")
    s1, t1 = bn_scale_shift(src, "first_3")
    w1 = k1[0, 0].astype(np.float64) * s1[None, :]
    (k2,) = _w(src, f"{p}_inv_0")
    s2, t2 = bn_scale_shift(src, f"{p}_inv_1")
    w2 = k2[0, 0].astype(np.float64) * s2[None, :]
    kernel = (w1 @ w2)[None, None].astype(np.float32)
    bias = (t1 @ w2 + t2).astype(np.float32)
    y = b.conv(x, kernel, bias, 1, "same", f"{p}_inv")
    return b.act(y, "relu6", f"{p}_inv_relu6")


def _fusion_upsample(b: _Builder, refined, raw, i: int, scale_in=None, scale_out=None):
    """deconv(refined) + deconv(raw) -> BN -> ReLU, as the deploy graph computes it.

    `scale_in` (the previous step's equalisation) multiplies the refined input's channels; `scale_out`
    divides this step's output channels (exact: BN is folded, ReLU and DEPTH_TO_SPACE commute with it)."""
    L, src = b.L, b.src
    (k_ref,) = _w(src, f"deconv_refined_{i}")   # Keras (kh, kw, out, in)
    (k_raw,) = _w(src, f"deconv_raw_{i}")
    k_ref, k_raw = k_ref.astype(np.float64), k_raw.astype(np.float64)
    bn = f"deconv_bnrelu_{i}_0"
    if b.opts.fold_bn:
        scale, shift = bn_scale_shift(src, bn)
        if scale_out is not None:
            scale, shift = scale / scale_out, shift / scale_out
        k_ref, k_raw = k_ref * scale[None, None, :, None], k_raw * scale[None, None, :, None]
    else:
        scale = shift = None
    if scale_in is not None:
        k_ref = k_ref * scale_in[None, None, None, :]
    if b.opts.subpixel_deconv and b.opts.deconv_phases and scale is not None:
        return _phase_convs(b, refined, raw, i, subpixel_kernel(k_ref), subpixel_kernel(k_raw), shift)
    if b.opts.subpixel_deconv:
        bias = None if shift is None else np.tile(shift, 4).astype(np.float32)
        a = b.conv(refined, subpixel_kernel(k_ref).astype(np.float32), bias, 1, "same", f"deconv_refined_{i}")
        c = b.conv(raw, subpixel_kernel(k_raw).astype(np.float32), None, 1, "same", f"deconv_raw_{i}")
        y = L.Add(name=f"deconv_sum_{i}")([a, c])
        if scale is None:
            y = DepthToSpace.make(2, f"deconv_d2s_{i}")(y)
            y = L.BatchNormalization(epsilon=src.get_layer(bn).epsilon, name=f"deconv_bnrelu_{i}_0")(y)
            b._set(y._keras_history[0], _w(src, bn))
            return L.ReLU(name=f"deconv_bnrelu_{i}_1")(y)
        # ReLU before DEPTH_TO_SPACE: they commute, and the ReLU fuses into the ADD.
        return DepthToSpace.make(2, f"deconv_d2s_{i}")(L.ReLU(name=f"deconv_bnrelu_{i}_1")(y))
    # Keep TRANSPOSE_CONV (for measurements), BN still folded into both kernels.
    cout = k_ref.shape[2]
    made = []
    for nm, k, inp, with_bias in ((f"deconv_refined_{i}", k_ref, refined, shift is not None),
                                  (f"deconv_raw_{i}", k_raw, raw, False)):
        layer = L.Conv2DTranspose(cout, 4, 2, padding="same", use_bias=with_bias, name=nm)
        made.append(layer(inp))
        b._set(layer, [k.astype(np.float32)] + ([shift.astype(np.float32)] if with_bias else []))
    y = L.Add(name=f"deconv_sum_{i}")(made)
    if scale is None:
        y = L.BatchNormalization(epsilon=src.get_layer(bn).epsilon, name=f"deconv_bnrelu_{i}_0")(y)
        b._set(y._keras_history[0], _w(src, bn))
    return L.ReLU(name=f"deconv_bnrelu_{i}_1")(y)


def _phase_convs(b: _Builder, refined, raw, i: int, k_ref: np.ndarray, k_raw: np.ndarray, shift: np.ndarray):
    """The sub-pixel deconvolution as four convs, one per output phase (a, b) = (row, column) parity.

    Phase 1 reads input offsets {0, +1} along that axis: a 2-tap 'same' conv (TF pads 0 before, 1 after).
    Phase 0 reads {-1, 0}, which a 2-tap 'same' conv cannot reach, so it keeps the 3-tap window whose last
    tap is zero. Equal to the 3x3 sub-pixel conv, with 25 instead of 36 kernel taps per output pixel."""
    L = b.L
    cout = k_ref.shape[3] // 4
    phases = []
    for a in range(2):
        for c in range(2):
            ph = a * 2 + c
            rows, cols = slice(0, 3) if a == 0 else slice(1, 3), slice(0, 3) if c == 0 else slice(1, 3)
            chan = slice(ph * cout, (ph + 1) * cout)
            y_ref = b.conv(refined, k_ref[rows, cols, :, chan].astype(np.float32), shift.astype(np.float32), 1,
                           "same", f"deconv_refined_{i}_phase{ph}")
            y_raw = b.conv(raw, k_raw[rows, cols, :, chan].astype(np.float32), np.zeros_like(shift, np.float32), 1,
                           "same", f"deconv_raw_{i}_phase{ph}")   # zero bias: see _Builder._zero_bias
            y = L.Add(name=f"deconv_sum_{i}_phase{ph}")([y_ref, y_raw])
            phases.append(L.ReLU(name=f"deconv_bnrelu_{i}_1_phase{ph}")(y))
    y = L.Concatenate(name=f"deconv_phases_{i}")(phases)
    return DepthToSpace.make(2, f"deconv_d2s_{i}")(y)


def _head_parts(b: _Builder, x, name: str, split: bool = False, scale_in=None, targets=None):
    """SepConv2d head up to its 1x1 conv(s): [(depthwise 5x5 + BN + ReLU output, 1x1 kernel, equalisation
    scales or None)] per part.

    `scale_in` multiplies the depthwise input channels (undoing the producer's equalisation). With
    `equalize_heads`, each 1x1 gets its own copy of the depthwise conv whose output channel c is divided by
    s_c (exact through ReLU, s_c > 0) while the 1x1 multiplies its input channel c by s_c; heatmaps (0..1)
    and tags (tens) weigh the channels differently, so each gets its own scales. `targets` (per part): the
    range every channel is brought to (default: the median channel's), so that two heads whose outputs
    share one int8 tensor use its grid alike."""
    parts = ("",) if not split else ("_heatmaps", "_tags")
    kernels = [_w(b.src, f"{name}_conv_3{part}")[0] for part in parts]
    equalize = b.opts.equalize_heads and b.opts.fold_bn
    r1 = b.ranges[f"{name}_conv_2"]
    outs = []
    shared = None
    for i, (part, k) in enumerate(zip(parts, kernels)):
        if equalize and split and part == "_heatmaps" and b.opts.split_head_ranges:
            # every channel to a range of 12 (RELU6_SPLIT x 2), then its lower and upper halves as two channels
            s = np.clip(np.maximum(r1, 1e-3 * float(np.median(r1))) / (2 * RELU6_SPLIT), 1.0 / MAX_EQUALISATION,
                        MAX_EQUALISATION)
            low = b.conv_bn(x, f"{name}_conv_0", f"{name}_conv_1", 1, "relu6", f"{name}_conv_0{part}_low",
                            depthwise=True, scale_in=scale_in, scale_out=s)
            # the upper half scaled by HIGH_HALF_SCALE (exact: relu(a z - 6 a) = a relu(z - 6)): with equal
            # kernels the converter merges the two convs and adds their biases as coarse int8 constants
            a = HIGH_HALF_SCALE
            high = b.conv_bn(x, f"{name}_conv_0", f"{name}_conv_1", 1, "relu", f"{name}_conv_0{part}_high",
                             depthwise=True, scale_in=scale_in, scale_out=s / a, bias_shift=-RELU6_SPLIT * a)
            k = k.astype(np.float64) * s[None, None, :, None]
            outs.append(([low, high], np.concatenate([k, k / a], axis=2).astype(np.float32), s))
            continue
        if equalize:
            if targets is not None:
                s = np.clip(np.maximum(r1, 1e-3 * float(np.median(r1))) / targets[i], 1.0 / MAX_EQUALISATION,
                            MAX_EQUALISATION)
            else:
                s = equalisation_scales(r1, relative_weight_range(k) if b.opts.head_balance else None)
            y = b.conv_bn(x, f"{name}_conv_0", f"{name}_conv_1", 1, "relu", f"{name}_conv_0{part}",
                          depthwise=True, scale_in=scale_in, scale_out=s)
            k = (k.astype(np.float64) * s[None, None, :, None]).astype(np.float32)
        else:
            if shared is None:
                shared = b.conv_bn(x, f"{name}_conv_0", f"{name}_conv_1", 1, "relu", f"{name}_conv_0",
                                   depthwise=True, scale_in=scale_in)
            y, s = shared, None
        outs.append((y, k, s))
    return outs


def _stacked(b: _Builder, ys, name: str):
    """A tensor, or the channels of several (nested lists flattened) in one concatenation."""
    if not isinstance(ys, list):
        return ys
    flat = [t for y in ys for t in (y if isinstance(y, list) else [y])]
    return flat[0] if len(flat) == 1 else b.L.Concatenate(name=name)(flat)


def _head(b: _Builder, x, name: str, split: bool = False, scale_in=None):
    """SepConv2d head (`_head_parts`), its 1x1 conv(s) applied."""
    parts = ("_heatmaps", "_tags") if split else ("",)
    outs = [b.conv(_stacked(b, y, f"{name}_conv_0{part}_halves"), k, None, 1, "same", f"{name}_conv_3{part}")
            for (y, k, _), part in zip(_head_parts(b, x, name, split, scale_in), parts)]
    return tuple(outs) if split else outs[0]


def _joint_heads(b: _Builder, refined, raw, names: tuple, outputs: tuple, split: bool, scale_ref=None,
                 scale_raw=None) -> dict:
    """head(refined) + head(raw) as one 1x1 conv over both heads' depthwise outputs, concatenated: the sum
    of two 1x1 convs is one conv on the stacked inputs (exact): one CONCATENATION instead of an ADD, a conv
    and (for the two-term heatmap conv) an ADD and a conv, 6 ops and ~1 ms less in LitePose-M int8 at equal
    SQNR. The raw head's channels are equalised to the refined head's range, since a concatenation has one
    int8 scale."""
    ref_parts = _head_parts(b, refined, names[0], split, scale_ref)
    r_ref = b.ranges[f"{names[0]}_conv_2"]
    targets = [float(np.median(r_ref / (s if s is not None else 1.0))) for _, _, s in ref_parts]
    raw_parts = _head_parts(b, raw, names[1], split, scale_raw, targets=targets)
    made = {}
    for out, (y_ref, k_ref, _), (y_raw, k_raw, _) in zip(outputs, ref_parts, raw_parts):
        x = _stacked(b, [y_ref, y_raw], f"{out}_inputs")     # one CONCATENATION, halves included
        made[out] = b.conv(x, np.concatenate([k_ref, k_raw], axis=2), None, 1, "same", f"{out}_conv")
    return made


def float_sensitivity(model, x, relative: float = 1e-6) -> dict:
    """Per output, how far the float network moves when its input changes by `relative` (a few float32
    ulps): the level below which two float32 computations of the same function cannot be told apart. Trained
    networks move by about as much as their float32 rounding error; a badly conditioned one (weights that
    grow the activations block after block) by orders more."""
    ref = model(x, training=False)
    nudged = model(x * np.float32(1.0 + relative), training=False)
    return {k: float(np.max(np.abs(np.asarray(ref[k]) - np.asarray(nudged[k])))) for k in OUTPUT_NAMES}


def within_float_rounding(errors: dict, references: dict, tolerance: float, model, x) -> tuple[list[str], dict]:
    """(outputs whose error exceeds both `tolerance` x max(1, |reference|) and twice the network's own float
    sensitivity, the sensitivity when it was needed or {})."""
    loose = [k for k in OUTPUT_NAMES if errors[k] > tolerance * max(1.0, references[k])]
    if not loose:
        return [], {}
    floor = float_sensitivity(model, x)
    return [k for k in loose if errors[k] > 2.0 * floor[k]], floor


def verify_deploy_model(src, deploy, image, tolerance: float = 1e-3) -> dict:
    """Run both graphs on one image; the rewrites must not change the function (float32 rounding only).
    Raises LitePoseError when an output differs by more than `tolerance` x max(1, |reference|) and by more
    than twice what a 1e-6 relative change of the input moves the network itself (`float_sensitivity`)."""
    from python_ref.errors import LitePoseError

    x = np.asarray(image, np.float32)[None]
    ref = {k: np.asarray(v) for k, v in src(x, training=False).items()}
    out = {k: np.asarray(v) for k, v in deploy(x, training=False).items()}
    per_output = {k: float(np.max(np.abs(ref[k] - out[k]))) for k in OUTPUT_NAMES}
    scale = {k: float(np.max(np.abs(ref[k]))) for k in OUTPUT_NAMES}
    wrong, floor = within_float_rounding(per_output, scale, tolerance, src, x)
    if wrong:
        k = wrong[0]
        raise LitePoseError(f"deploy graph: output {k} differs from the float network by {per_output[k]:.2e} "
                            f"(values up to {scale[k]:.2g}; a 1e-6 change of the input moves it by "
                            f"{floor[k]:.2e}); a rewrite is wrong (please report)")
    return {"max_abs_error": max(per_output.values()), "per_output": per_output,
            **({"float_sensitivity": floor} if floor else {})}
