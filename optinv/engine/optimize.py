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
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch

from losses.recipe import Objective, StepContext

from optinv.errors import OptinvError
from optinv.engine.generator import Generator
from optinv.engine.metrics import data_error
from optinv.engine.precision import autocast
from optinv.io.ranges import to_unit
from optinv.engine.spaces import LatentSpace

SCHEDULES = ("fixed", "linear1cycledrop", "cosine-ramp")
NOISE_MODES = ("zero", "fixed", "trainable", "random")
OPTIMIZERS = ("adam", "sgd", "adamax")


@dataclass
class Settings:
    steps: int = 200
    lr: float = 0.1
    optimizer: str = "adam"
    adam_beta2: float = 0.999        # Adam/Adamax second-moment decay (torch's default; see JOB_DEFAULTS)
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
    precision: str = "fp32"          # fp32 | bf16: the generator's arithmetic (optinv.engine.precision)
    fp32_tail: float = 0.1           # bf16: the last share of the steps renders in fp32 (see precision_at)

    def validate(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise OptinvError(f"steps must be a positive integer, got {self.steps}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise OptinvError(f"lr must be a positive number, got {self.lr}")
        for value, known, what in ((self.schedule, SCHEDULES, "schedule"), (self.noise, NOISE_MODES, "noise"),
                                   (self.optimizer, OPTIMIZERS, "optimizer")):
            if value not in known:
                raise OptinvError(f"unknown {what} {value!r} (known: {', '.join(known)})")
        if self.precision not in ("fp32", "bf16"):
            raise OptinvError(f"precision must be fp32 or bf16 here (auto is resolved by the job), got {self.precision!r}")
        if not (isinstance(self.fp32_tail, (int, float)) and 0 <= self.fp32_tail <= 1):
            raise OptinvError(f"fp32_tail must be a share of the steps in [0, 1], got {self.fp32_tail!r}")
        check_adam_beta2(self.adam_beta2, "adam_beta2")
        if self.eps is not None and not (0 <= self.eps < math.inf):
            raise OptinvError(f"eps must be a finite number ≥ 0, got {self.eps}")


def check_adam_beta2(value: object, name: str = "`adam_beta2`") -> None:
    """Adam's β2 must lie in [0, 1) (NaN fails the comparison too)."""
    if not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise OptinvError(f"{name} must be in [0, 1), got {value}")


def precision_at(s: Settings, step: int) -> str:
    """The arithmetic of step ``step``: bf16 runs the first steps, fp32 the last ``fp32_tail`` of them.

    Near the optimum the residual is a few times bf16's rounding of the render, and a bf16 fit
    stops short of the fp32 one; a short fp32 tail closes that gap (docs/BENCHMARKS.md, "FFHQ scale").
    """
    if s.precision == "fp32" or step >= s.steps - math.ceil(s.fp32_tail * s.steps):
        return "fp32"
    return s.precision


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
    data_weight: float = 1.0           # the operator's trust in the observation (operators.NoiseLevel)


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

    def __init__(self, g: Generator, batch: int, mode: str, trainable: int, gen: torch.Generator,
                 start: Sequence[torch.Tensor] | None = None):
        dev = g.w_avg.device
        self.maps: list[torch.Tensor] = []
        self.trainable: list[torch.Tensor] = []
        if start is not None:  # maps found by an earlier search (ILO's layer stages), held fixed
            self.maps = [n.detach().to(dev).clone() for n in start]
            return
        if mode == "trainable" and not 0 <= trainable <= g.num_layers:
            raise OptinvError(f"`trainable_noise` must be between 0 (all) and {g.num_layers}, the number of "
                              f"noise layers of this model; got {trainable}")
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


def _make_optimizer(name: str, params: list[torch.Tensor], lr: float,
                    beta2: float = 0.999) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, beta2))
    if name == "adamax":
        return torch.optim.Adamax(params, lr=lr, betas=(0.9, beta2))
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def _rows(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (t.dim() - 1)))


