"""Inverse problems on held-out renders: PULSE, W+ and ILO side by side at equal wall time.

Tasks: super-resolution ×8 and ×16, inpainting of a 30 % box over the eyes, colourisation.
Every method runs as the jobs run (``optinv pulse`` for super-resolution, ``optinv invert
--mask`` / ``--operator gray`` for the others); results are written as PNGs and scored with
``optinv evaluate``'s module against the truth, so these numbers are what a user would get
from the commands. Observation consistency: PSNR of the result seen through the operator
against the observation (known pixels only, for inpainting).

    python scripts/benchmark.py --only inverse            # ~10 min on one core
    python scripts/bench_inverse.py --images 2 --steps 60 # a quick look
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optinv.engine import jobs, metrics  # noqa: E402
from optinv.run.evaluate import evaluate  # noqa: E402
from optinv.io.image_files import atomic_save_image, load_image, make_grid  # noqa: E402
from optinv.engine.ilo import ILO_RADIUS, default_steps  # noqa: E402
from optinv.engine.operators import BicubicDownscale, Grayscale  # noqa: E402
from optinv.io.image_files import to_pil  # noqa: E402

TASKS = ("sr8", "sr16", "sr32", "inpaint_eyes", "colourise")
TASK_NAMES = {"sr8": "super-resolution ×8", "sr16": "super-resolution ×16", "sr32": "super-resolution ×32",
              "inpaint_eyes": "inpainting, 30 % box over the eyes", "colourise": "colourisation"}


def default_tasks(size: int) -> tuple[str, ...]:
    """Every task whose observation is at least 4×4 at this size (×32 needs a 128² model or larger)."""
    return tuple(t for t in TASKS if not t.startswith("sr") or size // int(t[2:]) >= 4)
METHODS = ("PULSE", "W+", "ILO", "ILO-Z+")  # ILO-Z+: `--ilo --ilo-latent job` (PULSE's search, then the layers)
EYE_BOX = (0.19, 0.19, 0.81, 0.67)  # left, top, right, bottom (fractions): 40×31 px of 64², 30 % of the image
ILO_LAYERS: str | None = None  # None: the job's default for the model (main's --ilo-steps / --ilo-radius try others)
ILO_RADII = ILO_RADIUS


def eye_mask(size: int) -> torch.Tensor:
    """[size, size]: 1 = known, 0 inside the box over the eyes (rows 19–67 %, columns 19–81 %)."""
    m = torch.ones(size, size)
    l, t, r, b = (round(f * size) for f in EYE_BOX)
    m[t:b, l:r] = 0
    return m


def method_options(method: str, steps: int) -> dict[str, Any]:
    """Job options per method; for ILO ``steps`` are its latent steps (its layers come on top), and its
    latent search is the job's `--ilo` default (one w from w_avg: ``presets.ILO_LATENT``)."""
    pulse = {"space": "zplus", "recipe": "100*L2+0.05*GEOCROSS", "lr": 0.4, "schedule": "linear1cycledrop",
             "noise": "trainable", "trainable_noise": 5, "eps": 0.0}
    if method == "PULSE":
        return {**pulse, "steps": steps}
    if method == "W+":
        return {"space": "wplus", "recipe": "100*L2", "lr": 0.1, "schedule": "cosine-ramp", "noise": "fixed",
                "init": "mean", "steps": steps, "adam_beta2": 0.9, "eps": 0.0}
    ilo = {"ilo": True, "ilo_steps": ILO_LAYERS, "ilo_radius": ILO_RADII}
    if method == "ILO-Z+":
        return {**pulse, **ilo, "steps": steps, "ilo_latent": "job"}
    return {"steps": steps, "eps": 0.0, **ilo}


