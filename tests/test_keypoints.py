"""Keypoint tables: checked against their meaning (names, left/right symmetry), not re-typed copies."""
import numpy as np
import pytest

from python_ref import keypoints as kp
from python_ref.errors import LitePoseError


def _mirror(name: str) -> str:
    return name.replace("left", "@").replace("right", "left").replace("@", "right")


@pytest.mark.parametrize("ks", [kp.CROWDPOSE, kp.COCO], ids=lambda k: k.name)
def test_flip_index_swaps_left_and_right(ks):
    flip = np.array(ks.flip_index)
    assert sorted(flip) == list(range(ks.num_joints))
    assert np.array_equal(flip[flip], np.arange(ks.num_joints))       # an involution
    for j, f in enumerate(flip):
        assert ks.joints[f] == _mirror(ks.joints[j])


@pytest.mark.parametrize("ks", [kp.CROWDPOSE, kp.COCO], ids=lambda k: k.name)
def test_joint_order_skeleton_sigmas_are_consistent(ks):
    assert sorted(ks.joint_order) == list(range(ks.num_joints))
    assert len(ks.sigmas) == ks.num_joints
    for a, b in ks.skeleton:
        assert 0 <= a < ks.num_joints and 0 <= b < ks.num_joints and a != b
    assert len(set(map(frozenset, ks.skeleton))) == len(ks.skeleton)
    assert len(ks.skeleton_colors) == len(ks.skeleton)
    # A mirrored edge is an edge and mirrored joints share a sigma.
    edges = set(map(frozenset, ks.skeleton))
    for a, b in ks.skeleton:
        assert frozenset((ks.flip_index[a], ks.flip_index[b])) in edges
    assert all(ks.sigmas[j] == ks.sigmas[ks.flip_index[j]] for j in range(ks.num_joints))


def test_official_visiting_order_and_sizes():
    # Spec 5.4: the COCO order hard-coded in match_by_tag, first 14 entries for CrowdPose.
    assert kp.CROWDPOSE.joint_order == (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13)
    assert len(kp.CROWDPOSE.skeleton) == 15 and len(kp.COCO.skeleton) == 19
    assert kp.joint_order_for(5) == (0, 1, 2, 3, 4)
    # Other counts: the COCO order's first J entries where the official loop can walk them (15, 16).
    assert kp.joint_order_for(15) == (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14)
    assert kp.joint_order_for(16) == (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15)
    assert kp.joint_order_for(10) == tuple(range(10)) and kp.joint_order_for(20) == tuple(range(20))


def test_limb_sigmas_agree_between_datasets():
    # CrowdPose's 12 limb joints have COCO's sigmas for the same joints.
    for j, c in enumerate(kp.CROWDPOSE_FROM_COCO):
        if c >= 0:
            assert kp.CROWDPOSE_SIGMAS[j] == kp.COCO_SIGMAS[c]


def test_joint_maps_pair_the_same_joints():
    for j, c in enumerate(kp.CROWDPOSE_FROM_COCO):
        if c >= 0:
            assert kp.COCO_JOINTS[c] == kp.CROWDPOSE_JOINTS[j]
        else:
            assert kp.CROWDPOSE_JOINTS[j] in ("head", "neck")
    renamed = {"head_top": "head"}
    for j, a in enumerate(kp.CROWDPOSE_FROM_AIC):
        assert renamed.get(kp.AIC_JOINTS[a], kp.AIC_JOINTS[a]) == kp.CROWDPOSE_JOINTS[j]


def test_remap_keypoints_gathers_and_zeroes_missing():
    coco = np.arange(2 * 17 * 3, dtype=float).reshape(2, 17, 3) + 1
    out = kp.remap_keypoints(coco, kp.CROWDPOSE_FROM_COCO)
    assert out.shape == (2, 14, 3)
    assert np.array_equal(out[:, 0], coco[:, 5])                      # left shoulder
    assert np.array_equal(out[:, 11], coco[:, 16])                    # right ankle
    assert not out[:, 12:].any()                                      # head, neck: not in COCO


def test_dataset_for_joints():
    assert kp.dataset_for_joints(14) is kp.CROWDPOSE
    assert kp.dataset_for_joints(17) is kp.COCO
    with pytest.raises(LitePoseError, match="15 joints"):
        kp.dataset_for_joints(15)


def test_flip_index_from_names_matches_the_official_permutations():
    """Any annotation file's left-right swap (to mirror its people) comes from its joint names."""
    assert kp.flip_index_for_names(kp.CROWDPOSE_JOINTS) == kp.CROWDPOSE_FLIP_INDEX
    assert kp.flip_index_for_names(kp.COCO_JOINTS) == kp.COCO_FLIP_INDEX
    aic = kp.flip_index_for_names(kp.AIC_JOINTS)       # AIC's own order: right side first
    assert all(kp.AIC_JOINTS[aic[i]] == _mirror(name) for i, name in enumerate(kp.AIC_JOINTS))
    assert kp.flip_index_for_names(("nose", "L_eye", "r_eye", "Left_ear", "tail")) == (0, 2, 1, 3, 4)
