"""The pixel-range contract, in one place.

- **Outside the generator every image is float [0, 1]**: :func:`optinv.io.image_files.load_image`
  returns [C, H, W] in [0, 1]; the jobs take [N, C, H, W] or [C, H, W] tensors in [0, 1] (RGB, or
  RGBA for paint, alpha in [0, 1]); results (``ItemResult.image``, ``.target``, ``.observed``) and
  metrics are [0, 1]; :func:`optinv.io.image_files.to_pil` turns [0, 1] into a picture.
- **The generator speaks [-1, 1]** (StyleGAN's convention): ``G.synthesis`` returns [-1, 1] and its
  callers convert with :func:`to_unit` right there; the encoders take [-1, 1] (:func:`to_signed`).

One pair of helpers, written exactly as ``(x + 1) / 2`` and ``x * 2 - 1`` so that every
caller gets the same bits as before.

>>> to_unit(torch.tensor([-1.0, 0.0, 1.0])).tolist()
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

import torch


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → [0, 1] (no clamping)."""
    return (x + 1) / 2


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] → [-1, 1] (no clamping)."""
    return x * 2 - 1
