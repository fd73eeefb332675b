"""Faces and their 68 landmarks in a photo (dlib HOG detector + shape predictor)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OptinvError
from . import backend

# Detections scoring below this are dropped: on real photos they are mostly badges, patches and
# patterns (on scikit-image's astronaut the suit's flag scores 0.06-0.12, the face 1.5).
MIN_SCORE = 0.3


class NoFaceFound(OptinvError):
    """The detector found no face (the message names the file and what to try)."""


@dataclass
class Face:
    box: tuple[int, int, int, int]     # left, top, right, bottom (pixels)
    score: float                       # detector confidence
    landmarks: np.ndarray              # [68, 2] x, y at pixel centres (dlib's convention)

    @property
    def area(self) -> int:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def _as_array(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, -1)
    if arr.dtype != np.uint8:
        raise OptinvError("face detection needs an 8-bit image")
    return np.ascontiguousarray(arr[..., :3])


def detect(image, predictor: str | None = None, min_score: float = MIN_SCORE) -> list[Face]:
    """Every face found, largest first. Tries the image as it is, then upsampled once (small faces)."""
    arr = _as_array(image)
    det = backend.detector()
    rects: list = []
    for upsample in (0, 1):
        found, scores, _ = det.run(arr, upsample, 0.0)
        rects = [(r, s) for r, s in zip(found, scores) if s >= min_score]
        if rects:
            break
    sp = backend.shape_predictor(predictor)
    faces = []
    for r, s in rects:
        shape = sp(arr, r)
        if shape.num_parts != 68:
            raise OptinvError(f"the landmark model gives {shape.num_parts} points; face alignment needs a 68-point model")
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        faces.append(Face((r.left(), r.top(), r.right(), r.bottom()), float(s), pts))
    faces.sort(key=lambda f: (-f.area, -f.score))
    return faces


def choose(faces: list[Face], name: str, index: int | None = None, notes: list[str] | None = None) -> Face:
    """The face to use: the largest, or number ``index`` (1 = largest), with a note on how many there were."""
    if not faces:
        raise NoFaceFound(f"{name}: no face found (try a larger, frontal, well-lit photo; faces smaller than "
                          f"about 40 pixels are missed — crop closer or upscale first)")
    if index is not None and not 1 <= index <= len(faces):
        raise OptinvError(f"{name}: `face` {index}, but {len(faces)} face{'s' if len(faces) != 1 else ''} found "
                          f"(1 = the largest)")
    k = index or 1
    if len(faces) > 1 and notes is not None:
        pick = "the largest" if k == 1 else f"number {k} by size"
        notes.append(f"{len(faces)} faces found, using face {k} ({pick}); `face` 1..{len(faces)} picks another")
    return faces[k - 1]