def run(g: Generator, space: LatentSpace, problem: Problem, objective: Objective, settings: Settings,
        *, lpips: Callable | None = None, domain: Callable | None = None,
        callback: Callable[[int, dict, dict], None] | None = None,
        preview: Callable[[int, torch.Tensor], None] | None = None,
        noise_init: Sequence[torch.Tensor] | None = None) -> Result:
    """Minimise the objective over the space's latents (and trainable noise) for a batch.

    Each step: render and score every image (:func:`_forward`), keep each image's best and
    freeze the ones that are done (:class:`_Tracker`), then update the active ones (:func:`_update`).
    """
    settings.validate()
    batch = problem.target.shape[0]
    gen = torch.Generator().manual_seed(settings.seed)
    noise = NoiseState(g, batch, settings.noise, settings.trainable_noise, gen, noise_init)
    objective.check(space=space.name, n_vectors=space.n_vectors, has_alpha=problem.alpha is not None,
                    trainable_noise=bool(noise.trainable), has_maps=any(m.shape[-1] > 1 for m in space.style_maps()),
                    has_encoder=domain is not None)
    if objective.needs("lpips") and lpips is None:
        raise OptinvError("the recipe names LPIPS but no LPIPS model was given")
    params = list(space.parameters()) + noise.trainable
    opt = _make_optimizer(settings.optimizer, params, settings.lr, settings.adam_beta2)
    w_std = None
    if settings.latent_noise > 0:
        w_std = float(space.layer_vectors().detach().std())  # scale of the perturbation
    track = _Tracker(g, space, noise, batch, problem.target.device)
    bar = None
    if settings.progress:
        from optinv.engine.progress import progress
        bar = progress(settings.steps, desc="optimise")
    t0 = time.perf_counter()
    steps_run = 0
    for step in range(settings.steps + 1):  # the last pass only evaluates (no update after it)
        lr = lr_at(settings, min(step, settings.steps - 1))
        for group in opt.param_groups:
            group["lr"] = lr
        last = step == settings.steps
        with torch.no_grad() if last else nullcontext():  # the closing pass only scores: no graph to build
            image, pred, total, parts = _forward(g, space, noise, problem, objective, settings, step, w_std, gen,
                                                 lpips, domain)
        with torch.no_grad():
            record = track.observe(step, lr, total, parts, image, _eps_reached(settings, problem, parts, pred))
            if settings.frame_every and step % settings.frame_every == 0:
                track.frames.append(image.detach().cpu())
        if callback is not None:  # (step, batch-mean record, per-image terms)
            callback(step, record, {n: v.detach() for n, v in parts.items()})
        if preview is not None:  # (step, this step's images [B, 3, R, R] in [0, 1]): live views
            preview(step, image.detach())
        if last or not track.active.any():
            break
        _update(opt, params, total, track.active, space, noise, settings)
        steps_run += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix({"loss": f"{record['loss']:.4g}"} | {n: f"{record[n]:.4g}" for n in parts}
                            | {"lr": f"{lr:.3g}"})
    if bar is not None:
        bar.close()
    return track.result(problem.operator, steps_run, time.perf_counter() - t0)


