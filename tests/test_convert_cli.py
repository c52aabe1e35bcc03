"""`litepose convert`: one command to a validated model + card; bad input fails in one line, no output."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from converter.cli import main


def invoke(args):
    result = CliRunner().invoke(main, args)
    return result


def _assert_one_line_error(result, *fragments):
    text = result.output.strip()
    assert result.exit_code != 0, text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in text
    error_lines = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, text
    for fragment in fragments:
        assert fragment in error_lines[0], text


@pytest.fixture(scope="session")
def xs_ckpt(shared_dir):
    return shared_dir / "checkpoints" / "litepose-xs-crowdpose-random.pth"


@pytest.mark.needs_shared
def test_convert_writes_model_card_and_manifest(xs_ckpt, tmp_path):
    out = tmp_path / "models" / "xs.tflite"
    out.parent.mkdir()
    result = invoke(["convert", "--checkpoint", str(xs_ckpt), "--input-size", "128x192",
                     "--precision", "fp32", "--output", str(out), "--keras", str(out.parent / "xs.keras")])
    assert result.exit_code == 0, result.output
    card = json.loads((out.parent / "xs.json").read_text())
    assert card["variant"] == "XS" and card["joints"] == 14 and card["input_size"] == "128x192"
    assert card["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert card["checkpoint_sha256"] == hashlib.sha256(xs_ckpt.read_bytes()).hexdigest()
    assert card["inputs"]["image"] == {"shape": [1, 128, 192, 3], "dtype": "float32", "scale": 0.0, "zero_point": 0}
    assert card["outputs"]["tags_s4"]["shape"] == [1, 32, 48, 14]
    assert card["validation_vs_keras"]["min_sqnr_db"] > 80
    import platform
    from importlib import metadata

    import numpy as np
    import tensorflow as tf

    from converter.export import FLOAT_KERNEL_FEATURES

    built = card["built_with"]     # what the bytes depend on besides the inputs: these versions and this CPU
    assert built.get("tensorflow") == tf.__version__ and built["numpy"] == np.__version__
    assert built["ai-edge-litert"] == metadata.version("ai-edge-litert")
    assert built["python"] == platform.python_version() and built["machine"] == platform.machine()
    if Path("/proc/cpuinfo").is_file():
        key, flags = None, set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("flags", "Features"):
                key, flags = line.split(":")[0].strip(), set(line.split(":", 1)[1].split())
                break
        assert key is None or set(built["cpu_features"]) == flags & set(FLOAT_KERNEL_FEATURES[key])
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert [m["file"] for m in manifest["models"]] == ["xs.tflite"]
    assert (manifest["models"][0]["input_dtype"], manifest["models"][0]["output_dtype"]) == ("float32", "float32")
    assert sorted(p.name for p in out.parent.iterdir()) == ["manifest.json", "xs.json", "xs.keras", "xs.tflite"]
    keras_model = tf.keras.models.load_model(out.parent / "xs.keras")   # the float network, loadable as is
    assert tuple(keras_model.input_shape[1:]) == (128, 192, 3) and len(keras_model.outputs) == 3


@pytest.mark.needs_shared
@pytest.mark.parametrize("case", ["truncated", "not_a_checkpoint", "arch_mismatch", "wrong_joints",
                                  "size_not_16", "missing_folder", "output_is_folder", "missing_checkpoint",
                                  "int8_without_calibration", "bad_arch_name", "ranges_for_float",
                                  "rounding_for_float", "dtype_for_float", "calibration_for_float",
                                  "calibration_is_a_file", "output_is_the_checkpoint", "size_too_large",
                                  "arch_img_size", "truncated_zip", "truncated_legacy", "foreign_manifest",
                                  "calib_count_for_float", "empty_calib_folder_name",
                                  "bias_correction_for_float", "card_is_folder", "depthwise_form_for_float",
                                  "depthwise_form_for_plain_graph", "empty_input_size", "empty_checkpoint",
                                  "negative_seed"])
def test_bad_input_fails_clearly_and_writes_nothing(case, xs_ckpt, tmp_path):
    ckpt = xs_ckpt
    out = tmp_path / "out" / "model.tflite"
    out.parent.mkdir()
    extra, expect = [], []
    if case == "truncated":
        ckpt = tmp_path / "truncated.pth"
        ckpt.write_bytes(xs_ckpt.read_bytes()[:100_000])
        expect = ["truncated.pth"]
    elif case == "not_a_checkpoint":
        ckpt = tmp_path / "photo.pth"
        ckpt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        expect = ["photo.pth", "not a PyTorch checkpoint"]
    elif case == "arch_mismatch":
        extra, expect = ["--arch", "M"], ["does not fit", "looks like XS"]
    elif case == "wrong_joints":
        extra, expect = ["--joints", "17"], ["--joints 17", "14 joints"]
    elif case == "size_not_16":
        extra, expect = ["--input-size", "250x250"], ["--input-size", "multiples of 16", "240x240 or 256x256"]
    elif case == "missing_folder":
        out = tmp_path / "nope" / "model.tflite"
        expect = ["does not exist"]
    elif case == "output_is_folder":
        out = tmp_path / "out" / "dir.tflite"
        out.mkdir()
        expect = ["is a folder"]
    elif case == "missing_checkpoint":
        ckpt = tmp_path / "LitePose-Auto-M.pth.tar"
        expect = ["LitePose-Auto-M.pth.tar", "checkpoint not found", "any checkpoint in the official format"]
    elif case == "int8_without_calibration":
        extra, expect = ["--precision", "int8"], ["--calib-images"]
    elif case == "bad_arch_name":
        extra, expect = ["--arch", "XXL"], ["--arch XXL"]
    elif case == "ranges_for_float":
        extra, expect = ["--activation-ranges", "mse-backbone"], ["--activation-ranges mse-backbone", "int8 only"]
    elif case == "rounding_for_float":
        extra, expect = ["--weight-rounding", "gptq"], ["--weight-rounding gptq", "int8 only"]
    elif case == "dtype_for_float":  # would be ignored: the fp32 model's input is float32
        extra, expect = ["--input-dtype", "int8"], ["--input-dtype", "int8 only"]
    elif case == "calibration_for_float":
        extra, expect = ["--calib-images", str(tmp_path)], ["--calib-images", "int8 only"]
    elif case == "calibration_is_a_file":
        image = tmp_path / "one.png"
        image.write_bytes(b"x")
        extra, expect = ["--precision", "int8", "--calib-images", str(image)], ["one.png", "wants a folder"]
    elif case == "output_is_the_checkpoint":
        ckpt = out.parent / "weights.tflite"
        ckpt.write_bytes(xs_ckpt.read_bytes())
        out = ckpt
        expect = ["weights.tflite", "would overwrite the checkpoint"]
    elif case == "size_too_large":
        extra, expect = ["--input-size", "64000x64000"], ["--input-size", "at most 4096"]
    elif case == "arch_img_size":
        arch = json.loads((xs_ckpt.parent / "configs" / "search-XS.json").read_text())
        (tmp_path / "xs300.json").write_text(json.dumps({**arch, "img_size": 300}))
        extra, expect = ["--arch", str(tmp_path / "xs300.json")], ["xs300.json", "img_size 300", "multiple of 16"]
    elif case == "truncated_zip":
        ckpt = tmp_path / "half.pth"
        ckpt.write_bytes(xs_ckpt.read_bytes()[:3_000_000])
        expect = ["half.pth", "truncated"]
    elif case == "foreign_manifest":  # checked before the conversion, not after it
        (out.parent / "manifest.json").write_text('{"name": "webapp"}')
        expect = ["manifest.json", "not a litepose manifest"]
    elif case == "calib_count_for_float":  # given explicitly, even at its default
        extra, expect = ["--precision", "dynamic", "--calib-count", "100"], ["--calib-count", "int8 only"]
    elif case == "bias_correction_for_float":
        extra, expect = ["--no-output-bias-correction"], ["--no-output-bias-correction", "int8 only"]
    elif case == "depthwise_form_for_float":   # given explicitly, even at its default
        extra, expect = ["--precision", "fp16", "--depthwise-form", "split"], ["--depthwise-form", "int8 only"]
    elif case == "depthwise_form_for_plain_graph":
        extra = ["--precision", "int8", "--calib-images", str(xs_ckpt.parent.parent / "data" / "coco" / "images"),
                 "--graph", "plain", "--depthwise-form", "blocked"]
        expect = ["--depthwise-form blocked", "deploy graph only"]
    elif case == "empty_input_size":     # used to fall back to the default size without a word
        extra, expect = ["--input-size", ""], ["--input-size: an empty value"]
    elif case == "negative_seed":   # numpy's generator refused it after the model was built, as a traceback
        extra = ["--precision", "int8", "--calib-images", str(xs_ckpt.parent.parent / "data" / "coco" / "images"),
                 "--calib-seed", "-1"]
        expect = ["--calib-seed", "-1 is not in the range"]
    elif case == "empty_checkpoint":
        ckpt, expect = "", ["--checkpoint: an empty value"]
    elif case == "empty_calib_folder_name":
        extra, expect = ["--precision", "int8", "--calib-images", ""], ["empty folder name"]
    elif case == "card_is_folder":   # checked before the conversion, not after it
        (out.parent / "model.json").mkdir()
        expect = ["model.json", "is a folder", "model card"]
    elif case == "truncated_legacy":
        ckpt = tmp_path / "half_legacy.pth"
        ckpt.write_bytes((xs_ckpt.parent / "litepose-xs-crowdpose-random.legacy.pth").read_bytes()[:3_000_000])
        expect = ["half_legacy.pth", "truncated", "of 679"]
    before = sorted(p.name for p in out.parent.iterdir()) if out.parent.exists() else []
    result = invoke(["convert", "--checkpoint", str(ckpt), "--output", str(out), "--input-size", "128x128", *extra]
                    if case not in ("size_not_16", "size_too_large", "arch_img_size") else
                    ["convert", "--checkpoint", str(ckpt), "--output", str(out), *extra])
    _assert_one_line_error(result, *expect)
    after = sorted(p.name for p in out.parent.iterdir()) if out.parent.exists() else []
    assert after == before, f"left files behind: {set(after) - set(before)}"


@pytest.mark.needs_shared
def test_a_conversion_that_needs_more_memory_than_there_is_is_refused_before_the_work(xs_ckpt, tmp_path,
                                                                                       monkeypatch):
    """The kernel's out-of-memory killer gives no message and may kill other programs: refused in one line."""
    import converter.convert as convert

    monkeypatch.setattr(convert, "available_memory_bytes", lambda: int(1.5e9))
    out = tmp_path / "m.tflite"
    result = invoke(["convert", "--checkpoint", str(xs_ckpt), "--output", str(out), "--input-size", "1024x1024"])
    _assert_one_line_error(result, "--input-size 1024x1024", "needs about", "1.5 GB are available")
    assert list(tmp_path.iterdir()) == []
    # the estimate grows with the activations: the same network at 4x the pixels needs more than 2x the memory
    from converter.checkpoint import build_keras_from_checkpoint

    small, _ = build_keras_from_checkpoint(xs_ckpt, input_hw=(256, 256))
    large, _ = build_keras_from_checkpoint(xs_ckpt, input_hw=(512, 512))
    need = {hw: convert.check_conversion_memory(m, "int8", hw, available=int(1e15))
            for hw, m in (((256, 256), small), ((512, 512), large))}
    assert need[(512, 512)] - convert.CONVERT_BASE_BYTES > 3.9 * (need[(256, 256)] - convert.CONVERT_BASE_BYTES)


