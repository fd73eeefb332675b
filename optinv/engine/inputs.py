"""A job's inputs: files, decoded files or tensors → one [N, C, H, W] batch in [0, 1], unique names and notes.

Pixel ranges: see :mod:`optinv.io.ranges` (every image here is [0, 1]).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from optinv.errors import OptinvError
from optinv.io.names import input_name
from optinv.io.image_files import image_to_tensor, read_image



@dataclass
class Decoded:
    """An image file decoded once (:func:`optinv.io.image_files.read_image`): the runner checks a file
    by decoding it and hands this on, so the job converts it without reading the file again."""

    path: Path
    image: Image.Image
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.path).stem


Source = str | os.PathLike | torch.Tensor | tuple[str, torch.Tensor] | Decoded


def load_many(sources: Sequence[Source], size: int | None, keep_alpha: bool, crop: str,
              notes: dict[str, list[str]]) -> tuple[torch.Tensor, list[str]]:
    """Images (files, :class:`Decoded` files, [C, H, W] tensors in [0, 1], or (name, tensor) pairs) → stacked
    RGB(A) [N, C, H, W] in [0, 1] and their names.

    Conversion remarks per input land in ``notes[name]``; inputs of one run share a size
    (:func:`load_groups` takes several sizes).
    """
    tensors, names = _load_all(sources, size, keep_alpha, crop, notes)
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise OptinvError(f"inputs of one run must share a size, got {sorted(shapes)}")
    return _stack(tensors), unique_names(names)


def load_groups(sources: Sequence[Source], size: int | None, keep_alpha: bool, crop: str,
                notes: dict[str, list[str]]) -> list[tuple[list[int], torch.Tensor, list[str]]]:
    """Like :func:`load_many` for inputs of several sizes (×8 and ×16 low-res files together): one
    ``(positions, batch, names)`` per size, so a job runs size by size and answers in input order."""
    tensors, names = _load_all(sources, size, keep_alpha, crop, notes)
    names = unique_names(names)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(tensors):
        by_shape.setdefault(tuple(t.shape), []).append(i)
    return [(idx, _stack([tensors[i] for i in idx]), [names[i] for i in idx]) for idx in by_shape.values()]


def _load_all(sources: Sequence[Source], size: int | None, keep_alpha: bool, crop: str,
              notes: dict[str, list[str]]) -> tuple[list[torch.Tensor], list[str]]:
    tensors, names = [], []
    flat: list[Source] = []
    for src in sources:  # a [N, C, H, W] tensor in the list is N images
        flat.extend(src.unbind(0) if isinstance(src, torch.Tensor) and src.dim() == 4 else [src])
    for src in flat:
        if isinstance(src, tuple):  # e.g. an aligned crop, named after its photo
            name, t = src
        elif isinstance(src, torch.Tensor):
            t = src
            name = f"image{len(names):03d}"
        else:  # a file is decoded here; a decoded one was read by the runner
            if not isinstance(src, Decoded):
                read_notes: list[str] = []
                src = Decoded(Path(src), read_image(src, read_notes), read_notes)
            n = list(src.notes)
            t = image_to_tensor(src.image, src.path, size=size, keep_alpha=keep_alpha, crop=crop, notes=n)
            name = src.name
            if n:
                notes[name] = n
        tensors.append(t)
        names.append(name)
    return tensors, names


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    for t in tensors:
        if t.dim() != 3 or t.shape[0] not in (3, 4):
            raise OptinvError(f"an input image tensor must be [C, H, W] (or [N, C, H, W]) with C = 3 (RGB) or 4 "
                              f"(RGBA), got shape {tuple(t.shape)}")
    stacked = torch.stack(tensors).float()
    if not torch.isfinite(stacked).all():
        raise OptinvError("input contains NaN or Inf values")
    low, high = float(stacked.min()), float(stacked.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise OptinvError(f"input images are in [0, 1] (see optinv.io.ranges), got values in [{low:.3g}, {high:.3g}]"
                          + (": a generator's [-1, 1] output needs optinv.io.ranges.to_unit first" if low < 0 else ""))
    return stacked


def unique_names(names: list[str]) -> list[str]:
    """Result names no two of which write the same file (see :func:`optinv.io.outputs.plan_names`)."""
    from optinv.io.outputs import plan_names

    return plan_names(names)


def attach_notes(results: list[Any], notes: dict[str, list[str]]) -> list[Any]:
    """Put each input's conversion notes in front of its results' own notes (pulse: every duplicate)."""
    for r in results:
        r.notes = notes.get(input_name(r.name, notes), []) + r.notes
    return results
