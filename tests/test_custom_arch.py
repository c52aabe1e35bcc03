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


def _trained_like_weights(arch, joints, seed):
    """Random weights with batch-norm statistics of a trained net's order (gamma 0.6-2, beta -0.5-1, as the
    shared random checkpoints): activations stay O(1) and ReLU6 clips sometimes."""
    rng = np.random.default_rng(seed)
    sd = {}
    for k, s in _official_shapes(arch, joints).items():
        if k.endswith("running_var"):
            sd[k] = rng.uniform(0.5, 2.0, s)
        elif k.endswith("running_mean"):
            sd[k] = rng.normal(0.0, 0.2, s)
        elif len(s) == 1:
            sd[k] = rng.uniform(0.6, 2.0, s) if k.endswith(".weight") else rng.uniform(-0.5, 1.0, s)
        else:
            sd[k] = rng.normal(0.0, 1.0, s) / np.sqrt(np.prod(s[1:]))
    return {k: v.astype(np.float32) for k, v in sd.items()}


def test_a_custom_checkpoint_without_arch_file_says_its_input_size_is_assumed():
    from converter.checkpoint import Checkpoint, build_keras_from_checkpoint

    sd = _trained_like_weights(CUSTOM, 17, seed=4)
    name, arch, joints = detect_arch(sd, "custom.pth")
    ckpt = Checkpoint("custom.pth", "0" * 64, sd, name, arch, joints)
    _, info = build_keras_from_checkpoint(ckpt)
    assert len(info["warnings"]) == 1 and "256 is assumed" in info["warnings"][0]
    assert "--arch FILE.json" in info["warnings"][0] and info["input_hw"] == [256, 256]
    _, info = build_keras_from_checkpoint(ckpt, input_hw=(128, 192))       # the user said the size
    assert info["warnings"] == []


@pytest.mark.needs_shared
def test_custom_arch_deploy_graph_is_exact_and_converts_to_full_integer(shared_dir, tmp_path):
    """Kernels 3/5/9 and a stride-1 stage go through the same rewrites (depthwise split, sub-pixel deconv
    phases, joint heads, centred sums) as the released archs: equal in float, full-integer int8 close to it."""
    pytest.importorskip("tensorflow")
    import python_ref.preprocess as pp
    from converter.export import export_tflite, inspect_tflite
    from converter.rewrites import build_deploy_model, measure_channel_ranges, verify_deploy_model
    from python_ref.runner import TFLiteRunner

    hw, joints = (160, 224), 14
    model = build_litepose(CUSTOM, joints, hw)
    load_weights_into(model, _trained_like_weights(CUSTOM, joints, 3), "custom.pth")
    files = [p for d in ("coco", "aic") for p in sorted((shared_dir / "data" / d / "images").iterdir())]
    images = [pp.letterbox(pp.load_image_rgb(p), hw)[0] for p in files]
    calib, held_out = images[:-1], images[-1]
    deploy = build_deploy_model(model, CUSTOM, joints, ranges=measure_channel_ranges(model, CUSTOM, calib))
    assert verify_deploy_model(model, deploy, held_out, tolerance=1e-4)["max_abs_error"] < 1e-3

    path = tmp_path / "custom_int8.tflite"
    path.write_bytes(export_tflite(deploy, "int8", representative_images=calib, log=lambda m: None))
    from test_int8 import INTEGER_OPS

    ops = inspect_tflite(path)["ops"]
    assert set(ops) - {"QUANTIZE", "DEQUANTIZE"} <= INTEGER_OPS, ops
    runner = TFLiteRunner(path)
    assert runner.input_dtype == np.uint8 and runner.input_hw == hw
    out = runner.run_batch(held_out[None])
    ref = {k: np.asarray(v)[0] for k, v in model(held_out[None].astype(np.float32)).items()}
    for k in ("heatmaps_s4", "tags_s4", "heatmaps_s2"):
        assert out[k].shape == ref[k].shape
        sqnr = 10 * np.log10(np.sum(ref[k] ** 2) / np.sum((ref[k] - out[k]) ** 2))
        assert sqnr > 22, f"{k}: {sqnr:.1f} dB"


