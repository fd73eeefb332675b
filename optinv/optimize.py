"""The per-image optimisation loop shared by invert, pulse and paint.

Design points (each one a complaint about a reference implementation):
- every image in a batch has its own latent and noise and a per-image loss; the batch loss is
  their sum, so image k's result does not depend on the batch size;
- the best-so-far latent of each image is returned (PULSE returns the last one, or nothing);
- a non-finite loss freezes only that image and keeps its best; the others go on;
- ``eps`` optionally stops an image once its data term (unweighted) reaches it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from losses.recipe import Objective, StepContext

from .errors import OptinvError
from .generator import Generator
from .spaces import LatentSpace

SCHEDULES = ("fixed", "linear1cycledrop", "cosine-ramp")
NOISE_MODES = ("zero", "fixed", "trainable", "random")
OPTIMIZERS = ("adam", "sgd", "adamax")


@dataclass
class Settings:
    steps: int = 200
    lr: float = 0.1
    optimizer: str = "adam"
    schedule: str = "fixed"
    lr_rampup: float = 0.05          # cosine-ramp (rosinality/NVIDIA)
    lr_rampdown: float = 0.25
    noise: str = "fixed"             # zero | fixed | trainable | random
    trainable_noise: int = 0         # trainable: first k noise layers (0 = all)
    noise_renorm: bool = False       # rosinality: re-standardise trainable noise every step
    latent_noise: float = 0.0        # rosinality: perturbation std (× latent std) ramped down
    latent_noise_ramp: float = 0.75
    eps: float | None = None         # stop an image once its data term ≤ eps
    seed: int = 0
    progress: bool = True
    frame_every: int = 0             # record an intermediate frame every k steps (GIF)

    def validate(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise OptinvError(f"steps must be a positive integer, got {self.steps}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise OptinvError(f"lr must be a positive number, got {self.lr}")
        for value, known, what in ((self.schedule, SCHEDULES, "schedule"), (self.noise, NOISE_MODES, "noise"),
                                   (self.optimizer, OPTIMIZERS, "optimizer")):
            if value not in known:
                raise OptinvError(f"unknown {what} {value!r} (known: {', '.join(known)})")
        if self.eps is not None and not (self.eps >= 0):
            raise OptinvError(f"eps must be ≥ 0, got {self.eps}")


def lr_at(s: Settings, step: int) -> float:
    """Learning rate for step ``step`` (0-based) under the chosen schedule."""
    t = step / max(s.steps, 1)
    if s.schedule == "linear1cycledrop":  # PULSE: 0.1→1→0.1 over 90 %, then 0.1→0.001
        cycle = int(0.9 * s.steps)
        if step < cycle:
            half = max(cycle / 2, 1)
            frac = step / half if step < half else 2 - step / half
            return s.lr * (0.1 + 0.9 * frac)
        tail = max(s.steps - cycle, 1)
        return s.lr * (0.1 - 0.099 * (step - cycle) / tail)
    if s.schedule == "cosine-ramp":  # rosinality / NVIDIA projector
        ramp = min(1.0, (1 - t) / s.lr_rampdown) if s.lr_rampdown > 0 else 1.0
        ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
        return s.lr * ramp * (min(1.0, t / s.lr_rampup) if s.lr_rampup > 0 else 1.0)
    return s.lr


@dataclass
class Problem:
    """One batch: B targets in [0, 1], the operator that maps G's output to them, optional alpha."""

    target: torch.Tensor
    operator: torch.nn.Module
    alpha: torch.Tensor | None = None
    data_term: str = "L2"              # which term ``eps`` and "fit" refer to


