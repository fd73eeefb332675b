"""What a job returns for each input: the result image, its latent record and its numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from optinv.engine import metrics
from optinv.io.latents import LatentRecord


@dataclass
class ItemResult:
    name: str
    job: str
    image: torch.Tensor                # [3, R, R] in [0, 1]: G(best latent), rendered alone
    observed: torch.Tensor             # operator(image)
    target: torch.Tensor               # what was matched ([3 or 4, h, w] in [0, 1])
    latent: LatentRecord               # the latent file's content
    metrics: dict[str, Any]
    frames: list[torch.Tensor] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def measure(item: ItemResult, lpips: Callable | None = None, **extra: Any) -> ItemResult:
    """Fill ``item.metrics``: the job's image metrics, then ``extra`` (steps, seconds, settings…)."""
    item.metrics = {**metrics.job_metrics(item.job, item, lpips), **extra}
    return item


def check_eps(item: ItemResult, eps: float | None) -> None:
    """pulse/paint: record whether the fit reached ``eps`` and say so when it did not."""
    if item.job == "invert" or eps is None:
        return
    fit = item.metrics.get("masked_mse", item.metrics["fit_mse"])  # the error eps stops at (metrics.data_error)
    item.metrics["within_eps"] = bool(fit <= eps)
    if fit > eps:
        where = " over the painted pixels" if "masked_mse" in item.metrics else ""
        item.notes.append(f"best result downscales to MSE {fit:.4g}{where} > eps {eps:g}: "
                          f"returned anyway (try more `steps` or another `seed`)")


def diverged(item: ItemResult) -> bool:
    return item.metrics.get("status") == "nan"


def check_divergence(item: ItemResult) -> None:
    """A loss that became NaN/Inf is said, not hidden behind the best finite result's numbers.

    The optimiser froze the image at that step and kept its best finite latent (what is
    written); ``metrics["diverged"]`` marks it, and the CLI exits non-zero.
    """
    if not diverged(item):
        return
    item.metrics["diverged"] = True
    if not math.isfinite(item.metrics.get("loss", math.inf)):
        item.notes.append("the optimisation diverged at once (no step gave a finite loss): the result is the "
                          "starting latent; check the model and try a smaller `lr`")
        return
    item.notes.append(f"the optimisation diverged (the loss became NaN or infinite); kept the best finite "
                      f"result, from step {item.metrics.get('best_step', 0)}: try a smaller `lr`")
