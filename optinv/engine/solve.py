"""The engine under every job: resolve the settings, optimise batch by batch, measure each result.

``solve`` is what invert, pulse and paint share once their inputs are loaded and their
forward operator is chosen (see :mod:`optinv.engine.jobs`); editing uses it to re-invert images.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from losses.recipe import build_objective

from optinv.engine import ilo as ilo_mode
from optinv.engine import metrics, operators, warmstart
from optinv.errors import OptinvError
from optinv.engine.generator import Generator
from optinv.io.latents import LatentRecord, record_from_space, render_inputs, render_latent
from optinv.engine.memory import check_fits
from optinv.engine.optimize import Problem, Result, Settings, run
from optinv.engine.precision import resolve_precision
from optinv.engine.options import JobOptions, lpips_for, merged_options, optimizer_settings, tune_settings
from optinv.engine.results import ItemResult, check_divergence, check_eps, measure
from optinv.engine.spaces import LatentSpace, parse_map_sizes
from optinv.engine.tuning import TuneSettings, tune, tuning_bytes

TUNE_REFUSAL = {"pulse": "low-resolution image", "paint": "partial colour reference"}


def solve(job: str, g: Generator, targets: torch.Tensor, names: Sequence[str], operator: torch.nn.Module,
          opts: JobOptions, alpha: torch.Tensor | None = None, seeds: Sequence[int] | None = None,
          notes: list[str] | None = None) -> list[ItemResult]:
    """Optimise every target (batched), then re-render each result alone and measure it.

    ``targets`` [N, 3, h, w] in [0, 1] are what ``operator(G(latent))`` should match (with
    ``alpha`` [N, 1, h, w] weighting the pixels for paint); ``seeds`` gives each image its own.
    """
    notes = notes if notes is not None else []
    if opts.tune and job != "invert":
        raise OptinvError(f"`tune` works with invert only: {job} matches a {TUNE_REFUSAL[job]}, and a generator "
                          f"tuned to it would draw the input instead of a face that explains it")
    tuning = tune_settings(opts) if opts.tune else None
    if opts.tune and not isinstance(operator, operators.Identity):
        raise OptinvError("`tune` fits the generator to the whole image: it cannot take a `mask`, `operator` or "
                          "`noise_level` (a generator tuned to a masked or gray image would draw the hole or the gray)")
    ilo = (ilo_mode.parse_ilo(opts.ilo_steps or ilo_mode.default_steps(g.size), opts.ilo_radius, opts.ilo_lr,
                              opts.ilo_joint) if opts.ilo else None)
    if ilo is not None:
        ilo_mode.check_layers(g, ilo)
    m = merged_options(job, opts, g)
    recipe, lpips = lpips_for(m["recipe"], opts, g.w_avg.device, m.get("fallback_recipe"), notes)
    objective = build_objective(recipe)
    settings = optimizer_settings(m, opts)
    settings.precision = resolve_precision(opts.precision, g.w_avg.device)
    if tuning is not None:
        tuning.precision = settings.precision
    map_sizes = parse_map_sizes(opts.stylemap_res, g.n_latent) if m["space"] == "stylemap" else None
    seeds = list(seeds) if seeds is not None else [opts.seed] * len(names)
    start = warmstart.plan_start(g, m["space"], m.get("init", "mean"), opts.encoder, objective.needs("encoder"),
                                 map_sizes, opts.tile, opts.zplus_mapping or g.card.get("zplus_mapping", "gaussian"),
                                 opts.encoder_passes)
    domain = warmstart.domain_term(warmstart.require(start.encoder, "DOMAIN")) if objective.needs("encoder") else None
    operator = operator.to(g.w_avg.device)
    check_fits(g, min(max(1, opts.batch), len(names)), g.w_avg.device, tune=tuning.mode if tuning else None,
               locality=bool(tuning and tuning.locality > 0), map_sizes=map_sizes)  # before hours of work, not after
    results: list[ItemResult] = []
    step = max(1, opts.batch)
    for first in range(0, len(names), step):
        sl = slice(first, first + step)
        tgt = targets[sl].to(g.w_avg.device)
        a = alpha[sl].to(g.w_avg.device) if alpha is not None else None
        space = warmstart.starting_space(g, start, tgt, seeds[sl], opts.seed)
        tgt = operators.prepare(operator, tgt)  # e.g. the unknown pixels blanked, the colour removed
        problem = Problem(target=tgt, operator=operator, alpha=a, data_term="L2A" if a is not None else "L2",
                          data_weight=operators.data_weight(operator))
        res = run(g, space, problem, objective, settings, lpips=lpips, domain=domain, callback=opts.callback,
                  preview=opts.preview)
        ilo_records = None
        if ilo is not None:
            res, ilo_records = ilo_mode.refine(g, space, res, problem, objective, settings, ilo, lpips=lpips,
                                               domain=domain, callback=opts.callback, preview=opts.preview)
        for k in range(tgt.shape[0]):
            item = _item(job, g, space, res, k, names[first + k], recipe, settings, opts, map_sizes, operator,
                         torch.cat([tgt[k], a[k]]) if a is not None else tgt[k], notes,
                         ilo_records[k] if ilo_records is not None else None)
            seconds = res.seconds / tgt.shape[0]
            extra = _tune_item(g, item, tuning, lpips, operator, seconds) if tuning is not None else {}
            if not isinstance(operator, operators.BicubicDownscale):  # pulse/paint: the scale says it
                extra["operator"] = operators.describe(operator)
                known = operators.observed_mask(operator, item.observed.shape[-1])
                if known is not None:  # the hole is 0 on both sides: judge the known pixels alone
                    mse = float(metrics.data_error(item.observed[None], item.target[None], known.cpu())[0])
                    extra["psnr_known"] = float("inf") if mse == 0 else 10 * math.log10(1 / mse)
            if ilo_records is not None:
                extra["ilo_layers"] = ilo_mode.summary(ilo_records[k])
            measure(item, lpips, **res.summary(k), steps=res.steps_run, seconds=round(seconds, 3),
                    batch=tgt.shape[0], recipe=recipe, space=m["space"], seed=seeds[first + k], **extra)
            check_eps(item, settings.eps)
            check_divergence(item)
            results.append(item)
    return results


def _item(job: str, g: Generator, space: LatentSpace, res: Result, k: int, name: str, recipe: str,
          settings: Settings, opts: JobOptions, map_sizes: list[int] | None, operator: torch.nn.Module,
          target: torch.Tensor, notes: list[str], ilo: dict[str, Any] | None = None) -> ItemResult:
    """Image ``k`` of a batch: its latent record, re-rendered alone (what the saved file gives)."""
    latent = latent_record(g, space, res.latent, res.noise, k, recipe, settings, opts, map_sizes)
    if ilo is not None:
        latent["ilo"] = ilo
        latent["settings"]["ilo"] = ilo["settings"]
    image = render_latent(g, latent)[0]
    observed = operator(image[None])[0]
    return ItemResult(name=name, job=job, image=image.cpu(), observed=observed.cpu(), target=target.cpu(),
                      latent=latent, metrics={}, frames=[f[k] for f in res.frames], notes=list(notes))


def _tune_item(g: Generator, item: ItemResult, settings: TuneSettings, lpips, operator: torch.nn.Module,
               pivot_seconds: float) -> dict[str, Any]:
    """Stage 2 of pivotal tuning for one result: the generator fitted around its latent.

    The delta goes into the latent record and the result is re-rendered from that record,
    so the saved files give exactly this image. Returns the numbers to report.
    """
    styles, noise = render_inputs(g, item.latent)
    pivot_psnr = metrics.psnr(item.image, item.target)
    res = tune(g, styles, noise, item.target[None].to(g.w_avg.device), settings, lpips=lpips,
               desc=f"tune {item.name}")
    item.latent["tuning"] = res.record
    item.image = render_latent(g, item.latent)[0].cpu()
    item.observed = operator(item.image[None].to(g.w_avg.device))[0].cpu()
    return {"pivot_psnr": pivot_psnr, "pivot_seconds": round(pivot_seconds, 3), "tune_steps": settings.steps,
            "tune_seconds": round(res.seconds, 3), "tune_mode": settings.mode, "tune_rank": res.record["rank"],
            "tune_bytes": tuning_bytes(res.record), "total_seconds": round(pivot_seconds + res.seconds, 3)}


def latent_record(g: Generator, space: LatentSpace, latent: dict[str, torch.Tensor], noise: list[torch.Tensor],
                  k: int, recipe: str, settings: Settings, opts: JobOptions,
                  map_sizes: list[int] | None) -> LatentRecord:
    """The saved record of image ``k``: its tensors plus how it was found."""
    settings_used: dict[str, Any] = dict(vars(settings))
    return record_from_space(g, space, latent, noise, k, recipe=recipe, settings=settings_used,
                             space_options={"tile": opts.tile, "mapping": getattr(space, "mapping_mode", None),
                                            "map_sizes": map_sizes})

