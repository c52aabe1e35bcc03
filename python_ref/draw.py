"""Pose overlays for people to look at: skeleton lines and joint dots, one colour per person."""
from __future__ import annotations

import colorsys
import os
import sys
import zlib

import cv2
import numpy as np

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel accurate drawing


def person_colours(n: int) -> list[tuple[int, int, int]]:
    """n well-separated, deterministic RGB colours (golden-ratio hue steps, full saturation)."""
    colours = []
    for i in range(n):
        hue = (0.13 + i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.9, 1.0)
        colours.append((int(round(r * 255)), int(round(g * 255)), int(round(b * 255))))
    return colours


_FAR = 1e6   # joints farther off the image than this are drawn at this distance (cv2 takes 32-bit points)


def _fixed(x: float, y: float) -> tuple[int, int]:
    # poses use the corner convention (pixel u covers [u, u+1)); cv2 draws at pixel centres
    x, y = min(max(x, -_FAR), _FAR), min(max(y, -_FAR), _FAR)
    return int(round((x - 0.5) * (1 << _SHIFT))), int(round((y - 0.5) * (1 << _SHIFT)))


def draw_poses(image_rgb: np.ndarray, poses: np.ndarray, scores: np.ndarray, skeleton,
               min_person_score: float = 0.1, min_joint_score: float = 0.1) -> np.ndarray:
    """A copy of `image_rgb` (uint8 RGB) with every person whose score >= `min_person_score` drawn.

    `poses` (P, J, 3) x, y, score in the image's pixels; a joint is drawn when its score is above
    `min_joint_score` (undetected joints have score 0); `skeleton` is a list of (joint a, joint b) pairs.
    People are drawn lowest score first, so the most confident person ends on top.
    """
    image_rgb = np.asarray(image_rgb)
    if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"draw_poses: expected a uint8 RGB image (H, W, 3), got {image_rgb.dtype} "
                         f"{image_rgb.shape}")
    canvas = np.ascontiguousarray(image_rgb.copy())
    poses = np.asarray(poses, np.float64)
    scores = np.asarray(scores, np.float64)
    if poses.size == 0:
        return canvas
    if poses.ndim != 3 or poses.shape[2] != 3 or scores.shape != poses.shape[:1]:
        raise ValueError(f"draw_poses: expected poses (P, J, 3) and scores (P,), got {poses.shape} and {scores.shape}")
    joints = poses.shape[1]
    beyond = sorted({j for edge in skeleton for j in edge if not 0 <= j < joints})
    if beyond:
        raise ValueError(f"draw_poses: the skeleton joins joints {beyond}, the poses have {joints} joints "
                         "(a skeleton of another dataset?)")
    h, w = canvas.shape[:2]
    thickness = max(1, int(round(min(h, w) / 240)))
    radius = thickness + 1
    colours = person_colours(len(poses))
    for p in np.argsort(scores, kind="stable"):
        if not scores[p] >= min_person_score:
            continue
        pose, colour = poses[p], colours[p]
        visible = np.isfinite(pose).all(axis=1) & (pose[:, 2] > min_joint_score)
        for a, b in skeleton:
            if visible[a] and visible[b]:
                cv2.line(canvas, _fixed(*pose[a, :2]), _fixed(*pose[b, :2]), colour, thickness, cv2.LINE_AA, _SHIFT)
        for j in np.flatnonzero(visible):
            centre = _fixed(*pose[j, :2])
            cv2.circle(canvas, centre, radius << _SHIFT, (255, 255, 255), -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(canvas, centre, max(1, radius - 1) << _SHIFT, colour, -1, cv2.LINE_AA, _SHIFT)
    return canvas


# Every overlay litepose writes (predict's JPEGs, validate's PNGs) carries this tag, so that a folder of images
# can hold them without their being read back as inputs on the next run. A user's photo, whatever its name,
# has no tag and stays an input.
OVERLAY_TAG = b"litepose-edge overlay"
_JPEG_COMMENT = b"\xff\xfe" + (len(OVERLAY_TAG) + 2).to_bytes(2, "big") + OVERLAY_TAG   # COM marker, length, text
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IHDR_END = 8 + 4 + 4 + 13 + 4   # signature, then IHDR: length, type, 13 bytes of data, CRC
_PNG_TEXT = b"Software\x00" + OVERLAY_TAG
_PNG_CHUNK_HEAD = len(_PNG_TEXT).to_bytes(4, "big") + b"tEXt" + _PNG_TEXT   # length, type, data (CRC follows)


def tag_overlay(encoded: bytes) -> bytes:
    """An encoded JPEG or PNG with the overlay tag: a JPEG comment (COM) right after the SOI marker, or a PNG
    tEXt chunk (Software) right after IHDR. Pixels unchanged."""
    if encoded[:2] == b"\xff\xd8":
        return encoded[:2] + _JPEG_COMMENT + encoded[2:]
    if encoded[:8] == _PNG_SIGNATURE and encoded[12:16] == b"IHDR":
        crc = zlib.crc32(_PNG_CHUNK_HEAD[4:]).to_bytes(4, "big")   # over type and data
        return encoded[:_PNG_IHDR_END] + _PNG_CHUNK_HEAD + crc + encoded[_PNG_IHDR_END:]
    raise ValueError("tag_overlay takes an encoded JPEG or PNG")


def is_litepose_overlay(path: str | os.PathLike) -> bool:
    """Whether the file starts like an image `tag_overlay` tagged."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_PNG_IHDR_END + len(_PNG_CHUNK_HEAD))
    except OSError:
        return False
    if head[:2] == b"\xff\xd8":
        return head[2:2 + len(_JPEG_COMMENT)] == _JPEG_COMMENT
    return head[:8] == _PNG_SIGNATURE and head[_PNG_IHDR_END:] == _PNG_CHUNK_HEAD


def without_overlays(files: list, folder, log=None) -> list:
    """`files` (found in the input folder `folder`) without litepose's own overlays, saying how many were left
    out through `log` (default: a line on stderr)."""
    kept = [f for f in files if not is_litepose_overlay(f)]
    if len(kept) < len(files):
        (log or (lambda line: print(line, file=sys.stderr)))(
            f"note: {len(files) - len(kept)} overlay(s) that litepose drew in {folder} are not inputs")
    return kept
