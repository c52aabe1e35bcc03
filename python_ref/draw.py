"""Pose overlays for people to look at: skeleton lines and joint dots, one colour per person."""
from __future__ import annotations

import colorsys

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


def _fixed(x: float, y: float) -> tuple[int, int]:
    # poses use the corner convention (pixel u covers [u, u+1)); cv2 draws at pixel centres
    return int(round((x - 0.5) * (1 << _SHIFT))), int(round((y - 0.5) * (1 << _SHIFT)))


def draw_poses(image_rgb: np.ndarray, poses: np.ndarray, scores: np.ndarray, skeleton,
               min_person_score: float = 0.1, min_joint_score: float = 0.1) -> np.ndarray:
    """A copy of `image_rgb` (uint8 RGB) with every person whose score >= `min_person_score` drawn.

    `poses` (P, J, 3) x, y, score in the image's pixels; a joint is drawn when its score is above
    `min_joint_score` (undetected joints have score 0); `skeleton` is a list of (joint a, joint b) pairs.
    People are drawn lowest score first, so the most confident person ends on top.
    """
    canvas = np.ascontiguousarray(image_rgb.copy())
    poses = np.asarray(poses, np.float64)
    scores = np.asarray(scores, np.float64)
    if poses.size == 0:
        return canvas
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
            if a < len(pose) and b < len(pose) and visible[a] and visible[b]:
                cv2.line(canvas, _fixed(*pose[a, :2]), _fixed(*pose[b, :2]), colour, thickness, cv2.LINE_AA, _SHIFT)
        for j in np.flatnonzero(visible):
            centre = _fixed(*pose[j, :2])
            cv2.circle(canvas, centre, radius << _SHIFT, (255, 255, 255), -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(canvas, centre, max(1, radius - 1) << _SHIFT, colour, -1, cv2.LINE_AA, _SHIFT)
    return canvas
