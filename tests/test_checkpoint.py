"""Checkpoint import without PyTorch: every file form loads, crafted pickles are refused, mapping is strict."""
from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from converter.archs import PRESETS, load_arch, match_preset, parse_input_size
from converter.checkpoint import detect_arch, load_checkpoint, unwrap_state_dict
from converter.torch_reader import read_torch_file
from python_ref.errors import LitePoseError

XS_FORMS = ["litepose-xs-crowdpose-random.pth", "litepose-xs-crowdpose-random.legacy.pth",
            "litepose-xs-crowdpose-random.trainckpt.pth.tar", "litepose-xs-crowdpose-random.best.pth.tar"]


@pytest.fixture(scope="session")
def xs_reference(shared_dir):
    return load_checkpoint(shared_dir / "checkpoints" / XS_FORMS[0])


@pytest.mark.needs_shared
@pytest.mark.parametrize("name", XS_FORMS)
def test_every_xs_form_gives_the_same_tensors(shared_dir, xs_reference, name):
    ckpt = load_checkpoint(shared_dir / "checkpoints" / name)
    assert ckpt.arch_name == "XS" and ckpt.num_joints == 14
    assert len(ckpt.state_dict) == 567  # 679 entries minus 112 num_batches_tracked
    assert set(ckpt.state_dict) == set(xs_reference.state_dict)
    for key, value in xs_reference.state_dict.items():
        np.testing.assert_array_equal(ckpt.state_dict[key], value, err_msg=key)


@pytest.mark.needs_shared
def test_fp16_prefixed_checkpoint_loads_as_float32(shared_dir, xs_reference):
    ckpt = load_checkpoint(shared_dir / "checkpoints" / "litepose-xs-crowdpose-random.fp16-prefixed.pth")
    assert set(ckpt.state_dict) == set(xs_reference.state_dict)
    for key, value in xs_reference.state_dict.items():
        got = ckpt.state_dict[key]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, value.astype(np.float16).astype(np.float32), rtol=0, atol=0, err_msg=key)


@pytest.mark.needs_shared
@pytest.mark.parametrize("name, variant, joints", [
    ("litepose-auto-m-crowdpose-448.pth", "M", 14), ("litepose-s-crowdpose-random.pth", "S", 14),
    ("litepose-l-coco-random.pth", "L", 17), ("litepose-xs-crowdpose-random.pth", "XS", 14)])
def test_variant_and_joints_detected_from_tensors(shared_dir, name, variant, joints):
    ckpt = load_checkpoint(shared_dir / "checkpoints" / name)
    assert (ckpt.arch_name, ckpt.num_joints) == (variant, joints)
    assert ckpt.arch == PRESETS[variant]


@pytest.mark.needs_shared
def test_detected_arch_equals_the_official_json(shared_dir):
    for variant in ("XS", "S", "M", "L"):
        name, arch = load_arch(str(shared_dir / "checkpoints" / "configs" / f"search-{variant}.json"))
        assert name == variant and arch == PRESETS[variant]
    for variant in ("S", "M", "L"):
        name, arch = load_arch(str(shared_dir / "checkpoints" / "configs" / f"prune-{variant}.json"))
        assert name == f"prune-{variant}" and arch == PRESETS[f"prune-{variant}"]


@pytest.mark.needs_shared
def test_crafted_checkpoint_is_refused_and_runs_nothing(shared_dir):
    marker = "/tmp/litepose_pwned_by_checkpoint"
    if os.path.exists(marker):
        os.unlink(marker)
    with pytest.raises(LitePoseError, match="refused.*posix.system"):
        read_torch_file(shared_dir / "checkpoints" / "crafted-executes-code.pth")
    assert not os.path.exists(marker)


class _Evil:
    def __reduce__(self):
        return (eval, ("open('/tmp/litepose_evil_marker', 'w')",))


@pytest.mark.parametrize("form", ["zip", "legacy"])
def test_our_own_crafted_pickles_are_refused(tmp_path, form):
    marker = "/tmp/litepose_evil_marker"
    if os.path.exists(marker):
        os.unlink(marker)
    payload = pickle.dumps({"first.0.0.weight": _Evil()}, protocol=2)
    path = tmp_path / f"evil-{form}.pth"
    if form == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", payload)
            zf.writestr("archive/version", "3\n")
    else:
        buf = io.BytesIO()
        for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(obj, buf, protocol=2)
        buf.write(payload)
        path.write_bytes(buf.getvalue())
    with pytest.raises(LitePoseError, match=r"refused.*builtin\w*\.eval"):
        read_torch_file(path)
    assert not os.path.exists(marker)


