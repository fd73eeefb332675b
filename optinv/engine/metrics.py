"""Image metrics (MSE, PSNR, SSIM, LPIPS) on [0, 1] images, and the per-job summary.

Latent-space measures of edits (LEC) live with the edits, in :mod:`optinv.edit.edits`.
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


def _window(side: int) -> int:
    return min(11, side - (1 - side % 2))  # odd, at most the image side


def ssim_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each image [B] (11×11 Gaussian window, kornia; differentiable, no clamping:
    the SSIM loss term of a recipe is ``1 − this``)."""
    return kornia.metrics.ssim(a, b, window_size=_window(a.shape[-1]), max_val=1.0).flatten(1).mean(1)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM (11×11 Gaussian window, kornia); windows shrink for tiny images."""
    a, b = a[None] if a.dim() == 3 else a, b[None] if b.dim() == 3 else b
    return float(ssim_per_image(a.clamp(0, 1), b.clamp(0, 1)).mean())


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli & Bovik 2003


def ms_ssim_scales(side: int) -> int:
    """How many of MS-SSIM's five scales fit an image of ``side`` pixels (the coarsest still
    holds one 11×11 window); small images use the finest ones, weights renormalised."""
    window = _window(side)
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and side // 2 ** scales >= window:
        scales += 1
    return scales


def ms_ssim_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Multi-scale SSIM of each image [B] (differentiable): contrast-structure at the finer
    scales, full SSIM at the coarsest, 2× average pooling between them, Gaussian σ 1.5 windows.

    The five-scale original needs images of at least 176 px; smaller ones use
    :func:`ms_ssim_scales` scales. Values are floored at 1e-6 before the fractional powers so
    that the gradient stays finite.
    """
    import torch.nn.functional as F

    scales = ms_ssim_scales(a.shape[-1])
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=a.dtype, device=a.device)
    weights = weights / weights.sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    out = torch.ones(a.shape[0], dtype=a.dtype, device=a.device)
    for s in range(scales):
        win = _window(a.shape[-1])
        k = kornia.filters.get_gaussian_kernel2d((win, win), (1.5, 1.5)).to(a)

        def blur(x: torch.Tensor) -> torch.Tensor:
            return kornia.filters.filter2d(x, k, padding="valid")

        mu_a, mu_b = blur(a), blur(b)
        var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
        cov = blur(a * b) - mu_a * mu_b
        cs = (2 * cov + c2) / (var_a + var_b + c2)
        if s == scales - 1:
            cs = cs * (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
        out = out * cs.flatten(1).mean(1).clamp_min(1e-6) ** weights[s]
        if s < scales - 1:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return out


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """MS-SSIM of [0, 1] images (mean over a batch); see :func:`ms_ssim_per_image`."""
    a, b = a[None] if a.dim() == 3 else a, b[None] if b.dim() == 3 else b
    return float(ms_ssim_per_image(a.clamp(0, 1), b.clamp(0, 1)).mean())


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
    if job == "invert":  # through the operator: the image itself unless a mask, gray or noise level was given
        out["fit_mse"] = mse(item.observed, item.target)
        out["psnr"] = psnr(item.observed, item.target)
        out["ssim"] = ssim(item.observed, item.target)
        if lpips is not None:
            with torch.no_grad():
                out["lpips"] = float(lpips(item.observed[None].to(_dev(lpips)),
                                           item.target[None].to(_dev(lpips)))[0])
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
