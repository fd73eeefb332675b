"""Faces and their 68 landmarks in a photo (dlib HOG detector + shape predictor)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optinv.errors import OptinvError
from optinv.faces import backend

# Detections scoring below this are dropped: on real photos they are mostly badges, patches and
# patterns (on scikit-image's astronaut the suit's flag scores 0.06-0.12, the face 1.5).
MIN_SCORE = 0.3
DETECT_SIDE = 1280


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


def _boxes(arr: np.ndarray, min_score: float) -> list[tuple[tuple[int, int, int, int], float]]:
    """Detector boxes (in ``arr``'s pixels) with their scores. A large photo is searched at about
    DETECT_SIDE pixels first (a 12 MP phone photo takes ~9 s at full size), then upsampled once for
    small faces, then, if nothing was found, at full size."""
    from PIL import Image

    det = backend.detector()
    k = min(1.0, DETECT_SIDE / max(arr.shape[:2]))
    small = arr if k == 1.0 else np.asarray(Image.fromarray(arr).resize(
        (max(1, round(arr.shape[1] * k)), max(1, round(arr.shape[0] * k))), Image.BILINEAR))
    tries = [(small, k, 0), (small, k, 1)] + ([(arr, 1.0, 0)] if k < 1.0 else [])
    for img, scale, upsample in tries:
        found, scores, _ = det.run(img, upsample, 0.0)
        boxes = [((round(r.left() / scale), round(r.top() / scale), round(r.right() / scale), round(r.bottom() / scale)),
                  float(s)) for r, s in zip(found, scores) if s >= min_score]
        if boxes:
            return boxes
    return []


def detect(image, predictor: str | None = None, min_score: float = MIN_SCORE) -> list[Face]:
    """Every face found, largest first (landmarks always from the full-size image)."""
    arr = _as_array(image)
    rects = [(backend.dlib().rectangle(*box), s) for box, s in _boxes(arr, min_score)]
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
