"""Measure paths with the attribute predictor as judge: effects, names, side effects, commutativity.

Units: attribute values are in [0, 1], so differences ×100 are "% of the attribute's range".
"""

from __future__ import annotations

from itertools import permutations
from typing import Sequence

import torch

from optinv.edit.discover.attributes import AttributePredictor
from optinv.edit.discover.models import Paths
from optinv.edit.discover.train import Domain

QUIET = 0.02  # a path whose strongest effect is below 2 % of an attribute's range has no name


@torch.no_grad()
def judge(domain: Domain, predictor: AttributePredictor, x: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """Attribute values [N, A] of the images of standardised latents x."""
    return torch.cat([predictor(domain.render(x[i:i + batch]).clamp(-1, 1)) for i in range(0, len(x), batch)])


@torch.no_grad()
def path_effects(domain: Domain, paths: Paths, predictor: AttributePredictor, x: torch.Tensor,
                 t: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per path and attribute: the signed mean change from -t to +t (halved) and the mean |change| at ±t."""
    base = judge(domain, predictor, x)
    signed, absolute = [], []
    for k in range(paths.k):
        up = judge(domain, predictor, paths.shift(x, k, t))
        down = judge(domain, predictor, paths.shift(x, k, -t))
        signed.append(((up - down) / 2).mean(0))
        absolute.append((((up - base).abs() + (down - base).abs()) / 2).mean(0))
    return torch.stack(signed), torch.stack(absolute)


def name_paths(signed: torch.Tensor, absolute: torch.Tensor, attributes: Sequence[str]) -> tuple[list[str], list[float]]:
    """Each path is named by the attribute it moves most (``path3`` if it moves none by ``QUIET``);
    the sign makes +t mean "more of it". Repeated names get ``_2``, ``_3`` …"""
    names, signs, seen = [], [], {}
    for k in range(absolute.shape[0]):
        a = int(absolute[k].argmax())
        if float(absolute[k, a]) < QUIET:
            names.append(f"path{k}")
            signs.append(1.0)
            continue
        base = attributes[a]
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
        signs.append(1.0 if float(signed[k, a]) >= 0 else -1.0)
    return names, signs


def side_effects(absolute: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Side-effect matrix [K, A]: each attribute's change as % of the path's target (its largest)
    change; and the target index per path. The target's own entry is 100."""
    target = absolute.argmax(1)
    denom = absolute.gather(1, target[:, None]).clamp_min(1e-8)
    return 100.0 * absolute / denom, target


@torch.no_grad()
def commutativity(domain: Domain, paths: Paths, predictor: AttributePredictor, x: torch.Tensor, t: float = 2.0,
                  pairs: Sequence[tuple[int, int]] | None = None) -> dict[str, object]:
    """Apply k then l (by t), then undo k then l (not the reverse order): with commuting paths the
    latent comes back. Returns the attribute difference to the start in % (mean over samples and
    attributes per pair; mean/max over pairs) and the latent distance."""
    pairs = list(pairs) if pairs is not None else list(permutations(range(paths.k), 2))
    base = judge(domain, predictor, x)
    per_pair, latent = [], []
    for k, l in pairs:
        y = paths.shift(paths.shift(x, k, t), l, t)
        y = paths.shift(paths.shift(y, k, -t), l, -t)
        per_pair.append(float(100.0 * (judge(domain, predictor, y) - base).abs().mean()))
        latent.append(float((y - x).norm(dim=1).mean()))
    return {"pairs": pairs, "per_pair": per_pair, "mean": sum(per_pair) / len(per_pair), "max": max(per_pair),
            "latent_mean": sum(latent) / len(latent), "latent_max": max(latent)}


@torch.no_grad()
def shift_for_change(domain: Domain, paths: Paths, predictor: AttributePredictor, x: torch.Tensor, k: int,
                     attribute: int, level: float, t_max: float = 8.0, iters: int = 8) -> float | None:
    """The shift t at which path k moves ``attribute`` by ``level`` (mean |change| at ±t, bisection
    over (0, t_max]); None if even t_max moves it less. Side effects are only comparable between
    methods at equal target change: a path that moves its target twice as far at the same t also
    drags the other attributes into regions where everything changes."""
    base = judge(domain, predictor, x)[:, attribute]

    def change(t: float) -> float:
        up = judge(domain, predictor, paths.shift(x, k, t))[:, attribute]
        down = judge(domain, predictor, paths.shift(x, k, -t))[:, attribute]
        return float((((up - base).abs() + (down - base).abs()) / 2).mean())

    if change(t_max) < level:
        return None
    lo, hi = 0.0, t_max
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if change(mid) < level else (lo, mid)
    return (lo + hi) / 2


@torch.no_grad()
def side_effects_at_level(domain: Domain, paths: Paths, predictor: AttributePredictor, x: torch.Tensor,
                          targets: Sequence[int], level: float = 0.10, t_max: float = 8.0) -> list[dict]:
    """Per path: the shift that moves its target by ``level`` and every attribute's mean |change|
    there as % of the target's (None where the path cannot reach ``level`` within ``t_max``)."""
    base = judge(domain, predictor, x)
    rows = []
    for k, a in enumerate(targets):
        t = shift_for_change(domain, paths, predictor, x, k, int(a), level, t_max)
        if t is None:
            rows.append({"shift": None, "side_effects_pct": None})
            continue
        up = judge(domain, predictor, paths.shift(x, k, t))
        down = judge(domain, predictor, paths.shift(x, k, -t))
        absolute = (((up - base).abs() + (down - base).abs()) / 2).mean(0)
        rows.append({"shift": t, "side_effects_pct": (100.0 * absolute / absolute[int(a)].clamp_min(1e-8)).tolist()})
    return rows
