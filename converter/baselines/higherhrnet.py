"""HigherHRNet (Cheng et al., CVPR 2020) built natively in Keras, for latency and MAC baselines.

Structure as defined by `lib/models/pose_higher_hrnet.py` of HRNet/HigherHRNet-Human-Pose-Estimation
(copied unchanged into mit-han-lab/litepose) and its yaml files; described here in words, no code copied:

* stem: 3x3/2 conv 3->64, BN, ReLU, 3x3/2 conv 64->64, BN, ReLU (1/4 resolution);
  `layer1` = 4 Bottleneck blocks (1x1 -> 3x3 -> 1x1, expansion 4) of `stem_inplanes` planes.
* transitions: a branch that exists gets a 3x3 conv-BN-ReLU when its width changes; a new branch is a
  3x3/2 conv-BN-ReLU from the previous lowest-resolution branch.
* stages 2-4: `num_modules` HighResolutionModules; each runs `num_blocks` BasicBlocks per branch and
  fuses all branches into each output by summation (higher->lower: chains of 3x3/2 conv-BN, ReLU between;
  lower->higher: 1x1 conv-BN then nearest upsampling), followed by ReLU. The last module of stage 4
  keeps only the highest-resolution output.
* head: `final_layers[0]` 1x1 conv (bias) -> J heatmaps + J tags at 1/4; then the concatenation of the
  features and that output goes through a 4x4/2 transposed conv-BN-ReLU and `num_basic_blocks`
  BasicBlocks, and `final_layers[1]` 1x1 conv -> J heatmaps at 1/2.

The paper's CrowdPose rows HigherHRNet-W16 / -W24 (LitePose Table 1) are this network with branch widths
W, 2W, 4W, 8W, 4 blocks everywhere (LitePose §4.1: "{[4],[4,4],[4,4,4],[4,4,4,4]}"), 1/4/3 modules, and a
W-wide deconvolution; the W32/W48 yamls fix everything else (stem 64, deconv 4 basic blocks). The
parameter and MAC counts of this definition are checked against the published ones in the tests.
The head's first 1x1 conv is two convs (heatmaps, tags) so that the model keeps the LitePose I/O
contract; that changes neither the function nor the parameter count.
"""
from __future__ import annotations

from dataclasses import dataclass, field

BN_EPSILON = 1e-5


@dataclass(frozen=True)
class StageConfig:
    num_modules: int
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]


@dataclass(frozen=True)
class HigherHRNetConfig:
    """The yaml `MODEL.EXTRA` fields that shape the network."""
    stem_inplanes: int
    stages: tuple[StageConfig, StageConfig, StageConfig]
    deconv_channels: int
    deconv_basic_blocks: int = 4
    stem_blocks: int = 4
    notes: tuple[str, ...] = field(default=())


def higherhrnet_config(width: int, blocks: int = 4, deconv_channels: int | None = None) -> HigherHRNetConfig:
    """The standard HigherHRNet-W<width> (W32/W48 yamls generalised to any width)."""
    w = width
    return HigherHRNetConfig(
        stem_inplanes=64,
        stages=(StageConfig(1, (blocks,) * 2, (w, 2 * w)),
                StageConfig(4, (blocks,) * 3, (w, 2 * w, 4 * w)),
                StageConfig(3, (blocks,) * 4, (w, 2 * w, 4 * w, 8 * w))),
        deconv_channels=w if deconv_channels is None else deconv_channels)


def _layers():
    from keras import layers
    return layers