def _arch_with(edit):
    arch = {"img_size": 256, "input_channel": 16, "deconv_setting": [24, 24, 24], "backbone_setting": [
        {"num_blocks": 1, "stride": 2, "channel": 16, "block_setting": [[6, 7]]},
        {"num_blocks": 1, "stride": 2, "channel": 32, "block_setting": [[6, 7]]},
        {"num_blocks": 1, "stride": 2, "channel": 48, "block_setting": [[6, 7]]},
        {"num_blocks": 1, "stride": 1, "channel": 64, "block_setting": [[6, 7]]}]}
    edit(arch)
    return arch


@pytest.mark.parametrize("edit, message", [
    (lambda a: a["backbone_setting"][0]["block_setting"][0].__setitem__(1, -3), "kernel is -3"),
    (lambda a: a["backbone_setting"][0]["block_setting"][0].__setitem__(1, 3.5), "kernel is 3.5"),
    (lambda a: a["backbone_setting"][0]["block_setting"][0].__setitem__(1, 4), "kernels must be odd, got 4"),
    (lambda a: a["backbone_setting"][1]["block_setting"][0].__setitem__(0, 0), "stage 1 block 0 expansion is 0"),
    (lambda a: a["backbone_setting"][1]["block_setting"][0].__setitem__(0, -2), "expansion is -2"),
    (lambda a: a["backbone_setting"][1]["block_setting"][0].__setitem__(0, True), "expansion is true"),
    (lambda a: a["backbone_setting"][2].__setitem__("channel", "48"), 'stage 2 channel is "48"'),
    (lambda a: a["backbone_setting"][2].__setitem__("block_setting", [[6]]), "[expansion, kernel] pairs"),
    (lambda a: a.__setitem__("deconv_setting", [24, 0, 24]), "deconv_setting[1] is 0"),
    (lambda a: a.__setitem__("input_channel", 16.5), "input_channel is 16.5"),
    (lambda a: a["backbone_setting"][3].pop("stride"), "stage 3 needs num_blocks, stride"),
    (lambda a: a.__setitem__("img_size", float("inf")), "img_size is Infinity"),       # json reads Infinity
    (lambda a: a["backbone_setting"][0].__setitem__("channel", float("nan")), "stage 0 channel is NaN"),
    (lambda a: a["backbone_setting"][0]["block_setting"][0].__setitem__(1, 1e300), "kernel is 1e+300"),
    (lambda a: a["backbone_setting"][0]["block_setting"][0].__setitem__(1, 33),
     "kernel is 33, expected an integer from 1 to 31"),
])
def test_arch_mistakes_are_named_before_any_checkpoint_is_read(edit, message):
    with pytest.raises(LitePoseError) as err:
        validate_arch(_arch_with(edit), "my-arch.json")
    assert str(err.value).startswith("my-arch.json: not a LitePose architecture: ") and message in str(err.value)
    assert len(str(err.value)) < 200


def test_integral_floats_and_fractional_expansions_are_valid():
    arch = validate_arch(_arch_with(lambda a: a["backbone_setting"][0]["block_setting"].__setitem__(
        0, [2.5, 7.0])), "ok.json")
    assert arch["backbone_setting"][0]["block_setting"] == [[2.5, 7]]
    assert isinstance(arch["backbone_setting"][0]["block_setting"][0][1], int)


def test_arch_json_widths_are_rounded_as_the_official_class_rounds_them(tmp_path):
    """LitePose.__init__ passes the stem and stage widths through make_divisible(c, 8), so a JSON with 12 /
    [20, 36, 44, 60] makes checkpoints of 16 / [24, 40, 48, 64]; deconv widths stay; settings past num_blocks
    are never read."""
    import json

    from converter.archs import load_arch

    arch = json.loads(json.dumps(CUSTOM))
    arch["input_channel"] = 12
    for st, c in zip(arch["backbone_setting"], (20, 36, 44, 60)):
        st["channel"] = c
    arch["deconv_setting"] = [20, 12, 9]
    arch["backbone_setting"][1]["block_setting"] += [[6, 33], [1]]   # num_blocks 1: never read, not checked
    (tmp_path / "odd.json").write_text(json.dumps(arch))
    name, loaded = load_arch(str(tmp_path / "odd.json"))
    assert name == "odd" and loaded["input_channel"] == 16
    assert [st["channel"] for st in loaded["backbone_setting"]] == [24, 40, 48, 64]
    assert loaded["deconv_setting"] == [20, 12, 9]
    assert loaded["backbone_setting"][1]["block_setting"] == [[4, 3]]
    assert expected_torch_shapes(build_litepose(loaded, 14, (64, 64))) == _official_shapes(loaded, 14)