def _tensor_pickle(monkeypatch, size, stride, storage_numel) -> bytes:
    """A state-dict pickle as torch.save writes it (a `_rebuild_tensor_v2` call on a persistent FloatStorage),
    made without torch: stand-in `torch` modules whose names the pickle records."""
    import collections
    import sys
    import types

    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled here")

    class FloatStorage:
        pass

    _rebuild_tensor_v2.__module__, FloatStorage.__module__ = "torch._utils", "torch"
    _rebuild_tensor_v2.__qualname__, FloatStorage.__qualname__ = "_rebuild_tensor_v2", "FloatStorage"
    utils._rebuild_tensor_v2, torch.FloatStorage = _rebuild_tensor_v2, FloatStorage
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Storage:
        pass

    class Tensor:
        def __reduce__(self):
            return _rebuild_tensor_v2, (Storage(), 0, size, stride, False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", FloatStorage, "0", "cpu", storage_numel) if isinstance(obj, Storage) else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(collections.OrderedDict([("first.0.weight", Tensor())]))
    return buf.getvalue()


def test_memory_bombs_are_refused_in_one_line(monkeypatch, tmp_path):
    """A 4-byte storage viewed as 2^50 floats (stride 0), or a legacy file declaring a storage larger than
    itself: refused before anything is allocated, naming the file (a MemoryError traceback before)."""
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(bomb, "w") as zf:
        zf.writestr("archive/data.pkl", _tensor_pickle(monkeypatch, (2**20, 2**20, 2**10), (0, 0, 0), 1))
        zf.writestr("archive/data/0", b"\0" * 4)
        zf.writestr("archive/version", "3\n")
    with pytest.raises(LitePoseError, match=r"bomb\.pth: a tensor of shape \[1048576, 1048576, 1024\] reads its "
                                            r"1-element storage more than once"):
        read_torch_file(bomb)

    legacy = tmp_path / "legacy-bomb.pth"
    buf = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(obj, buf, protocol=2)
    buf.write(_tensor_pickle(monkeypatch, (4,), (1,), 2**40))
    legacy.write_bytes(buf.getvalue())
    with pytest.raises(LitePoseError, match=r"legacy-bomb\.pth: a storage of 1099511627776 elements cannot be in"):
        read_torch_file(legacy)

    fine = tmp_path / "fine.pth"          # the same writer, an honest tensor: read as written
    with zipfile.ZipFile(fine, "w") as zf:
        zf.writestr("archive/data.pkl", _tensor_pickle(monkeypatch, (2, 2), (2, 1), 4))
        zf.writestr("archive/data/0", np.arange(4, dtype="<f4").tobytes())
        zf.writestr("archive/version", "3\n")
    assert read_torch_file(fine)["first.0.weight"].tolist() == [[0.0, 1.0], [2.0, 3.0]]


@pytest.mark.needs_shared
def test_truncated_and_foreign_files_fail_clearly(shared_dir, tmp_path):
    data = (shared_dir / "checkpoints" / "litepose-xs-crowdpose-random.pth").read_bytes()
    for name, content in [("half.pth", data[: len(data) // 2]), ("legacy-half.pth",
                          (shared_dir / "checkpoints" / "litepose-xs-crowdpose-random.legacy.pth").read_bytes()[:500_000]),
                          ("notes.pth", b"hello, not a checkpoint\n"), ("empty.pth", b"")]:
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(LitePoseError) as info:
            load_checkpoint(p)
        assert str(p) in str(info.value) and "\n" not in str(info.value)


def test_missing_checkpoint_names_the_file_and_where_weights_come_from(tmp_path):
    with pytest.raises(LitePoseError, match=r"missing\.pth: checkpoint not found.*litepose"):
        load_checkpoint(tmp_path / "missing.pth")


def test_unwrap_prefers_state_dict_then_best_then_model():
    a, b = np.ones(2, np.float16), np.zeros(3, np.float64)
    assert unwrap_state_dict({"state_dict": {"module.x": a}, "best_state_dict": {"y": b}}, "f")["x"].dtype == np.float32
    assert list(unwrap_state_dict({"model": "pose_mobilenet", "best_state_dict": {"1.y": b}}, "f")) == ["y"]
    assert list(unwrap_state_dict({"model": {"z": a}}, "f")) == ["z"]
    assert list(unwrap_state_dict({"z": a, "bn.num_batches_tracked": np.ones((), np.int64)}, "f")) == ["z"]
    with pytest.raises(LitePoseError, match="holds no weights"):
        unwrap_state_dict({"epoch": 3, "model": "pose_mobilenet"}, "f")


@pytest.mark.needs_shared
def test_detect_arch_reports_a_custom_structure(shared_dir):
    sd = dict(load_checkpoint(shared_dir / "checkpoints" / "litepose-xs-crowdpose-random.pth").state_dict)
    for key in [k for k in sd if k.startswith("stage.3.9.")]:
        del sd[key]  # a 9-block last stage: no released variant
    name, arch, joints = detect_arch(sd, "custom.pth")
    assert name == "custom" and joints == 14
    assert arch["backbone_setting"][3]["num_blocks"] == 9 and match_preset(arch) is None


def test_input_size_parsing():
    assert parse_input_size("448x640") == (448, 640)
    assert parse_input_size("256") == (256, 256)
    assert parse_input_size("480x640") == (480, 640)      # multiples of 16 (the stride), not only of 64
    for bad in ("450x640", "448x", "abc", "0x64", "440x648"):
        with pytest.raises(LitePoseError, match="--input-size"):
            parse_input_size(bad)
