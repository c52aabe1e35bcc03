"""Architectures no released checkpoint uses: mixed expansions and kernels, other widths."""
from __future__ import annotations

import numpy as np
import pytest

from converter.archs import make_divisible, validate_arch
from converter.checkpoint import detect_arch, expected_torch_shapes, load_weights_into
from converter.network import build_litepose
from python_ref.errors import LitePoseError

CUSTOM = validate_arch({
    "img_size": 128, "input_channel": 8, "deconv_setting": [24, 16, 8],
    "backbone_setting": [
        {"num_blocks": 2, "stride": 2, "channel": 8, "block_setting": [[6, 7], [3, 5]]},
        {"num_blocks": 1, "stride": 2, "channel": 16, "block_setting": [[4, 3]]},
        {"num_blocks": 2, "stride": 2, "channel": 24, "block_setting": [[6, 7], [2, 9]]},
        {"num_blocks": 2, "stride": 1, "channel": 32, "block_setting": [[6, 5], [6, 7]]},
    ]}, "custom")


def _official_shapes(arch, joints):
    """Checkpoint shapes written out from the official module definitions (spec §2.2-2.5, §3.1)."""
    s = {"first.0.0.weight": (32, 3, 3, 3), "first.1.0.weight": (32, 1, 3, 3),
         "first.2.weight": (arch["input_channel"], 32, 1, 1)}
    bn = {"first.0.1": 32, "first.1.1": 32, "first.3": arch["input_channel"]}
    widths = [arch["input_channel"]]
    cin = arch["input_channel"]
    for i, st in enumerate(arch["backbone_setting"]):
        for b, (t, k) in enumerate(st["block_setting"]):
            hid = make_divisible(round(cin * t), 8)
            p = f"stage.{i}.{b}"
            s[f"{p}.inv.0.weight"] = (hid, cin, 1, 1)
            s[f"{p}.depth_conv.0.weight"] = (hid, 1, k, k)
            s[f"{p}.point_conv.0.weight"] = (st["channel"], hid, 1, 1)
            bn.update({f"{p}.inv.1": hid, f"{p}.depth_conv.1": hid, f"{p}.point_conv.1": st["channel"]})
            cin = st["channel"]
        widths.append(cin)
    refined = widths[4]
    for i, d in enumerate(arch["deconv_setting"]):
        s[f"deconv_refined.{i}.weight"] = (refined, d, 4, 4)
        s[f"deconv_raw.{i}.weight"] = (widths[-i - 2], d, 4, 4)
        bn[f"deconv_bnrelu.{i}.0"] = d
        refined = d
    for j, (ref_in, raw_in, out) in enumerate([(arch["deconv_setting"][1], widths[1], 2 * joints),
                                               (arch["deconv_setting"][2], widths[0], joints)]):
        for branch, c in (("final_refined", ref_in), ("final_raw", raw_in)):
            s[f"{branch}.{j}.conv.0.weight"] = (c, 1, 5, 5)
            bn[f"{branch}.{j}.conv.1"] = c
            s[f"{branch}.{j}.conv.3.weight"] = (out, c, 1, 1)
    for p, c in bn.items():
        for q in ("weight", "bias", "running_mean", "running_var"):
            s[f"{p}.{q}"] = (c,)
    return s


@pytest.fixture(scope="module")
def custom_model():
    return build_litepose(CUSTOM, 17, (128, 192))


def test_layer_table_matches_official_module_shapes(custom_model):
    assert expected_torch_shapes(custom_model) == _official_shapes(CUSTOM, 17)


def test_random_custom_checkpoint_loads_strictly_and_is_detected(custom_model):
    rng = np.random.default_rng(0)
    sd = {k: rng.normal(size=v).astype(np.float32) for k, v in _official_shapes(CUSTOM, 17).items()}
    for k in sd:
        if k.endswith("running_var"):
            sd[k] = np.abs(sd[k]) + 0.5
    load_weights_into(custom_model, sd, "custom.pth")
    name, arch, joints = detect_arch(sd, "custom.pth")
    assert name == "custom" and joints == 17
    assert {k: v for k, v in arch.items() if k != "img_size"} == {k: v for k, v in CUSTOM.items() if k != "img_size"}
    out = custom_model(rng.uniform(0, 255, (1, 128, 192, 3)).astype(np.float32))
    assert out["heatmaps_s4"].shape == (1, 32, 48, 17) and out["heatmaps_s2"].shape == (1, 64, 96, 17)
    assert np.isfinite(np.asarray(out["tags_s4"])).all()

    sd["stage.2.1.depth_conv.0.weight"] = np.zeros((48, 1, 7, 7), np.float32)
    del sd["final_raw.1.conv.3.weight"]
    with pytest.raises(LitePoseError, match=r"stage\.2\.1\.depth_conv\.0\.weight \(48, 1, 7, 7\) vs expected "
                                            r"\(48, 1, 9, 9\).*missing 1 keys: final_raw\.1\.conv\.3\.weight"):
        load_weights_into(custom_model, sd, "custom.pth")
