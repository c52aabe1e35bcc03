"""Image loading and the two input geometries, each with its exact inverse.

* Official mode (`official_resize`): the LitePose/HigherHRNet `valid.py` preprocessing - short side to the
  input size, long side rounded up to a multiple of 64, image centred on black through `cv2.warpAffine`.
  Its `to_image` is the inverse affine of the official `get_final_preds`, computed the same way
  (float32 anchor points, `cv2.getAffineTransform`), so decoded poses map back bit-for-bit.
* Deployed mode (`letterbox`): a fixed model input size, aspect kept, centred with integer offsets, as
  specified in docs/design.md ("Deployed-mode letterbox") and implemented again in Kotlin.

Points are (x, y); images are indexed [y, x]. Arrays of points have x, y in their first two columns;
any further columns (scores, tags) pass through unchanged.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import LitePoseError
from .io_utils import read_user_file

# ImageNet statistics (RGB) of the official ToTensor + Normalize. Deployed models carry them in-graph.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def load_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3), exactly as the official code does.

    Same decoding as `cv2.imread(path, IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION)` (EXIF rotation is
    ignored, as in valid.py, and as the datasets' annotations assume): grayscale is replicated to 3 channels,
    alpha is dropped, 16-bit samples are reduced to 8 bits (value >> 8). The bytes are read by Python so that
    a missing, unreadable or non-image file gives a one-line LitePoseError naming it (and so non-ASCII paths
    work everywhere).
    """
    return load_image(path)[0]


def load_image(path: str | os.PathLike, upright: bool = False) -> tuple[np.ndarray, int]:
    """(uint8 RGB image, its EXIF orientation 1-8, 1 when absent). `upright=False` keeps the stored pixels
    (the official decoding, `load_image_rgb`); `upright=True` applies the orientation first, as a photo viewer
    shows the picture (phone cameras store portrait shots sideways with orientation 6 or 8)."""
    data = read_user_file(path, "image")
    if not data:
        raise LitePoseError(f"{path}: the file is empty, not an image")
    flags = cv2.IMREAD_COLOR if upright else _IMREAD_FLAGS
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise LitePoseError(f"{path}: OpenCV cannot decode this image ({exc.err})") from None
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.size == 0:
        raise LitePoseError(f"{path}: not an image OpenCV can read (corrupt, truncated or unsupported format)")
    if bgr.dtype != np.uint8:  # IMREAD_COLOR already gives uint8; keep the guarantee explicit
        raise LitePoseError(f"{path}: decoded to {bgr.dtype}, expected 8-bit samples")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), exif_orientation(data)


EXIF_ORIENTATIONS = {2: "mirrored", 3: "upside down", 4: "upside down and mirrored",
                     5: "on its side (mirrored)", 6: "on its side (turn 90° clockwise to view)",
                     7: "on its side (mirrored)", 8: "on its side (turn 90° anticlockwise to view)"}


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation of a JPEG (APP1), PNG (eXIf chunk) or WebP (EXIF chunk) file: the formats whose
    orientation OpenCV applies when asked (`load_image(upright=True)`); 1 when absent or unreadable."""
    if data[:2] == b"\xff\xd8":
        return jpeg_exif_orientation(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        pos = 8
        while pos + 8 <= len(data):
            size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
            if kind == b"eXIf":
                return _tiff_orientation(data[pos + 8:pos + 8 + size])
            if kind in (b"IDAT", b"IEND"):      # eXIf must come before the image data
                return 1
            pos += 12 + size
        return 1
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        pos = 12
        while pos + 8 <= len(data):
            kind, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
            if kind == b"EXIF":
                payload = data[pos + 8:pos + 8 + size]
                return _tiff_orientation(payload[6:] if payload[:6] == b"Exif\0\0" else payload)
            pos += 8 + size + (size & 1)      # chunks are padded to an even size
    return 1


def jpeg_exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag (0x0112) of a JPEG's APP1 segment, 1 when absent or unreadable."""
    if data[:2] != b"\xff\xd8":
        return 1
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata after this
            return 1
        size = int.from_bytes(data[pos + 2:pos + 4], "big")
        segment = data[pos + 4:pos + 2 + size]
        if marker == 0xE1 and segment[:6] == b"Exif\0\0":
            return _tiff_orientation(segment[6:])
        pos += 2 + size
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    ifd = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[ifd:ifd + 2], order) if ifd + 2 <= len(tiff) else 0
    for i in range(count):
        entry = tiff[ifd + 2 + 12 * i: ifd + 14 + 12 * i]
        if len(entry) == 12 and int.from_bytes(entry[:2], order) == 0x0112:
            value = int.from_bytes(entry[8:10], order)
            return value if 1 <= value <= 8 else 1
    return 1


