"""Baseline networks of the LitePose paper's CrowdPose table, built natively in Keras (random weights).

`BASELINES[name].build(num_joints, input_hw=None)` returns a float Keras model with the LitePose I/O
contract (input `image` [1, H, W, 3] 0..255 RGB; outputs `heatmaps_s4`, `tags_s4`, `heatmaps_s2`), so
the same export and the same runner/decoder apply. Definitions and their sources are in each module.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from .efficienthrnet import EFFICIENT_HRNET_CONFIGS, build_efficienthrnet
from .higherhrnet import build_higherhrnet, higherhrnet_config

_LITEPOSE_HHRNET = (
    "HigherHRNet with branch widths W/2W/4W/8W, 4 BasicBlocks per branch, 1/4/3 modules, stem 2W "
    "bottleneck planes, one 32-wide deconvolution without extra BasicBlocks (the head and stem rule of "
    "mit-han-lab/litepose experiments/crowd_pose/higher_hrnet/w16_512_adam_lr1e-3.yaml; that file's "
    "own blocks/widths are the paper's shrunk variant)")


def litepose_higherhrnet_config(width: int):
    """HigherHRNet-W<width> as the LitePose authors trained it for their CrowdPose table.

    Differs from the HigherHRNet repo's W32/W48 recipe in the stem (2W bottleneck planes instead of 64)
    and the head (32-wide deconvolution, no BasicBlocks). This is what reproduces the paper's
    W16 numbers (7.2 M params, 12.5 G MACs) exactly and W24's MACs (25.3 G)."""
    return dataclasses.replace(higherhrnet_config(width, deconv_channels=32), stem_inplanes=2 * width,
                               deconv_basic_blocks=0)


@dataclass(frozen=True)
class Baseline:
    name: str
    input_hw: tuple[int, int]
    builder: Callable
    definition: str

    def build(self, num_joints: int = 14, input_hw: tuple[int, int] | None = None):
        return self.builder(num_joints, tuple(input_hw or self.input_hw))


def _hhrnet(width):
    return lambda j, hw: build_higherhrnet(litepose_higherhrnet_config(width), j, hw, name=f"higherhrnet_w{width}")


def _ehrnet(key):
    return lambda j, hw: build_efficienthrnet(EFFICIENT_HRNET_CONFIGS[key], j, hw,
                                              name=f"efficienthrnet_{key.replace('-', '').lower()}")


BASELINES: dict[str, Baseline] = {
    "higherhrnet-w16": Baseline("higherhrnet-w16", (512, 512), _hhrnet(16), _LITEPOSE_HHRNET + ", W = 16"),
    "higherhrnet-w24": Baseline("higherhrnet-w24", (512, 512), _hhrnet(24), _LITEPOSE_HHRNET + ", W = 24"),
    "efficienthrnet-h1": Baseline(
        "efficienthrnet-h1", (480, 480), _ehrnet("H-1"),
        "mit-han-lab/litepose lib/models/pose_efficient_hrnet.py with experiments/crowd_pose/efficient_hrnet/H-1.yaml "
        "(EfficientNet-B0 x0.909 width, x0.833 depth; HRNet widths x1.2455^-1; modules 1/3/3)"),
    "efficienthrnet-h3": Baseline(
        "efficienthrnet-h3", (416, 416), _ehrnet("H-3"),
        "mit-han-lab/litepose lib/models/pose_efficient_hrnet.py with experiments/crowd_pose/efficient_hrnet/H-3.yaml "
        "(EfficientNet-B0 x0.751 width, x0.578 depth; HRNet widths x1.2455^-3; modules 1/1/3)"),
}
BASELINE_NAMES = tuple(BASELINES)

__all__ = ["BASELINES", "BASELINE_NAMES", "Baseline", "build_higherhrnet", "higherhrnet_config",
           "litepose_higherhrnet_config", "build_efficienthrnet", "EFFICIENT_HRNET_CONFIGS"]
