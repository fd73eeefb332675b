"""Real photographs in: find a face, align it like FFHQ, paste results back, measure identity.

dlib and its model files are the optional ``[faces]`` extra and are imported only when a face
is actually looked for; :mod:`.align` and :mod:`.paste` need nothing beyond numpy/torch/PIL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from optinv.faces.align import AlignTransform, align_image, ffhq_quad, load_transform, save_transform
from optinv.faces.backend import INSTALL_HINT, FacesUnavailable, available
from optinv.faces.paste import paste_back


@dataclass
class AlignedFace:
    image: Image.Image                 # the aligned N×N crop
    transform: AlignTransform          # how to put a result back into the photo
    notes: list[str] = field(default_factory=list)


def align_photo(photo: str | os.PathLike | Image.Image, size: int, face: int | None = None,
                landmarks_model: str | None = None, name: str | None = None) -> AlignedFace:
    """Detect faces in ``photo``, pick one (largest, or number ``face``), and align it to size×size."""
    from optinv.io.image_files import load_photo
    from optinv.faces.landmarks import choose, detect

    notes: list[str] = []
    if isinstance(photo, Image.Image):
        im, label = photo.convert("RGB"), name or "image"
    else:
        im, label = load_photo(photo, notes), name or str(photo)
    faces = detect(np.asarray(im), landmarks_model)
    chosen = choose(faces, label, face, notes)
    k = faces.index(chosen) + 1
    aligned, t = align_image(im, chosen.landmarks, size, photo=Path(label).name, face=k, faces_found=len(faces))
    return AlignedFace(aligned, t, notes)


def write_aligned(al: AlignedFace, out: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """OUT/NAME.png (the crop) and OUT/NAME.align.json (its transform), each written atomically."""
    from optinv.io.image_files import atomic_save_image

    out = Path(out)
    return atomic_save_image(al.image, out / f"{name}.png"), save_transform(al.transform, out / f"{name}.align.json")


def find_transform(result: str | os.PathLike, transform: str | os.PathLike | None = None,
                   record: dict | None = None) -> AlignTransform:
    """The alignment of a result: ``transform`` if given, else the latent record's, else NAME.align.json beside it."""
    if transform is not None:
        return load_transform(transform)
    if record is not None and record.get("alignment"):
        return AlignTransform.from_json(record["alignment"], f"{result} (its alignment)")
    p = Path(result)
    stem = p.name.split(".")[0]
    for cand in (p.with_name(f"{stem}.align.json"), p.parent.parent / "aligned" / f"{stem}.align.json"):
        if cand.is_file():
            return load_transform(cand)
    from optinv.errors import OptinvError

    raise OptinvError(f"{result}: no alignment found (no {stem}.align.json beside it, none in its latent): "
                      f"pass `transform` aligned/{stem}.align.json")


__all__ = ["AlignTransform", "AlignedFace", "FacesUnavailable", "INSTALL_HINT", "align_image", "align_photo",
           "available", "ffhq_quad", "find_transform", "load_transform", "paste_back", "save_transform", "write_aligned"]
