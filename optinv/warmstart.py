"""Encoder warm starts and the In-Domain regularizer, wired to the spaces.

A model card may list encoders (``card["encoders"] = {"wplus": FILE, "stylemap": FILE}``,
paths relative to the model's folder); ``--encoder FILE`` overrides. W/W+ spaces use the
W+ encoder, StyleMap spaces prefer the StyleMap encoder and fall back to the W+ one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .checkpoints import SAMPLES_MODELS
from .encoder import Encoder, load_encoder
from .errors import OptinvError
from .generator import Generator


def _card_encoder_path(g: Generator, kind: str) -> Path | None:
    rel = g.card.get("encoders", {}).get(kind)
    if not rel:
        return None
    base = Path(g.card["source_file"]).parent if g.card.get("source_file") else SAMPLES_MODELS
    for cand in (base / rel, SAMPLES_MODELS / rel):
        if cand.exists():
            return cand
    return None


def find_encoder(g: Generator, space: str, explicit: str | None = None) -> Encoder | None:
    """The encoder for this space: an explicit file, else the card's (StyleMap → W+ fallback)."""
    if explicit:
        return load_encoder(explicit, device=g.w_avg.device)
    kinds = ["stylemap", "wplus"] if space == "stylemap" else ["wplus"]
    for kind in kinds:
        p = _card_encoder_path(g, kind)
        if p is not None:
            return load_encoder(p, device=g.w_avg.device)
    return None


def _maps_to_sizes(maps: list[torch.Tensor], sizes: list[int]) -> list[torch.Tensor]:
    out = []
    for m, s in zip(maps, sizes):
        if m.shape[-1] == s:
            out.append(m)
        elif m.shape[-1] == 1:
            out.append(m.expand(-1, -1, s, s).clone())
        else:
            out.append(F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False))
    return out


@torch.no_grad()
def encode(enc: Encoder, images: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
    """Images in [0, 1] → the encoder's codes (W+ tensor or list of maps)."""
    return enc(images.to(enc.w_avg.device))


def initial_maps(codes: torch.Tensor | list[torch.Tensor], sizes: list[int]) -> list[torch.Tensor]:
    """Encoder output as StyleMap initialisation at the requested sizes."""
    if isinstance(codes, torch.Tensor):
        codes = [codes[:, i, :, None, None] for i in range(codes.shape[1])]
    return _maps_to_sizes(list(codes), sizes)


def initial_wplus(codes: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    if isinstance(codes, torch.Tensor):
        return codes
    return torch.stack([m.mean(dim=(2, 3)) for m in codes], 1)


def domain_term(enc: Encoder) -> Callable:
    """In-Domain inversion's ‖latent − E(G(latent))‖², per image, mean over layers and dims."""

    def domain(ctx) -> torch.Tensor:
        pred = enc(ctx.image)
        if isinstance(pred, torch.Tensor) or not ctx.maps:
            return (ctx.w - initial_wplus(pred)).pow(2).mean(dim=(1, 2))
        sizes = [m.shape[-1] for m in ctx.maps]
        per_layer = [(m - p).pow(2).mean(dim=(1, 2, 3)) for m, p in zip(ctx.maps, initial_maps(pred, sizes))]
        return torch.stack(per_layer, 1).mean(1)

    return domain


def require(enc: Encoder | None, why: str) -> Encoder:
    if enc is None:
        raise OptinvError(f"{why} needs an encoder: this model's card lists none; pass --encoder FILE "
                          f"(scripts/train_encoder.py trains one)")
    return enc
