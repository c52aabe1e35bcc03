"""LitePose built natively in Keras, one named layer per official PyTorch module.

Layer names are the checkpoint key prefixes with '.' -> '_' (`stage.2.4.depth_conv.0` ->
`stage_2_4_depth_conv_0`), so `converter.checkpoint` maps weights by name. The only departure from the
module tree: head 0's final 1x1 convolution (2J channels in PyTorch) is two layers here, `..._heatmaps`
and `..._tags`, so heatmaps and tags are separate tensors from the convolution on (each gets its own
quantisation scale; the function is unchanged).

Input `image` [1, H, W, 3] is RGB 0..255; ImageNet normalisation is the first layer, before any
padding, so black letterbox borders become -mean/std exactly as in the official pipeline.
"""
from __future__ import annotations

import keras
from keras import layers

from .archs import hidden_width

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN_EPSILON = 1e-5  # PyTorch default; Keras' default (1e-3) would change every output
OUTPUT_NAMES = ("heatmaps_s4", "tags_s4", "heatmaps_s2")


def _conv(x, filters, kernel, stride, name, depthwise=False):
    """Symmetric k//2 padding as PyTorch does. 'same' is symmetric only for stride 1 (odd k);
    for stride 2 TF pads bottom/right only, so pad explicitly and use 'valid'."""
    if stride == 1:
        padding = "same"
    else:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    if depthwise:
        return layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False, name=name)(x)
    return layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False, name=name)(x)


def _bn(x, name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, name=name)(x)


def _relu6(x, name):
    return layers.ReLU(6.0, name=name)(x)


def conv_bn_relu6(x, filters, kernel, stride, name, depthwise=False):
    """Official `convbnrelu`: Conv -> BN -> ReLU6 (modules `<name>.0`, `<name>.1`)."""
    x = _conv(x, filters, kernel, stride, f"{name}_0", depthwise)
    return _relu6(_bn(x, f"{name}_1"), f"{name}_relu6")


def inverted_bottleneck(x, out_channels, stride, kernel, expansion, name):
    """Official `InvBottleneck`: 1x1 expand, kxk depthwise, linear 1x1 project, residual if shapes allow."""
    inp = x.shape[-1]
    hidden = hidden_width(inp, expansion)
    y = conv_bn_relu6(x, hidden, 1, 1, f"{name}_inv")
    y = conv_bn_relu6(y, hidden, kernel, stride, f"{name}_depth_conv", depthwise=True)
    y = _bn(_conv(y, out_channels, 1, 1, f"{name}_point_conv_0"), f"{name}_point_conv_1")
    if stride == 1 and inp == out_channels:
        y = layers.Add(name=f"{name}_add")([y, x])
    return y


def sep_conv_head(x, out_channels, name, split_joints: int | None = None):
    """Official `SepConv2d` (k=5): depthwise -> BN -> ReLU -> 1x1 (no BN, no bias).

    With `split_joints`, the 1x1 is two convs: the first J channels (heatmaps), the next J (tags).
    """
    y = _conv(x, None, 5, 1, f"{name}_conv_0", depthwise=True)
    y = layers.ReLU(name=f"{name}_conv_2")(_bn(y, f"{name}_conv_1"))
    if split_joints is None:
        return _conv(y, out_channels, 1, 1, f"{name}_conv_3")
    return (_conv(y, split_joints, 1, 1, f"{name}_conv_3_heatmaps"),
            _conv(y, split_joints, 1, 1, f"{name}_conv_3_tags"))


def _deconv(x, filters, name):
    # PyTorch ConvTranspose2d(k=4, s=2, p=1) == Keras Conv2DTranspose(k=4, s=2, 'same'): exactly 2x.
    return layers.Conv2DTranspose(filters, 4, 2, padding="same", use_bias=False, name=name)(x)


def build_litepose(arch: dict, num_joints: int, input_hw: tuple[int, int], name: str = "litepose") -> keras.Model:
    """The float LitePose network for a fixed [1, H, W, 3] input (H, W multiples of 16: archs.INPUT_MULTIPLE)."""
    h, w = input_hw
    image = keras.Input(shape=(h, w, 3), batch_size=1, name="image")
    x = layers.Normalization(
        mean=[255.0 * m for m in IMAGENET_MEAN], variance=[(255.0 * s) ** 2 for s in IMAGENET_STD],
        name="normalize")(image)

    # Stem `first`: conv 3x3/2 -> dw 3x3 -> 1x1 -> BN (linear).
    x = conv_bn_relu6(x, 32, 3, 2, "first_0")
    x = conv_bn_relu6(x, 32, 3, 1, "first_1", depthwise=True)
    x = _bn(_conv(x, arch["input_channel"], 1, 1, "first_2"), "first_3")
    features = [x]
    for s, stage in enumerate(arch["backbone_setting"]):
        for b, (expansion, kernel) in enumerate(stage["block_setting"]):
            stride = stage["stride"] if b == 0 else 1
            x = inverted_bottleneck(x, stage["channel"], stride, kernel, expansion, f"stage_{s}_{b}")
        features.append(x)

    # Fusion deconv head: refined and raw paths each upsampled by their own deconv, summed, BN-ReLU.
    refined, raw = features[4], features[3]
    outputs = {}
    for i, width in enumerate(arch["deconv_setting"]):
        up = layers.Add(name=f"deconv_sum_{i}")(
            [_deconv(refined, width, f"deconv_refined_{i}"), _deconv(raw, width, f"deconv_raw_{i}")])
        refined = layers.ReLU(name=f"deconv_bnrelu_{i}_1")(_bn(up, f"deconv_bnrelu_{i}_0"))
        raw = features[-i - 3]
        if i == 1:
            hm_ref, tag_ref = sep_conv_head(refined, None, "final_refined_0", split_joints=num_joints)
            hm_raw, tag_raw = sep_conv_head(raw, None, "final_raw_0", split_joints=num_joints)
            outputs["heatmaps_s4"] = layers.Add(name="heatmaps_s4")([hm_ref, hm_raw])
            outputs["tags_s4"] = layers.Add(name="tags_s4")([tag_ref, tag_raw])
        elif i == 2:
            outputs["heatmaps_s2"] = layers.Add(name="heatmaps_s2")(
                [sep_conv_head(refined, num_joints, "final_refined_1"),
                 sep_conv_head(raw, num_joints, "final_raw_1")])
    return keras.Model(image, outputs, name=name)
