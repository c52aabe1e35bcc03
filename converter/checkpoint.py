"""Official LitePose checkpoints -> Keras: unwrap, normalise, detect the architecture, load strictly.

The one mapping from checkpoint names to Keras layers lives here (`keras_layer_for`): a module
prefix `a.b.c` is the Keras layer `a_b_c`, except head 0's final 1x1 conv, which Keras holds as two
layers (heatmaps, tags). Each layer type has one port helper with its weight permutation.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from python_ref.errors import LitePoseError

from .archs import PRESETS, arch_summary, match_preset, validate_arch
from .torch_reader import read_torch_file

OFFICIAL_WEIGHTS_NOTE = (
    "official LitePose weights were published on Google Drive from the mit-han-lab/litepose README "
    "(those links are reported dead, issues #41/#42); any checkpoint in the official format works")

_SPLIT_HEADS = ("final_refined.0.conv.3", "final_raw.0.conv.3")


@dataclass
class Checkpoint:
    path: str
    sha256: str
    state_dict: dict[str, np.ndarray]
    arch_name: str
    arch: dict
    num_joints: int
    notes: list[str] = field(default_factory=list)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_tensor_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())


def unwrap_state_dict(obj, source: str) -> dict[str, np.ndarray]:
    """Bare state_dict, or a training dict (`state_dict`, else `best_state_dict`, else `model` with
    tensors); strip `module.` / `1.` prefixes, drop `num_batches_tracked`, cast to float32."""
    sd = None
    if _is_tensor_dict(obj):
        sd = obj
    elif isinstance(obj, dict):
        for key in ("state_dict", "best_state_dict", "model"):
            if _is_tensor_dict(obj.get(key)):
                sd = obj[key]
                break
    if sd is None:
        raise LitePoseError(f"{source}: holds no weights (expected a state_dict of tensors, or a training "
                            "checkpoint with 'state_dict' / 'best_state_dict' / 'model')")
    out = {}
    for key, value in sd.items():
        for prefix in ("module.", "1."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.endswith("num_batches_tracked"):
            continue
        if key in out:
            raise LitePoseError(f"{source}: key {key} appears twice after removing prefixes")
        out[key] = value.astype(np.float32) if value.dtype != np.float32 else value
    return out


def detect_arch(sd: dict[str, np.ndarray], source: str) -> tuple[str, dict, int]:
    """Recover (variant name, arch dict, joints) from tensor shapes. Stage strides are not stored in
    weights; every LitePose uses [2, 2, 2, 1]."""
    try:
        stages = []
        for s in range(4):
            blocks = []
            b = 0
            while f"stage.{s}.{b}.inv.0.weight" in sd:
                hidden, cin = sd[f"stage.{s}.{b}.inv.0.weight"].shape[:2]
                kernel = sd[f"stage.{s}.{b}.depth_conv.0.weight"].shape[-1]
                t = hidden / cin
                blocks.append([int(t) if t == int(t) else t, int(kernel)])
                cout = sd[f"stage.{s}.{b}.point_conv.0.weight"].shape[0]
                b += 1
            if not blocks:
                raise KeyError(f"stage.{s}.0.inv.0.weight")
            stages.append({"num_blocks": len(blocks), "stride": (2, 2, 2, 1)[s], "channel": int(cout),
                           "block_setting": blocks})
        arch = {
            "input_channel": int(sd["first.2.weight"].shape[0]),
            "deconv_setting": [int(sd[f"deconv_refined.{i}.weight"].shape[1]) for i in range(3)],
            "backbone_setting": stages,
        }
        joints = int(sd["final_refined.1.conv.3.weight"].shape[0])
    except (KeyError, IndexError, ValueError) as exc:
        raise LitePoseError(f"{source}: not a LitePose checkpoint (no tensor {exc} found)") from None
    name = match_preset({**arch, "img_size": 256})  # img_size is not part of the match
    arch["img_size"] = PRESETS[name]["img_size"] if name else 256
    return name or "custom", validate_arch(arch, source), joints


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.exists():
        raise LitePoseError(f"{path}: checkpoint not found; expected a LitePose .pth/.pth.tar file here "
                            f"({OFFICIAL_WEIGHTS_NOTE})")
    if path.is_dir():
        raise LitePoseError(f"{path}: is a folder, expected a checkpoint file")
    sd = unwrap_state_dict(read_torch_file(path), str(path))
    name, arch, joints = detect_arch(sd, str(path))
    return Checkpoint(str(path), sha256_file(path), sd, name, arch, joints)


# ---- the mapping table -------------------------------------------------------------------------

def keras_layer_for(torch_prefix: str) -> str:
    return torch_prefix.replace(".", "_")


def _port_conv(w):            # torch (out, in, kh, kw) -> Keras (kh, kw, in, out)
    return w.transpose(2, 3, 1, 0)


def _port_depthwise(w):       # torch (C, 1, kh, kw) -> Keras (kh, kw, C, 1)
    return w.transpose(2, 3, 0, 1)


def _port_deconv(w):          # torch (in, out, kh, kw) -> Keras (kh, kw, out, in); no spatial flip
    return w.transpose(2, 3, 1, 0)


_BN_PARAMS = ("weight", "bias", "running_mean", "running_var")


def expected_torch_shapes(model) -> dict[str, tuple]:
    """Checkpoint keys and shapes that `model` needs, derived from its Keras layers."""
    import keras
    shapes: dict[str, tuple] = {}
    split = {keras_layer_for(p) + "_heatmaps": p for p in _SPLIT_HEADS}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            prefix = _torch_prefix(layer.name)
            for p in _BN_PARAMS:
                shapes[f"{prefix}.{p}"] = (layer.gamma.shape[0],)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw, c, _ = layer.kernel.shape
            shapes[f"{_torch_prefix(layer.name)}.weight"] = (c, 1, kh, kw)
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            kh, kw, out, inp = layer.kernel.shape
            shapes[f"{_torch_prefix(layer.name)}.weight"] = (inp, out, kh, kw)
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, inp, out = layer.kernel.shape
            if layer.name in split:
                shapes[f"{split[layer.name]}.weight"] = (2 * out, inp, kh, kw)
            elif not layer.name.endswith("_tags"):
                shapes[f"{_torch_prefix(layer.name)}.weight"] = (out, inp, kh, kw)
    return shapes


def _torch_prefix(layer_name: str) -> str:
    """Inverse of keras_layer_for for the names network.py creates."""
    parts = layer_name.split("_")
    out, i = [], 0
    joined = ("depth_conv", "point_conv", "deconv_refined", "deconv_raw", "deconv_bnrelu",
              "final_refined", "final_raw")
    while i < len(parts):
        if i + 1 < len(parts) and f"{parts[i]}_{parts[i + 1]}" in joined:
            out.append(f"{parts[i]}_{parts[i + 1]}")
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return ".".join(out)


def load_weights_into(model, sd: dict[str, np.ndarray], source: str, looks_like: str = "") -> None:
    """Strict: every tensor used, every shape checked; errors name the keys and shapes that differ."""
    expected = expected_torch_shapes(model)
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = sorted(k for k in set(expected) & set(sd) if tuple(sd[k].shape) != expected[k])
    if missing or unexpected or wrong:
        lines = []
        if wrong:
            lines.append("shape mismatch: " + "; ".join(
                f"{k} {tuple(sd[k].shape)} vs expected {expected[k]}" for k in wrong[:6])
                + (f" (+{len(wrong) - 6} more)" if len(wrong) > 6 else ""))
        if missing:
            lines.append(f"missing {len(missing)} keys: " + ", ".join(missing[:4])
                         + (" ..." if len(missing) > 4 else ""))
        if unexpected:
            lines.append(f"unexpected {len(unexpected)} keys: " + ", ".join(unexpected[:4])
                         + (" ..." if len(unexpected) > 4 else ""))
        hint = f"; the checkpoint looks like {looks_like}" if looks_like else ""
        raise LitePoseError(f"{source}: does not fit the requested architecture: " + " | ".join(lines) + hint)

    import keras
    for layer in model.layers:
        name = layer.name
        if isinstance(layer, keras.layers.BatchNormalization):
            p = _torch_prefix(name)
            layer.set_weights([sd[f"{p}.{q}"] for q in _BN_PARAMS])
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            layer.set_weights([_port_depthwise(sd[f"{_torch_prefix(name)}.weight"])])
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            layer.set_weights([_port_deconv(sd[f"{_torch_prefix(name)}.weight"])])
        elif isinstance(layer, keras.layers.Conv2D):
            for head in _SPLIT_HEADS:
                base = keras_layer_for(head)
                if name in (base + "_heatmaps", base + "_tags"):
                    w = sd[f"{head}.weight"]
                    j = w.shape[0] // 2
                    w = w[:j] if name.endswith("_heatmaps") else w[j:]
                    break
            else:
                w = sd[f"{_torch_prefix(name)}.weight"]
            layer.set_weights([_port_conv(w)])


def describe(ckpt: Checkpoint) -> str:
    return f"{ckpt.arch_name} ({arch_summary(ckpt.arch)}), {ckpt.num_joints} joints"


def build_keras_from_checkpoint(path, arch: str | None = None, joints: int | None = None,
                                input_hw: tuple[int, int] | None = None):
    """Load a checkpoint (a path, or a `Checkpoint` already read) and build the matching float Keras model.
    Returns (model, info dict)."""
    from .archs import load_arch

    ckpt = path if isinstance(path, Checkpoint) else load_checkpoint(path)
    path = ckpt.path if isinstance(path, Checkpoint) else path
    from .network import build_litepose  # TensorFlow loads only once the file is known to be good
    if arch is not None:
        arch_name, arch_dict = load_arch(arch)
    else:
        arch_name, arch_dict = ckpt.arch_name, ckpt.arch
    if joints is not None and joints != ckpt.num_joints:
        raise LitePoseError(f"{path}: --joints {joints} but the checkpoint's heads have {ckpt.num_joints} joints")
    num_joints = joints or ckpt.num_joints
    warnings = []
    if arch is None and arch_name == "custom" and input_hw is None:
        warnings.append(f"{path}: not a released LitePose variant (architecture read from the tensor shapes); "
                        f"the input size it was trained for is not stored, so {arch_dict['img_size']} is assumed: "
                        "give --arch FILE.json (with its img_size) or --input-size HxW")
    if input_hw is None:
        input_hw = (arch_dict["img_size"], arch_dict["img_size"])
    model = build_litepose(arch_dict, num_joints, input_hw)
    load_weights_into(model, ckpt.state_dict, str(path), looks_like=describe(ckpt))
    info = {"arch_name": arch_name, "arch": arch_dict, "num_joints": num_joints, "input_hw": list(input_hw),
            "checkpoint": str(path), "checkpoint_sha256": ckpt.sha256, "warnings": warnings}
    return model, info
