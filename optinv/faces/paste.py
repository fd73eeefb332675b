"""Paste a result (an inversion or an edit of an aligned crop) back into the photo it came from.

The result is warped through the inverse of the alignment transform and blended with a mask
that is 1 inside the crop, ramps smoothly to 0 over ``feather`` of its side, and is exactly 0
outside the quad, so every photo pixel outside the face region is returned unchanged.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from optinv.errors import OptinvError
from optinv.faces.align import AlignTransform, sample

FEATHER = 0.1


def paste_mask(uv: np.ndarray, feather: float = FEATHER) -> np.ndarray:
    """Blend weight at aligned points ``uv`` [..., 2]: smoothstep of the distance to the crop's edge."""
    d = np.minimum(np.minimum(uv[..., 0], 1 - uv[..., 0]), np.minimum(uv[..., 1], 1 - uv[..., 1]))
    t = np.clip(d / feather, 0.0, 1.0) if feather > 0 else (d > 0).astype(np.float64)
    return t * t * (3 - 2 * t)


def region(t: AlignTransform) -> tuple[int, int, int, int]:
    """The photo pixels the quad touches: left, top, right, bottom (clipped to the photo)."""
    q = np.asarray(t.quad)
    w, h = t.photo_size
    lo, hi = np.floor(q.min(0)).astype(int), np.ceil(q.max(0)).astype(int)
    return max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)


def paste_back(result: Image.Image, photo: Image.Image, t: AlignTransform, feather: float = FEATHER) -> Image.Image:
    """``photo`` with ``result`` (any square size) warped into the face region, feathered at the edges."""
    photo = photo.convert("RGB")
    if photo.size != tuple(t.photo_size):
        raise OptinvError(f"the photo is {photo.size[0]}×{photo.size[1]}, but the transform was made on a "
                          f"{t.photo_size[0]}×{t.photo_size[1]} photo: paste into the photo that was aligned")
    res = np.asarray(result.convert("RGB"), dtype=np.float32)
    if res.shape[0] != res.shape[1]:
        raise OptinvError(f"the result to paste must be square (an aligned crop), got {res.shape[1]}×{res.shape[0]}")
    left, top, right, bottom = region(t)
    out = np.asarray(photo, dtype=np.float32).copy()
    if right <= left or bottom <= top:
        return photo.copy()
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float64) + 0.5
    uv = t.from_photo(np.stack([xx, yy], -1))
    m = paste_mask(uv, feather)[..., None]
    warped = np.clip(sample(res, uv * res.shape[0], "bicubic"), 0, 255)
    patch = out[top:bottom, left:right]
    out[top:bottom, left:right] = np.where(m > 0, patch * (1 - m) + warped * m, patch)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