def _forward(g: Generator, space: LatentSpace, noise: NoiseState, problem: Problem, objective: Objective,
             settings: Settings, step: int, w_std: float | None, gen: torch.Generator, lpips: Callable | None,
             domain: Callable | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """(images in [0, 1], what the operator sees, total loss per image, each term per image)."""
    styles = space.to_styles()
    if w_std is not None and step < settings.steps:
        t = step / settings.steps
        strength = w_std * settings.latent_noise * max(0.0, 1 - t / settings.latent_noise_ramp) ** 2
        if strength > 0:  # gradient taken at a jittered latent, update applied to the latent
            styles = space.jitter(styles, strength, gen)
    with autocast(precision_at(settings, step), problem.target.device):  # latents, noise and losses stay fp32
        out = space.render(g, styles, noise.maps)
    image = to_unit(out.float())
    pred = problem.operator(image)
    ctx = StepContext(pred=pred, target=problem.target, image=image, w=space.layer_vectors(), w_avg=g.w_avg,
                      alpha=problem.alpha, maps=space.style_maps(), noises=noise.trainable, lpips=lpips, domain=domain,
                      data_weight=problem.data_weight)
    total, parts = objective(ctx)
    return image, pred, total, parts


def _eps_reached(settings: Settings, problem: Problem, parts: dict[str, torch.Tensor],
                 pred: torch.Tensor) -> torch.Tensor | None:
    """Per image: has the data error reached ``eps``? (None without eps.)"""
    if settings.eps is None:
        return None
    return data_error(pred, problem.target, problem.alpha) <= settings.eps  # over painted pixels for paint


def _update(opt: torch.optim.Optimizer, params: list[torch.Tensor], total: torch.Tensor, active: torch.Tensor,
            space: LatentSpace, noise: NoiseState, settings: Settings) -> None:
    """One optimiser step on the active images; frozen ones keep their latents exactly."""
    opt.zero_grad(set_to_none=True)
    total[active].sum().backward()
    all_active = bool(active.all())
    before = None if all_active else [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                if not all_active:
                    p.grad[~active] = 0
                p.grad.nan_to_num_(0.0, 0.0, 0.0)
    opt.step()
    with torch.no_grad():
        if before is not None:  # Adam's momentum would move them otherwise
            for p, b in zip(params, before):
                p.copy_(torch.where(_rows(p, active), p, b))
        space.project_()
        if settings.noise_renorm:
            noise.renormalise_()


class _Tracker:
    """Each image's best step so far, which images are still active, and the run's history."""

    def __init__(self, g: Generator, space: LatentSpace, noise: NoiseState, batch: int, dev: torch.device):
        self.space, self.noise = space, noise
        self.active = torch.ones(batch, dtype=torch.bool, device=dev)
        self.status = ["ok"] * batch
        self.loss = torch.full((batch,), float("inf"), device=dev)
        self.step = torch.zeros(batch, dtype=torch.long)
        self.latent = {k: v.detach().clone() for k, v in space.named_parameters()}
        self.noise_maps = [n.detach().clone() for n in noise.maps]
        self.images = torch.zeros(batch, 3, g.size, g.size, device=dev)
        self.terms: dict[str, torch.Tensor] = {}
        self.history: list[dict[str, float]] = []
        self.frames: list[torch.Tensor] = []

    def observe(self, step: int, lr: float, total: torch.Tensor, parts: dict[str, torch.Tensor], image: torch.Tensor,
                reached: torch.Tensor | None) -> dict[str, float]:
        """Freeze non-finite images, keep improvements, stop images that reached eps; the step's record."""
        finite = torch.isfinite(total)
        for k in (self.active & ~finite).nonzero().flatten().tolist():
            self.status[k] = "nan"
        self.active &= finite
        improved = self.active & (total < self.loss)
        if improved.any():
            self._keep(improved, step, total, parts, image)
        if reached is not None:
            reached = self.active & reached
            for k in reached.nonzero().flatten().tolist():
                self.status[k] = "eps"
            self.active &= ~reached
        record = {"step": step, "lr": lr, "loss": float(total[finite].sum()) if finite.any() else float("nan"),
                  **{n: float(v[finite].mean()) if finite.any() else float("nan") for n, v in parts.items()}}
        self.history.append(record)
        return record

    def _keep(self, improved: torch.Tensor, step: int, total: torch.Tensor, parts: dict[str, torch.Tensor],
              image: torch.Tensor) -> None:
        self.loss = torch.where(improved, total, self.loss)
        self.step[improved.cpu()] = step
        for k, v in self.space.named_parameters():
            self.latent[k] = torch.where(_rows(v, improved), v.detach(), self.latent[k])
        self.noise_maps = [torch.where(_rows(n, improved), n.detach(), b) for n, b in zip(self.noise.maps, self.noise_maps)]
        self.images = torch.where(_rows(image, improved), image.detach(), self.images)
        for n, v in parts.items():
            prev = self.terms.get(n, torch.full_like(v.detach(), float("nan")))
            self.terms[n] = torch.where(improved, v.detach(), prev)

    def result(self, operator: torch.nn.Module, steps_run: int, seconds: float) -> Result:
        with torch.no_grad():
            observed = operator(self.images)
        return Result(images=self.images, observed=observed, latent={k: v.cpu() for k, v in self.latent.items()},
                      noise=[n.cpu() for n in self.noise_maps], loss=self.loss.cpu(),
                      terms={k: v.cpu() for k, v in self.terms.items()}, best_step=self.step, status=self.status,
                      steps_run=steps_run, seconds=seconds, history=self.history, frames=self.frames)


def settings_dict(s: Settings) -> dict:
    return asdict(s)