@dataclass
class Result:
    images: torch.Tensor               # best full-resolution images in [0, 1], [B, 3, R, R]
    observed: torch.Tensor             # operator(images)
    latent: dict[str, torch.Tensor]    # best latent tensors (batch first)
    noise: list[torch.Tensor]          # best noise maps (batch first)
    loss: torch.Tensor                 # best total loss per image
    terms: dict[str, torch.Tensor]     # per-term values at the best step
    best_step: torch.Tensor            # step at which each image's best was found
    status: list[str]                  # "ok" | "eps" | "nan" per image
    steps_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    frames: list[torch.Tensor] = field(default_factory=list)

    def summary(self, k: int) -> dict:
        return {"loss": float(self.loss[k]), "best_step": int(self.best_step[k]), "status": self.status[k],
                **{f"term_{n}": float(v[k]) for n, v in self.terms.items()}}


class NoiseState:
    """Per-image noise maps: zero, the model's fixed buffers, random, or trainable (first k)."""

    def __init__(self, g: Generator, batch: int, mode: str, trainable: int, gen: torch.Generator):
        dev = g.w_avg.device
        self.maps: list[torch.Tensor] = []
        self.trainable: list[torch.Tensor] = []
        k = trainable or g.num_layers
        for i, buf in enumerate(g.noise_list()):
            if mode == "zero":
                n = torch.zeros(batch, *buf.shape[1:], device=dev)
            elif mode == "random":
                n = torch.randn(batch, *buf.shape[1:], generator=gen).to(dev)
            else:
                n = buf.expand(batch, -1, -1, -1).clone()
            if mode == "trainable" and i < k:
                n.requires_grad_(True)
                self.trainable.append(n)
            self.maps.append(n)

    @torch.no_grad()
    def renormalise_(self) -> None:
        for n in self.trainable:
            mean = n.mean(dim=(1, 2, 3), keepdim=True)
            std = n.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
            n.sub_(mean).div_(std)


