"""The three jobs as a Python API: ``invert``, ``pulse`` and ``paint``.

Each takes file paths (or tensors), batches them, runs :func:`optinv.optimize.run` and
returns one :class:`ItemResult` per input (and per duplicate, for pulse). Writing files is
:mod:`optinv.outputs`' job; the CLI only parses options and calls these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from losses.recipe import build_objective

from . import metrics, warmstart
from .checkpoints import load_generator
from .errors import OptinvError
from .generator import Generator
from .imageio import load_image
from .latents import LatentRecord, model_id, record_from_space, render_latent
from .operators import Identity, downscale_operator
from .optimize import Problem, Settings, run
from .presets import JOB_DEFAULTS, preset
from .spaces import LatentSpace, StyleMapSpace, make_space, parse_map_sizes

Source = str | os.PathLike | torch.Tensor


@dataclass
class JobOptions:
    """Everything a job can be told; None means "the job's default"."""

    space: str | None = None
    recipe: str | None = None
    steps: int | None = None
    lr: float | None = None
    schedule: str | None = None
    optimizer: str | None = None
    noise: str | None = None
    trainable_noise: int | None = None
    eps: float | None = None
    seed: int = 0
    batch: int = 4
    init: str | None = None            # auto | mean | random | encoder
    encoder: str | None = None         # encoder file (default: the model card's)
    tile: bool = False
    zplus_mapping: str | None = None   # gaussian | exact (default: the model card's, else gaussian)
    stylemap_res: str | None = None
    preset: str | None = None
    crop: str = "none"
    lpips_net: str = "vgg"
    lpips_backbone: str | None = None
    frame_every: int = 0
    progress: bool = True
    callback: Callable[[int, dict, dict], None] | None = None  # (step, record, per-image terms) after each step
    extra: dict[str, Any] = field(default_factory=dict)  # lr_rampup, latent_noise, noise_renorm …


@dataclass
class ItemResult:
    name: str
    job: str
    image: torch.Tensor                # [3, R, R] in [0, 1]: G(best latent), rendered alone
    observed: torch.Tensor             # operator(image)
    target: torch.Tensor               # what was matched ([3 or 4, h, w] in [0, 1])
    latent: dict[str, Any]             # the latent file's content
    metrics: dict[str, Any]
    frames: list[torch.Tensor] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise OptinvError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptinvError("--device cuda asked for, but no CUDA GPU is available")
    return dev


def get_model(model: Generator | str | os.PathLike | None, device: torch.device) -> Generator:
    if isinstance(model, Generator):
        return model.to(device)
    return load_generator(model, device=device)


def _merged_options(job: str, opts: JobOptions, g: Generator) -> dict[str, Any]:
    """Job defaults < model card recipe < preset < explicit options."""
    merged = dict(JOB_DEFAULTS[job])
    card_recipe = g.card.get("default_recipes", {}).get(job)
    if card_recipe:
        merged["fallback_recipe"] = card_recipe if job == "invert" else merged.get("fallback_recipe")
        if job != "invert":
            merged["recipe"] = card_recipe
    if opts.preset:
        p = preset(opts.preset)
        p.pop("source", None)
        merged.update(p)
        merged["fallback_recipe"] = None  # a preset never silently changes its recipe
    for key in ("space", "recipe", "steps", "lr", "schedule", "optimizer", "noise", "trainable_noise", "eps", "init"):
        v = getattr(opts, key)
        if v is not None:
            merged[key] = v
            if key == "recipe":
                merged["fallback_recipe"] = None
    merged.update(opts.extra)
    return merged


def _lpips_for(recipe: str, opts: JobOptions, device: torch.device, fallback: str | None,
               notes: list[str]) -> tuple[str, Callable | None]:
    """Build LPIPS if the recipe names it; fall back (with a note) only for job defaults."""
    objective = build_objective(recipe)
    if not objective.needs("lpips"):
        return recipe, None
    from losses.perceptual import LPIPSLoss, LPIPSUnavailable, make_lpips

    try:
        return recipe, LPIPSLoss(make_lpips(opts.lpips_net, opts.lpips_backbone)).to(device)
    except LPIPSUnavailable as e:
        if fallback:
            notes.append(f"LPIPS backbone not available, using recipe {fallback} (give --lpips-backbone for {recipe})")
            return fallback, None
        raise OptinvError(str(e)) from None


def _settings(m: dict[str, Any], opts: JobOptions) -> Settings:
    keys = Settings.__dataclass_fields__.keys()
    s = Settings(**{k: v for k, v in m.items() if k in keys})
    s.seed, s.progress, s.frame_every = opts.seed, opts.progress, opts.frame_every
    s.validate()
    return s


def _initial_wplus(g: Generator, init: str, n: int, seed: int) -> torch.Tensor:
    if init == "mean":
        return g.w_avg[None, None].expand(n, g.n_latent, -1).clone()
    if init == "random":
        z = torch.randn(n, g.style_dim, generator=torch.Generator().manual_seed(seed)).to(g.w_avg.device)
        with torch.no_grad():
            return g.mapping(z)[:, None].expand(-1, g.n_latent, -1).clone()
    raise OptinvError(f"unknown --init {init!r} (known: auto, mean, random, encoder)")


def solve(job: str, g: Generator, targets: torch.Tensor, names: Sequence[str], operator: torch.nn.Module,
          opts: JobOptions, alpha: torch.Tensor | None = None, seeds: Sequence[int] | None = None,
          notes: list[str] | None = None) -> list[ItemResult]:
    """Optimise every target (batched), then re-render each result alone and measure it."""
    notes = notes if notes is not None else []
    dev = g.w_avg.device
    m = _merged_options(job, opts, g)
    recipe, lpips = _lpips_for(m["recipe"], opts, dev, m.get("fallback_recipe"), notes)
    objective = build_objective(recipe)
    settings = _settings(m, opts)
    map_sizes = parse_map_sizes(opts.stylemap_res, g.n_latent) if m["space"] == "stylemap" else None
    seeds = list(seeds) if seeds is not None else [opts.seed] * len(names)
    init = m.get("init", "mean")
    zmap = opts.zplus_mapping or g.card.get("zplus_mapping", "gaussian")
    enc = None
    if init in ("auto", "encoder") or objective.needs("encoder"):
        enc = warmstart.find_encoder(g, m["space"], opts.encoder)
    if init == "auto":
        init = "encoder" if enc is not None and m["space"] != "zplus" else "mean"
    if init == "encoder":
        if m["space"] == "zplus":
            raise OptinvError("--init encoder works in w, wplus and stylemap spaces (zplus starts on the sphere)")
        warmstart.require(enc, "--init encoder")
    domain = warmstart.domain_term(warmstart.require(enc, "DOMAIN")) if objective.needs("encoder") else None
    operator = operator.to(dev)
    results: list[ItemResult] = []
    for start in range(0, len(names), max(1, opts.batch)):
        sl = slice(start, start + max(1, opts.batch))
        tgt = targets[sl].to(dev)
        a = alpha[sl].to(dev) if alpha is not None else None
        b = tgt.shape[0]
        init_w, init_maps = None, None
        if init == "encoder":
            codes = warmstart.encode(enc, tgt)
            init_w = warmstart.initial_wplus(codes)
            if m["space"] == "stylemap":
                init_maps = warmstart.initial_maps(codes, map_sizes)
        elif m["space"] != "zplus":
            init_w = _initial_wplus(g, init, b, opts.seed)
        init_z = None
        if m["space"] == "zplus":
            init_z = torch.cat([torch.randn(1, 1 if opts.tile else g.n_latent, g.style_dim,
                                            generator=torch.Generator().manual_seed(s)) for s in seeds[sl]])
        space = make_space(m["space"], g, init_w, batch=b, tile=opts.tile, zplus_mapping=zmap,
                           map_sizes=map_sizes, init_z=init_z)
        if init_maps is not None:
            space = StyleMapSpace.from_maps(g, init_maps)
        problem = Problem(target=tgt, operator=operator, alpha=a, data_term="L2A" if a is not None else "L2")
        res = run(g, space, problem, objective, settings, lpips=lpips, domain=domain, callback=opts.callback)
        for k in range(b):
            latent = _latent_record(g, space, res, k, recipe, settings, opts, map_sizes)
            image = render_latent(g, latent)[0]
            observed = operator(image[None])[0]
            item = ItemResult(name=names[start + k], job=job, image=image.cpu(), observed=observed.cpu(),
                              target=(torch.cat([tgt[k], a[k]]) if a is not None else tgt[k]).cpu(), latent=latent,
                              metrics={}, frames=[f[k] for f in res.frames], notes=list(notes))
            item.metrics = {**metrics.job_metrics(job, item, lpips), **res.summary(k),
                            "steps": res.steps_run, "seconds": round(res.seconds / b, 3), "batch": b,
                            "recipe": recipe, "space": m["space"], "seed": seeds[start + k]}
            if job != "invert" and settings.eps is not None:
                fit = item.metrics["fit_mse"]
                item.metrics["within_eps"] = bool(fit <= settings.eps)
                if fit > settings.eps:
                    item.notes.append(f"best result downscales to MSE {fit:.4g} > eps {settings.eps:g}: "
                                      f"returned anyway (try more --steps or another --seed)")
            results.append(item)
    return results


def _latent_record(g: Generator, space: LatentSpace, res, k: int, recipe: str, settings: Settings,
                   opts: JobOptions, map_sizes: list[int] | None) -> LatentRecord:
    return record_from_space(g, space, res.latent, res.noise, k, recipe=recipe,
                             settings={k2: v for k2, v in vars(settings).items()},
                             space_options={"tile": opts.tile, "mapping": getattr(space, "mapping_mode", None),
                                            "map_sizes": map_sizes})


# ---------------------------------------------------------------------------- loading inputs
def _load_many(sources: Sequence[Source], size: int | None, keep_alpha: bool, crop: str,
               notes: dict[str, list[str]]) -> tuple[torch.Tensor, list[str]]:
    tensors, names = [], []
    for src in sources:
        if isinstance(src, torch.Tensor):
            t = src
            name = f"image{len(names):03d}"
        else:
            n: list[str] = []
            t = load_image(src, size=size, keep_alpha=keep_alpha, crop=crop, notes=n)
            name = Path(src).stem
            if n:
                notes[name] = n
        tensors.append(t)
        names.append(name)
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise OptinvError(f"inputs of one run must share a size, got {sorted(shapes)}")
    stacked = torch.stack(tensors)
    stacked[:, :3] = (stacked[:, :3] + 1) / 2  # to [0, 1]
    if not torch.isfinite(stacked).all():
        raise OptinvError("input contains NaN or Inf values")
    return stacked, _unique(names)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            out.append(f"{n}_{seen[n]}")
        else:
            seen[n] = 0
            out.append(n)
    return out


def _with_notes(results: list[ItemResult], notes: dict[str, list[str]]) -> list[ItemResult]:
    for r in results:
        base = r.name.split("_dup")[0]
        r.notes = notes.get(base, []) + r.notes
    return results


def invert(images: Sequence[Source], model: Generator | str | None = None, device: str | None = "auto",
           options: JobOptions | None = None) -> list[ItemResult]:
    """Find latents whose images match ``images`` (resized to the model resolution)."""
    opts = options or JobOptions()
    g = get_model(model, resolve_device(device))
    notes: dict[str, list[str]] = {}
    targets, names = _load_many(images, g.size, False, opts.crop, notes)
    return _with_notes(solve("invert", g, targets, names, Identity(), opts), notes)


def pulse(lowres: Sequence[Source], scale: int | None = None, model: Generator | str | None = None,
          device: str | None = "auto", options: JobOptions | None = None, duplicates: int = 1) -> list[ItemResult]:
    """PULSE super-resolution: high-res images that downscale (×scale) to the inputs."""
    opts = options or JobOptions()
    if duplicates < 1:
        raise OptinvError(f"--duplicates must be ≥ 1, got {duplicates}")
    g = get_model(model, resolve_device(device))
    notes: dict[str, list[str]] = {}
    targets, names = _load_many(lowres, None, False, opts.crop, notes)
    side = targets.shape[-1]
    if scale is not None and side * scale != g.size:
        raise OptinvError(f"input is {side}×{side} and --scale {scale} gives {side * scale}², but the model makes "
                          f"{g.size}²: use --scale {g.size // side}" if g.size % side == 0 else
                          f"input is {side}×{side}; it must divide the model resolution {g.size}")
    op = downscale_operator(g.size, side, "the low-res input")
    rep_targets = targets.repeat_interleave(duplicates, 0)
    rep_names = [f"{n}_dup{d}" if duplicates > 1 else n for n in names for d in range(duplicates)]
    seeds = [opts.seed + d for _ in names for d in range(duplicates)]
    return _with_notes(solve("pulse", g, rep_targets, rep_names, op, opts, seeds=seeds), notes)


def paint(references: Sequence[Source], model: Generator | str | None = None, device: str | None = "auto",
          options: JobOptions | None = None) -> list[ItemResult]:
    """Images whose downscale matches an RGBA reference where its alpha is > 0."""
    opts = options or JobOptions()
    g = get_model(model, resolve_device(device))
    notes: dict[str, list[str]] = {}
    refs, names = _load_many(references, None, True, opts.crop, notes)
    if refs.shape[1] != 4:
        raise OptinvError("paint references need an alpha channel (RGBA)")
    for k, n in enumerate(names):
        if float(refs[k, 3].max()) <= 0:
            raise OptinvError(f"{n}: alpha is 0 everywhere, so nothing constrains the result")
    op = downscale_operator(g.size, refs.shape[-1], "the paint reference")
    return _with_notes(solve("paint", g, refs[:, :3], names, op, opts, alpha=refs[:, 3:4]), notes)




def encode(images: Sequence[Source], model: Generator | str | None = None, device: str | None = "auto",
           options: JobOptions | None = None) -> list[ItemResult]:
    """Encoder only, no optimisation: the fast path (milliseconds per image)."""
    import time
    from types import SimpleNamespace

    opts = options or JobOptions()
    space_name = opts.space or "wplus"
    if space_name not in ("wplus", "stylemap"):
        raise OptinvError(f"optinv encode predicts wplus or stylemap codes, not {space_name!r}")
    g = get_model(model, resolve_device(device))
    enc = warmstart.require(warmstart.find_encoder(g, space_name, opts.encoder), "optinv encode")
    notes: dict[str, list[str]] = {}
    targets, names = _load_many(images, g.size, False, opts.crop, notes)
    map_sizes = parse_map_sizes(opts.stylemap_res, g.n_latent) if space_name == "stylemap" else None
    settings = Settings(steps=1, progress=False)
    results: list[ItemResult] = []
    for start in range(0, len(names), max(1, opts.batch)):
        tgt = targets[start:start + max(1, opts.batch)].to(g.w_avg.device)
        t0 = time.perf_counter()
        codes = warmstart.encode(enc, tgt)
        seconds = time.perf_counter() - t0
        if space_name == "stylemap":
            space = StyleMapSpace.from_maps(g, warmstart.initial_maps(codes, map_sizes))
        else:
            space = make_space("wplus", g, warmstart.initial_wplus(codes))
        fake = SimpleNamespace(latent={k: v.detach().cpu() for k, v in space.named_parameters()},
                               noise=[n.expand(tgt.shape[0], -1, -1, -1).cpu() for n in g.noise_list()])
        for k in range(tgt.shape[0]):
            latent = _latent_record(g, space, fake, k, "encoder", settings, opts, map_sizes)
            latent["settings"] = {"encoder": getattr(enc, "card", {}), "steps": 0}
            image = render_latent(g, latent)[0]
            item = ItemResult(name=names[start + k], job="invert", image=image.cpu(), observed=image.cpu(),
                              target=tgt[k].cpu(), latent=latent, metrics={}, notes=notes.get(names[start + k], []))
            item.metrics = {**metrics.job_metrics("invert", item), "steps": 0, "batch": tgt.shape[0],
                            "seconds": round(seconds / tgt.shape[0], 4), "space": space_name, "recipe": "encoder"}
            results.append(item)
    return results


__all__ = ["JobOptions", "ItemResult", "invert", "pulse", "paint", "encode", "render_latent", "model_id"]
