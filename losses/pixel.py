"""Pixel losses, per image (shape [B]) so a batch is a sum of independent problems.

Images are compared in [0, 1] units, as PULSE does, so its weights and eps carry over.
"""

from __future__ import annotations

import torch


def l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).pow(2).flatten(1).mean(1)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().flatten(1).mean(1)


def l2_alpha(pred: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """((pred − ref)² · alpha).mean(): alpha-0 pixels are free, alpha-1 pixels are pinned."""
    return ((pred - target).pow(2) * alpha).flatten(1).mean(1)


def dssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − SSIM per image (the metric of :func:`optinv.engine.metrics.ssim_per_image`, as a loss)."""
    from optinv.engine.metrics import ssim_per_image

    return 1.0 - ssim_per_image(pred, target)


def dmsssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − MS-SSIM per image (:func:`optinv.engine.metrics.ms_ssim_per_image`)."""
    from optinv.engine.metrics import ms_ssim_per_image

    return 1.0 - ms_ssim_per_image(pred, target)
