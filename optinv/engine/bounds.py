"""Magnitude checks shared by every command that moves a latent or reads a number from a user.

A NaN, an infinity or an absurd finite number (an edit amount of 1e30, ``--truncation 1e30``,
a direction file holding 1e38, a GANSpace ``lat_stdev`` of 1e30) does not fail by itself: the
generator renders a flat or black picture and the command exits 0. optinv bounds the *inputs*
of a render instead of judging its picture: every style vector that is about to be rendered
must be finite and lie within :data:`MAX_SPREADS` times the model's typical distance of a
sample from the average latent. Edits, truncation, mixes and blends all pass through here.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from optinv.errors import OptinvError

MAX_SPREADS = 100.0  # an inverted W+ code lies a few spreads out; truncation ψ ≤ 100 passes
_SPREAD_SAMPLES = 256


def finite_number(value: Any, what: str) -> float:
    """``value`` as a finite float, or one clear error naming ``what`` (the same words as the CLI's)."""
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise OptinvError(f"{what} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(x):
        raise OptinvError(f"{what} must be a finite number, got {value!r}")
    return x


def w_spread(g: Any) -> float:
    """RMS distance of the model's W samples from ``w_avg`` (fixed seed; cached on the model)."""
    cached = getattr(g, "_optinv_w_spread", None)
    if cached is not None:
        return cached
    z = torch.randn(_SPREAD_SAMPLES, g.style_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        w = g.mapping(z.to(g.w_avg.device))
    spread = float((w - g.w_avg).pow(2).sum(-1).mean().sqrt())
    spread = spread if math.isfinite(spread) and spread > 0 else 1.0
    object.__setattr__(g, "_optinv_w_spread", spread)
    return spread


def check_styles(g: Any, styles: torch.Tensor | Sequence[torch.Tensor], what: str = "the latent",
                 maps: bool = False) -> None:
    """Refuse style vectors that are not finite or lie further from ``w_avg`` than
    :data:`MAX_SPREADS` typical distances: they render a flat or black image.

    ``styles``: tensors whose last dimension is the latent's (W [B, D], W+ [B, L, D]); with
    ``maps``, tensors of 3 or more dimensions are style maps [.., D, h, w] (one vector per pixel).
    """
    parts = [styles] if isinstance(styles, torch.Tensor) else list(styles)
    worst = 0.0
    for s in parts:  # on the tensors' own device: a slider render on a GPU copies nothing back
        s = s.detach().float()
        avg = g.w_avg.detach().float().to(s.device)
        if not torch.isfinite(s).all():
            raise OptinvError(f"{what} contains NaN or infinite values (an edit amount or direction that is not "
                              f"a finite number?)")
        vecs = (s.movedim(-3, -1) if maps and s.dim() >= 3 else s).reshape(-1, avg.numel())
        worst = max(worst, float((vecs - avg).norm(dim=-1).max()))
    limit = MAX_SPREADS * w_spread(g)
    if not worst <= limit:
        raise OptinvError(f"{what} lies {worst / w_spread(g):.3g}× the model's typical distance from its average "
                          f"latent (the limit is {MAX_SPREADS:g}×): it would render a flat image; use a smaller "
                          f"amount, truncation or direction")


def truncated_w(g: Any, z: torch.Tensor, psi: float) -> torch.Tensor:
    """W of ``z`` pulled towards ``w_avg`` by ``psi`` (StyleGAN's truncation), checked like any edit:
    ``--truncation 1e30`` is refused instead of rendering a flat image."""
    psi = finite_number(psi, "`truncation`")
    with torch.no_grad():
        w = g.mapping(z)
        if psi != 1.0:
            w = g.w_avg + psi * (w - g.w_avg)
    check_styles(g, w, f"the latent at truncation {psi:g}")
    return w
