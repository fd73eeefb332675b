"""Forward operators A: what the observation sees of a generated image.

The bicubic downscale is Keys' cubic (a = −0.5) stretched by the factor (so it antialiases),
separable, with reflect padding — the operator PULSE optimises through. The same operator
makes samples/lowres, so a generated image that downscales to the input is a real answer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def keys_cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def bicubic_taps(factor: int) -> tuple[torch.Tensor, int, int]:
    """1-D antialiased kernel for ×factor downscaling and its (left, right) padding."""
    centre = (factor - 1) / 2.0
    lo = math.floor(centre - 2 * factor) + 1
    hi = math.ceil(centre + 2 * factor) - 1
    pos = torch.arange(lo, hi + 1, dtype=torch.float64)
    k = keys_cubic((pos - centre) / factor)
    k = (k / k.sum()).float()
    left = -lo
    right = len(k) - factor - left
    return k, left, right


class Identity(nn.Module):
    """Inversion: the observation is the image itself."""

    factor = 1

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return img


class BicubicDownscale(nn.Module):
    """Antialiased Keys-bicubic downscale by an integer factor (PULSE's operator)."""

    def __init__(self, factor: int):
        super().__init__()
        if factor < 1 or int(factor) != factor:
            raise ValueError(f"scale must be a positive integer, got {factor}")
        self.factor = int(factor)
        k, self.left, self.right = bicubic_taps(self.factor)
        self.register_buffer("taps", k)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return img
        b, c, h, w = img.shape
        f = self.factor
        if h % f or w % f:
            raise ValueError(f"image {h}×{w} is not divisible by the scale {f}")
        x = img.reshape(b * c, 1, h, w)
        k = self.taps.to(img.dtype)
        pad_mode = "reflect" if max(self.left, self.right) < min(h, w) else "replicate"
        x = F.pad(x, (self.left, self.right, 0, 0), mode=pad_mode)
        x = F.conv2d(x, k.view(1, 1, 1, -1), stride=(1, f))
        x = F.pad(x, (0, 0, self.left, self.right), mode=pad_mode)
        x = F.conv2d(x, k.view(1, 1, -1, 1), stride=(f, 1))
        return x.reshape(b, c, h // f, w // f)


def downscale_operator(model_size: int, observed_size: int, what: str = "input") -> BicubicDownscale:
    """The operator that maps model-resolution images to ``observed_size`` (or a clear error)."""
    from .errors import InputImageError

    if observed_size > model_size or model_size % observed_size:
        raise InputImageError(
            f"{what} is {observed_size}×{observed_size} but the model makes {model_size}×{model_size}: "
            f"the size must divide {model_size} (e.g. {', '.join(str(model_size // f) for f in (4, 8, 16) if model_size // f >= 4)})")
    return BicubicDownscale(model_size // observed_size)