def equal_time_steps(g, task: str, obs: torch.Tensor, names: list[str], extra: dict[str, Any],
                     steps: int) -> dict[str, int]:
    """Steps per method that take PULSE's time for ``steps``: each method's time per step is the
    lower quartile of the intervals between its steps on a short run of this batch (free of setup
    time; on a machine shared with other work the median still moved a method's budget by a third); ILO's latent steps are PULSE's time less its layer stages, at its own latent
    search's time per step."""
    probe = 24

    def step_seconds(method: str, n: int, layers: str | None = None) -> float:
        global ILO_LAYERS
        keep, stamps = ILO_LAYERS, []
        if layers is not None:
            ILO_LAYERS = layers
        try:
            run_method(g, task, method, obs, names, extra, n, lambda *_: stamps.append(time.perf_counter()))
        finally:
            ILO_LAYERS = keep
        gaps = [b - a for a, b in zip(stamps[1:], stamps[2:])]  # the first interval warms up
        return statistics.quantiles(gaps, n=4)[0]  # the lower quartile: a busy moment lengthens steps, never shortens them

    t_pulse = step_seconds("PULSE", probe)
    t_w = step_seconds("W+", probe)
    layer_steps = [int(x) for x in ILO_LAYERS.split(",")]
    t_layers = step_seconds("ILO", 1, ",".join([str(probe // len(layer_steps))] * len(layer_steps)))
    t_latent = step_seconds("ILO", probe, "1")
    budget = steps * t_pulse
    layers = sum(layer_steps) * t_layers
    return {"PULSE": steps, "W+": max(1, round(budget / t_w)), "ILO": max(1, round((budget - layers) / t_latent)),
            "ILO-Z+": max(1, round((budget - layers) / t_pulse))}  # its latent steps are PULSE's


def observe(task: str, truth: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any], torch.Tensor | None]:
    """(observation [N, 3, h, w] in [0, 1], the job's extra arguments, known-pixel mask or None)."""
    size = truth.shape[-1]
    if task.startswith("sr"):
        k = int(task[2:])
        return BicubicDownscale(k)(truth), {"scale": k}, None
    if task == "inpaint_eyes":
        m = eye_mask(size)
        return truth * m, {"mask": m}, m[None, None].expand(truth.shape[0], 1, -1, -1)
    return Grayscale()(truth), {"operator": "gray"}, None


def run_method(g, task: str, method: str, obs: torch.Tensor, names: list[str], extra: dict[str, Any],
               steps: int, callback=None) -> tuple[list, float]:
    """One method on one task (all images in one batch); (results, seconds per image)."""
    sources = list(zip(names, obs))
    opts = jobs.JobOptions.of(batch=len(names), progress=False, seed=0, callback=callback,
                              **method_options(method, steps), **{k: v for k, v in extra.items() if k != "scale"})
    t = time.perf_counter()
    if "scale" in extra:
        res = jobs.pulse(sources, scale=extra["scale"], model=g, device="cpu", options=opts)
    else:
        res = jobs.invert(sources, model=g, device="cpu", options=opts)
    return res, (time.perf_counter() - t) / len(names)


def hole_psnr(res, truth: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """PSNR against the truth inside the hole alone (mask 0), on the results as saved (8 bits)."""
    out = []
    for k, r in enumerate(res):
        saved = (r.image.clamp(0, 1) * 255).round() / 255
        mse = float(metrics.data_error(saved[None], truth[k:k + 1], 1 - mask[k:k + 1])[0])
        out.append(10 * math.log10(1 / max(mse, 1e-12)))
    return out


def consistency(res, mask: torch.Tensor | None) -> list[float]:
    """PSNR of A(result) against the observation, over the known pixels."""
    out = []
    for k, r in enumerate(res):
        alpha = mask[k:k + 1] if mask is not None else None
        mse = float(metrics.data_error(r.observed[None], r.target[None], alpha)[0])
        out.append(10 * math.log10(1 / max(mse, 1e-12)))
    return out


def bench_inverse(g, images: list[Path], steps: int = 150, tasks: tuple[str, ...] | None = None,
                  picture: Path | None = None, shown: int = 2, methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """Rows (task × method) of medians over the images, and the picture. ILO's layer stages: those
    chosen (``ILO_LAYERS``), else the job's default for this model's size, stated in the record."""
    global ILO_LAYERS
    chosen = ILO_LAYERS
    ILO_LAYERS = chosen or default_steps(g.size)
    try:
        return _bench_inverse(g, images, steps, tasks, picture, shown, methods)
    finally:
        ILO_LAYERS = chosen


def _bench_inverse(g, images: list[Path], steps: int, tasks: tuple[str, ...] | None, picture: Path | None,
                   shown: int, methods: tuple[str, ...]) -> dict[str, Any]:
    from optinv.engine.spaces import gaussian_fit

    tasks = tasks or default_tasks(g.size)
    gaussian_fit(g)  # PULSE's fit of the mapping, computed once and cached: not part of any method's time
    truth = torch.stack([load_image(p, size=g.size) for p in images])
    names = [p.stem for p in images]
    rows: list[dict[str, Any]] = []
    panels: list = []
    with tempfile.TemporaryDirectory() as tmp:
        tdir = Path(tmp) / "truth"
        tdir.mkdir()
        for n, t in zip(names, truth):
            atomic_save_image(to_pil(t), tdir / f"{n}.png")
        truth_faces = evaluate(tdir, tdir, lpips=False)
        for task in tasks:
            obs, extra, mask = observe(task, truth)
            results: dict[str, list] = {}
            budget = equal_time_steps(g, task, obs, names, extra, steps)
            for method in methods:
                res, secs = run_method(g, task, method, obs, names, extra, budget[method])
                results[method] = res
                pdir = Path(tmp) / task / method.replace("+", "plus")
                pdir.mkdir(parents=True)
                for r in res:
                    atomic_save_image(to_pil(r.image), pdir / f"{r.name}.png")
                ev = evaluate(pdir, tdir, lpips=False, scale=extra.get("scale"))
                cons = consistency(res, mask)
                row = {"task": TASK_NAMES[task], "method": method, "images": len(res),
                       "steps": res[0].metrics["steps"], "latent_steps": budget[method],
                       "s_per_image": round(secs, 2),
                       "psnr_vs_truth": round(statistics.median(r["psnr"] for r in ev.rows.values()), 2),
                       "ssim_vs_truth": round(statistics.median(r["ssim"] for r in ev.rows.values()), 4),
                       "ms_ssim_vs_truth": round(statistics.median(r["ms_ssim"] for r in ev.rows.values()), 4),
                       "observation_psnr": round(statistics.median(cons), 2)}
                if mask is not None:
                    row["psnr_hole"] = round(statistics.median(hole_psnr(res, truth, mask)), 2)
                if ev.mean.get("face_found") is not None:
                    row["faces_found"] = f"{sum(r['face_found'] for r in ev.rows.values())}/{len(ev.rows)}"
                    row["identity_distance"] = round(statistics.median(r["identity_distance"] for r in ev.rows.values()), 3)
                if method.startswith("ILO"):
                    moved = [m["moved"] for r in res for m in r.metrics["ilo_layers"]]
                    row["ilo_moved_median"] = round(statistics.median(moved), 4)
                rows.append(row)
                print(f"inverse {task} {method}: {row}", flush=True)
            for k in range(min(shown, len(names))):
                ob = to_pil(obs[k]).resize((g.size, g.size), 0)
                panels += [ob] + [to_pil(results[m][k].image) for m in methods] + [to_pil(truth[k])]
    if picture is not None and panels:
        atomic_save_image(make_grid(panels, cols=2 + len(methods), scale=max(1, 128 // g.size)), picture)
    faces = truth_faces.mean.get("face_found")
    return {"rows": rows, "images": names, "steps": steps, "ilo_layers": ILO_LAYERS, "ilo_radius": ILO_RADII,
            "model": g.card.get("name", "?"), "size": g.size,
            "truth_faces_found": None if faces is None else f"{sum(r['face_found'] for r in truth_faces.rows.values())}/{len(names)}"}


# scripts/ilo_levers.py (experiment in brackets); ×8 and inpainting PSNR against the truth, medians of 4.
LEVERS = [
    {"lever": "old default [e1]", "setting": "PULSE Z+ 88 steps, then 4²,8²,16² × 25, r 5 %, joint",
     "sr_x8": 27.07, "inpainting": 23.54, "hole": 18.40},
    {"lever": "radius [e1, e2]", "setting": "same, r 0 / 1 / 2 / 3 / 10 / 20 / 100 %",
     "sr_x8": "26.30 / 26.43 / 26.82 / 27.04 / 26.72 / 25.84 / 24.45", "inpainting": "r 20 %: 24.13, 100 %: 23.24"},
    {"lever": "layers [e1, e2]", "setting": "Z+ 88, r 5 %: 4² × 75 / 4²,8² × 40 / 8²–32² (r 20 %) / 4²–32² (r 20 %)",
     "sr_x8": "27.12 / 27.18 / 25.84 / 25.64", "inpainting": "8²–32²: 24.05, 4²–32²: 24.14"},
    {"lever": "stage lr [e2]", "setting": "Z+ 88, 4²–16² × 25, r 5 %: lr 0.03 / 0.1 / 0.3", "sr_x8": "27.00 / 27.07 / 26.56"},
    {"lever": "noise [e2]", "setting": "trainable noise in the layer stages", "sr_x8": "27.07 (no change: the stages hold the noise as found)"},
    {"lever": "latent search [e1, e3, e5]", "setting": "88 steps, then 4²,8² × 40, r 5 %, joint: Z+ (PULSE) / Z+ lr 0.2 / "
     "Z+ 0.5·GEOCROSS / W+ lr 0.05 / W from w_avg; 100 steps, r 10 %: one z / W from a random w",
     "sr_x8": "27.18 / 27.23 / 27.18 / 27.04 / 27.76; 26.90 / 26.89",
     "inpainting": "4²–16² × 25, r 5 %: Z+ 23.54, W+ 24.81"},
    {"lever": "W's lr [e4, e7]", "setting": "W 60 steps + 4²,8² × 40, r 10 %: lr 0.1 / 0.2 / 0.4",
     "sr_x8": "27.55 / 27.17 / 25.96", "inpainting": "23.99 / 23.71 / 23.56"},
    {"lever": "latent vs layer steps [e4, e6]", "setting": "W 60 + 40,40 / W 80 + 30,30 / W 100 + 40,40 / W 100 + 20,20, "
     "r 10 %, joint", "sr_x8": "27.55 / 27.80 / 28.16 / 27.00", "inpainting": "23.99 / 24.41 / 25.05 / 25.27 (W 100 alone: 25.47)"},
    {"lever": "joint → alone [e8, e9]", "setting": "W 100 + 20,20 / W 80 + 30,30 / W 120 + 20,20, r 10 %",
     "sr_x8": "27.00 → 27.37 / 27.80 → 26.80 / – → 27.92", "inpainting": "25.27 → 25.58 / 24.41 → 24.27 / – → 25.74",
     "hole": "20.20 → 20.50 / 19.30 → 19.17 / – → 20.66"},
]

# scripts/ilo_levers.py e10 on the 256² model: inpainting (30 % box over the eyes), 4 renders, medians; PSNR
# against the truth over the whole image / inside the box / outside it.
LEVERS_256 = [
    {"lever": "reference", "setting": "PULSE 150 steps / W+ 155", "inpainting": "22.30 / 23.33",
     "hole": "17.28 / 18.17", "known": "35.34 / 38.34"},
    {"lever": "latent search alone", "setting": "W from w_avg, 112 / 160 steps", "inpainting": "23.07 / 22.92",
     "hole": "18.03 / 17.82", "known": "34.80 / 35.59"},
    {"lever": "layer stages after W 112", "setting": "4²–16² × 20, r 10 % (the default) / r 2 %; 4²,8² × 20; "
     "16² alone × 20; 4² alone × 20", "inpainting": "22.89 / 23.14; 22.73; 23.18; 22.88",
     "hole": "17.71 / 18.00; 17.59; 17.99; 17.79", "known": "38.84 / 36.87; 36.83; 38.63; 35.20"},
    {"lever": "pull to w_avg in the search", "setting": "W 112 with 0.01 / 0.1 / 1 · WAVG (then 16² alone × 20)",
     "inpainting": "23.40 / 23.06 / 20.95 (23.38 / 23.23 / 21.38)", "hole": "18.37 / 18.05 / 16.01 (18.21 / 18.07 / 16.20)",
     "known": "34.63 / 34.14 / 32.39 (38.96 / 38.95 / 38.08)"},
]

STRUCTURAL_RECIPES = ("1*L2", "1*L2+0.01*SSIM", "1*L2+0.1*SSIM", "1*L2+0.01*MSSSIM", "1*L2+0.1*MSSSIM",
                      "1*L2+0.02*EDGE", "1*L2+0.05*EDGE", "1*L2+0.05*EDGE+0.01*SSIM")


def bench_structural(g, images: list[Path], steps: int = 150,
                     recipes: tuple[str, ...] = STRUCTURAL_RECIPES) -> list[dict[str, Any]]:
    """Offline recipes for invert: L2 alone against L2 + SSIM / MS-SSIM terms (W+, w_avg start,
    the invert job's schedule), scored by optinv evaluate's measures and the detail kept."""
    from world_quality import high_freq_energy

    from optinv.run.evaluate import score_pair

    rows = []
    for recipe in recipes:
        opts = jobs.JobOptions(space="wplus", recipe=recipe, steps=steps, init="mean", batch=len(images),
                               progress=False)
        t = time.perf_counter()
        res = jobs.invert([str(p) for p in images], model=g, device="cpu", options=opts)
        secs = (time.perf_counter() - t) / len(images)
        scores = [score_pair(r.image, r.target) for r in res]
        kept = (high_freq_energy(torch.stack([r.image for r in res]))
                / high_freq_energy(torch.stack([r.target for r in res]))).tolist()
        rows.append({"recipe": recipe, "images": len(res), "steps": steps, "s_per_image": round(secs, 2),
                     "psnr": round(statistics.median(x["psnr"] for x in scores), 2),
                     "ssim": round(statistics.median(x["ssim"] for x in scores), 4),
                     "ms_ssim": round(statistics.median(x["ms_ssim"] for x in scores), 4),
                     "detail_kept": round(statistics.median(kept), 3)})
        print(f"structural {rows[-1]}", flush=True)
    return rows


def markdown(data: dict[str, Any] | None, heading: str = "##", levers: bool = True,
             picture: str = "inverse_problems.png") -> list[str]:
    """The "Inverse problems" section of docs/BENCHMARKS.md (one model's table)."""
    if not data or not data.get("rows"):
        return []
    from md_table import markdown_table

    rows, size = data["rows"], data.get("size", 64)
    small = (f", the procedural faces at {size}² being small for it" if size < 128 else "")
    lines = [f"{heading} Inverse problems on the {size}² model: PULSE, W+ and ILO at equal wall time", "",
             f"{len(data['images'])} held-out renders ({', '.join(data['images'])}), "
             f"`{data.get('model', 'synthfaces64')}` ({size}²). "
             f"Every method gets the wall time of {data['steps']} PULSE steps: PULSE (Z+, 100·L2 + 0.05·GEOCROSS, "
             f"lr 0.4, linear1cycledrop, 5 trainable noise layers, no early stop), W+ (100·L2, lr 0.1, β2 0.9, "
             f"cosine ramp, w_avg start), ILO (the job with `--ilo` and its defaults: its latent search one w from "
             f"w_avg — the job's data term alone, lr 0.1, β2 0.9, cosine ramp — then the "
             f"{' and '.join(f'{4 << i}²' for i in range(len(str(data['ilo_layers']).split(','))))} feature maps for "
             f"{data['ilo_layers']} steps in ℓ1 balls of {data.get('ilo_radius', '?')} × each layer's norm, lr 0.1, "
             "the latent held where its search left it)" + (
                 ", ILO-Z+ (`--ilo --ilo-latent job`: PULSE's Z+ search with PULSE's settings, then the same layer "
                 "stages)" if any(r["method"] == "ILO-Z+" for r in rows) else "") +
             ". Each method's time per step is the lower quartile of "
             "the intervals between its steps on a short run of the same batch; `latent_steps` is what that time buys "
             "(ILO: its latent steps, the layer steps coming on top; `steps`: all steps run). "
             "`s_per_image`: measured wall time (one core, batch of all images) on a machine shared with other "
             "work, so a busy moment shows in it (a run that took several times its neighbours' time waited on "
             "the machine, not on its method); the step budgets come from the step intervals. Scores from `optinv evaluate` "
             "(medians over images; the results as 8-bit PNGs): PSNR, SSIM and MS-SSIM against the truth; "
             "`observation_psnr`: the result through the task's operator against the observation (known pixels "
             "only for inpainting); `psnr_hole`: against the truth inside the box alone; `faces_found`: dlib's detector on the results (enlarged to 256²) — on the "
             f"truth it finds {data.get('truth_faces_found', '?')}{small}; "
             "`identity_distance`: dlib descriptor, result ↔ truth (< 0.6 = same person). LPIPS: not measured "
             "(no backbone offline). Inpainting: the mask covers rows 19–67 % and columns 19–81 % (eyes and nose); "
             "colourisation: the observation is the BT.601 luminance. Picture: "
             f"[observation | {' | '.join(dict.fromkeys(r['method'] for r in rows))} | truth]({picture}), "
             "two images per task.", ""]
    lines += markdown_table(rows)
    by = {(r["task"], r["method"]): r for r in rows}
    gains = [f"{task} {by[(task, 'ILO')]['psnr_vs_truth'] - by[(task, 'PULSE')]['psnr_vs_truth']:+.2f} dB"
             for task in dict.fromkeys(r["task"] for r in rows)
             if (task, "ILO") in by and (task, "PULSE") in by and "psnr_vs_truth" in by[(task, "PULSE")]]
    if gains:
        lines += ["", f"ILO against PULSE, PSNR to the truth: {', '.join(gains)}. Most of it is the latent search: "
                  "one w from w_avg draws a typical face the layer stages then bend towards the observation; "
                  "PULSE's Z+ draws a sharper, less likely one. The cost is sharpness: dlib finds fewer faces in "
                  "ILO's super-resolved results than in PULSE's (see `faces_found` and the picture), and ILO's "
                  "budget follows the measured step times, so a mis-timed probe moves it (below: 20 fewer latent "
                  "steps cost ×8 about 0.5 dB)."] if size < 128 else [
                  "", f"ILO against PULSE, PSNR to the truth: {', '.join(gains)}."] + ([
                  "", "ILO-Z+ against PULSE: " + ", ".join(
                      f"{task} {by[(task, 'ILO-Z+')]['psnr_vs_truth'] - by[(task, 'PULSE')]['psnr_vs_truth']:+.2f} dB"
                      for task in dict.fromkeys(r["task"] for r in rows)
                      if (task, "ILO-Z+") in by and (task, "PULSE") in by) + "."]
                  if any(r["method"] == "ILO-Z+" for r in rows) else [])
    if levers:
        lines += lever_markdown()
    elif size >= 128:
        lines += hires_lever_markdown(size)
    return lines + structural_markdown(data.get("structural"), size)


def lever_markdown() -> list[str]:
    from md_table import markdown_table

    lines = ["", "### What each ILO lever gave", "",
              "Diagnostic runs before the defaults changed (`python scripts/ilo_levers.py e1` … `e9`, 4 renders, "
              "one thread): one latent search, then each layer-stage variant from that same latent; PSNR against "
              "the truth, medians, no equal-time budget (each row states its steps). \"joint\": the layer stages "
              "also move the latent (ILO's code, the old default); \"alone\": the features alone (the new default).",
              ""]
    return lines + markdown_table(LEVERS)


def hires_lever_markdown(size: int) -> list[str]:
    from md_table import markdown_table

    return ["", f"### Inpainting at {size}²: what each lever gave", "",
            "Why ILO's lead over PULSE shrinks to half a dB on inpainting at this size "
            "(`python scripts/ilo_levers.py e10`, 4 renders, one thread, no equal-time budget): no lever lifts the "
            "whole-image PSNR more than 0.35 dB above the latent search alone (23.07 dB), and none moves the box's own PSNR past 18.4 dB. The layer "
            "stages fit the known pixels (38.8 dB against 34.8 dB for the latent alone) but leave the box as the "
            "latent search drew it, or a little worse; the box hides eyes, brows and most of the hair line, which "
            "the rest of the face does not determine, so what fills it is the prior's guess whichever way the "
            "search reaches it. On the 64² model (below) the same box gives ILO +2.2 dB over PULSE.", ""
            ] + markdown_table(LEVERS_256)


def structural_markdown(structural: list[dict] | None, size: int) -> list[str]:
    from md_table import markdown_table

    if not structural:
        return []
    return [f"### Offline recipe terms at {size}²: L2 against L2 + SSIM / MS-SSIM / EDGE (invert)", "",
            "W+ inversion of the same held-out renders (w_avg start, the invert job's schedule and lr), "
            "one recipe per row. `SSIM` and `MSSSIM` are recipe terms (1 − SSIM, 1 − MS-SSIM through the "
            "operator; MS-SSIM uses the scales that fit the image); `EDGE` matches local edge energy and "
            "local variation (the term that sharpened the 256² model's training). Scores: medians of optinv "
            "evaluate's PSNR / SSIM / MS-SSIM against the input, and `detail_kept`, the share of the input's "
            "high-frequency energy (squared Laplacian) the result keeps.", ""] + markdown_table(structural)


def main(argv: list[str] | None = None) -> None:
    from optinv.io.checkpoints import load_generator

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--tasks", default=None, help=f"comma-separated, of {', '.join(TASKS)} (default: all that fit the model)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--ilo-steps", default=None, help="ILO's layer steps (default: the job's for the model)")
    ap.add_argument("--ilo-radius", default=ILO_RADIUS, help="ILO's radii (default: the job's)")
    ap.add_argument("--no-structural", action="store_true")
    args = ap.parse_args(argv)
    global ILO_LAYERS, ILO_RADII
    ILO_LAYERS, ILO_RADII = args.ilo_steps, args.ilo_radius
    g = load_generator(args.model, device="cpu")
    images = sorted((ROOT / "samples" / "images").glob("*.png"))[:args.images]
    tasks = tuple(args.tasks.split(",")) if args.tasks else None
    data = bench_inverse(g, images, args.steps, tasks, methods=tuple(args.methods.split(",")))
    if not args.no_structural:
        data["structural"] = bench_structural(g, images, args.steps)
    print("\n".join(markdown(data)))


if __name__ == "__main__":
    main()
