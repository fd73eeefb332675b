"""Pixel losses, per image (shape [B]) so a batch is a sum of independent problems.

Images are compared in [0, 1] units, as PULSE does, so its weights and eps carry over.
"""

from __future__ import annotations

import functools
import math

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


LAPLACE4 = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])  # the detail ratio's kernel too


@functools.lru_cache(maxsize=16)
def _blur_matrix(n: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[n, n] M such that ``x @ M`` blurs each row of x with a Gaussian (radius ⌈2σ⌉, reflect borders).

    A blur as two small matrix products runs at the machine's GEMM rate: at 256² it is ~9× faster
    than depthwise convolutions (kornia's separable blur included) forward and backward, which
    matters for a term evaluated at every optimisation step.
    """
    r = math.ceil(2 * sigma)
    taps = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float64).pow(2) / (2 * sigma * sigma))
    taps = taps / taps.sum()
    m = torch.zeros(n, n, dtype=torch.float64)
    for out in range(n):
        for j in range(-r, r + 1):
            src = abs(out + j)
            if src >= n:
                src = 2 * (n - 1) - src
            m[src, out] += taps[j + r]
    return m.to(dtype=dtype, device=device)


def _window_mean(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-weighted local mean (the window both edge measures are taken over)."""
    h, w = x.shape[-2:]
    return _blur_matrix(h, sigma, x.dtype, x.device).t() @ (x @ _blur_matrix(w, sigma, x.dtype, x.device))


def _laplacian(img: torch.Tensor) -> torch.Tensor:
    """The 4-neighbour Laplacian (``LAPLACE4``) with reflect borders, as four shifted sums."""
    p = torch.nn.functional.pad(img, (1, 1, 1, 1), mode="reflect")
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:] - 4 * img


def local_edge_energy(img: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """RMS of the 4-neighbour Laplacian over a Gaussian window: how crisp the edges near each pixel are."""
    return _window_mean(_laplacian(img).pow(2).sum(1, keepdim=True), sigma).add(1e-8).sqrt()


def local_variation(img: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Gradient magnitude (central differences) over a Gaussian window: the same for a ramp and a
    step, more for a halo."""
    p = torch.nn.functional.pad(img, (1, 1, 1, 1), mode="replicate")
    gx = p[..., 1:-1, 2:] - p[..., 1:-1, :-2]
    gy = p[..., 2:, 1:-1] - p[..., :-2, 1:-1]
    return _window_mean((gx * gx + gy * gy).add(1e-8).sqrt().sum(1, keepdim=True), sigma)


def edge_match(img: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per image: match local edge energy and local variation, so crisp steps sit near the target's.

    Regression to a target whose edges cannot be placed to the pixel hedges with a ramp (the
    L2-optimal answer under position uncertainty): a generator in training, and an inversion whose
    fine layers cannot move an edge by a pixel, both blur. Local Laplacian energy is higher for a
    step than for a ramp but indifferent to where within the window the step sits, so it removes
    the hedge without asking for pixel-exact placement. Energy alone is also met by an overshoot
    (a bright rim); local variation is equal for a ramp and a clean step and larger for a rim, so
    matching both leaves the clean step.
    """
    with torch.no_grad():  # the target is constant: no graph for its half
        target_energy, target_variation = local_edge_energy(target), local_variation(target)
    energy = (local_edge_energy(img) - target_energy).abs().flatten(1).mean(1)
    variation = (local_variation(img) - target_variation).abs().flatten(1).mean(1)
    return energy + variation