def _make_optimizer(name: str, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamax":
        return torch.optim.Adamax(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def _rows(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (t.dim() - 1)))


def run(g: Generator, space: LatentSpace, problem: Problem, objective: Objective, settings: Settings,
        *, lpips: Callable | None = None, domain: Callable | None = None,
        callback: Callable[[int, dict, dict], None] | None = None,
        preview: Callable[[int, torch.Tensor], None] | None = None) -> Result:
    """Minimise the objective over the space's latents (and trainable noise) for a batch."""
    settings.validate()
    batch = problem.target.shape[0]
    gen = torch.Generator().manual_seed(settings.seed)
    noise = NoiseState(g, batch, settings.noise, settings.trainable_noise, gen)
    objective.check(space=space.name, n_vectors=space.n_vectors, has_alpha=problem.alpha is not None,
                    trainable_noise=bool(noise.trainable), has_maps=any(m.shape[-1] > 1 for m in space.style_maps()),
                    has_encoder=domain is not None)
    if objective.needs("lpips") and lpips is None:
        raise OptinvError("the recipe names LPIPS but no LPIPS model was given")
    params = list(space.parameters()) + noise.trainable
    opt = _make_optimizer(settings.optimizer, params, settings.lr)
    w_std = None
    if settings.latent_noise > 0:
        w_std = float(space.layer_vectors().detach().std())  # scale of the perturbation

    dev = problem.target.device
    active = torch.ones(batch, dtype=torch.bool, device=dev)
    status = ["ok"] * batch
    best_loss = torch.full((batch,), float("inf"), device=dev)
    best_step = torch.zeros(batch, dtype=torch.long)
    best_latent = {k: v.detach().clone() for k, v in space.named_parameters()}
    best_noise = [n.detach().clone() for n in noise.maps]
    best_images = torch.zeros(batch, 3, g.size, g.size, device=dev)
    best_terms: dict[str, torch.Tensor] = {}
    history: list[dict[str, float]] = []
    frames: list[torch.Tensor] = []
    target, alpha = problem.target, problem.alpha

    bar = None
    if settings.progress:
        from tqdm import tqdm
        bar = tqdm(total=settings.steps, unit="step", dynamic_ncols=True, leave=False)
    t0 = time.perf_counter()
    steps_run = 0
    for step in range(settings.steps + 1):  # the last pass only evaluates (no update after it)
        lr = lr_at(settings, min(step, settings.steps - 1))
        for group in opt.param_groups:
            group["lr"] = lr
        styles = space.to_styles()
        if w_std is not None and step < settings.steps:
            t = step / settings.steps
            strength = w_std * settings.latent_noise * max(0.0, 1 - t / settings.latent_noise_ramp) ** 2
            if strength > 0:  # gradient taken at a jittered latent, update applied to the latent
                styles = space.jitter(styles, strength, gen)
        image = (g.synthesis(styles, noise=noise.maps) + 1) / 2
        pred = problem.operator(image)
        ctx = StepContext(pred=pred, target=target, image=image, w=space.layer_vectors(), w_avg=g.w_avg,
                          alpha=alpha, maps=space.style_maps(), noises=noise.trainable, lpips=lpips, domain=domain)
        total, parts = objective(ctx)
        with torch.no_grad():
            finite = torch.isfinite(total)
            newly_bad = active & ~finite
            for k in newly_bad.nonzero().flatten().tolist():
                status[k] = "nan"
            active &= finite
            improved = active & (total < best_loss)
            if improved.any():
                best_loss = torch.where(improved, total, best_loss)
                best_step[improved.cpu()] = step
                for k, v in space.named_parameters():
                    best_latent[k] = torch.where(_rows(v, improved), v.detach(), best_latent[k])
                best_noise = [torch.where(_rows(n, improved), n.detach(), b) for n, b in zip(noise.maps, best_noise)]
                best_images = torch.where(_rows(image, improved), image.detach(), best_images)
                for n, v in parts.items():
                    prev = best_terms.get(n, torch.full_like(v.detach(), float("nan")))
                    best_terms[n] = torch.where(improved, v.detach(), prev)
            if settings.eps is not None and problem.data_term in parts:
                reached = active & (parts[problem.data_term] <= settings.eps)
                for k in reached.nonzero().flatten().tolist():
                    status[k] = "eps"
                active &= ~reached
            record = {"step": step, "lr": lr, "loss": float(total[finite].sum()) if finite.any() else float("nan"),
                      **{n: float(v[finite].mean()) if finite.any() else float("nan") for n, v in parts.items()}}
            history.append(record)
            if settings.frame_every and step % settings.frame_every == 0:
                frames.append(image.detach().cpu())
        if callback is not None:  # (step, batch-mean record, per-image terms)
            callback(step, record, {n: v.detach() for n, v in parts.items()})
        if preview is not None:  # (step, this step's images [B, 3, R, R] in [0, 1]): live views
            preview(step, image.detach())
        if step == settings.steps or not active.any():
            break
        opt.zero_grad(set_to_none=True)
        total[active].sum().backward()
        before = [p.detach().clone() for p in params] if not active.all() else None
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p.grad[~active] = 0
                    p.grad.nan_to_num_(0.0, 0.0, 0.0)
        opt.step()
        with torch.no_grad():
            if before is not None:  # frozen images keep their latents exactly (Adam momentum)
                for p, b in zip(params, before):
                    p.copy_(torch.where(_rows(p, active), p, b))
            space.project_()
            if settings.noise_renorm:
                noise.renormalise_()
        steps_run += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix({n: f"{record[n]:.4g}" for n in parts} | {"lr": f"{lr:.3g}"})
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        observed = problem.operator(best_images)
    return Result(images=best_images, observed=observed, latent={k: v.cpu() for k, v in best_latent.items()},
                  noise=[n.cpu() for n in best_noise], loss=best_loss.cpu(), terms={k: v.cpu() for k, v in best_terms.items()},
                  best_step=best_step, status=status, steps_run=steps_run, seconds=seconds, history=history, frames=frames)


def settings_dict(s: Settings) -> dict:
    return asdict(s)
