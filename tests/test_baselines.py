"""Baseline networks and MAC counting against published and hand-computed counts.

Independent expectations: the LitePose spec's measured counts of the official model class (§2.6),
the HigherHRNet paper's parameter counts, the LitePose paper's Table 1 (params, MACs), and a
hand-computed tiny network.
"""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

from converter.archs import PRESETS  # noqa: E402
from converter.baselines import BASELINES, build_higherhrnet, higherhrnet_config  # noqa: E402
from converter.macs import count_cost  # noqa: E402
from converter.network import build_litepose  # noqa: E402


def test_macs_hand_computed_tiny_network():
    from keras import layers
    x_in = keras.Input((8, 8, 3), batch_size=1)
    x = layers.Conv2D(4, 3, padding="same", use_bias=True)(x_in)          # 8*8*(3*9*4) + 8*8*4 bias
    x = layers.BatchNormalization()(x)                                     # 2 * 8*8*4
    x = layers.ReLU()(x)                                                   # 8*8*4
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)       # 8*8*4*9
    x = layers.Conv2DTranspose(2, 4, 2, padding="same", use_bias=False)(x)  # in 8*8 / out 16*16 * 4*2*16
    cost = count_cost(keras.Model(x_in, x))
    conv = 8 * 8 * 3 * 9 * 4 + 8 * 8 * 4 * 9
    deconv_in, deconv_out = 8 * 8 * 4 * 2 * 16, 16 * 16 * 4 * 2 * 16
    elementwise = 8 * 8 * 4 + 2 * 8 * 8 * 4 + 8 * 8 * 4
    assert cost.macs_conv_only == conv + deconv_in
    assert cost.macs_correct == conv + deconv_in + elementwise
    assert cost.macs_paper_convention == conv + deconv_out + elementwise
    assert cost.params == 3 * 9 * 4 + 4 + 2 * 4 + 9 * 4 + 16 * 4 * 2


@pytest.mark.parametrize("variant,params,paper_g,conv_only_g", [
    ("XS", 1_675_552, 1.20, 0.883), ("S", 2_731_240, 4.98, 3.61), ("M", 3_533_808, 7.84, 5.26),
    ("L", 5_738_120, 13.71, 9.96)])
def test_litepose_counts_match_the_official_model_class(variant, params, paper_g, conv_only_g):
    """Spec §2.6: ptflops 0.6.x on the repo's class gives the paper's MACs; conv-only counts."""
    size = PRESETS[variant]["img_size"]
    cost = count_cost(build_litepose(PRESETS[variant], 14, (size, size)))
    assert cost.params == params
    assert round(cost.macs_paper_convention / 1e9, 2) == paper_g
    assert round(cost.macs_conv_only / 1e9, 3 if variant == "XS" else 2) == conv_only_g
    # ptflops 0.7.5 (deconv at input resolution) printed 0.933/3.78/5.48/10.30 G; ours omits the tensor
    # additions that version also counts, a difference below 0.2 %.
    correct_075 = {"XS": 0.933, "S": 3.78, "M": 5.48, "L": 10.30}[variant]
    assert abs(cost.macs_correct / 1e9 - correct_075) / correct_075 < 0.002


def test_higherhrnet_repo_recipe_matches_published_counts():
    """HigherHRNet paper: W32 28.6 M params (COCO); LitePose Table 1/2: W48 63.8 M, 154.6 G @640 (CrowdPose)."""
    w32 = count_cost(build_higherhrnet(higherhrnet_config(32), 17, (512, 512)))
    assert round(w32.params / 1e6, 1) == 28.6
    w48 = count_cost(build_higherhrnet(higherhrnet_config(48), 14, (640, 640)))
    assert round(w48.params / 1e6, 1) == 63.8
    assert round(w48.macs_paper_convention / 1e9, 1) == 154.6


@pytest.mark.parametrize("name,params_m,macs_g,params_tol,macs_tol", [
    ("higherhrnet-w16", 7.2, 12.5, 0.01, 0.005),
    ("higherhrnet-w24", None, 25.3, None, 0.005),   # params: ours 16.1 M vs the paper's 14.9 M (see docs)
    ("efficienthrnet-h1", 13.0, 14.2, 0.005, 0.005),
    ("efficienthrnet-h3", 5.3, 4.3, 0.015, 0.02)])
def test_paper_baselines_against_table_1(name, params_m, macs_g, params_tol, macs_tol):
    cost = count_cost(BASELINES[name].build(14))
    if params_m is not None:
        assert abs(cost.params / 1e6 - params_m) / params_m <= params_tol
    assert abs(cost.macs_paper_convention / 1e9 - macs_g) / macs_g <= macs_tol


def test_w24_params_by_hand():
    """The W24 parameter count, built up from its parts, so the 16.1 M vs 14.9 M gap is ours to explain."""
    cost = count_cost(BASELINES["higherhrnet-w24"].build(14))
    w16 = count_cost(BASELINES["higherhrnet-w16"].build(14))
    # Same recipe: the stage-4 lowest branch (8W channels, 12 BasicBlocks of two 3x3 convs + 2 BN each)
    # alone grows from 12*2*(9*128*128 + 2*128) to 12*2*(9*192*192 + 2*192) parameters.
    grow = 12 * 2 * (9 * 192 * 192 + 2 * 192) - 12 * 2 * (9 * 128 * 128 + 2 * 128)
    assert cost.params - w16.params > grow
    assert round(cost.params / 1e6, 2) == 16.11


@pytest.mark.parametrize("name", list(BASELINES))
def test_baselines_keep_the_io_contract_at_small_size(name):
    model = BASELINES[name].build(14, (128, 128))
    shapes = {k: tuple(v.shape) for k, v in model.output.items()}
    assert shapes == {"heatmaps_s4": (1, 32, 32, 14), "tags_s4": (1, 32, 32, 14), "heatmaps_s2": (1, 64, 64, 14)}