def test_the_blocked_form_adds_its_toeplitz_weights_to_the_memory_estimate():
    """A blocked conversion of LitePose-M at 448 peaked at 7.6 GB against 4.2 for the split one: its Toeplitz
    kernels, 4 (s b)^2 b^2 weights a channel for every depthwise conv of 25 taps or more, are held in float."""
    import keras

    import converter.convert as convert
    from converter.rewrites import blocked_weight_elements

    x = keras.Input((56, 56, 16))
    y = keras.layers.DepthwiseConv2D(7, padding="same")(x)                # b = 7 (4 * 8^4 > 4 * 56 * 56)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(y)                # 9 taps: stays a depthwise conv
    y = keras.layers.DepthwiseConv2D(5, strides=2, padding="same")(y)     # stride 2: b = 4, 8 x 8 input blocks
    model = keras.Model(x, y)
    assert blocked_weight_elements(model) == 16 * 4 * 7 ** 2 * 7 ** 2 + 16 * 4 * 8 ** 2 * 4 ** 2
    split = convert.check_conversion_memory(model, "int8", (56, 56), available=int(1e15))
    blocked = convert.check_conversion_memory(model, "int8", (56, 56), available=int(1e15), blocked=True)
    assert blocked - split == pytest.approx(convert.CONVERT_BYTES_PER_BLOCKED_WEIGHT * blocked_weight_elements(model))


