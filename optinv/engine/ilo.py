"""Intermediate-layer optimisation (ILO; Daras, Dean, Jalal & Dimakis 2021) as a search mode.

A latent alone can only give what the generator's range holds, so a face unlike the training
faces comes back as a more typical one. ILO widens the range step by step: after a latent
search (by default one w from w_avg, the tightest range: :data:`optinv.engine.presets.ILO_LATENT`; or
the job's own), it frees the feature maps of one intermediate layer at a time (4×4 first, then
8×8, …) and searches them (with ``joint`` together with the latent, as ILO's code does). Each
layer's features may move only within an ℓ1 ball around where the layer before puts them (the
"range of the previous layer"), so the result stays close to something the generator can draw.

The ball's radius is given relative to the ℓ1 norm of the layer's features there, so one
setting carries across models; ILO's own code gives absolute radii for 1024² FFHQ.

The result is the latent plus, at the last layer searched, its features and RGB skip:
rendering starts there (:meth:`optinv.engine.generator.Generator.blocks`), so ``optinv generate
--latent`` re-renders the saved result exactly. The record is stored in the latent file under
``ilo`` (plain tensors, loaded with ``weights_only``) with the model it belongs to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import torch
from torch import nn

from optinv.errors import OptinvError
from optinv.engine.generator import Generator
from optinv.engine.spaces import LatentSpace

ILO_FORMAT = "optinv-ilo"
ILO_VERSION = 1
ILO_STAGE_STEPS = 20  # per intermediate layer (docs/BENCHMARKS.md, "Inverse problems": what each lever gave)
ILO_STEPS = "20,20"   # the 64² model's stages: 4×4, 8×8 (``default_steps`` gives any size's)
ILO_RADIUS = "0.1"
ILO_LR = 0.1          # ILO's code: Adam lr 0.1 with a cosine ramp (up 5 %, down 75 %) per layer
ILO_LATENTS = ("w", "job")  # the latent search before the layers: one w from w_avg (presets.ILO_LATENT), or the job's


@dataclass
class ILOSettings:
    steps: list[int]
    radius: list[float]   # one per layer: fraction of the layer's ℓ1 norm
    lr: float = ILO_LR
    joint: bool = False   # the layer stages move the latent too (ILO's code); default: the features alone

    def record(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "radius": list(self.radius), "lr": self.lr, "joint": self.joint}


def _numbers(text: Any, kind: type, what: str) -> list:
    if isinstance(text, (int, float)):
        return [kind(text)]
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [t for t in str(text).replace(" ", "").split(",") if t]
    try:
        values = [kind(float(t)) if kind is float else int(t) for t in items]
    except ValueError:
        raise OptinvError(f"`{what}` must be a comma-separated list of numbers, got {text!r}") from None
    if not values:
        raise OptinvError(f"`{what}` is empty")
    return values


def default_steps(size: int) -> str:
    """The layer stages for a model of this output side: ⌊log₂ size⌋ // 2 − 1 of them, at least two, from 4×4
    up (64² and 128²: 4², 8²; 256² and 512²: up to 16²; 1024²: up to 32², the four stages of ILO's own
    super-resolution schedule). Measured at 256², ×8 super-resolution, 4 held-out renders, equal time:
    a third stage (16²) gave 30.83 dB against the truth where two gave 29.54 (PULSE: 28.06)."""
    stages = max(2, int(math.log2(size)) // 2 - 1)
    return ",".join([str(ILO_STAGE_STEPS)] * stages)


def parse_ilo(steps: Any, radius: Any, lr: float, joint: bool = False) -> ILOSettings:
    """``"25,25,25"``, ``"0.05"`` (one radius for every layer, or one per layer) and lr → settings."""
    st = _numbers(steps, int, "ilo_steps")
    if any(s < 0 for s in st) or not any(s > 0 for s in st):
        raise OptinvError(f"`ilo_steps` must be integers ≥ 0 with at least one > 0, got {steps!r}")
    rad = _numbers(radius, float, "ilo_radius")
    if len(rad) == 1:
        rad = rad * len(st)
    if len(rad) != len(st):
        raise OptinvError(f"`ilo_radius` gives {len(rad)} radii for {len(st)} layers: give one, or one per layer")
    if any(not (math.isfinite(r) and r >= 0) for r in rad):
        raise OptinvError(f"`ilo_radius` values must be finite and ≥ 0, got {radius!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise OptinvError(f"`ilo_lr` must be a positive number, got {lr}")
    return ILOSettings(st, rad, float(lr), bool(joint))


def check_layers(g: Generator, s: ILOSettings) -> None:
    """The schedule names no more layers than the generator has (its last is the image's)."""
    sides = g.layer_sides()
    if len(s.steps) > len(sides):
        raise OptinvError(f"`ilo_steps` lists {len(s.steps)} layers; this {g.size}² model has {len(sides)} "
                          f"intermediate layers ({', '.join(f'{x}²' for x in sides)})")


def project_l1(v: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Euclidean projection of each row of ``v`` [B, …] onto the ℓ1 ball of ``radius`` [B]
    (Duchi et al. 2008: soft-threshold by the θ that makes the ℓ1 norm equal the radius)."""
    flat = v.flatten(1)
    a = flat.abs()
    inside = a.sum(1) <= radius
    mu = a.sort(1, descending=True).values
    cs = mu.cumsum(1)
    j = torch.arange(1, flat.shape[1] + 1, device=v.device, dtype=v.dtype)
    rho = (mu - (cs - radius[:, None]) / j > 0).sum(1)
    theta = (cs.gather(1, (rho - 1).clamp_min(0)[:, None])[:, 0] - radius) / rho.clamp_min(1)
    shrunk = flat.sign() * (a - theta[:, None]).clamp_min(0)
    return torch.where(inside[:, None], flat, shrunk).view_as(v)


def per_layer(styles: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """W+ [B, L, D] or a list of per-layer styles → a list (what the generator's blocks index)."""
    return list(styles.unbind(1)) if isinstance(styles, torch.Tensor) else list(styles)


class ILOSpace(LatentSpace):
    """The job's space plus the free features of one intermediate layer (its RGB skip held).

    Renders from that layer on; after each step the base space re-projects (e.g. Z+ onto its
    sphere) and the features go back into their ℓ1 ball around ``centre``.
    """

    def __init__(self, g: Generator, base: LatentSpace, layer: int, features: torch.Tensor, skip: torch.Tensor,
                 radius: torch.Tensor):
        super().__init__(g)
        self.base, self.layer, self.name = base, layer, base.name
        self.features = nn.Parameter(features.detach().clone())
        self.register_buffer("centre", features.detach().clone())
        self.register_buffer("skip", skip.detach().clone())
        self.register_buffer("radius", radius.detach().clone())

    @property
    def n_vectors(self) -> int:
        return self.base.n_vectors

    def to_styles(self):
        return self.base.to_styles()

    def layer_vectors(self) -> torch.Tensor:
        return self.base.layer_vectors()

    def style_maps(self) -> list[torch.Tensor]:
        return self.base.style_maps()

    def jitter(self, styles, std: float, gen: torch.Generator | None = None):
        return self.base.jitter(styles, std, gen)

    def render(self, g: Generator, styles, noise: Sequence[torch.Tensor]) -> torch.Tensor:
        return g.blocks(self.features, self.skip, per_layer(styles), noise, self.layer)[1]

    @torch.no_grad()
    def project_(self) -> None:
        self.base.project_()
        self.features.copy_(self.centre + project_l1(self.features - self.centre, self.radius))

    def moved(self) -> torch.Tensor:
        """‖features − centre‖₁ / ‖centre‖₁ per image: how far the layer moved, relative."""
        with torch.no_grad():
            return ((self.features - self.centre).abs().flatten(1).sum(1)
                    / self.centre.abs().flatten(1).sum(1).clamp_min(1e-12))


def stage_settings(settings: Any, steps: int, lr: float) -> Any:
    """A layer stage's optimiser settings: ILO's lr and cosine ramp, noise as found, no eps
    (an image that met eps with its latent alone may still come closer to the truth)."""
    return replace(settings, steps=steps, lr=lr, schedule="cosine-ramp", lr_rampup=0.05, lr_rampdown=0.75,
                   noise="fixed", latent_noise=0.0, eps=None, frame_every=0)


def refine(g: Generator, space: LatentSpace, res: Any, problem: Any, objective: Any, settings: Any,
           ilo: ILOSettings, *, lpips: Callable | None = None, domain: Callable | None = None,
           callback: Callable | None = None, preview: Callable | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """The ILO stages after the job's latent search ``res`` (an :class:`optinv.engine.optimize.Result`).

    Returns the final Result (latent tensors named as ``space`` names them, the noise as found)
    and one ILO record per image for its latent file. Without ``ilo.joint`` the latent stays where
    the search left it and only the features move: a second ramp of the latent's learning rate
    undid part of a converged search (docs/BENCHMARKS.md, "Inverse problems").
    """
    from optinv.io.checkpoints import model_id
    from optinv.engine.optimize import run

    check_layers(g, ilo)
    with torch.no_grad():
        for name, p in space.named_parameters():
            p.copy_(res.latent[name].to(p.device))
    noise = [n.detach().to(g.w_avg.device) for n in res.noise]
    sides = g.layer_sides()
    batch = problem.target.shape[0]
    moved: list[list[dict[str, Any]]] = [[] for _ in range(batch)]
    history, seconds, steps_run = list(res.history), res.seconds, res.steps_run
    cur: ILOSpace | None = None
    last = res
    held = [] if ilo.joint else [p for p in space.parameters() if p.requires_grad]
    for p in held:  # the optimiser skips parameters without a gradient
        p.requires_grad_(False)
    try:
        for b, (n, r) in enumerate(zip(ilo.steps, ilo.radius)):
            with torch.no_grad():
                styles = per_layer(space.to_styles())
                if cur is None:
                    out, skip = g.stem(styles, noise)
                else:  # the range of the layer before: its searched features carried one block on
                    out, skip = g.blocks(cur.features, cur.skip, styles, noise, b - 1, b)
            if n == 0:
                cur = ILOSpace(g, space, b, out, skip, torch.zeros(batch, device=out.device))
                continue
            radius = r * out.abs().flatten(1).sum(1)
            cur = ILOSpace(g, space, b, out, skip, radius)
            last = run(g, cur, problem, objective, stage_settings(settings, n, ilo.lr), lpips=lpips, domain=domain,
                       callback=callback, preview=preview, noise_init=noise)
            with torch.no_grad():
                for name, p in cur.named_parameters():
                    p.copy_(last.latent[name].to(p.device))
            far = cur.moved()
            for k in range(batch):
                moved[k].append({"layer": b, "side": sides[b], "channels": int(out.shape[1]), "steps": n,
                                 "radius": r, "moved": round(float(far[k]), 6),
                                 "at_bound": bool(r > 0 and float(far[k]) >= r * (1 - 1e-4))})
            history += last.history
            seconds += last.seconds
            steps_run += last.steps_run
    finally:
        for p in held:
            p.requires_grad_(True)
    assert cur is not None
    base_names = [name for name, _ in space.named_parameters()]
    last.latent = {name: last.latent.get(f"base.{name}", res.latent[name]) for name in base_names}
    last.noise = [n.detach().cpu() for n in noise]
    last.history, last.seconds, last.steps_run = history, seconds, steps_run
    last.frames = list(res.frames)
    mid = model_id(g)
    records = [{"format": ILO_FORMAT, "version": ILO_VERSION, "base_model": mid, "layer": cur.layer,
                "features": cur.features[k:k + 1].detach().cpu().clone(), "skip": cur.skip[k:k + 1].detach().cpu().clone(),
                "moved": moved[k], "settings": ilo.record()} for k in range(batch)]
    return last, records


# ----------------------------------------------------------------------------- stored records
def validate_ilo(rec: Any, g: Generator | None = None) -> dict[str, Any]:
    """Check a stored ILO record (and that it belongs to ``g``): one :class:`OptinvError` if not."""
    if not isinstance(rec, dict) or rec.get("format") != ILO_FORMAT:
        raise OptinvError("'ilo' is not an optinv ILO record")
    layer = rec.get("layer")
    if not isinstance(layer, int) or isinstance(layer, bool) or layer < 0:
        raise OptinvError(f"ILO record has layer {layer!r}, expected an integer ≥ 0")
    for key, ch in (("features", None), ("skip", 3)):
        t = rec.get(key)
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() != 4 or t.shape[0] != 1:
            raise OptinvError(f"ILO {key} must be a floating-point tensor [1, C, s, s]")
        if ch is not None and t.shape[1] != ch:
            raise OptinvError(f"ILO {key} has {t.shape[1]} channels, expected {ch}")
        if not torch.isfinite(t).all():
            raise OptinvError(f"ILO {key} contains NaN or Inf values")
    if rec["features"].shape[-2:] != rec["skip"].shape[-2:]:
        raise OptinvError("ILO features and skip differ in size")
    if g is not None:
        from optinv.io.checkpoints import model_id

        if rec.get("base_model") != model_id(g):
            raise OptinvError(f"the latent's ILO features belong to model {rec.get('base_model')}, not this model "
                              f"{model_id(g)}: intermediate features only mean something in the generator that "
                              f"made them")
        sides = g.layer_sides()
        if layer >= len(sides):
            raise OptinvError(f"ILO layer {layer} does not exist in this {g.size}² model ({len(sides)} layers)")
        want = (1, g.channels[sides[layer]], sides[layer], sides[layer])
        if tuple(rec["features"].shape) != want:
            raise OptinvError(f"ILO features have shape {tuple(rec['features'].shape)}, this model's layer {layer} "
                              f"{want}")
    return rec


def render(g: Generator, rec: dict[str, Any], styles, noise: Sequence[torch.Tensor]) -> torch.Tensor:
    """The image ([1, 3, R, R] in [-1, 1]) of a latent with its ILO record: the saved layer on."""
    dev = g.w_avg.device
    return g.blocks(rec["features"].to(dev), rec["skip"].to(dev), per_layer(styles), noise, rec["layer"])[1]


def summary(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Which layers moved and how far (for NAME.json)."""
    return [dict(m) for m in rec.get("moved", [])]
