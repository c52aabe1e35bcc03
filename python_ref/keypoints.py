"""Keypoint definitions: joint names, flip permutations, the official joint visiting order, skeletons,
OKS sigmas and the joint maps that let a 14-joint (CrowdPose) model be scored on COCO and AI Challenger
annotations.

Plain data (tuples) plus a few tiny helpers; everything is indexed by joint number as in the
network's output channels. Values follow the official LitePose / HigherHRNet code (see
docs/design.md and the spec, sections 5.2, 5.4 and 6.1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import LitePoseError

# --- CrowdPose (J = 14), also the order of the CrowdPose annotation files -------------------------
CROWDPOSE_JOINTS: tuple[str, ...] = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
)
CROWDPOSE_FLIP_INDEX: tuple[int, ...] = (1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13)
# crowd_pose_part_orders of the official visualisation (15 edges).
CROWDPOSE_SKELETON: tuple[tuple[int, int], ...] = (
    (12, 13), (13, 0), (13, 1), (0, 1), (0, 6), (1, 7), (6, 7),
    (0, 2), (2, 4), (1, 3), (3, 5), (6, 8), (8, 10), (7, 9), (9, 11),
)
CROWDPOSE_SIGMAS: tuple[float, ...] = tuple(
    s / 10.0 for s in (.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79))

# --- COCO (J = 17) -------------------------------------------------------------------------------
COCO_JOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO_FLIP_INDEX: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
# coco_part_orders of the official visualisation (19 edges).
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 0), (1, 3), (2, 4), (3, 5), (4, 6), (5, 6), (5, 11), (6, 12), (11, 12),
    (5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16),
)
COCO_SIGMAS: tuple[float, ...] = tuple(
    s / 10.0 for s in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                       .87, .87, .89, .89))

# --- The official joint visiting order of match_by_tag -------------------------------------------
# Hard-coded for COCO in the official parser; with 14 joints only its first 14 entries are used,
# so CrowdPose is visited 0,1,2,3,4,5,6,11,12,7,8,9,10,13 (a quirk reproduced on purpose).
COCO_JOINT_ORDER: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)
CROWDPOSE_JOINT_ORDER: tuple[int, ...] = COCO_JOINT_ORDER[:14]

# --- Joint maps: score a 14-joint (CrowdPose order) model on other annotations -------------------
# For every CrowdPose joint j, the index of the same joint in the other format (-1: not annotated).
# COCO has no head-top/neck; its 12 limb joints 5..16 are in the CrowdPose left/right order.
CROWDPOSE_FROM_COCO: tuple[int, ...] = (5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, -1, -1)
# AI Challenger order: r_sho, r_elb, r_wri, l_sho, l_elb, l_wri, r_hip, r_knee, r_ank, l_hip, l_knee,
# l_ank, head_top (~ CrowdPose head), neck.
AIC_JOINTS: tuple[str, ...] = (
    "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "head_top", "neck",
)
CROWDPOSE_FROM_AIC: tuple[int, ...] = (3, 0, 4, 1, 5, 2, 9, 6, 10, 7, 11, 8, 12, 13)

# --- One colour scheme (RGB) for overlays: by body side -------------------------------------------
LEFT_RGB = (255, 128, 0)     # orange
RIGHT_RGB = (0, 160, 255)    # blue
CENTRE_RGB = (60, 200, 60)   # green


def _side(name: str) -> str:
    return "left" if name.startswith("left") else "right" if name.startswith("right") else "centre"


def edge_colors(joints: tuple[str, ...], skeleton: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int, int], ...]:
    """RGB colour per edge: left if both ends are left joints, right likewise, else centre."""
    colours = []
    for a, b in skeleton:
        sides = {_side(joints[a]), _side(joints[b])}
        colours.append(LEFT_RGB if sides == {"left"} else RIGHT_RGB if sides == {"right"} else CENTRE_RGB)
    return tuple(colours)


@dataclass(frozen=True)
class KeypointSet:
    """Everything the decoder, evaluator and drawing need to know about one joint layout."""
    name: str                                   # "crowdpose" | "coco"
    joints: tuple[str, ...]
    flip_index: tuple[int, ...]
    joint_order: tuple[int, ...]                # match_by_tag visiting order
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]                   # OKS sigmas

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def skeleton_colors(self) -> tuple[tuple[int, int, int], ...]:
        return edge_colors(self.joints, self.skeleton)


CROWDPOSE = KeypointSet("crowdpose", CROWDPOSE_JOINTS, CROWDPOSE_FLIP_INDEX, CROWDPOSE_JOINT_ORDER,
                        CROWDPOSE_SKELETON, CROWDPOSE_SIGMAS)
COCO = KeypointSet("coco", COCO_JOINTS, COCO_FLIP_INDEX, COCO_JOINT_ORDER, COCO_SKELETON, COCO_SIGMAS)


def dataset_for_joints(num_joints: int) -> KeypointSet:
    """The keypoint layout of a model with `num_joints` output channels (14: CrowdPose, 17: COCO)."""
    if num_joints == 14:
        return CROWDPOSE
    if num_joints == 17:
        return COCO
    raise LitePoseError(f"{num_joints} joints: no known keypoint layout (14 = CrowdPose, 17 = COCO)")


def flip_index_for_names(joints: tuple[str, ...]) -> tuple[int, ...]:
    """Left-right swap of any joint layout, from its names (`left_x` <-> `right_x`, also `l_x` / `r_x`);
    a joint without a partner (nose, neck, head_top) maps to itself. Used to mirror annotations."""
    def partner(name: str) -> str | None:
        for a, b in (("left", "right"), ("right", "left"), ("l_", "r_"), ("r_", "l_")):
            if name.lower().startswith(a):
                return b + name[len(a):]
        return None

    index = {n.lower(): i for i, n in enumerate(joints)}
    return tuple(index.get((partner(n) or n).lower(), i) for i, n in enumerate(joints))


def joint_order_for(num_joints: int) -> tuple[int, ...]:
    """The official visiting order: the first J entries of the COCO order hard-coded in match_by_tag
    (spec 5.4) where they are a permutation of 0..J-1 (J <= 7 or 14..17); else 0..J-1 (the official
    code fails on those counts)."""
    order = COCO.joint_order[:num_joints]
    return order if sorted(order) == list(range(num_joints)) else tuple(range(num_joints))


def remap_keypoints(keypoints: np.ndarray, index_map: tuple[int, ...]) -> np.ndarray:
    """Reorder the joint axis (-2) of `keypoints (..., J_src, C)`: out[..., j, :] = keypoints[..., index_map[j], :].

    Index -1 gives an all-zero joint (not annotated / not predicted). Example: COCO ground truth in
    CrowdPose order is `remap_keypoints(coco_kpts, CROWDPOSE_FROM_COCO)`.
    """
    keypoints = np.asarray(keypoints)
    index = np.asarray(index_map, dtype=np.int64)
    out = keypoints[..., np.maximum(index, 0), :].copy()
    out[..., index < 0, :] = 0
    return out