@pytest.mark.needs_shared
def test_a_manifest_spoilt_during_the_run_leaves_no_files(xs_ckpt, tmp_path, monkeypatch):
    """The model, its card, the Keras file and the manifest are written together or not at all: a manifest
    another process made foreign while the conversion ran fails the run with none of them written."""
    import converter.convert as convert_module

    real, calls = convert_module.read_manifest, []

    def read_manifest(path):
        calls.append(path)
        if len(calls) == 2:   # the first read is the check before the work; the second comes at the end
            path.write_text('{"name": "webapp"}')
        return real(path)

    monkeypatch.setattr(convert_module, "read_manifest", read_manifest)
    out = tmp_path / "m.tflite"
    result = invoke(["convert", "--checkpoint", str(xs_ckpt), "--input-size", "128x128", "--precision", "fp32",
                     "--output", str(out), "--keras", str(tmp_path / "m.keras")])
    _assert_one_line_error(result, "manifest.json", "not a litepose manifest")
    assert len(calls) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


@pytest.mark.needs_shared
def test_a_full_disk_while_saving_the_keras_file_is_one_line(xs_ckpt, tmp_path, monkeypatch):
    import errno

    import keras

    def full_disk(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", full_disk)
    out = tmp_path / "m.tflite"
    result = invoke(["convert", "--checkpoint", str(xs_ckpt), "--input-size", "128x128", "--precision", "fp32",
                     "--output", str(out), "--keras", str(tmp_path / "m.keras")])
    _assert_one_line_error(result, "m.keras", "No space left on device")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.needs_shared
def test_arch_json_file_is_accepted(xs_ckpt, tmp_path, shared_dir):
    arch = tmp_path / "my-arch.json"
    shutil.copy(shared_dir / "checkpoints" / "configs" / "search-XS.json", arch)
    out = tmp_path / "xs.tflite"
    result = invoke(["convert", "--checkpoint", str(xs_ckpt), "--arch", str(arch), "--input-size", "64x128",
                     "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.with_suffix(".json").read_text())["variant"] == "XS"


def test_the_cpu_is_read_from_cpuinfo_on_arm_and_x86():
    """ARM's /proc/cpuinfo names no model and lists "Features", not "flags"; a name can mean another thing on
    the other architecture (AMD's "sme" is memory encryption, ARM's the matrix extension)."""
    from converter.export import cpu_from_cpuinfo

    pi5 = ("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics "
           "fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
           "CPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\nprocessor\t: 1\nFeatures\t: fp\n")
    assert cpu_from_cpuinfo(pi5, "aarch64") == ("aarch64 (implementer 0x41, part 0xd0b)",
                                                ["asimd", "asimdhp", "asimddp"])
    epyc = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx avx2 fma sme sev\n"
    assert cpu_from_cpuinfo(epyc, "x86_64") == ("AMD EPYC 7B13", ["avx", "avx2", "fma"])
    # a virtual machine's bare "AMD EPYC" is told apart by its family and model (Zen 4 and Zen 5 time unlike)
    turin = "processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\nflags\t\t: avx2\n"
    assert cpu_from_cpuinfo(turin, "x86_64") == ("AMD EPYC (family 26, model 2)", ["avx2"])
    assert cpu_from_cpuinfo("", "arm64", "arm") == ("arm", [])      # macOS: no /proc/cpuinfo
