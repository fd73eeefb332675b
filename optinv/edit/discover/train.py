"""The unsupervised training loop (Voynov & Babenko) with resumable checkpoints.

A :class:`Domain` says how to sample latents and render them; for a generator it works in
standardised coordinates (z as is; w as (w - mean)/std), so one shift range suits both spaces.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from optinv.errors import OptinvError
from optinv.io.fileio import atomic_torch_save, load_tagged
from optinv.engine.options import check_steps
from optinv.edit.discover.models import METHODS, Paths, build_paths
from optinv.edit.discover.reconstructor import Reconstructor, reconstruction_loss

CHECKPOINT_FORMAT = "optinv-discover-checkpoint"
SPACES = ("z", "w")


class Domain:
    """Latents x [B, D] in standardised units: ``sample(n)``, ``render(x)`` → images in [-1, 1]."""

    def __init__(self, dim: int, sample: Callable[[int], torch.Tensor], render: Callable[[torch.Tensor], torch.Tensor],
                 space: str = "z", mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
        self.dim, self._sample, self._render, self.space = dim, sample, render, space
        self.mean = mean if mean is not None else torch.zeros(dim)
        self.std = std if std is not None else torch.ones(dim)

    def sample(self, n: int) -> torch.Tensor:
        return self._sample(n)

    def render(self, x: torch.Tensor) -> torch.Tensor:
        return self._render(x)


@torch.no_grad()
def w_statistics(g, n: int = 8192, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std of w = mapping(z) (seeded, so a rerun gives the same units)."""
    gen = torch.Generator().manual_seed(seed)
    w = g.mapping(torch.randn(n, g.style_dim, generator=gen).to(g.w_avg.device)).cpu().double()
    return w.mean(0).float(), w.std(0).clamp_min(1e-6).float()


def generator_domain(g, space: str, stats: tuple[torch.Tensor, torch.Tensor] | None = None,
                     side: int | None = None) -> Domain:
    """The domain of a generator in ``space`` z (Gaussian) or w (standardised, every layer the same w).

    ``side``: render the generator's ``side``² preview (``Generator.preview``) instead of its full
    image, for consumers that look no finer: discovery's reconstructor sees 64².
    """
    side = min(side or g.size, g.size)
    if space not in SPACES:
        raise OptinvError(f"`space` must be one of {', '.join(SPACES)}, got {space!r}")
    dev = g.w_avg.device
    if space == "z":
        return Domain(g.style_dim, lambda n: torch.randn(n, g.style_dim, device=dev),
                      lambda x: g.preview(g.mapping(x)[:, None, :].expand(-1, g.n_latent, -1), side), "z")
    mean, std = stats if stats is not None else w_statistics(g)
    mean, std = mean.to(dev), std.to(dev)

    def sample(n: int) -> torch.Tensor:
        with torch.no_grad():
            return (g.mapping(torch.randn(n, g.style_dim, device=dev)) - mean) / std

    def render(x: torch.Tensor) -> torch.Tensor:
        w = mean + std * x
        return g.preview(w[:, None, :].expand(-1, g.n_latent, -1), side)

    return Domain(g.style_dim, sample, render, "w", mean.cpu(), std.cpu())


RECONSTRUCTOR_SIDE = 64  # the reconstructor reads pairs of images at most this large
MAX_BATCH = 1024  # samples per training step; 10**8 would fill any memory before the first step


