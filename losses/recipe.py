"""Loss recipes: ``"100*L2+0.05*GEOCROSS"`` → a weighted sum of per-image terms.

Weights take any float syntax (``5e-5``, ``.8``, ``1E2``), spaces are allowed, a bare name
means weight 1. Unknown names and terms that cannot apply to the job are refused with a
message that lists what is known.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

import torch

from optinv.errors import OptinvError

from . import pixel, regularizers


class RecipeError(OptinvError, ValueError):
    """A recipe string that cannot be parsed or does not fit the job."""


@dataclass
class StepContext:
    """What one optimisation step exposes to loss terms (images in [0, 1])."""

    pred: torch.Tensor                 # A(G(latent)), compared with target
    target: torch.Tensor
    image: torch.Tensor                # full-resolution G(latent)
    w: torch.Tensor                    # per-layer latents [B, L, D] (maps: spatial mean)
    w_avg: torch.Tensor
    alpha: torch.Tensor | None = None
    maps: list[torch.Tensor] = field(default_factory=list)
    noises: list[torch.Tensor] = field(default_factory=list)
    lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    domain: Callable[["StepContext"], torch.Tensor] | None = None
    data_weight: float = 1.0           # the operator's trust in the observation (noise level): scales data terms


@dataclass(frozen=True)
class Term:
    name: str
    help: str
    fn: Callable[[StepContext], torch.Tensor]
    needs: str = ""                    # "", "alpha", "vectors", "noise", "maps", "lpips", "encoder"
    data: bool = False                 # compares the observation (scaled by the operator's data weight)


def _l2a(c: StepContext) -> torch.Tensor:
    if c.alpha is None:
        raise RecipeError("L2A needs an alpha channel (a paint job)")
    return pixel.l2_alpha(c.pred, c.target, c.alpha)


TERMS: dict[str, Term] = {t.name: t for t in [
    Term("L2", "mean squared error through the forward operator", lambda c: pixel.l2(c.pred, c.target), data=True),
    Term("L1", "mean absolute error through the forward operator", lambda c: pixel.l1(c.pred, c.target), data=True),
    Term("L2A", "alpha-weighted squared error (paint)", _l2a, "alpha", data=True),
    Term("LPIPS", "learned perceptual distance (lpips package)", lambda c: c.lpips(c.pred, c.target), "lpips",
         data=True),
    Term("SSIM", "1 − SSIM through the forward operator (structure; needs no download)",
         lambda c: pixel.dssim(c.pred, c.target), data=True),
    Term("MSSSIM", "1 − MS-SSIM through the forward operator (structure at several scales)",
         lambda c: pixel.dmsssim(c.pred, c.target), data=True),
    Term("EDGE", "match of local edge energy and variation: crisp edges near the target's, no halos",
         lambda c: pixel.edge_match(c.pred, c.target), data=True),
    Term("GEOCROSS", "PULSE's geodesic cross loss between layer latents", lambda c: regularizers.geocross(c.w), "vectors"),
    Term("NOISE", "autocorrelation of trainable noise maps (rosinality)", lambda c: regularizers.noise_autocorrelation(c.noises), "noise"),
    Term("WAVG", "squared distance of each layer latent to w_avg", lambda c: regularizers.distance_to_mean(c.w, c.w_avg)),
    Term("DELTA", "spread of the layer latents around their mean", lambda c: regularizers.layer_spread(c.w), "vectors"),
    Term("SMOOTH", "total variation of style maps", lambda c: regularizers.map_smoothness(c.maps), "maps"),
    Term("DOMAIN", "‖latent − E(G(latent))‖² with the model's encoder (In-Domain inversion)", lambda c: c.domain(c), "encoder"),
]}

_TOKEN = re.compile(r"^\s*(?:([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*\*\s*)?([A-Za-z][A-Za-z0-9_]*)\s*$")


FLOAT32_TINY = float(torch.finfo(torch.float32).tiny)  # smaller weights round to 0 where losses are summed


def known_terms() -> str:
    return ", ".join(TERMS)


def parse_recipe(text: str) -> list[tuple[float, str]]:
    """Parse ``w1*NAME1 + w2*NAME2 …`` into [(weight, NAME)]; names are case-insensitive."""
    if not isinstance(text, str) or not text.strip():
        raise RecipeError(f"empty loss recipe; write e.g. '1*L2+0.8*LPIPS' (known terms: {known_terms()})")
    parts = re.split(r"(?<![0-9.][eE])\+", text)  # a '+' inside 1e+2 is not a separator
    out: list[tuple[float, str]] = []
    for part in parts:
        m = _TOKEN.match(part)
        if not m:
            raise RecipeError(f"cannot parse {part.strip()!r} in recipe {text!r}: write WEIGHT*NAME, e.g. 0.05*GEOCROSS")
        weight = float(m.group(1)) if m.group(1) is not None else 1.0
        name = m.group(2).upper()
        if name not in TERMS:
            raise RecipeError(f"unknown loss term {m.group(2)!r} in {text!r} (known: {known_terms()})")
        if not math.isfinite(weight) or weight < 0:
            raise RecipeError(f"weight of {name} must be a finite number ≥ 0, got {m.group(1)}")
        if 0 < weight < FLOAT32_TINY:
            raise RecipeError(f"weight of {name} is {m.group(1)}, which is 0 in the optimiser's float32 "
                              f"arithmetic: write 0 or a weight ≥ {FLOAT32_TINY:.2g}")
        if any(n == name for _, n in out):
            raise RecipeError(f"{name} appears twice in {text!r}")
        out.append((weight, name))
    if all(w == 0 for w, _ in out):
        raise RecipeError(f"every weight in recipe {text!r} is 0, so nothing would be optimised; "
                          f"give at least one term a weight > 0")
    if not any(w > 0 and TERMS[n].data for w, n in out):
        raise RecipeError(f"recipe {text!r} has no term that compares the result with the image "
                          f"({', '.join(t.name for t in TERMS.values() if t.data)}) with a weight > 0: it would "
                          f"ignore the image; add one, e.g. 1*L2+{format_recipe(out)}")
    return out


def format_recipe(terms: list[tuple[float, str]]) -> str:
    return "+".join(f"{w:g}*{n}" for w, n in terms)


class Objective:
    """A validated recipe: call it on a StepContext to get (total [B], {name: [B]})."""

    def __init__(self, terms: list[tuple[float, str]]):
        self.terms = terms

    @property
    def names(self) -> list[str]:
        return [n for _, n in self.terms]

    def needs(self, what: str) -> bool:
        return any(TERMS[n].needs == what for n in self.names)

    def check(self, *, space: str, n_vectors: int, has_alpha: bool, trainable_noise: bool,
              has_maps: bool, has_encoder: bool) -> None:
        """Refuse terms that cannot do anything for this job, with the reason."""
        for _, n in self.terms:
            need = TERMS[n].needs
            if need == "alpha" and not has_alpha:
                raise RecipeError(f"{n} needs an RGBA reference (optinv paint); this job has none")
            if need == "vectors" and n_vectors < 2:
                raise RecipeError(f"{n} compares layer latents; space {space!r} has one vector (use wplus, zplus or stylemap)")
            if need == "noise" and not trainable_noise:
                raise RecipeError(f"{n} regularises trainable noise; use `noise` trainable")
            if need == "maps" and not has_maps:
                raise RecipeError(f"{n} needs spatial style maps (`space` stylemap with maps larger than 1×1)")
            if need == "encoder" and not has_encoder:
                raise RecipeError(f"{n} needs an encoder for this model (`encoder` FILE)")

    def __call__(self, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = {n: TERMS[n].fn(ctx) for _, n in self.terms}
        scale = {n: ctx.data_weight if TERMS[n].data else 1.0 for _, n in self.terms}
        total = sum(w * scale[n] * parts[n] for w, n in self.terms)
        return total, parts


def build_objective(text: str) -> Objective:
    return Objective(parse_recipe(text))