def normalize_imagenet(image_rgb: np.ndarray) -> np.ndarray:
    """uint8 HWC RGB -> float32 NCHW (1, 3, H, W) as torchvision ToTensor + Normalize (the official network input)."""
    x = image_rgb.astype(np.float32) / np.float32(255.0)
    mean = np.asarray(IMAGENET_MEAN, np.float32)
    std = np.asarray(IMAGENET_STD, np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


# --------------------------------------------------------------------------------------------------
# Official mode
# --------------------------------------------------------------------------------------------------

def _ceil64(v: float) -> int:
    return int((v + 63) // 64 * 64)


MAX_INPUT_SIDE = 4096  # network inputs beyond this need tens of GB; refuse them with a message instead


class InputTooLarge(ValueError):
    """An image whose official-mode network input would exceed MAX_INPUT_SIDE (an extreme aspect ratio)."""


def official_input_size(image_hw: tuple[int, int], input_size: int) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """The official `get_multi_scale_size(image, input_size, 1.0, 1.0)`.

    Returns `((w_in, h_in), center, scale)`: the network input size (WIDTH first, as OpenCV wants it),
    `center = (int(w/2+0.5), int(h/2+0.5))` (int array) and `scale` (float64, units of 200 px).
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"empty image {w}x{h}")
    center = np.array([int(w / 2.0 + 0.5), int(h / 2.0 + 0.5)])
    min_input_size = _ceil64(input_size)  # = input_size for 256 / 448 / 512
    if w < h:
        w_in = int(min_input_size)
        h_in = int(_ceil64(min_input_size / w * h))
        scale = np.array([w / 200.0, h_in / w_in * w / 200.0])
    else:
        h_in = int(min_input_size)
        w_in = int(_ceil64(min_input_size / h * w))
        scale = np.array([w_in / h_in * h / 200.0, h / 200.0])
    if max(w_in, h_in) > MAX_INPUT_SIDE:
        raise InputTooLarge(f"a {h}x{w} (HxW) image needs a {h_in}x{w_in} network input in the official mode (more than "
                            f"{MAX_INPUT_SIDE} pixels on a side); crop it, or use a .tflite model (letterboxed)")
    return (w_in, h_in), center, scale


def _official_affine(center: np.ndarray, scale: np.ndarray, output_wh: tuple[int, int], inverse: bool) -> np.ndarray:
    """The official `get_affine_transform(center, scale, rot=0, output_size, inv)` (2x3 float64).

    Three anchor points per side in float32 (centre, a point half a source width above it, and the point
    90 degrees from those), solved with cv2.getAffineTransform; only scale[0] sets the zoom.
    """
    src_w = float(scale[0]) * 200.0
    dst_w, dst_h = output_wh
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = np.asarray(center, np.float64) + np.array([0.0, src_w * -0.5])
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + np.array([0.0, dst_w * -0.5], np.float32)
    for pts in (src, dst):  # third point: rotate (p0 - p1) by 90 degrees around p1
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]], np.float32)
    if inverse:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def _apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    pts = np.array(points, copy=True)
    if pts.ndim == 0 or pts.shape[-1] < 2:
        raise ValueError(f"points need x, y in their last axis, got shape {pts.shape}")
    x = pts[..., 0].astype(np.float64)
    y = pts[..., 1].astype(np.float64)
    new_x = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]
    new_y = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]
    if not np.issubdtype(pts.dtype, np.floating):
        pts = pts.astype(np.float64)
    pts[..., 0] = new_x
    pts[..., 1] = new_y
    return pts


@dataclass(frozen=True)
class OfficialTransform:
    """The official affine between an image (w x h) and the network input (w_in x h_in).

    `to_image` is the inverse used by `get_final_preds` (with PROJECT2IMAGE the heatmap size equals the
    input size), applied in float64 and stored back in the points' dtype, as the official code does.
    """

    image_hw: tuple[int, int]
    input_hw: tuple[int, int]
    center: np.ndarray
    scale: np.ndarray

    @property
    def matrix(self) -> np.ndarray:
        """Forward 2x3 affine image -> input (what warpAffine used)."""
        return _official_affine(self.center, self.scale, (self.input_hw[1], self.input_hw[0]), inverse=False)

    @property
    def inverse_matrix(self) -> np.ndarray:
        return _official_affine(self.center, self.scale, (self.input_hw[1], self.input_hw[0]), inverse=True)

    def forward(self, points: np.ndarray) -> np.ndarray:
        """Image pixels -> input pixels (x, y in the first two columns)."""
        return _apply_affine(points, self.matrix)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Input pixels -> original image pixels, exactly as the official `transform_preds`."""
        return _apply_affine(points, self.inverse_matrix)


def official_resize(image_rgb: np.ndarray, input_size: int) -> tuple[np.ndarray, OfficialTransform]:
    """Official `resize_align_multi_scale(image, input_size, 1, 1)`: uint8 warped input + its transform."""
    h, w = image_rgb.shape[:2]
    (w_in, h_in), center, scale = official_input_size((h, w), input_size)
    transform = OfficialTransform((h, w), (h_in, w_in), center, scale)
    warped = cv2.warpAffine(image_rgb, transform.matrix, (w_in, h_in))  # bilinear, constant border 0
    return warped, transform


# --------------------------------------------------------------------------------------------------
# Deployed mode
# --------------------------------------------------------------------------------------------------

# The letterbox border: the ImageNet mean colour, i.e. 0 after the in-graph normalisation - what the
# network's own zero padding means. A black border (-2 after normalisation) makes the float network
# answer the band edge with strong false heatmap peaks and widens every int8 range (docs/int8.md).
LETTERBOX_FILL_RGB = (124, 116, 104)


@dataclass(frozen=True)
class Letterbox:
    """Aspect-preserving fit of an image (w x h) into a fixed model input (W x H), centred on the mean colour.

    Continuous corner-convention coordinates: pixel (u, v) covers [u, u+1) x [v, v+1).
    `forward`: X = ox + x * nw / w; `to_image`: x = (X - ox) * w / nw (y likewise).
    """

    image_hw: tuple[int, int]
    input_hw: tuple[int, int]
    resized_hw: tuple[int, int]  # (nh, nw)
    offset_xy: tuple[int, int]  # (ox, oy)

    @classmethod
    def fit(cls, image_hw: tuple[int, int], input_hw: tuple[int, int]) -> "Letterbox":
        h, w = int(image_hw[0]), int(image_hw[1])
        H, W = int(input_hw[0]), int(input_hw[1])
        if min(h, w, H, W) <= 0:
            raise ValueError(f"empty size: image {w}x{h}, input {W}x{H}")
        s = min(W / w, H / h)  # float64
        nw = min(W, max(1, math.floor(w * s + 0.5)))
        nh = min(H, max(1, math.floor(h * s + 0.5)))
        return cls((h, w), (H, W), (nh, nw), ((W - nw) // 2, (H - nh) // 2))

    def _factors(self):
        (h, w), (nh, nw), (ox, oy) = self.image_hw, self.resized_hw, self.offset_xy
        return ox, oy, nw / w, nh / h

    def forward(self, points: np.ndarray) -> np.ndarray:
        """Image pixels -> model-input pixels."""
        ox, oy, sx, sy = self._factors()
        return _apply_affine(points, np.array([[sx, 0.0, ox], [0.0, sy, oy]]))

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Model-input pixels -> original image pixels (exact inverse of `forward`)."""
        (h, w), (nh, nw), (ox, oy) = self.image_hw, self.resized_hw, self.offset_xy
        pts = np.array(points, copy=True)
        if pts.ndim == 0 or pts.shape[-1] < 2:
            raise ValueError(f"points need x, y in their last axis, got shape {pts.shape}")
        if not np.issubdtype(pts.dtype, np.floating):
            pts = pts.astype(np.float64)
        pts[..., 0] = (pts[..., 0].astype(np.float64) - ox) * w / nw
        pts[..., 1] = (pts[..., 1].astype(np.float64) - oy) * h / nh
        return pts

    def apply(self, image_rgb: np.ndarray) -> np.ndarray:
        """Resize (cv2.INTER_LINEAR, half-pixel centres) and paste on a mean-colour canvas of the input size."""
        if tuple(image_rgb.shape[:2]) != self.image_hw:
            raise ValueError(f"image is {image_rgb.shape[:2]}, this letterbox was fitted to {self.image_hw}")
        (nh, nw), (ox, oy) = self.resized_hw, self.offset_xy
        H, W = self.input_hw
        canvas = np.empty((H, W) + image_rgb.shape[2:], image_rgb.dtype)
        canvas[...] = LETTERBOX_FILL_RGB if image_rgb.ndim == 3 and image_rgb.shape[2] == 3 else 0
        if (nh, nw) == self.image_hw:
            resized = image_rgb
        else:
            resized = cv2.resize(image_rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        canvas[oy:oy + nh, ox:ox + nw] = resized.reshape((nh, nw) + image_rgb.shape[2:])
        return canvas


def letterbox(image_rgb: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Fit `image_rgb` into a fixed model input (H, W): the letterboxed uint8 image and its mapping."""
    box = Letterbox.fit(image_rgb.shape[:2], input_hw)
    return box.apply(image_rgb), box
