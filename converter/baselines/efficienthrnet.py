"""EfficientHRNet (Neff et al., 2020) as used for the LitePose paper's baselines, natively in Keras.

Definition established from mit-han-lab/litepose `lib/models/pose_efficient_hrnet.py` and
`experiments/crowd_pose/efficient_hrnet/H-{1,2,3,4}.yaml` (described in words; no code copied):

* backbone: EfficientNet-B0 block table (expansion t, width c, repeats n, stride s, kernel k):
  (1,16,1,1,3) (6,24,2,2,3) (6,40,2,2,5) (6,80,3,2,3) (6,112,3,1,5) (6,192,4,2,5) (6,320,1,1,3), widths
  scaled by WIDTH_MULT with MobileNet rounding to multiples of 8, repeats by ceil(DEPTH_MULT * n);
  stem 3x3/2 conv to round(32). Every conv is TF-"same"-padded, conv-BN-Swish; MBConv = 1x1 expand
  (skipped when t = 1), kxk depthwise, squeeze-excitation (reduce to int(in/4), Swish, expand, sigmoid;
  1x1 convs with bias), linear 1x1 projection + BN, residual when stride 1 and widths match.
  The four features fed to the HRNet part are the outputs of the 24-, 40-, 112- and 320-wide stages
  (1/4, 1/8, 1/16, 1/32 resolution); the file's per-depth split indices are exactly these stage ends.
* HRNet part: branch widths ceil(c * 1.2455^SCALE_FACTOR) for c = 32, 64, 128, 256; transitions are
  3x3 conv (with bias)-BN-ReLU from the previous stage's branch outputs (or from the backbone feature
  for the newly added branch); stages 2/3/4 are HigherHRNet HighResolutionModules of BasicBlocks.
* head: HigherHRNet's (1x1 conv -> 2J at 1/4; concat, 4x4/2 deconv-BN-ReLU to ceil(32 * 1.2455^SF),
  NUM_BASIC_BLOCKS BasicBlocks, 1x1 conv -> J at 1/2).

H-1: 480, WIDTH 0.909, DEPTH 0.833, SF -1, blocks 2 everywhere, modules 1/3/3, deconv 2 basic blocks.
H-3: 416, WIDTH 0.751, DEPTH 0.578, SF -3, modules 1/1/3 (yaml values).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .higherhrnet import BN_EPSILON, basic_block, hr_module

_B0_BLOCKS = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
              (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))
_FEATURE_STAGE_WIDTHS = (24, 40, 112, 320)  # backbone stages whose outputs feed the HRNet branches
_HRNET_BASE = (32, 64, 128, 256)


@dataclass(frozen=True)
class EfficientHRNetConfig:
    input_size: int
    width_mult: float
    depth_mult: float
    scale_factor: int
    stage_modules: tuple[int, int, int]
    num_blocks: int = 2
    deconv_basic_blocks: int = 2


# The yaml values of experiments/crowd_pose/efficient_hrnet/H-*.yaml.
EFFICIENT_HRNET_CONFIGS = {
    "H-1": EfficientHRNetConfig(480, 0.909, 0.833, -1, (1, 3, 3)),
    "H-3": EfficientHRNetConfig(416, 0.751, 0.578, -3, (1, 1, 3)),
}


def make_divisible(value: float, divisor: int = 8) -> int:
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def round_filters(filters: int, width_mult: float) -> int:
    return filters if width_mult == 1.0 else int(make_divisible(filters * width_mult))


def round_repeats(repeats: int, depth_mult: float) -> int:
    return repeats if depth_mult == 1.0 else int(math.ceil(depth_mult * repeats))


def hrnet_width(base: int, scale_factor: int) -> int:
    return int(math.ceil(base * 1.2455 ** scale_factor))


def _conv_bn_swish(x, filters, kernel, stride, name, groups=1):
    from keras import layers
    if groups == 1:
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.Activation("silu", name=f"{name}_swish")(x)


def mbconv(x, out_channels, expand_ratio, kernel, stride, name):
    from keras import layers
    inp = x.shape[-1]
    hidden = inp * expand_ratio
    reduced = max(1, int(inp / 4))
    y = x if hidden == inp else _conv_bn_swish(x, hidden, 1, 1, f"{name}_expand")
    y = _conv_bn_swish(y, hidden, kernel, stride, f"{name}_dw", groups=hidden)
    se = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(y)
    se = layers.Conv2D(reduced, 1, name=f"{name}_se_reduce")(se)
    se = layers.Activation("silu", name=f"{name}_se_swish")(se)
    se = layers.Conv2D(hidden, 1, activation="sigmoid", name=f"{name}_se_expand")(se)
    y = layers.Multiply(name=f"{name}_se_scale")([y, se])
    y = layers.Conv2D(out_channels, 1, use_bias=False, name=f"{name}_project")(y)
    y = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_project_bn")(y)
    if stride == 1 and inp == out_channels:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def _transition(x, filters, name):
    """3x3 conv (bias) - BN - ReLU at the same resolution."""
    from keras import layers
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_efficienthrnet(config: EfficientHRNetConfig, num_joints: int, input_hw: tuple[int, int] | None = None,
                         name: str = "efficienthrnet"):
    """Float EfficientHRNet for a fixed [1, H, W, 3] 0..255 RGB input, LitePose output contract."""
    import keras
    from keras import layers

    from ..network import IMAGENET_MEAN, IMAGENET_STD
    h, w = input_hw or (config.input_size, config.input_size)
    if h % 32 or w % 32:
        raise ValueError(f"EfficientHRNet needs an input that is a multiple of 32, got {h}x{w}")
    j = num_joints
    image = keras.Input(shape=(h, w, 3), batch_size=1, name="image")
    x = layers.Normalization(mean=[255.0 * m for m in IMAGENET_MEAN],
                             variance=[(255.0 * s) ** 2 for s in IMAGENET_STD], name="normalize")(image)
    x = _conv_bn_swish(x, round_filters(32, config.width_mult), 3, 2, "stem")
    backbone_features = []
    for b, (t, c, n, s, k) in enumerate(_B0_BLOCKS):
        out = round_filters(c, config.width_mult)
        for r in range(round_repeats(n, config.depth_mult)):
            x = mbconv(x, out, t, k, s if r == 0 else 1, f"features_{b}_{r}")
        if c in _FEATURE_STAGE_WIDTHS:
            backbone_features.append(x)

    widths = [hrnet_width(c, config.scale_factor) for c in _HRNET_BASE]
    features = [_transition(backbone_features[0], widths[0], "trans1_branch1"),
                _transition(backbone_features[1], widths[1], "trans1_branch2")]
    for s, modules in enumerate(config.stage_modules):
        n_branches = s + 2
        if s > 0:
            features = [_transition(f, widths[i], f"trans{s + 1}_branch{i + 1}") for i, f in enumerate(features)]
            features.append(_transition(backbone_features[n_branches - 1], widths[n_branches - 1],
                                        f"trans{s + 1}_branch{n_branches}"))
        for m in range(modules):
            last = s == len(config.stage_modules) - 1 and m == modules - 1
            features = hr_module(features, (config.num_blocks,) * n_branches, widths[:n_branches],
                                 f"stage{s + 2}_{m}", multi_scale_output=not last)
    x = features[0]
    heatmaps_s4 = layers.Conv2D(j, 1, name="heatmaps_s4")(x)
    tags_s4 = layers.Conv2D(j, 1, name="tags_s4")(x)
    x = layers.Concatenate(name="deconv_cat")([x, heatmaps_s4, tags_s4])
    deconv_width = hrnet_width(32, config.scale_factor)
    x = layers.Conv2DTranspose(deconv_width, 4, 2, padding="same", use_bias=False, name="deconv")(x)
    x = layers.ReLU(name="deconv_relu")(layers.BatchNormalization(epsilon=BN_EPSILON, name="deconv_bn")(x))
    for k in range(config.deconv_basic_blocks):
        x = basic_block(x, deconv_width, f"deconv_block{k}")
    heatmaps_s2 = layers.Conv2D(j, 1, name="heatmaps_s2")(x)
    return keras.Model(image, {"heatmaps_s4": heatmaps_s4, "tags_s4": tags_s4, "heatmaps_s2": heatmaps_s2},
                       name=name)
