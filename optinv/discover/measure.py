"""Measure paths with the attribute predictor as judge: effects, names, side effects, commutativity.

Units: attribute values are in [0, 1], so differences ×100 are "% of the attribute's range".
"""

from __future__ import annotations

from itertools import permutations
from typing import Sequence

import torch

from .attributes import AttributePredictor
from .models import Paths
from .train import Domain

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