def conv_bn(x, filters, kernel, stride, name, relu=True):
    """PyTorch Conv2d(k, s, padding=k//2, bias=False) + BN (+ ReLU), symmetric padding."""
    layers = _layers()
    if stride == 1:
        y = layers.Conv2D(filters, kernel, 1, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        y = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        y = layers.Conv2D(filters, kernel, stride, padding="valid", use_bias=False, name=f"{name}_conv")(y)
    y = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(y)
    return layers.ReLU(name=f"{name}_relu")(y) if relu else y


def basic_block(x, planes, name):
    """3x3 conv-BN-ReLU, 3x3 conv-BN, + identity (or 1x1 conv-BN projection), ReLU."""
    layers = _layers()
    y = conv_bn(x, planes, 3, 1, f"{name}_1")
    y = conv_bn(y, planes, 3, 1, f"{name}_2", relu=False)
    shortcut = x if x.shape[-1] == planes else conv_bn(x, planes, 1, 1, f"{name}_downsample", relu=False)
    return layers.ReLU(name=f"{name}_relu")(layers.Add(name=f"{name}_add")([y, shortcut]))


def bottleneck_block(x, planes, name, expansion=4):
    layers = _layers()
    y = conv_bn(x, planes, 1, 1, f"{name}_1")
    y = conv_bn(y, planes, 3, 1, f"{name}_2")
    y = conv_bn(y, planes * expansion, 1, 1, f"{name}_3", relu=False)
    out = planes * expansion
    shortcut = x if x.shape[-1] == out else conv_bn(x, out, 1, 1, f"{name}_downsample", relu=False)
    return layers.ReLU(name=f"{name}_relu")(layers.Add(name=f"{name}_add")([y, shortcut]))


def transition(features, channels, name):
    """Existing branches: 3x3 conv-BN-ReLU if the width changes; new branches: 3x3/2 from the last."""
    out = []
    for i, c in enumerate(channels):
        if i < len(features):
            x = features[i]
            out.append(x if x.shape[-1] == c else conv_bn(x, c, 3, 1, f"{name}_{i}"))
        else:
            x = features[-1]
            for k in range(i + 1 - len(features)):
                last = k == i - len(features)
                x = conv_bn(x, c if last else x.shape[-1], 3, 2, f"{name}_{i}_{k}")
            out.append(x)
    return out


def hr_module(features, num_blocks, channels, name, multi_scale_output=True):
    """Branches of BasicBlocks, then sum-fusion of every branch into every kept output, ReLU."""
    layers = _layers()
    branches = []
    for b, (x, n, c) in enumerate(zip(features, num_blocks, channels)):
        for k in range(n):
            x = basic_block(x, c, f"{name}_branch{b}_{k}")
        branches.append(x)
    if len(branches) == 1:
        return branches
    outputs = []
    for i in range(len(branches) if multi_scale_output else 1):
        terms = []
        for j, x in enumerate(branches):
            if j == i:
                terms.append(x)
            elif j > i:  # lower resolution -> 1x1 conv-BN, nearest upsampling
                y = conv_bn(x, channels[i], 1, 1, f"{name}_fuse{i}_{j}", relu=False)
                terms.append(layers.UpSampling2D(2 ** (j - i), interpolation="nearest",
                                                 name=f"{name}_fuse{i}_{j}_up")(y))
            else:  # higher resolution -> chain of 3x3/2 convs
                y = x
                for k in range(i - j):
                    last = k == i - j - 1
                    y = conv_bn(y, channels[i] if last else channels[j], 3, 2, f"{name}_fuse{i}_{j}_{k}",
                                relu=not last)
                terms.append(y)
        outputs.append(layers.ReLU(name=f"{name}_fuse{i}_relu")(layers.Add(name=f"{name}_fuse{i}_sum")(terms)))
    return outputs


def build_higherhrnet(config: HigherHRNetConfig, num_joints: int, input_hw: tuple[int, int],
                      name: str = "higherhrnet"):
    """Float HigherHRNet for a fixed [1, H, W, 3] 0..255 RGB input, LitePose output contract."""
    import keras

    from ..network import IMAGENET_MEAN, IMAGENET_STD
    layers = _layers()
    h, w = input_hw
    j = num_joints
    image = keras.Input(shape=(h, w, 3), batch_size=1, name="image")
    x = layers.Normalization(mean=[255.0 * m for m in IMAGENET_MEAN],
                             variance=[(255.0 * s) ** 2 for s in IMAGENET_STD], name="normalize")(image)
    x = conv_bn(x, 64, 3, 2, "stem1")
    x = conv_bn(x, 64, 3, 2, "stem2")
    for k in range(config.stem_blocks):
        x = bottleneck_block(x, config.stem_inplanes, f"layer1_{k}")
    features = [x]
    for s, stage in enumerate(config.stages):
        features = transition(features, stage.num_channels, f"transition{s + 1}")
        for m in range(stage.num_modules):
            last = s == len(config.stages) - 1 and m == stage.num_modules - 1
            features = hr_module(features, stage.num_blocks, stage.num_channels, f"stage{s + 2}_{m}",
                                 multi_scale_output=not last)
    x = features[0]
    heatmaps_s4 = layers.Conv2D(j, 1, name="heatmaps_s4")(x)
    tags_s4 = layers.Conv2D(j, 1, name="tags_s4")(x)
    x = layers.Concatenate(name="deconv_cat")([x, heatmaps_s4, tags_s4])
    x = layers.Conv2DTranspose(config.deconv_channels, 4, 2, padding="same", use_bias=False, name="deconv")(x)
    x = layers.ReLU(name="deconv_relu")(layers.BatchNormalization(epsilon=BN_EPSILON, name="deconv_bn")(x))
    for k in range(config.deconv_basic_blocks):
        x = basic_block(x, config.deconv_channels, f"deconv_block{k}")
    heatmaps_s2 = layers.Conv2D(j, 1, name="heatmaps_s2")(x)
    return keras.Model(image, {"heatmaps_s4": heatmaps_s4, "tags_s4": tags_s4, "heatmaps_s2": heatmaps_s2},
                       name=name)
