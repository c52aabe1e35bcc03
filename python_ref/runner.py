"""Run a deployed LitePose `.tflite` file through its signature names (LiteRT, no TensorFlow).

The model I/O contract (docs/design.md): input `image` [1, H, W, 3] RGB 0..255 (float32, or uint8 with
scale 1 / zero point 0, or int8 with scale 1 / zero point -128), outputs `heatmaps_s4`, `tags_s4`,
`heatmaps_s2` (NHWC, each its own tensor so each has its own quantisation). Outputs are looked up by
name, never by position, and every integer output is dequantised with its own scale and zero point.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np

from .errors import LitePoseError, first_line

INPUT_NAME = "image"
OUTPUT_NAMES = ("heatmaps_s4", "tags_s4", "heatmaps_s2")


def runtime_name() -> str:
    """Which LiteRT Python package runs the models here: 'ai-edge-litert X' or 'tflite-runtime X'."""
    from importlib import metadata

    for package in ("ai-edge-litert", "tflite-runtime"):
        try:
            _interpreter_class(package)
            return f"{package} {metadata.version(package)}"
        except (LitePoseError, metadata.PackageNotFoundError):
            continue
    return "no LiteRT runtime"


def _interpreter_class(package: str | None = None):
    """ai-edge-litert's Interpreter, or tflite_runtime's on systems that only have that (armv7l: there is
    no ai-edge-litert wheel for it; much slower, see the README)."""
    if package in (None, "ai-edge-litert"):
        try:
            from ai_edge_litert.interpreter import Interpreter
            return Interpreter
        except ImportError:
            pass
    if package in (None, "tflite-runtime"):
        _check_tflite_runtime_numpy()
        try:
            from tflite_runtime.interpreter import Interpreter  # older installs
            return Interpreter
        except ImportError:
            pass
    if sys.platform == "win32":
        raise LitePoseError("running .tflite models needs the LiteRT runtime, which has no Windows wheel: run "
                            "litepose in WSL (Windows Subsystem for Linux), where pip install ai-edge-litert works")
    raise LitePoseError("running .tflite models needs the LiteRT runtime: pip install ai-edge-litert "
                        "(or tflite-runtime where ai-edge-litert has no wheel)")



LAST_TFLITE_RUNTIME_FOR_NUMPY_1 = (2, 14)   # the last tflite-runtime release; its wheels predate numpy 2


def _check_tflite_runtime_numpy() -> None:
    """tflite-runtime <= 2.14 was compiled against numpy 1: under numpy 2 its import prints numpy's long
    warning and traceback, then fails. Say it in one line before importing anything."""
    from importlib import metadata

    try:
        version = metadata.version("tflite-runtime")
    except metadata.PackageNotFoundError:
        return
    release = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    numpy_major = int(re.match(r"\d+", np.__version__).group())
    if numpy_major >= 2 and release <= LAST_TFLITE_RUNTIME_FOR_NUMPY_1:
        raise LitePoseError(f"tflite-runtime {version} is built for numpy 1, and numpy {np.__version__} is installed: "
                            "pip install 'numpy<2' (or pip install ai-edge-litert, where it has a wheel)")

def _looks_like_torch_checkpoint(content: bytes) -> bool:
    """A torch.save file: a zip holding `data.pkl`, or a legacy pickle stream (protocol 2+)."""
    if content[:4] == b"PK\x03\x04":
        import io
        import zipfile

        try:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in zipfile.ZipFile(io.BytesIO(content)).namelist())
        except zipfile.BadZipFile:
            return False
    return content[:1] == b"\x80" and content[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")


def _quant_params(detail: dict) -> tuple[float, int]:
    """(scale, zero_point) of a tensor; per-axis quantisation is not allowed on model I/O."""
    qp = detail.get("quantization_parameters") or {}
    scales = np.asarray(qp.get("scales", []), np.float32)
    zps = np.asarray(qp.get("zero_points", []), np.int64)
    if scales.size > 1:
        raise ValueError(f"tensor {detail.get('name')} is quantised per axis; model I/O must be per tensor")
    if scales.size == 1:
        return float(scales[0]), int(zps[0])
    scale, zp = detail.get("quantization", (0.0, 0))
    return float(scale), int(zp)


def quantize_pixels(values, scale: float, zero_point: int, dtype) -> np.ndarray:
    """Pixel values (>= 0) into an integer input: round(v / scale) + zero_point with halves rounded up (in
    float32), clipped to the type. TFLite's QUANTIZE rounds half away from zero, and posecore's InputWriter
    writes the same bytes."""
    info = np.iinfo(dtype)
    q = np.floor(np.asarray(values, np.float32) / np.float32(scale) + np.float32(0.5)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


NO_XNNPACK_NOTE = ("LiteRT's XNNPACK delegate did not apply here, so the builtin kernels run it: several times "
                   "slower, and its int8 results differ from XNNPACK's by up to tens of steps (XNNPACK reads the CPU "
                   "from /proc and /sys: in a container or chroot, mount them)")


def _xnnpack_applied(interpreter) -> bool | None:
    """Whether LiteRT's default XNNPACK delegate took over part of the graph (a DELEGATE node after
    allocation). It is silently left out when it cannot read the CPU (a chroot without /sys), and the
    builtin kernels then give other int8 results (measured on aarch64 under qemu). None when unknown."""
    try:
        return any(op.get("op_name") == "DELEGATE" for op in interpreter._get_ops_details())
    except Exception:   # a private API: another runtime version may lack it
        return None


class TFLiteRunner:
    """One LiteRT interpreter for a LitePose model; call it with a uint8 RGB image of the model's input size.

    `runner(image)` returns `{"heatmaps_s4": (H/4, W/4, J), "tags_s4": ..., "heatmaps_s2": (H/2, W/2, J)}`,
    float32, batch dimension removed.
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        self.path = Path(path)
        if num_threads is not None and int(num_threads) < 1:
            raise LitePoseError(f"{path}: --threads must be at least 1, got {num_threads}")
        if self.path.is_dir():
            raise LitePoseError(f"{path}: is a folder, not a .tflite model file")
        if not self.path.is_file():
            raise LitePoseError(f"{path}: no such model file")
        Interpreter = _interpreter_class()
        try:
            content = self.path.read_bytes()
        except OSError as exc:
            raise LitePoseError(f"{path}: cannot read the model ({exc.strerror})") from None
        # A .tflite file is a FlatBuffer with the identifier "TFL3" at bytes 4..8; checking it first turns
        # an HTML page or a truncated download into a clear message instead of a native error.
        if len(content) < 8 or content[4:8] != b"TFL3":
            if _looks_like_torch_checkpoint(content):
                raise LitePoseError(f"{path}: a PyTorch checkpoint, not a .tflite model: convert it first (litepose "
                                    "convert --checkpoint ...), or give it as --checkpoint to predict or as "
                                    "--reference to validate, which need TensorFlow (pip install '.[convert]')")
            raise LitePoseError(f"{path}: not a TFLite model (no TFL3 FlatBuffer identifier; "
                                f"an HTML page or a truncated download?)")
        try:
            self._interpreter = Interpreter(model_content=content,
                                            num_threads=None if num_threads is None else int(num_threads))
            # allocating now checks the graph (a damaged file that still parses names bad tensor indices
            # here, not at the first image); it must come before any tensor is handed out
            self._interpreter.allocate_tensors()
            signatures = self._interpreter.get_signature_list()
        except (ValueError, RuntimeError, IndexError) as exc:
            raise LitePoseError(f"{path}: LiteRT cannot load this model ({first_line(exc)})") from None
        self.xnnpack = _xnnpack_applied(self._interpreter)
        self._signature_key = self._pick_signature(signatures)
        try:
            self._runner = self._interpreter.get_signature_runner(self._signature_key)
            inputs = self._runner.get_input_details()
            outputs = self._runner.get_output_details()
        except (ValueError, RuntimeError) as exc:
            raise LitePoseError(f"{path}: LiteRT cannot prepare the model ({first_line(exc)})") from None
        self._input = inputs[INPUT_NAME]
        self._outputs = {name: outputs[name] for name in OUTPUT_NAMES}
        self._check_shapes()
        try:
            self._input_scale, self._input_zero_point = _quant_params(self._input)
            self._output_quant = {n: _quant_params(d) for n, d in self._outputs.items()}
        except ValueError as exc:
            raise LitePoseError(f"{path}: {exc}") from None

    def delegate_warnings(self) -> list[str]:
        """What to tell the user about how this model runs here: the XNNPACK delegate left out."""
        return [f"{self.path}: {NO_XNNPACK_NOTE}"] if self.xnnpack is False else []

    # ---- set-up checks --------------------------------------------------------------------------
    def _pick_signature(self, signatures: dict) -> str:
        wanted = set(OUTPUT_NAMES)
        for key, sig in signatures.items():
            if INPUT_NAME in sig.get("inputs", []) and wanted <= set(sig.get("outputs", [])):
                return key
        found = "; ".join(f"{k}: inputs {list(s.get('inputs', []))} outputs {list(s.get('outputs', []))}"
                          for k, s in signatures.items()) or "no signatures at all"
        raise LitePoseError(f"{self.path}: not a LitePose Edge model: it needs a signature with input "
                            f"'{INPUT_NAME}' and outputs {', '.join(OUTPUT_NAMES)} ({found})")

    def _check_shapes(self) -> None:
        shape = [int(v) for v in self._input["shape"]]
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or min(shape) <= 0:
            raise LitePoseError(f"{self.path}: input 'image' has shape {shape}, expected [1, H, W, 3]")
        dtype = np.dtype(self._input["dtype"])
        if dtype not in (np.float32, np.uint8, np.int8):
            raise LitePoseError(f"{self.path}: input 'image' has type {dtype}, expected float32, uint8 or int8")
        _, h, w, _ = shape
        expected = {"heatmaps_s4": (h // 4, w // 4), "tags_s4": (h // 4, w // 4), "heatmaps_s2": (h // 2, w // 2)}
        joints = set()
        for name, detail in self._outputs.items():
            oshape = [int(v) for v in detail["shape"]]
            if len(oshape) != 4 or oshape[0] != 1 or tuple(oshape[1:3]) != expected[name]:
                raise LitePoseError(f"{self.path}: output '{name}' has shape {oshape}, expected "
                                    f"[1, {expected[name][0]}, {expected[name][1]}, J] for input {h}x{w}")
            joints.add(oshape[3])
        if len(joints) != 1:
            raise LitePoseError(f"{self.path}: the outputs disagree on the number of joints ({sorted(joints)})")

    # ---- properties ---------------------------------------------------------------------------
    @property
    def input_hw(self) -> tuple[int, int]:
        """Model input (H, W)."""
        return int(self._input["shape"][1]), int(self._input["shape"][2])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    @property
    def input_quantization(self) -> tuple[float, int]:
        """(scale, zero_point) of the input; (0.0, 0) for a float input."""
        return self._input_scale, self._input_zero_point

    @property
    def output_quantization(self) -> dict[str, tuple[float, int]]:
        return dict(self._output_quant)

    @property
    def num_joints(self) -> int:
        return int(self._outputs["heatmaps_s4"]["shape"][3])

    # ---- inference ----------------------------------------------------------------------------
    def prepare_input(self, image_uint8_hwc: np.ndarray) -> np.ndarray:
        """uint8 RGB (H, W, 3) -> the batch the model wants, in its input type.

        float models: float32 0..255. Integer models: `quantize_pixels`; with the contract's parameters that
        is the value unchanged (uint8, scale 1, zp 0) or value - 128 (int8, scale 1, zp -128), so no
        information is lost.
        """
        image = np.asarray(image_uint8_hwc)
        if image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 image, got {image.dtype}")
        if image.shape != self.input_hw + (3,):
            raise ValueError(f"expected an image of shape {self.input_hw + (3,)}, got {image.shape}")
        dtype = self.input_dtype
        if dtype == np.float32:
            return image.astype(np.float32)[None]
        scale, zp = self._input_scale, self._input_zero_point
        if scale == 1.0 and ((dtype == np.uint8 and zp == 0) or (dtype == np.int8 and zp == -128)):
            # the contract: what quantize_pixels gives, in integers (no float pass over every frame)
            return (image.astype(np.int16) + zp).astype(dtype)[None]
        if scale <= 0:
            raise LitePoseError(f"{self.path}: integer input 'image' has no quantisation scale")
        return quantize_pixels(image, scale, zp, dtype)[None]

    def run_raw(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs exactly as the model produced them (integer for quantised outputs), batch dim removed."""
        try:
            raw = self._runner(**{INPUT_NAME: batch})
        except (ValueError, RuntimeError, IndexError) as exc:
            raise LitePoseError(f"{self.path}: LiteRT failed to run the model ({first_line(exc)})") from None
        # the signature runner hands back fresh copies of the output tensors: no second copy (3.7 ms of
        # copying and page faults per frame at 448x448 with the float32 outputs)
        return {name: np.asarray(raw[name])[0] for name in OUTPUT_NAMES}

    def dequantize(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """float32 outputs from `run_raw`'s tensors, each with its own scale and zero point (float32 outputs
        are returned as they are, not copied)."""
        out = {}
        for name in OUTPUT_NAMES:
            value = raw[name]
            if value.dtype == np.float32:
                out[name] = value
            elif np.issubdtype(value.dtype, np.integer):
                scale, zp = self._output_quant[name]
                # real = scale * (q - zp), in float32 (docs/fast-decoder.md, shared with the Kotlin app)
                out[name] = np.float32(scale) * (value.astype(np.int32) - zp).astype(np.float32)
            else:  # float16 outputs
                out[name] = value.astype(np.float32)
        return out

    def run_batch(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run one already-prepared batch [1, H, W, 3]; returns float32 outputs without the batch dim."""
        return self.dequantize(self.run_raw(batch))

    def __call__(self, image_uint8_hwc: np.ndarray) -> dict[str, np.ndarray]:
        return self.run_batch(self.prepare_input(image_uint8_hwc))

    def __repr__(self) -> str:
        h, w = self.input_hw
        return f"TFLiteRunner({str(self.path)!r}, input {h}x{w} {self.input_dtype}, J={self.num_joints})"
