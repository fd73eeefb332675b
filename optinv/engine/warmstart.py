"""Encoder warm starts and the In-Domain regularizer, wired to the spaces.

A model card may list encoders (``card["encoders"] = {"wplus": FILE, "stylemap": FILE}``,
paths relative to the model's folder); ``--encoder FILE`` overrides. W/W+ spaces use the
W+ encoder, StyleMap spaces prefer the StyleMap encoder and fall back to the W+ one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from optinv.io.checkpoints import SAMPLES_MODELS
from optinv.engine.encoder import Encoder, grow_encoder, iterate, load_encoder
from optinv.errors import OptinvError
from optinv.engine.generator import Generator
from optinv.io.ranges import to_unit
from optinv.engine.spaces import LatentSpace, StyleMapSpace, make_space


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
        return fit_to_generator(load_encoder(explicit, device=g.w_avg.device), g, explicit)
    kinds = ["stylemap", "wplus"] if space == "stylemap" else ["wplus"]
    for kind in kinds:
        p = _card_encoder_path(g, kind)
        if p is not None:
            return fit_to_generator(load_encoder(p, device=g.w_avg.device), g, p)
    return None


def fit_to_generator(enc: Encoder, g: Generator, source: str | Path) -> Encoder:
    """The encoder as this generator needs it, or a one-line error when it belongs to another.

    An encoder of the model a generator was grown from (``grown_from`` in the generator's card)
    serves it with its codes extended to the grown layers (``encoder.grow_encoder``).
    """
    if enc.style_dim != g.style_dim or enc.layers > g.n_latent:
        raise OptinvError(f"encoder {Path(source).name} predicts {enc.layers} layers of {enc.style_dim}-d styles; "
                          f"this generator takes {g.n_latent} of {g.style_dim}: it belongs to another model")
    if enc.layers == g.n_latent:
        return enc
    parent = g.card.get("grown_from")
    if parent is None or parent != enc.card.get("generator"):
        raise OptinvError(f"encoder {Path(source).name} predicts {enc.layers} layers; this generator takes "
                          f"{g.n_latent} and was not grown from {enc.card.get('generator', 'its model')}: "
                          f"train one for it with `optinv train-encoder`")
    return grow_encoder(enc, g.n_latent)


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


MAX_PASS_FACTOR = 2  # measured: 30 passes of a 4-pass encoder lose 12 dB, 100 give a saturated image


@torch.no_grad()
def encode(enc: Encoder, images: torch.Tensor, g: Generator | None = None,
           passes: int | None = None) -> torch.Tensor | list[torch.Tensor]:
    """Images in [0, 1] → the encoder's codes (W+ tensor or list of maps). An iterative
    encoder renders its intermediate answers with ``g`` (``passes`` rounds, default as trained)."""
    images = images.to(enc.w_avg.device)
    if not enc.iterative:
        return enc(images)
    if passes is not None and passes > MAX_PASS_FACTOR * enc.passes:
        raise OptinvError(f"`encoder_passes` {passes} is more than {MAX_PASS_FACTOR}× the {enc.passes} passes this "
                          f"encoder was trained for: further passes saturate the image instead of refining it")
    if g is None:
        raise OptinvError("an iterative encoder needs the generator to render its intermediate answers")
    return iterate(enc, lambda codes: to_unit(g.synthesis(codes)).clamp(0, 1), images, passes)


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
    """In-Domain inversion's ‖latent − E(G(latent))‖², per image, mean over layers and dims.
    An iterative encoder contributes its first pass (each further pass would add a render and
    its backward to every step)."""

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
        raise OptinvError(f"{why} needs an encoder: this model's card lists none; pass `encoder` FILE, or train one "
                          f"for this model: `optinv train-encoder RUN_DIR --model MODEL`, then the same with "
                          f"`--export FILE` writes it")
    return enc


# ------------------------------------------------------------------ where a job's latents start
INITS = ("auto", "mean", "random", "encoder")


@dataclass
class Start:
    """How one job's latents start: ``init`` resolved (auto → encoder or mean) and its encoder."""

    space: str
    init: str                        # mean | random | encoder (zplus: random z from each image's seed)
    encoder: Encoder | None
    map_sizes: list[int] | None
    tile: bool = False
    zplus_mapping: str = "gaussian"
    encoder_passes: int | None = None  # iterative encoders: None = as trained


def plan_start(g: Generator, space: str, init: str, encoder_file: str | None, needs_encoder: bool,
               map_sizes: list[int] | None, tile: bool, zplus_mapping: str,
               encoder_passes: int | None = None) -> Start:
    """Resolve ``init`` and find the encoder it (or a DOMAIN term) needs, before any work is done."""
    enc = None
    if init in ("auto", "encoder") or needs_encoder:
        enc = find_encoder(g, space, encoder_file)
    if init == "auto":
        init = "encoder" if enc is not None and space != "zplus" else "mean"
    if init == "encoder":
        if space == "zplus":
            raise OptinvError("`init` encoder works in w, wplus and stylemap spaces (zplus starts on the sphere)")
        require(enc, "`init` encoder")
    return Start(space, init, enc, map_sizes, tile, zplus_mapping, encoder_passes)


def mean_or_random_wplus(g: Generator, init: str, n: int, seed: int) -> torch.Tensor:
    """W+ codes [n, L, D] at w_avg (``mean``) or at the mapping of one random z (``random``)."""
    if init == "mean":
        return g.w_avg[None, None].expand(n, g.n_latent, -1).clone()
    if init == "random":
        z = torch.randn(n, g.style_dim, generator=torch.Generator().manual_seed(seed)).to(g.w_avg.device)
        with torch.no_grad():
            return g.mapping(z)[:, None].expand(-1, g.n_latent, -1).clone()
    raise OptinvError(f"unknown `init` {init!r} (known: {', '.join(INITS)})")


def starting_space(g: Generator, start: Start, targets: torch.Tensor, seeds: Sequence[int], seed: int) -> LatentSpace:
    """The space for one batch of targets in [0, 1], at its starting point.

    zplus draws each image's z from its own seed (so duplicates differ and results do not
    depend on the batch); the other spaces start from the encoder, w_avg or one random w.
    """
    b = targets.shape[0]
    init_w, init_maps, init_z = None, None, None
    if start.init == "encoder":
        codes = encode(start.encoder, targets, g, start.encoder_passes)
        init_w = initial_wplus(codes)
        if start.space == "stylemap":
            init_maps = initial_maps(codes, start.map_sizes)
    elif start.space != "zplus":
        init_w = mean_or_random_wplus(g, start.init, b, seed)
    if start.space == "zplus":
        init_z = torch.cat([torch.randn(1, 1 if start.tile else g.n_latent, g.style_dim,
                                        generator=torch.Generator().manual_seed(s)) for s in seeds])
    space = make_space(start.space, g, init_w, batch=b, tile=start.tile, zplus_mapping=start.zplus_mapping,
                       map_sizes=start.map_sizes, init_z=init_z)
    if init_maps is not None:
        space = StyleMapSpace.from_maps(g, init_maps)
    return space
