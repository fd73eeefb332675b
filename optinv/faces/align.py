"""The FFHQ alignment recipe, from 68 landmarks to an N×N crop, and the transform that undoes it.

Recipe (Karras et al., the FFHQ data set): eye and mouth centres → an oriented square ("quad")
whose size follows the eye distance and eye-to-mouth distance; a large face is first shrunk,
the photo is cropped around the quad, padded by reflection with a blur that grows towards the
border (so no hard edge enters the crop), and the quad is resampled to N×N.

Coordinates are pixel *edges* throughout (the photo's top-left corner is (0, 0) and pixel
(i, j) covers [i, i+1] × [j, j+1]); dlib's landmarks are pixel centres and get +0.5. The quad
corners are ordered top-left, bottom-left, bottom-right, top-right in the aligned image's frame,
so aligned point (u, v) ∈ [0, 1]² sits at ``tl + u·(tr − tl) + v·(bl − tl)`` in the photo.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from optinv.errors import OptinvError
from optinv.io.fileio import atomic_write_text

TRANSFORM_FORMAT = "optinv-face-transform"
MAX_SUPERSAMPLE = 8


@dataclass
class AlignTransform:
    """Where an aligned crop came from: enough to paste a result back into the photo."""

    quad: list[list[float]]            # 4 × (x, y): top-left, bottom-left, bottom-right, top-right
    size: int                          # side of the aligned image
    photo_size: tuple[int, int]        # width, height of the photo
    photo: str = ""                    # the photo's file name
    face: int = 1                      # which face (1 = largest)
    faces_found: int = 1
    landmarks: list[list[float]] = field(default_factory=list)  # the 68 points (pixel centres)

    def corners(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = np.asarray(self.quad, dtype=np.float64)
        return q[0], q[3] - q[0], q[1] - q[0]  # origin, u axis, v axis

    def to_photo(self, uv: np.ndarray) -> np.ndarray:
        """Aligned points in [0, 1]² → photo pixel-edge coordinates."""
        o, eu, ev = self.corners()
        uv = np.asarray(uv, dtype=np.float64)
        return o + uv[..., :1] * eu + uv[..., 1:2] * ev

    def from_photo(self, xy: np.ndarray) -> np.ndarray:
        """Photo pixel-edge coordinates → aligned points in [0, 1]² (outside the crop: outside [0, 1])."""
        o, eu, ev = self.corners()
        inv = np.linalg.inv(np.stack([eu, ev], 1))
        return (np.asarray(xy, dtype=np.float64) - o) @ inv.T

    def to_json(self) -> dict[str, Any]:
        return {"format": TRANSFORM_FORMAT, "version": 1, **asdict(self), "photo_size": list(self.photo_size)}

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str = "transform") -> "AlignTransform":
        if not isinstance(obj, dict) or obj.get("format") != TRANSFORM_FORMAT:
            raise OptinvError(f"{where}: not an optinv face transform (optinv align writes NAME.align.json)")
        try:
            t = cls(quad=[[float(a), float(b)] for a, b in obj["quad"]], size=int(obj["size"]),
                    photo_size=(int(obj["photo_size"][0]), int(obj["photo_size"][1])), photo=str(obj.get("photo", "")),
                    face=int(obj.get("face", 1)), faces_found=int(obj.get("faces_found", 1)),
                    landmarks=[[float(a), float(b)] for a, b in obj.get("landmarks", [])])
        except (KeyError, TypeError, ValueError) as e:
            raise OptinvError(f"{where}: damaged face transform ({type(e).__name__}: {e})") from None
        if len(t.quad) != 4:
            raise OptinvError(f"{where}: a face transform needs 4 quad corners, got {len(t.quad)}")
        t.check(where)
        return t

    def check(self, where: str = "transform") -> None:
        """A transform that can place a picture: finite corners near the photo, a quad with an area
        (a NaN or collapsed quad would paste nothing and leave the photo unchanged, silently)."""
        q = np.asarray(self.quad, dtype=np.float64)
        if self.size < 1 or min(self.photo_size) < 1:
            raise OptinvError(f"{where}: size {self.size} and photo size {self.photo_size} must be ≥ 1")
        if not np.isfinite(q).all():
            raise OptinvError(f"{where}: the quad's corners are not finite numbers")
        reach = 100 * max(self.photo_size)
        if np.abs(q).max() > reach:
            raise OptinvError(f"{where}: a quad corner lies more than {reach} pixels from the photo")
        _, eu, ev = self.corners()
        if abs(eu[0] * ev[1] - eu[1] * ev[0]) < 1.0:
            raise OptinvError(f"{where}: the quad has no area (its corners are on one line or one point)")


def save_transform(t: AlignTransform, path: str | os.PathLike) -> Path:
    return atomic_write_text(json.dumps(t.to_json(), indent=1) + "\n", path)


def load_transform(path: str | os.PathLike) -> AlignTransform:
    path = Path(path)
    if not path.is_file():
        raise OptinvError(f"{path}: no such file (optinv align writes NAME.align.json beside the aligned image)")
    try:
        obj = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OptinvError(f"{path}: not JSON ({e})") from None
    return AlignTransform.from_json(obj, str(path))


def ffhq_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """68 landmarks (pixel centres) → the FFHQ quad (pixel edges; tl, bl, br, tr) and its side."""
    lm = np.asarray(landmarks, dtype=np.float64) + 0.5
    if lm.shape != (68, 2):
        raise OptinvError(f"face alignment needs 68 landmarks, got an array of shape {lm.shape}")
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    eyes = (eye_l + eye_r) / 2
    eye_to_eye = eye_r - eye_l
    eye_to_mouth = (lm[48] + lm[54]) / 2 - eyes
    # x: the face's horizontal axis, a blend of the eye line and the normal of the eye→mouth line
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eyes + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, float(np.hypot(*x) * 2)


def sample(img: np.ndarray, xy: np.ndarray, mode: str = "bicubic") -> np.ndarray:
    """Sample an [H, W, C] float image at pixel-edge coordinates ``xy`` [..., 2] (edge-clamped)."""
    h, w = img.shape[:2]
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]
    g = torch.from_numpy(np.asarray(xy, dtype=np.float32))
    g = torch.stack([g[..., 0] / w * 2 - 1, g[..., 1] / h * 2 - 1], -1)
    flat = g.reshape(1, -1, 1, 2)
    out = F.grid_sample(t, flat, mode=mode, padding_mode="border", align_corners=False)
    return out[0, :, :, 0].T.reshape(*xy.shape[:-1], img.shape[2]).numpy()


def _pad_with_blur(img: np.ndarray, pad: tuple[int, int, int, int], qsize: float) -> np.ndarray:
    """Reflect-pad (left, top, right, bottom), then blur and flatten towards the outer border."""
    left, top, right, bottom = pad
    img = np.pad(img, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def ramp(dist: np.ndarray, width: int) -> np.ndarray:  # 1 at the outer edge, 0 at the photo's border
        return 1.0 - dist / width if width > 0 else np.full_like(dist, -np.inf)

    t = np.maximum(np.maximum(ramp(xx, left), ramp(w - 1 - xx, right)),
                   np.maximum(ramp(yy, top), ramp(h - 1 - yy, bottom)))[..., None]
    sigma = max(qsize * 0.02, 0.5)
    blurred = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(sigma))
    img = img + (np.asarray(blurred, dtype=np.float32) - img) * np.clip(3.0 * t + 1.0, 0.0, 1.0)
    img = img + (np.median(img, axis=(0, 1)) - img) * np.clip(t, 0.0, 1.0)
    return img


def align_image(image: Image.Image, landmarks: np.ndarray, size: int, **info: Any) -> tuple[Image.Image, AlignTransform]:
    """The aligned N×N crop of ``image`` for one face's 68 landmarks, and its transform
    (``info``: the AlignTransform fields photo, face, faces_found)."""
    if size < 8:
        raise OptinvError(f"`size` must be at least 8, got {size}")
    photo = image.convert("RGB")
    quad, qsize = ffhq_quad(landmarks)
    transform = AlignTransform(quad=quad.tolist(), size=size, photo_size=photo.size,
                               landmarks=np.asarray(landmarks, dtype=float).tolist(), **info)
    work, q = photo, quad.copy()
    shrink = int(math.floor(qsize / size * 0.5))
    if shrink > 1:  # a big face: shrink first so the final resampling does not alias
        small = (int(round(photo.width / shrink)), int(round(photo.height / shrink)))
        work = photo.resize(small, Image.LANCZOS, reducing_gap=None)
        q = q * np.array([small[0] / photo.width, small[1] / photo.height])
        qsize /= shrink
    border = max(int(round(qsize * 0.1)), 3)
    lo, hi = np.floor(q.min(0)).astype(int), np.ceil(q.max(0)).astype(int)
    box = (max(lo[0] - border, 0), max(lo[1] - border, 0), min(hi[0] + border, work.width), min(hi[1] + border, work.height))
    arr = np.asarray(work.crop(box), dtype=np.float32)
    q = q - np.array(box[:2])
    pad = (max(border - lo[0], 0), max(border - lo[1], 0), max(hi[0] - work.width + border, 0),
           max(hi[1] - work.height + border, 0))
    if max(pad) > border - 4:  # the quad leaves the photo: pad generously, as the recipe does
        p = int(round(qsize * 0.3))
        pad = tuple(max(v, p) if v > 0 else 0 for v in pad)
        pad = tuple(min(v, max(arr.shape[:2]) - 1) for v in pad)  # np.pad's reflect needs pad < side
        arr = _pad_with_blur(arr, pad, qsize)
        q = q + np.array(pad[:2])
    ss = int(min(MAX_SUPERSAMPLE, max(1, math.ceil(qsize / size))))  # ≥ one sample per input pixel
    n = size * ss
    centres = (np.arange(n, dtype=np.float64) + 0.5) / n
    uv = np.stack(np.meshgrid(centres, centres, indexing="xy"), -1)
    o, eu, ev = q[0], q[3] - q[0], q[1] - q[0]
    xy = o + uv[..., :1] * eu + uv[..., 1:2] * ev
    out = sample(arr, xy, "bicubic" if ss == 1 else "bilinear")
    if ss > 1:
        out = out.reshape(size, ss, size, ss, 3).mean((1, 3))
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8)), transform
