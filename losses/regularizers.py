"""Latent and noise regularizers; each returns one value per image ([B])."""

from __future__ import annotations

from typing import Sequence

import torch


def geocross(w: torch.Tensor) -> torch.Tensor:
    """PULSE's GEOCROSS on per-layer latents w [B, L, D]: mean squared geodesic angle ·D/8.

    D_ij = 2·atan2(‖x_i−x_j‖, ‖x_i+x_j‖) is the angle between x_i and x_j (diagonal included).
    """
    x = w[:, None, :, :]
    y = w[:, :, None, :]
    a = ((x - y).pow(2).sum(-1) + 1e-9).sqrt()
    b = ((x + y).pow(2).sum(-1) + 1e-9).sqrt()
    d = 2.0 * torch.atan2(a, b)
    return d.pow(2).mean(dim=(1, 2)) * w.shape[-1] / 8.0


def noise_autocorrelation(noises: Sequence[torch.Tensor]) -> torch.Tensor:
    """rosinality's noise regularizer: squared 1-pixel autocorrelations, down a 2× pyramid to 8×8."""
    total = None
    for n in noises:
        b, size = n.shape[0], n.shape[-1]
        while True:
            term = ((n * torch.roll(n, 1, dims=3)).flatten(1).mean(1).pow(2)
                    + (n * torch.roll(n, 1, dims=2)).flatten(1).mean(1).pow(2))
            total = term if total is None else total + term
            if size <= 8:
                break
            n = n.reshape(b, -1, size // 2, 2, size // 2, 2).mean(dim=(3, 5))
            size //= 2
    if total is None:
        raise ValueError("NOISE needs trainable noise maps (use `noise` trainable)")
    return total


def distance_to_mean(w: torch.Tensor, w_avg: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of every layer's latent to w_avg (keeps codes near the prior)."""
    return (w - w_avg).pow(2).sum(-1).mean(-1) / w.shape[-1]


def layer_spread(w: torch.Tensor) -> torch.Tensor:
    """Spread of the per-layer latents around their mean (pulls W+ toward W)."""
    return (w - w.mean(1, keepdim=True)).pow(2).sum(-1).mean(-1) / w.shape[-1]


def map_smoothness(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Total variation of spatial style maps (1×1 maps contribute nothing)."""
    total = None
    for m in maps:
        if m.dim() != 4 or m.shape[-1] * m.shape[-2] == 1:
            continue
        tv = ((m[..., 1:, :] - m[..., :-1, :]).pow(2).flatten(1).mean(1)
              + (m[..., :, 1:] - m[..., :, :-1]).pow(2).flatten(1).mean(1))
        total = tv if total is None else total + tv
    if total is None:
        raise ValueError("SMOOTH needs spatial style maps (use `space` stylemap with maps larger than 1×1)")
    return total
