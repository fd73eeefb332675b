"""Jobs on real photographs: align the inputs first (``align``), remember how, paste results back.

The jobs call :func:`align_sources` before loading their inputs (a no-op unless ``align`` is
set) and :func:`attach_alignment` on their results: each result's latent record then carries
the transform and the photo's path (``alignment``), and its metrics the face-identity distance
between input and result when dlib is installed. :func:`write_pasted` puts a result back into
its photo (``paste_back``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from optinv.errors import OptinvError
from optinv.io.names import input_name
from optinv.io.ranges import to_unit


def _unit(im) -> torch.Tensor:
    """PIL RGB → [3, H, W] in [0, 1] (the jobs' in-memory input), rounded as earlier versions did."""
    return to_unit(torch.from_numpy(np.asarray(im, dtype=np.float32).copy()).permute(2, 0, 1) / 127.5 - 1.0)


def align_sources(sources: Sequence[Any], size: int, opts: Any,
                  notes: dict[str, list[str]]) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """With ``opts.align``: each photo → (name, its aligned size×size crop) and its alignment record."""
    if not getattr(opts, "align", False):
        if getattr(opts, "paste_back", False):
            raise OptinvError("`paste_back` needs `align` (the result goes back where the face was found)")
        return list(sources), {}
    from optinv import faces

    out: list[Any] = []
    alignments: dict[str, dict[str, Any]] = {}
    for src in sources:
        if isinstance(src, torch.Tensor):
            raise OptinvError("`align` needs photo files (an in-memory tensor has no photo to go back to)")
        name = Path(src).stem
        al = faces.align_photo(src, size, face=getattr(opts, "face", None), landmarks_model=getattr(opts, "landmarks", None))
        alignments[name] = {**al.transform.to_json(), "photo_path": str(Path(src).resolve())}
        if al.notes:
            notes.setdefault(name, []).extend(al.notes)
        out.append((name, _unit(al.image)))
    return out, alignments


def attach_alignment(results: list[Any], alignments: dict[str, dict[str, Any]]) -> list[Any]:
    """Put each input's alignment into its results' latent records, and the identity distance into their metrics."""
    if not alignments:
        return results
    from optinv.faces import backend

    for r in results:
        a = alignments.get(input_name(r.name, alignments))
        if a is None:
            continue
        r.latent["alignment"] = a
        if backend.available():
            r.metrics["identity_distance"] = identity_distance(r.target, r.image)
    return results


def identity_distance(target: torch.Tensor, image: torch.Tensor) -> float | None:
    """dlib descriptor distance between two [3, H, W] images in [0, 1] (< 0.6: the same person)."""
    from optinv.faces.identity import distance
    from optinv.io.image_files import to_pil

    try:
        return round(distance(to_pil(target[:3]), to_pil(image)), 4)
    except OptinvError:
        return None


def pastable(latent: Any, name: str) -> tuple[Any, str]:
    """The alignment transform and photo a result can be pasted back with, or one clear error:
    called before any work, so a run never writes its results and only then fails."""
    from optinv import faces

    a = latent.get("alignment") if isinstance(latent, dict) else None
    if not a:
        raise OptinvError(f"{name}: no alignment recorded (`paste_back` needs `align`)")
    t = faces.AlignTransform.from_json(a, name)
    photo_path = a.get("photo_path", "")
    if not Path(photo_path).is_file():
        raise OptinvError(f"{name}: the aligned photo {photo_path or '?'} is gone: use optinv paste RESULT --into PHOTO")
    return t, photo_path


def write_pasted(item: Any, out: str | os.PathLike, image: torch.Tensor | None = None) -> Path:
    """OUT/NAME.pasted.png: ``image`` (default: the item's result, [3, R, R] in [0, 1]) in the photo it came from."""
    from optinv import faces
    from optinv.io.image_files import atomic_save_image, load_photo, to_pil

    t, photo_path = pastable(item.latent, item.name)
    img = item.image if image is None else image
    pasted = faces.paste_back(to_pil(img.clamp(0, 1)), load_photo(photo_path), t)
    return atomic_save_image(pasted, Path(out) / f"{item.name}.pasted.png")
