"""LitePose architectures as plain data, in the shape of the official arch JSON files.

An arch dict is `{"img_size", "input_channel", "deconv_setting": [3 ints], "backbone_setting":
[{"num_blocks", "stride", "channel", "block_setting": [[expansion, kernel], ...]} x 4]}` - exactly what
the official `mobile_configs/*.json` hold, so any such file works too.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from python_ref.errors import LitePoseError
from python_ref.preprocess import MAX_INPUT_SIDE

_BLOCKS_PER_STAGE = (6, 8, 10, 10)
_STAGE_STRIDES = (2, 2, 2, 1)
# The stem's stride 2 times the stages' strides: the deepest features are at 1/16, and the fusion head adds
# each upsampled map to the backbone's map of twice its size, so H and W need only be multiples of 16. The
# official resize policy rounds to 64 (python_ref.preprocess); a fixed-size model may be any multiple of 16,
# e.g. 480x640 for VGA camera frames.
INPUT_MULTIPLE = 2 * math.prod(_STAGE_STRIDES)


def _preset(img_size, c0, channels, deconv):
    return {
        "img_size": img_size,
        "input_channel": c0,
        "deconv_setting": list(deconv),
        "backbone_setting": [
            {"num_blocks": n, "stride": s, "channel": c, "block_setting": [[6, 7]] * n}
            for n, s, c in zip(_BLOCKS_PER_STAGE, _STAGE_STRIDES, channels)
        ],
    }


# Released variants (spec §2.1 / Appendix A): img_size, stem width, stage widths, deconv widths.
PRESETS: dict[str, dict] = {
    "XS": _preset(256, 16, (16, 32, 48, 80), (16, 24, 24)),
    "S": _preset(448, 16, (16, 32, 48, 120), (32, 24, 32)),
    "M": _preset(448, 16, (24, 48, 72, 120), (64, 40, 32)),
    "L": _preset(512, 24, (24, 64, 96, 160), (64, 40, 32)),
    "prune-S": _preset(512, 16, (16, 32, 48, 80), (32, 24, 16)),
    "prune-M": _preset(512, 24, (24, 48, 72, 120), (48, 40, 24)),
    "prune-L": _preset(512, 24, (32, 64, 96, 160), (64, 48, 32)),
}
PRESET_NAMES = tuple(PRESETS)


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """MobileNet channel rounding used by the official InvBottleneck for its hidden width."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def hidden_width(inp: int, expansion: float) -> int:
    return make_divisible(round(inp * expansion), 8)


def validate_arch(arch: dict, source: str) -> dict:
    """Check an arch dict's shape and values; return a normalised copy (ints, lists)."""
    def bad(what):
        raise LitePoseError(f"{source}: not a LitePose architecture: {what}")

    def integer(value, what, least=1, most=100_000):
        # JSON true is 1 to Python, 3.5 truncates to 3 under int(), and json reads Infinity and NaN: all
        # mistakes in an arch file
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or value != int(value) or not least <= value <= most):
            bad(f"{what} is {json.dumps(value)[:40]}, expected an integer from {least} to {most}")
        return int(value)

    def ratio(value, what):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1000:
            bad(f"{what} is {json.dumps(value)[:40]}, expected a positive number below 1000")
        return int(value) if value == int(value) else float(value)

    if not isinstance(arch, dict):
        bad("expected a JSON object")
    for key in ("input_channel", "deconv_setting", "backbone_setting"):
        if key not in arch:
            bad(f"missing key '{key}'")
    for key in ("deconv_setting", "backbone_setting"):
        if not isinstance(arch[key], list):
            bad(f"'{key}' must be a list")
    out = {
        "img_size": integer(arch.get("img_size", 256), "img_size", 64, MAX_INPUT_SIDE),
        "input_channel": integer(arch["input_channel"], "input_channel"),
        "deconv_setting": [integer(c, f"deconv_setting[{i}]") for i, c in enumerate(arch["deconv_setting"])],
        "backbone_setting": [],
    }
    for i, st in enumerate(arch["backbone_setting"]):
        if not isinstance(st, dict) or not all(k in st for k in ("num_blocks", "stride", "channel", "block_setting")):
            bad(f"stage {i} needs num_blocks, stride, channel and block_setting")
        num_blocks = integer(st["num_blocks"], f"stage {i} num_blocks", most=100)
        if not isinstance(st["block_setting"], list):
            bad(f"stage {i}: block_setting must be a list of [expansion, kernel] pairs")
        settings = st["block_setting"][:num_blocks]   # the official class reads the first num_blocks only
        if not all(isinstance(b, list) and len(b) == 2 for b in settings):
            bad(f"stage {i}: block_setting must be a list of [expansion, kernel] pairs")
        if len(settings) < num_blocks:
            bad(f"stage {i}: num_blocks {num_blocks} but {len(settings)} block settings")
        blocks = [[ratio(t, f"stage {i} block {b} expansion"), integer(k, f"stage {i} block {b} kernel", most=31)]
                  for b, (t, k) in enumerate(settings)]
        out["backbone_setting"].append({
            "num_blocks": num_blocks, "stride": integer(st["stride"], f"stage {i} stride"),
            "channel": integer(st["channel"], f"stage {i} channel"), "block_setting": blocks})
    if out["img_size"] % INPUT_MULTIPLE or out["img_size"] > MAX_INPUT_SIDE:
        bad(f"img_size {out['img_size']}: must be a positive multiple of {INPUT_MULTIPLE}, at most {MAX_INPUT_SIDE}")
    if len(out["deconv_setting"]) != 3:
        bad("deconv_setting must have 3 widths")
    if len(out["backbone_setting"]) != 4:
        bad("backbone_setting must have 4 stages")
    strides = [st["stride"] for st in out["backbone_setting"]]
    if strides != [2, 2, 2, 1]:
        bad(f"stage strides must be [2, 2, 2, 1] (the fusion head needs it), got {strides}")
    for st in out["backbone_setting"]:
        for _t, k in st["block_setting"]:
            if k % 2 != 1:
                bad(f"depthwise kernels must be odd, got {k}")
    return out