@dataclass
class DiscoverSettings:
    """What one discovery run does (stored in its checkpoint, so a resume continues the same run)."""

    method: str = "curvilinear"
    k: int = 8
    steps: int = 1000
    batch: int = 8
    lr_paths: float = 1e-3
    lr_reconstructor: float = 1e-3
    shift_max: float = 4.0
    shift_min: float = 0.5
    shift_weight: float = 0.25
    alpha: float = 0.1            # curvilinear: weight of (log|det|)²
    speed: float = 1.0            # curvilinear: weight of (log path speed)² (0: the flow may stretch freely)
    layers: int = 4               # curvilinear: couplings
    hidden: int = 256             # curvilinear: coupling MLP width
    support: int = 8              # warped: RBF centres per path
    euler_steps: int = 4          # warped
    reconstructor_width: int = 32
    start_from: str = ""          # curvilinear: a linear run's checkpoint to start from (its paths and R)
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.method not in METHODS:
            raise OptinvError(f"`method` must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("k", "steps", "batch"):
            if getattr(self, name) < 1:
                raise OptinvError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        check_steps(self.steps)
        if self.batch > MAX_BATCH:
            raise OptinvError(f"`batch` {self.batch:,} is more than {MAX_BATCH} samples per step (each is rendered "
                              f"twice): a typo?")
        for name in ("lr_paths", "lr_reconstructor"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise OptinvError(f"`{name}` must be a positive number, got {value}")
        for name in ("alpha", "speed", "shift_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise OptinvError(f"`{name}` must be a finite number ≥ 0, got {value}")
        if self.start_from and self.method != "curvilinear":
            raise OptinvError("`start_from` (a linear run to start from) applies to curvilinear paths only")
        if not 0 <= self.shift_min < self.shift_max:
            raise OptinvError(f"need 0 <= `shift_min` < `shift_max`, got {self.shift_min}, {self.shift_max}")

    def paths_config(self, dim: int) -> dict[str, Any]:
        c: dict[str, Any] = {"method": self.method, "dim": dim, "k": self.k}
        if self.method == "warped":
            c.update(support=self.support, steps=self.euler_steps)
        if self.method == "curvilinear":
            c.update(layers=self.layers, hidden=self.hidden, alpha=self.alpha, speed=self.speed)
        return c


def sample_shifts(n: int, settings: DiscoverSettings, gen: torch.Generator | None = None) -> torch.Tensor:
    """Shifts uniform in ±[shift_min, shift_max] (tiny shifts are indistinguishable by design)."""
    mag = settings.shift_min + (settings.shift_max - settings.shift_min) * torch.rand(n, generator=gen)
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    return mag * sign


@dataclass
class DiscoverState:
    settings: DiscoverSettings
    paths: Paths
    reconstructor: Reconstructor
    opt_paths: torch.optim.Optimizer
    opt_reconstructor: torch.optim.Optimizer
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def new_state(settings: DiscoverSettings, dim: int, image_size: int = 64) -> DiscoverState:
    settings.check()
    torch.manual_seed(settings.seed)
    paths = build_paths(settings.paths_config(dim), seed=settings.seed)
    r = Reconstructor(settings.k, settings.reconstructor_width, size=min(RECONSTRUCTOR_SIDE, image_size))
    return DiscoverState(settings, paths, r, torch.optim.Adam(paths.parameters(), lr=settings.lr_paths),
                         torch.optim.Adam(r.parameters(), lr=settings.lr_reconstructor))


def start_from_linear(state: DiscoverState, path: str | os.PathLike, domain: Domain) -> None:
    """Start a curvilinear run at a trained linear run: the flow's paths are its directions and
    R is its reconstructor, so training begins where Linear ended and only has to bend the paths.

    Why: from a random start the flow spends thousands of steps finding what Linear already
    found, and may settle on paths with more side effects; Linear is a special case of the flow.
    """
    obj = load_tagged(path, CHECKPOINT_FORMAT, "discovery checkpoint", "optinv directions discover --method linear")
    config = obj["paths_config"]
    if config.get("method") != "linear":
        raise OptinvError(f"{path}: a {config.get('method')} run; the start must be a linear one")
    if (config["dim"], config["k"]) != (state.paths.dim, state.paths.k):
        raise OptinvError(f"{path}: {config['k']} paths in {config['dim']} dimensions, "
                          f"this run has {state.paths.k} in {state.paths.dim}")
    if obj.get("space") != domain.space or not (torch.allclose(obj["mean"].cpu(), domain.mean.cpu(), atol=1e-4)
                                                and torch.allclose(obj["std"].cpu(), domain.std.cpu(), atol=1e-4)):
        raise OptinvError(f"{path}: a run in another latent space or of another model")
    linear = build_paths(config)
    linear.load_state_dict(obj["paths"])
    state.paths.flow.start_from_directions(linear.directions())
    try:
        state.reconstructor.load_state_dict(obj["reconstructor"])
    except RuntimeError as err:
        raise OptinvError(f"{path}: its reconstructor does not fit this run ({str(err).splitlines()[0]})") from None


def train_step(state: DiscoverState, domain: Domain) -> dict[str, float]:
    """One step: both the paths and R descend the same loss (R reads, the paths make readable)."""
    s = state.settings
    state.paths.train()
    state.reconstructor.train()
    x = domain.sample(s.batch)
    k = torch.randint(0, s.k, (s.batch,), device=x.device)
    t = sample_shifts(s.batch, s).to(x.device)
    with torch.no_grad():
        a = domain.render(x)
    b = domain.render(state.paths.shift(x, k, t))
    loss, logs = reconstruction_loss(state.reconstructor, a, b, k, t, s.shift_weight)
    pen = state.paths.penalty(x)
    total = loss + pen
    state.opt_paths.zero_grad(set_to_none=True)
    state.opt_reconstructor.zero_grad(set_to_none=True)
    total.backward()
    state.opt_paths.step()
    state.opt_reconstructor.step()
    state.step += 1
    logs = {"step": state.step, **logs, "penalty": pen.item()}
    state.history.append(logs)
    return logs


def save_checkpoint(state: DiscoverState, domain: Domain, path: str | os.PathLike, model_id: str = "") -> Path:
    obj = {"format": CHECKPOINT_FORMAT, "version": 1, "settings": asdict(state.settings), "step": state.step,
           "space": domain.space, "mean": domain.mean, "std": domain.std, "model_id": model_id,
           "paths_config": state.paths.config(), "paths": state.paths.state_dict(),
           "reconstructor": state.reconstructor.state_dict(), "opt_paths": state.opt_paths.state_dict(),
           "opt_reconstructor": state.opt_reconstructor.state_dict(), "history": state.history[-2000:],
           "rng": torch.get_rng_state()}
    return atomic_torch_save(obj, path)


def load_checkpoint(path: str | os.PathLike, dim: int, image_size: int = 64, model_id: str = "") -> DiscoverState:
    """Resume a run exactly where its checkpoint left it (optimizers and RNG included)."""
    obj = load_tagged(path, CHECKPOINT_FORMAT, "discovery checkpoint", "optinv directions discover")
    if model_id and obj.get("model_id") and obj["model_id"] != model_id:
        raise OptinvError(f"{path}: checkpoint of another model ({obj['model_id']}), not {model_id}")
    settings = DiscoverSettings(**{"speed": 0.0, **obj["settings"]})  # runs from before the speed term had none
    if obj["paths_config"]["dim"] != dim:
        raise OptinvError(f"{path}: checkpoint latents have {obj['paths_config']['dim']} dimensions, not {dim}")
    state = new_state(settings, dim, image_size)
    state.paths.load_state_dict(obj["paths"])
    state.reconstructor.load_state_dict(obj["reconstructor"])
    state.opt_paths.load_state_dict(obj["opt_paths"])
    state.opt_reconstructor.load_state_dict(obj["opt_reconstructor"])
    state.step, state.history = int(obj["step"]), list(obj.get("history", []))
    torch.set_rng_state(obj["rng"])
    return state


def discover(domain: Domain, settings: DiscoverSettings, checkpoint: str | os.PathLike | None = None,
             resume: bool = True, every: int = 50, max_seconds: float | None = None, progress: bool = True,
             model_id: str = "", image_size: int = 64, lr_paths: float | None = None) -> DiscoverState:
    """Train until ``settings.steps`` (or ``max_seconds``), checkpointing every ``every`` steps.

    With ``resume`` and an existing checkpoint the run continues from it; ``settings.steps`` may be
    raised to train further (the other settings are the checkpoint's). ``lr_paths`` sets the paths'
    learning rate, also of a resumed run: a second, slower stage (a flow started from Linear diverged
    after ~2000 steps at 1e-3 and trained steadily at 3e-4).
    """
    ck = Path(checkpoint) if checkpoint else None
    if ck is not None and resume and ck.exists():
        state = load_checkpoint(ck, domain.dim, image_size, model_id)
        state.settings.steps = settings.steps
        if lr_paths is not None:
            replace(state.settings, lr_paths=lr_paths).check()
            state.settings.lr_paths = lr_paths
            for group in state.opt_paths.param_groups:
                group["lr"] = lr_paths
    else:
        if lr_paths is not None:
            settings = replace(settings, lr_paths=lr_paths)
        state = new_state(settings, domain.dim, image_size)
        if settings.start_from:
            start_from_linear(state, settings.start_from, domain)
        random.seed(settings.seed)
    start = time.monotonic()
    bar = None
    if progress:
        from optinv.engine.progress import progress

        bar = progress(state.settings.steps, desc=f"discover {state.settings.method}", initial=state.step, leave=True)
    try:
        while state.step < state.settings.steps:
            logs = train_step(state, domain)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(acc=f"{logs['accuracy']:.2f}", l1=f"{logs['shift_l1']:.2f}")
            if ck is not None and state.step % every == 0:
                save_checkpoint(state, domain, ck, model_id)
            if max_seconds is not None and time.monotonic() - start > max_seconds:
                break
    finally:
        if bar is not None:
            bar.close()
        if ck is not None and state.step > 0:
            save_checkpoint(state, domain, ck, model_id)
    return state
