"""Image metrics (MSE, PSNR, SSIM, LPIPS) on [0, 1] images, and the per-job summary.

Latent-space measures of edits (LEC) live with the edits, in :mod:`optinv.edit`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import kornia
import torch


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for [0, 1] images (inf for identical images), measured on
    the images as saved: clamped to [0, 1], so values outside the range never count as detail."""
    m = mse(a.clamp(0, 1), b.clamp(0, 1))
    return float("inf") if m == 0 else 10.0 * math.log10(1.0 / m)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM (11×11 Gaussian window, kornia); windows shrink for tiny images."""
    a, b = a[None] if a.dim() == 3 else a, b[None] if b.dim() == 3 else b
    window = min(11, a.shape[-1] - (1 - a.shape[-1] % 2))
    return float(kornia.metrics.ssim(a.clamp(0, 1), b.clamp(0, 1), window_size=window).mean())


def alpha_mse(pred: torch.Tensor, rgb: torch.Tensor, alpha: torch.Tensor) -> float:
    """Mean of (pred − ref)²·alpha: the L2A term, as reported by PULSE's RGBA variant."""
    return float(((pred - rgb).pow(2) * alpha).mean())


def data_error(pred: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image mean squared error [B] of a batch; with ``alpha``, the alpha-weighted mean over the
    painted pixels only (a small painted patch is judged by itself, not diluted by the free pixels).

    This is what ``eps`` stops at and what paint reports as ``masked_mse``.
    """
    err = (pred - target).pow(2)
    if alpha is None:
        return err.flatten(1).mean(1)
    weight = alpha.expand_as(err)
    return (err * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-8)


def job_metrics(job: str, item: Any, lpips: Callable | None = None) -> dict[str, Any]:
    """Final numbers for one result, by job."""
    out: dict[str, Any] = {}
    if job == "invert":
        out["fit_mse"] = mse(item.image, item.target)
        out["psnr"] = psnr(item.image, item.target)
        out["ssim"] = ssim(item.image, item.target)
        if lpips is not None:
            with torch.no_grad():
                out["lpips"] = float(lpips(item.image[None].to(_dev(lpips)), item.target[None].to(_dev(lpips)))[0])
    elif job == "pulse":
        out["fit_mse"] = mse(item.observed, item.target)
        out["psnr_lowres"] = psnr(item.observed, item.target)
    elif job == "paint":
        rgb, alpha = item.target[:3], item.target[3:4]
        out["fit_mse"] = alpha_mse(item.observed, rgb, alpha)
        covered = float(alpha.sum())
        out["masked_mse"] = float(data_error(item.observed[None], rgb[None], alpha[None])[0]) if covered > 0 else 0.0
        out["alpha_coverage"] = float(alpha.mean())
    return out


def _dev(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device