def load_arch(spec: str) -> tuple[str, dict]:
    """A preset name (XS, S, M, L, prune-S/M/L; case-insensitive) or a path to an arch JSON file."""
    for name in PRESETS:
        if spec.lower() == name.lower():
            return name, json.loads(json.dumps(PRESETS[name]))
    path = Path(spec)
    if path.suffix.lower() != ".json" and not path.exists():
        raise LitePoseError(f"--arch {spec}: unknown variant; use one of {', '.join(PRESETS)} or an arch JSON file")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LitePoseError(f"{spec}: architecture file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LitePoseError(f"{spec}: not a readable JSON architecture file ({exc})") from None
    arch = official_widths(validate_arch(data, spec))
    return match_preset(arch) or path.stem, arch


def official_widths(arch: dict) -> dict:
    """The widths the official class builds from an arch JSON: `LitePose.__init__` rounds the stem and every
    stage width with make_divisible(c, 8) (no-op for the released configs; 12 -> 16, 20 -> 24, 44 -> 48), so
    its checkpoints have those widths. Deconvolution widths are used as written."""
    out = json.loads(json.dumps(arch))
    out["input_channel"] = make_divisible(out["input_channel"], 8)
    for st in out["backbone_setting"]:
        st["channel"] = make_divisible(st["channel"], 8)
    return out


def _structure(arch: dict) -> str:
    a = dict(arch)
    a.pop("img_size", None)
    return json.dumps(a, sort_keys=True)


def match_preset(arch: dict) -> str | None:
    """The preset name whose layers equal `arch` (input size ignored), if any."""
    key = _structure(validate_arch(arch, "arch"))
    for name, preset in PRESETS.items():
        if _structure(preset) == key:
            return name
    return None


def arch_summary(arch: dict) -> str:
    st = arch["backbone_setting"]
    return (f"stem {arch['input_channel']}, stages {[s['channel'] for s in st]} x "
            f"{[s['num_blocks'] for s in st]} blocks, deconv {arch['deconv_setting']}")


def parse_input_size(text: str) -> tuple[int, int]:
    """'448x640' (H×W) or '448' (square) -> (448, 640); both multiples of INPUT_MULTIPLE."""
    t = text.lower().replace("×", "x").strip()
    parts = t.split("x")
    try:
        hw = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else None
    except ValueError:
        hw = None
    if hw is None:
        raise LitePoseError(f"--input-size {text}: expected HxW, e.g. 448x448 or 448x640 (height first)")
    if min(hw) <= 0 or hw[0] % INPUT_MULTIPLE or hw[1] % INPUT_MULTIPLE:
        raise LitePoseError(f"--input-size {text}: height and width must be positive multiples of {INPUT_MULTIPLE} "
                            f"(the network's stride), e.g. {_nearest_sizes(hw)}")
    if max(hw) > MAX_INPUT_SIDE:
        raise LitePoseError(f"--input-size {text}: at most {MAX_INPUT_SIDE} pixels on a side")
    return hw


def _nearest_sizes(hw: tuple[int, int]) -> str:
    """The valid sizes around an invalid one (rounded down, and to the nearest), for the error message."""
    def snapped(rounding) -> str:
        return "x".join(str(max(INPUT_MULTIPLE, int(rounding(v / INPUT_MULTIPLE)) * INPUT_MULTIPLE)) for v in hw)
    down, nearest = snapped(math.floor), snapped(round)
    return nearest if nearest == down else f"{down} or {nearest}"
