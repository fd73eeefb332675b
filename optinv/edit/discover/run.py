"""One discovery run for a generator: train (or resume), name the paths, write the paths file."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from optinv.io.checkpoints import model_id
from optinv.edit.discover.attributes import AttributePredictor
from optinv.edit.discover.measure import name_paths, path_effects
from optinv.edit.discover.pathsfile import PathSet, save_paths
from optinv.edit.discover.train import (RECONSTRUCTOR_SIDE, DiscoverSettings, DiscoverState, Domain, discover,
                                        generator_domain)


def path_set(state: DiscoverState, domain: Domain, g, predictor: AttributePredictor | None = None,
             n: int = 32, t: float = 2.0, seed: int = 0) -> PathSet:
    """The trained paths as a :class:`PathSet`, named by ``predictor`` (``path0`` … without one)."""
    paths = state.paths.eval().requires_grad_(False)
    names, signs, effects = [f"path{k}" for k in range(paths.k)], [1.0] * paths.k, {}
    if predictor is not None:
        torch.manual_seed(seed)
        x = domain.sample(n)
        signed, absolute = path_effects(domain, paths, predictor, x, t)
        names, signs = name_paths(signed, absolute, predictor.names)
        effects = {nm: {a: round(float(v) * s, 4) for a, v in zip(predictor.names, signed[k])}
                   for k, (nm, s) in enumerate(zip(names, signs))}
    card = {"steps": state.step, "settings": {k: v for k, v in vars(state.settings).items() if k != "extra"},
            "last_accuracy": sum(h["accuracy"] for h in state.history[-50:]) / max(1, len(state.history[-50:])),
            "effects_at": t}
    return PathSet(paths, domain.space, domain.mean, domain.std, names, signs, effects, model_id(g), card)


def discover_paths(g, settings: DiscoverSettings, space: str, out: str | os.PathLike,
                   checkpoint: str | os.PathLike | None = None, predictor: AttributePredictor | None = None,
                   max_seconds: float | None = None, progress: bool = True, every: int = 50,
                   lr_paths: float | None = None) -> tuple[Path, PathSet]:
    """Train (resuming ``checkpoint`` when it exists), then write the named paths to ``out``."""
    g = g.requires_grad_(False)
    side = min(g.size, RECONSTRUCTOR_SIDE)  # what the reconstructor sees: no need to draw finer
    domain = generator_domain(g, space, side=side)
    state = discover(domain, settings, checkpoint, resume=True, every=every, max_seconds=max_seconds,
                     progress=progress, model_id=model_id(g), image_size=side, lr_paths=lr_paths)
    ps = path_set(state, domain, g, predictor)
    return save_paths(ps, out), ps
