#!/usr/bin/env python
"""Measure optinv on the embedded model and samples/, and write docs/BENCHMARKS.md.

  python scripts/benchmark.py                 # everything (tens of minutes on a 2-core CPU)
  python scripts/benchmark.py --quick         # a few minutes: fewer images and steps
  python scripts/benchmark.py --only invert,pulse

Sections: generator speed (256² and 1024² config-f), inversion per space, W+ quality proxy,
PULSE ×8/×16 (and ×32/×64 on the 256² model), paint, the optimiser's overhead over a bare loop,
inverse problems (PULSE, W+ and ILO on super-resolution, inpainting and colourisation;
scripts/bench_inverse.py) and FFHQ scale (``--only ffhq``: fp32/bf16 quality and speed against the
GEMM rate, 1024² job time and memory). Raw numbers go to
docs/benchmarks.json with the machine and the command; pictures to docs/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from optinv.engine import jobs, metrics
from optinv.io.checkpoints import load_generator
from optinv.engine.generator import Generator
from optinv.io.image_files import load_image
from optinv.io.outputs import compare_strip
from optinv.engine.presets import JOB_DEFAULTS
from optinv.engine.spaces import DEFAULT_MAP_SIDES
from optinv.io.ranges import to_unit

ROOT = Path(__file__).resolve().parents[1]

DOCS = ROOT / "docs"
SAMPLES = ROOT / "samples"


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def bench_generator(quick: bool) -> list[dict]:
    rows = []
    for size in (256, 1024):
        g = Generator(size).eval()
        w = g.mean_latent(100)[None, None].expand(1, g.n_latent, -1).clone()
        with torch.no_grad():
            fwd = timed(lambda: g.synthesis(w), 1 if quick or size == 1024 else 3)
        wp = w.clone().requires_grad_(True)

        def fb():
            g.synthesis(wp).square().mean().backward()

        both = timed(fb, 1 if quick or size == 1024 else 2)
        rows.append({"resolution": size, "params_M": round(sum(p.numel() for p in g.parameters()) / 1e6, 1),
                     "forward_s": round(fwd, 3), "forward_backward_s": round(both, 3)})
        print(f"generator {size}: fwd {fwd:.2f}s, fwd+bwd {both:.2f}s", flush=True)
    return rows


def bench_world(g, images, quick: bool) -> list[dict]:
    """The embedded world's three measures for this model, with its training record."""
    import world_quality

    row = world_quality.measure(g, images, steps=100 if quick else 300, n=32 if quick else 64)
    training = g.card.get("training", {})
    row.update({"hours": training.get("hours", round(training.get("seconds", 0) / 3600, 2)),
                "device": training.get("device", training.get("hardware", "?")),
                "recipe": f"{training.get('mode', '?')}, loss {training.get('loss', 'l1l2')}, "
                          f"style init {training.get('style_init', 'random')}"})
    return [row]


WORLD_RECIPES = ("1*L2", "1*L2+0.02*EDGE", "1*L2+0.05*EDGE", "1*L2+0.1*EDGE")


def bench_world_recipes(g, images, quick: bool) -> list[dict]:
    """The world section's inversion measure (W+ 300 steps of held-out renders: PSNR, detail kept)
    once per offline recipe: how much of the input's detail each term buys, and at what PSNR."""
    import world_quality

    return [{"model": g.card.get("name", "?"), **world_quality.inversion_detail(g, images, 100 if quick else 300, r)}
            for r in WORLD_RECIPES]


ADAM_BETA2 = JOB_DEFAULTS["invert"]["adam_beta2"]


def sample_images(n: int) -> list[Path]:
    return sorted((SAMPLES / "images").glob("*.png"))[:n]


def l2_options(space: str, steps: int, batch: int, init: str = "mean", schedule: str = "fixed",
               **extra) -> jobs.JobOptions:
    """The benchmark's inversion settings: L2, Adam lr 0.05 with the invert job's β2 (0.9), fixed noise
    (zplus: + GEOCROSS, lr 0.2)."""
    zplus = space == "zplus"
    extra.setdefault("adam_beta2", ADAM_BETA2)
    return jobs.JobOptions(space=space, steps=steps, batch=batch, recipe="1*L2+0.005*GEOCROSS" if zplus else "1*L2",
                           lr=0.2 if zplus else 0.05, schedule=schedule, noise="fixed", init=init, progress=False,
                           **extra)


def bench_invert(g, images, checkpoints, spaces, batch, stylemap_res: str | None = None,
                 picture: bool = True, time_reference: str | None = "wplus",
                 reference_cpu_per_step: float | None = None) -> tuple[list[dict], dict]:
    """One run per space for max(checkpoints) steps (fixed lr, so stopping early = a shorter run);
    per-image best-so-far PSNR is read off at each checkpoint. Returns rows and the curves.

    When ``time_reference`` is among the spaces (or its CPU seconds per step are given, measured in
    an earlier call on the same images), every other space also gets rows at the reference's time
    (`at_time_of`): the step whose CPU seconds equal the reference's at each checkpoint."""
    import math

    from optinv.engine.spaces import gaussian_fit

    gaussian_fit(g)  # computed once and cached; keep it out of the zplus timings
    rows, curves = [], {}
    steps = max(checkpoints)
    cpu_per_step, history = {}, {}
    for space in spaces:
        best = torch.full((len(images),), float("inf"))
        hist: list[torch.Tensor] = []
        trace: list[float] = []

        def cb(step, record, parts, best=best, hist=hist, trace=trace):
            best.copy_(torch.minimum(best, parts["L2"].cpu()))
            trace.append(10 * math.log10(1 / max(record["L2"], 1e-12)))
            hist.append(best.clone())

        opts = l2_options(space, steps, batch, stylemap_res=stylemap_res, callback=cb)
        t, cpu = time.perf_counter(), time.process_time()
        res = jobs.invert(images, model=g, device="cpu", options=opts)
        secs, cpu_secs = time.perf_counter() - t, time.process_time() - cpu
        curves[space], history[space], cpu_per_step[space] = trace, hist, cpu_secs / steps
        for c in checkpoints:
            row = {"space": space, "steps": c, **_psnr_at(hist, c, len(res))}
            if c == steps:
                row.update({"median_ssim": round(median([r.metrics["ssim"] for r in res]), 4),
                            "median_mse": round(median([r.metrics["fit_mse"] for r in res]), 5)})
            row["s_per_step"] = round(secs / steps, 4)
            row["cpu_s_per_step"] = round(cpu_secs / steps, 4)
            rows.append(row)
            print(f"invert {space} {c}: {row}", flush=True)
        if picture:
            save_strips(res[:4], DOCS / f"invert_{space}.png")
    reference = cpu_per_step.get(time_reference, reference_cpu_per_step)
    if reference:
        for space in spaces:
            if space == time_reference:
                continue
            ratio = reference / cpu_per_step[space]
            for c in checkpoints:
                at = max(1, min(steps, round(c * ratio)))
                rows.append({"space": space, "steps": at, "at_time_of": f"{time_reference} {c}",
                             **_psnr_at(history[space], at, len(images)),
                             "cpu_s_per_step": round(cpu_per_step[space], 4)})
    return rows, curves


def _psnr_at(hist: list[torch.Tensor], step: int, images: int) -> dict:
    """Median and worst per-image best-so-far PSNR after ``step`` steps (hist[i]: after step i+1)."""
    import math

    ps = [10 * math.log10(1 / max(float(m), 1e-12)) for m in hist[step - 1]]
    return {"images": images, "median_psnr": round(median(ps), 2), "worst_psnr": round(min(ps), 2)}


STYLEMAP_SIDES = ("2,4,1", "4,8,1", "4,8,2", "4,8,4", "4,8,8")  # pSp's split, then finer maps
OUT_OF_DOMAIN = ("chelsea", "coffee")  # scikit-image's public-domain cat and coffee cup: not faces


def out_of_domain_images(size: int) -> list[torch.Tensor]:
    """Two non-face photos at the model's size as [3, H, W] in [-1, 1] (what jobs take in memory),
    or [] without scikit-image."""
    try:
        import skimage.data
    except ImportError:
        return []
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    return [(pil_to_tensor(Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
                                    .resize((size, size), Image.LANCZOS)).float() / 255) for name in OUT_OF_DOMAIN]


def bench_stylemap_res(g, images, checkpoints) -> list[dict]:
    """StyleMap inversion with each map-size candidate (and W+ for reference), on held-out faces and
    on two non-face photos: a face prior should fit faces far better than a cat. `prior_margin_db`
    is the faces' median PSNR minus the non-faces' at the same steps."""
    others = out_of_domain_images(g.size)
    rows = []
    for res in ("wplus", *STYLEMAP_SIDES):
        space = "wplus" if res == "wplus" else "stylemap"
        sides = None if res == "wplus" else res
        part, _ = bench_invert(g, images, checkpoints, [space], batch=len(images), stylemap_res=sides,
                               picture=False)
        ood = {}
        if others:
            ood_rows, _ = bench_invert(g, others, checkpoints, [space], batch=len(others), stylemap_res=sides,
                                       picture=False)
            ood = {r["steps"]: r["median_psnr"] for r in ood_rows}
        for r in part:
            row = {"stylemap_res": "W+ (no maps)" if res == "wplus" else res, "steps": r["steps"],
                   "images": r["images"], "median_psnr": r["median_psnr"], "worst_psnr": r["worst_psnr"]}
            if ood:
                row.update({"non_face_psnr": ood[r["steps"]],
                            "prior_margin_db": round(r["median_psnr"] - ood[r["steps"]], 2)})
            row["cpu_s_per_step"] = r["cpu_s_per_step"]
            rows.append(row)
    return rows


def own_invert_rows(data: dict) -> list[dict]:
    """The invert section's rows at their own step counts (not the equal-time read-offs)."""
    return [r for r in data.get("invert", []) if "at_time_of" not in r]


def save_strips(results, path: Path) -> None:
    strips = [compare_strip(r) for r in results]
    w, h = strips[0].size
    from PIL import Image

    canvas = Image.new("RGB", (w, h * len(strips)), "white")
    for i, s in enumerate(strips):
        canvas.paste(s, (0, i * h))
    canvas.save(path)


def bench_pulse(g, n: int, steps: int, batch: int) -> list[dict]:
    rows = []
    for factor in (8, 16):
        files = sorted((SAMPLES / "lowres").glob(f"*_x{factor}.png"))[:n]
        opts = jobs.JobOptions(steps=steps, batch=batch, progress=False)
        t = time.perf_counter()
        res = jobs.pulse(files, scale=factor, model=g, device="cpu", options=opts)
        secs = time.perf_counter() - t
        hi = [load_image(SAMPLES / "images" / f"{f.stem.split('_')[0]}.png", size=g.size) for f in files]
        ps = [10 * torch.log10(1 / ((r.image - h).pow(2).mean())).item() for r, h in zip(res, hi)]
        rows.append({"scale": factor, "images": len(res), "steps": steps,
                     "within_eps_2e-3": round(sum(r.metrics["within_eps"] for r in res) / len(res), 3),
                     "median_fit_mse": round(median([r.metrics["fit_mse"] for r in res]), 5),
                     "median_psnr_vs_highres": round(median(ps), 2), "s_per_image": round(secs / len(res), 2)})
        print(f"pulse x{factor}: {rows[-1]}", flush=True)
        save_strips(res[:4], DOCS / f"pulse_x{factor}.png")
    return rows


def faces_found(images: list) -> int | None:
    """How many of these PIL images dlib's detector finds a face in (None without the faces extra)."""
    from optinv.faces import backend, identity

    if not backend.available():
        return None
    return sum(identity.face_found(im) for im in images)


def pulse_hires_picture(files: list[Path], results, truths: list, path: Path) -> None:
    """Rows of: low-res input | result | result downscaled | the high-res render (nearest-upscaled tiles)."""
    from PIL import Image, ImageDraw

    from optinv.io.image_files import to_pil

    side = truths[0].width
    head = 14
    canvas = Image.new("RGB", (4 * side + 12, head + len(files) * (side + 4)), "white")
    draw = ImageDraw.Draw(canvas)
    for k, text in enumerate(("input", "result", "result downscaled", "high-res render")):
        draw.text((k * (side + 4) + 2, 1), text, fill=(0, 0, 0))
    for i, (f, r, truth) in enumerate(zip(files, results, truths)):
        low = Image.open(f).convert("RGB").resize((side, side), Image.NEAREST)
        again = to_pil(r.observed.clamp(0, 1)).resize((side, side), Image.NEAREST)  # the job's own downscale
        for k, im in enumerate((low, to_pil(r.image), again, truth)):
            canvas.paste(im, (k * (side + 4), head + i * (side + 4)))
    canvas.save(path)


def lowres_with_truths(g, factor: int, n: int) -> tuple[list[Path], list, list[torch.Tensor]]:
    """The first ``n`` samples/lowres files of this factor that upscale to the model's size, with the
    renders they were made from (PIL, and as [3, H, W] tensors in [0, 1])."""
    from optinv.world import synthfaces

    files = [f for f in sorted((SAMPLES / "lowres").glob(f"*_x{factor}.png"))
             if Image.open(f).width * factor == g.size][:n]
    truths = [synthfaces.render(int(f.stem.split("_")[0]), g.size)[0] for f in files]
    return files, truths, [torch.from_numpy(np.array(truth)).permute(2, 0, 1) / 255.0 for truth in truths]


def bench_pulse_hires(model: str, n: int, steps: int, seeds: int = 3) -> list[dict]:
    """PULSE ×32 (8×8) and ×64 (4×4) on a 256² model: the project's headline example; ×32 also with ILO.

    Each input runs with ``seeds`` seeds: which outputs dlib's detector finds a face in changes from
    seed to seed (2, 4 and 3 of 8 with seeds 0–2 at ×32), so one seed's count is too noisy to set
    against the renders'. The picture shows seed 0."""
    from optinv.io.image_files import to_pil

    g = load_generator(model, device="cpu")
    rows = []
    for factor, ilo in ((32, False), (32, True), (64, False)):
        files, truths, truth_tensors = lowres_with_truths(g, factor, n)
        if not files:
            print(f"pulse x{factor}: no {g.size // factor}² files in samples/lowres for this model", flush=True)
            continue
        runs, secs = [], 0.0
        for seed in range(seeds):
            opts = jobs.JobOptions(steps=steps, batch=1, progress=False, ilo=ilo, seed=seed)
            t = time.perf_counter()
            runs.append(jobs.pulse(files, scale=factor, model=g, device="cpu", options=opts))
            secs += time.perf_counter() - t
        every = [r for res in runs for r in res]
        ps = [metrics.psnr(r.image, truth) for res in runs for r, truth in zip(res, truth_tensors)]
        found, in_renders = faces_found([to_pil(r.image) for r in every]), faces_found(truths)
        rows.append({"model": f"{g.card.get('name', '?')} ({g.size}²)", "scale": factor, "method": "ILO" if ilo else "PULSE",
                     "input": f"{g.size // factor}²", "images": len(files), "seeds": seeds, "steps": steps,
                     "within_eps_2e-3": round(sum(r.metrics["within_eps"] for r in every) / len(every), 3),
                     "median_fit_mse": round(median([r.metrics["fit_mse"] for r in every]), 6),
                     "median_steps_run": median([r.metrics["steps"] for r in every]),
                     "median_psnr_vs_highres": round(median(ps), 2),
                     "faces_in_results": None if found is None else f"{found}/{len(every)}",
                     "faces_in_renders": None if in_renders is None else f"{in_renders * seeds}/{len(every)}",
                     "s_per_image": round(secs / len(every), 2)})
        print(f"pulse x{factor}: {rows[-1]}", flush=True)
        pulse_hires_picture(files, runs[0], truths, DOCS / f"pulse_x{factor}{'_ilo' if ilo else ''}.png")
    return rows


def bench_resolution_speed(models: tuple[str, ...], batch: int = 4, steps: int = 20, rounds: int = 2) -> list[dict]:
    """Seconds per W+ step of each model, same run, same batch, interleaved rounds (best of each)."""
    gens = [load_generator(m, device="cpu") for m in models]
    target = {g.size: torch.rand(batch, 3, g.size, g.size) for g in gens}
    best = {m: math.inf for m in models}
    for _ in range(rounds):
        for m, g in zip(models, gens):
            opts = jobs.JobOptions(space="wplus", recipe="1*L2", steps=steps, eps=0.0, batch=batch, progress=False)
            t = time.perf_counter()
            jobs.invert(list(target[g.size]), model=g, device="cpu", options=opts)
            best[m] = min(best[m], (time.perf_counter() - t) / steps)
    base = best[models[0]]
    rows = [{"model": m, "resolution": g.size, "batch": batch, "s_per_wplus_step": round(best[m], 4),
             "ratio_to_first": round(best[m] / base, 2), "threads": torch.get_num_threads()}
            for m, g in zip(models, gens)]
    for r in rows:
        print(f"resolution speed: {r}", flush=True)
    return rows


def bench_invert_hires(model: str, n: int, checkpoints: list[int], map_sides: list[str | None],
                       earlier: list[dict]) -> list[dict]:
    """W+ against StyleMap on the 256² model, at equal steps and equal CPU time, per map-side choice.

    Targets are the same held-out seeds as samples/images, rendered at the model's size. Rows of
    map sides not rerun now are kept from ``earlier``."""
    import world_quality

    g = load_generator(model, device="cpu")
    images = world_quality.held_out_renders(sample_images(n), g.size)
    label = f"{g.card.get('name', '?')} ({g.size}²)"
    default = ",".join(map(str, DEFAULT_MAP_SIDES))
    rows = []
    wplus_cpu = next((r["cpu_s_per_step"] for r in earlier if r["space"] == "wplus" and "at_time_of" not in r), None)
    for sides in sorted(map_sides, key=lambda s: s is not None):  # W+ (with the default sides) first
        spaces = ["wplus", "stylemap"] if sides is None else ["stylemap"]
        got, _ = bench_invert(g, images, checkpoints, spaces, batch=len(images), stylemap_res=sides, picture=False,
                              reference_cpu_per_step=wplus_cpu)
        wplus_cpu = next((r["cpu_s_per_step"] for r in got if r["space"] == "wplus"), wplus_cpu)
        rows += [{"model": label, "maps": "" if r["space"] == "wplus" else (sides or default), **r} for r in got]
    if None not in map_sides:  # W+ ran earlier: each row's CPU cost against its step
        wplus = next((r["cpu_s_per_step"] for r in earlier if r["space"] == "wplus"), None)
        for r in rows if wplus else []:
            r["cpu_ratio_to_wplus"] = round(r["cpu_s_per_step"] / wplus, 2)
    redone = {r["maps"] for r in rows}
    return [r for r in earlier if r.get("maps", "") not in redone and not (None in map_sides and r["space"] == "wplus")] + rows


def bench_paint(g, steps: int, batch: int) -> list[dict]:
    files = sorted((SAMPLES / "paint").glob("*.png"))
    opts = jobs.JobOptions(steps=steps, batch=batch, progress=False)
    t = time.perf_counter()
    res = jobs.paint(files, model=g, device="cpu", options=opts)
    secs = time.perf_counter() - t
    save_strips(res[:4], DOCS / "paint.png")
    row = {"images": len(res), "steps": steps,
           "mean_alpha_weighted_mse": round(statistics.mean(r.metrics["fit_mse"] for r in res), 5),
           "mean_masked_mse": round(statistics.mean(r.metrics["masked_mse"] for r in res), 5),
           "within_eps_2e-3": round(sum(r.metrics["within_eps"] for r in res) / len(res), 3),
           "s_per_image": round(secs / len(res), 2)}
    print(f"paint: {row}", flush=True)
    return [row]


def bench_overhead(g, batch: int, steps: int, rounds: int = 5) -> dict:
    """optinv's loop (W+, L2, fixed noise) against the bare minimum loop on the same work."""
    images = sample_images(batch)
    target = torch.stack([load_image(p, size=g.size) for p in images])
    noise = g.noise_list()

    def bare():
        w = g.w_avg[None, None].expand(batch, g.n_latent, -1).clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=0.05)
        for _ in range(steps):
            img = (g.synthesis(w, noise=noise) + 1) / 2
            loss = (img - target).pow(2).flatten(1).mean(1).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

    from losses.recipe import build_objective
    from optinv.engine.operators import Identity
    from optinv.engine.optimize import Problem, Settings, run
    from optinv.engine.spaces import make_space

    def ours():
        sp = make_space("wplus", g, batch=batch)
        run(g, sp, Problem(target=target, operator=Identity()), build_objective("1*L2"),
            Settings(steps=steps, lr=0.05, progress=False))

    t_bare, t_ours = math.inf, math.inf
    for _ in range(rounds):  # interleaved, best of each: other load on the machine hits both alike
        t_bare = min(t_bare, timed(bare, 1))
        t_ours = min(t_ours, timed(ours, 1))
    row = {"batch": batch, "steps": steps, "bare_s_per_step": round(t_bare / steps, 4),
           "optinv_s_per_step": round(t_ours / steps, 4), "ratio": round(t_ours / t_bare, 3)}
    print(f"overhead: {row}", flush=True)
    return row


def bench_batch_scaling(g, steps: int) -> list[dict]:
    rows = []
    for b in (1, 4, 16):
        images = (sample_images(16) * 2)[:b]
        opts = jobs.JobOptions(space="wplus", recipe="1*L2", steps=steps, batch=b, progress=False)
        t = time.perf_counter()
        jobs.invert(images, model=g, device="cpu", options=opts)
        secs = time.perf_counter() - t
        rows.append({"batch": b, "images_per_s_at_100_steps": round(b / secs * steps / 100, 3)})
        print(f"batch {b}: {rows[-1]}", flush=True)
    return rows


def cold_curve(g, images, space: str, steps: int = 1000, lr: float = 0.05) -> list[float]:
    """The cold-start PSNR trace of bench_invert (w_avg init, L2, Adam fixed lr), for one space."""
    opts = l2_options(space, steps, len(images))
    opts.lr = lr
    trace: list[float] = []
    _invert_with_trace(g, images, opts, trace)
    return trace


WARM_LRS = (0.05, 0.1)  # the cold start's lr, and the one that suits a start near the answer


def encoder_rows(g, enc, name: str, space: str, x: torch.Tensor) -> list[dict]:
    """Encoder alone on targets x: one row per number of passes (1 … as trained)."""
    import math

    from optinv.engine import warmstart
    from optinv.engine.metrics import ssim

    rows = []
    for passes in range(1, (enc.passes if enc.iterative else 1) + 1):
        t = timed(lambda: warmstart.encode(enc, x, g, passes), 5) / len(x)
        codes = warmstart.encode(enc, x, g, passes)
        maps = codes if not isinstance(codes, torch.Tensor) else None
        with torch.no_grad():
            styles = codes if maps is None else [m[:, :, 0, 0] if m.shape[-1] == 1 else m for m in maps]
            y = to_unit(g.synthesis(styles)).clamp(0, 1)
        mse = (y - x).pow(2).mean(dim=(1, 2, 3))
        rows.append({"encoder": name, "space": space, "passes": passes, "images": len(x),
                     "median_psnr": round(median([10 * math.log10(1 / max(float(m), 1e-12)) for m in mse]), 2),
                     "median_ssim": round(median([ssim(y[i:i + 1], x[i:i + 1]) for i in range(len(x))]), 4),
                     "median_mse": round(median(mse.tolist()), 5),
                     "ms_per_image": round(t * 1000, 2)})
        print(f"encoder {name} ×{passes}: {rows[-1]}", flush=True)
    return rows


def warm_row(space: str, encoder: str, lr: float, cold: list[float], warm_trace: list[float]) -> dict:
    """Steps the warm trace needs to reach the cold trace's 1000- and 500-step PSNR, and what its
    first 100 steps are worth in cold steps (PSNR of the batch-mean L2, best so far)."""
    cold_final, cold_500, warm100 = max(cold), max(cold[:501]), max(warm_trace[:101])

    def first(trace, level):
        return next((i for i, p in enumerate(trace) if p >= level), None)

    reach, reach500, equiv = first(warm_trace, cold_final), first(warm_trace, cold_500), first(cold, warm100)
    return {"space": space, "encoder": encoder, "lr": lr, "cold_start_steps": len(cold) - 1,
            "cold_best_psnr": round(cold_final, 2), "warm_steps_to_reach_it": reach if reach is not None
            else f">{len(warm_trace) - 1}", "cold_psnr_at_500": round(cold_500, 2),
            "warm_steps_to_reach_cold_500": reach500 if reach500 is not None else f">{len(warm_trace) - 1}",
            "warm_psnr_at_step_0": round(warm_trace[0], 2), "warm_psnr_at_100": round(warm100, 2),
            "cold_steps_to_match_warm_100": equiv if equiv is not None else f">{len(cold) - 1}",
            f"warm_psnr_at_{len(warm_trace) - 1}": round(max(warm_trace), 2)}


def bench_encoders(g, images, cold_curves: dict, warm_steps: int, cached: dict | None = None,
                   cold_steps: int = 1000) -> dict:
    """Encoders alone (every pass of an iterative one), and warm starts: steps to reach the PSNR a
    cold start (w_avg init, L2, fixed lr) reaches at 1000 and at 500 steps, at lr 0.05 and 0.1
    (warm and cold at the same lr). StyleMap also starts from the W+ encoder when the model has both. Cold curves
    come from the invert section, else the cache in benchmarks.json (same images), else run here."""
    from optinv.engine import warmstart

    rows, warm, sched, curves, warm_curves = [], [], [], dict(cached or {}), {}
    wplus_file = warmstart._card_encoder_path(g, "wplus")
    for space in ("wplus", "stylemap"):
        enc = warmstart.find_encoder(g, space)
        if enc is None:
            continue
        res = jobs.encode(images, model=g, device="cpu", options=jobs.JobOptions(space=space, batch=len(images)))
        x = torch.stack([r.target for r in res])
        own = warmstart._card_encoder_path(g, space) or wplus_file
        rows += encoder_rows(g, enc, own.name, space, x)
        colds = {}
        for lr in WARM_LRS:  # a warm start is compared with a cold start at its own lr
            key = space if lr == 0.05 else f"{space}@{lr}"
            cold = cold_curves.get(key) or curves.get(key) or cold_curve(g, images, space, cold_steps, lr)
            curves[key] = colds[lr] = [round(p, 3) for p in cold]
        starts = [(own, None)]
        if enc.iterative:
            starts.append((own, 1))
        if space == "stylemap" and wplus_file is not None and wplus_file != own:
            starts.append((wplus_file, None))
        for file, passes in starts:
            label = file.name + (" (first pass)" if passes == 1 else "")
            for lr in WARM_LRS:
                opts = l2_options(space, warm_steps, len(images), init="encoder", encoder=str(file),
                                  encoder_passes=passes)
                opts.lr = lr
                warm_trace: list[float] = []
                _invert_with_trace(g, images, opts, warm_trace)
                warm.append(warm_row(space, label, lr, colds[lr], warm_trace))
                print(f"warm start {space}: {warm[-1]}", flush=True)
                warm_curves.setdefault(space, {})[f"{label}, lr {lr}"] = [round(p, 3) for p in warm_trace]
        sched.append({"space": space, **default_schedule_runs(g, images, space, res, DOCS / f"warm_start_{space}.png")})
    return {"encoder": rows, "warm_start": warm, "warm_default_schedule": sched, "cold_curves": curves,
            "warm_curves": warm_curves}


def default_schedule_runs(g, images, space: str, encoded, path: Path, steps: int = 100) -> dict:
    """Cold and warm start with the invert job's own schedule, lr and β2 for ``steps``:
    what a user gets from `optinv invert --steps 100`. Saves a picture of the first four images,
    rows: target | encoder alone | cold | warm."""
    from optinv.io.image_files import save_grid
    from optinv.io.image_files import to_pil

    runs = {}
    for init in ("mean", "encoder"):
        opts = l2_options(space, steps, len(images), init=init, schedule=JOB_DEFAULTS["invert"]["schedule"])
        opts.lr = JOB_DEFAULTS["invert"]["lr"]
        runs[init] = jobs.invert(images, model=g, device="cpu", options=opts)
    panels = []
    for i, e in enumerate(encoded[:4]):
        panels += [to_pil(e.target), to_pil(e.image), to_pil(runs["mean"][i].image), to_pil(runs["encoder"][i].image)]
    save_grid(panels, path, cols=4, scale=max(1, 128 // g.size))
    return {f"cosine_{steps}_steps_cold": round(median([r.metrics["psnr"] for r in runs["mean"]]), 2),
            f"cosine_{steps}_steps_warm": round(median([r.metrics["psnr"] for r in runs["encoder"]]), 2)}


OPTIMIZER_CANDIDATES = ((0.05, 0.999), (0.05, 0.9), (0.1, 0.9))  # (lr, Adam β2): torch's β2, then ours


def bench_optimizer_defaults(g, images, steps: int = 300) -> list[dict]:
    """The invert job's schedule for ``steps`` at each (lr, β2) candidate, cold (w_avg)
    and warm (the model card's encoder), W+ and StyleMap: how the job's lr and β2 were chosen."""
    rows = []
    for space in ("wplus", "stylemap"):
        for init in ("mean", "encoder"):
            for lr, beta2 in OPTIMIZER_CANDIDATES:
                opts = l2_options(space, steps, len(images), init=init, schedule=JOB_DEFAULTS["invert"]["schedule"],
                                  adam_beta2=beta2)
                opts.lr = lr
                res = jobs.invert(images, model=g, device="cpu", options=opts)
                psnr = [r.metrics["psnr"] for r in res]
                rows.append({"space": space, "start": "encoder" if init == "encoder" else "w_avg", "lr": lr,
                             "adam_beta2": beta2, "steps": steps, "median_psnr": round(median(psnr), 2),
                             "worst_psnr": round(min(psnr), 2)})
                print(f"optimizer: {rows[-1]}", flush=True)
    return rows


def _invert_with_trace(g, images, opts, trace: list[float]):
    """Invert and record PSNR of the batch-mean L2 after every step (same measure for every curve)."""
    import math

    opts.callback = lambda step, record, parts: trace.append(10 * math.log10(1 / max(record["L2"], 1e-12)))
    return jobs.invert(images, model=g, device="cpu", options=opts)


ATTRIBUTES = ("smile", "glasses", "hair_length", "skin_tone", "bangs", "hair_lightness")


def _attr_vector(labels: dict) -> list[float]:
    return [float(labels["smile"]), float(labels["glasses"]), float(labels["hair_length"]),
            float(labels["skin_tone"]), float(labels["bangs"]), sum(labels["hair_rgb"]) / 765.0]


def attribute_probe(n: int = 3000, side: int = 16):
    """Ridge regression from 16×16 renders to the renderer's labels: a render-label 'classifier'."""
    import numpy as np

    from optinv.world import synthfaces

    xs, ys = [], []
    for seed in range(2_000_000, 2_000_000 + n):
        img, lb = synthfaces.render(seed, 64)
        xs.append(np.asarray(img.resize((side, side)), np.float32).reshape(-1) / 255.0)
        ys.append(_attr_vector(lb))
    x, y = torch.tensor(np.stack(xs), dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
    mu, ymu, ysd = x.mean(0), y.mean(0), y.std(0)
    xc = x - mu
    beta = torch.linalg.solve(xc.T @ xc + 1.0 * torch.eye(x.shape[1], dtype=torch.float64), xc.T @ ((y - ymu) / ysd))
    pred = xc @ beta
    r2 = 1 - ((pred - (y - ymu) / ysd) ** 2).mean(0)

    def predict(images: torch.Tensor) -> torch.Tensor:  # [B,3,R,R] in [0,1] → standardised attributes
        small = torch.nn.functional.interpolate(images.double(), size=(side, side), mode="area")
        return (small.permute(0, 2, 3, 1).reshape(images.shape[0], -1) - mu) @ beta

    return predict, {a: round(float(v), 3) for a, v in zip(ATTRIBUTES, r2)}


def bench_directions(g, alphas=(-3.0, -1.5, 0.0, 1.5, 3.0), count: int = 16) -> dict:
    """Do directions do what their name says? Probe-measured attribute change along α."""
    from optinv.edit import edits as E
    from optinv.edit.directions import shipped_directions_path

    path = shipped_directions_path(g)
    if not path.exists():
        return {}
    table = torch.load(path, weights_only=True)["directions"]
    predict, r2 = attribute_probe()
    z = torch.randn(count, g.style_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        w = g.mapping(z)
    noise = [n[0] for n in g.noise_list()]
    base = [E.Editable(wi[None].expand(g.n_latent, -1).clone(), None, noise) for wi in w]
    target_of = {"smile": "smile", "glasses": "glasses", "hair_length": "hair_length", "skin_tone": "skin_tone",
                 "bangs": "bangs", "blonde_minus_black": "hair_lightness", "hair_dyed": None}
    rows = []
    for name, entry in table.items():
        means = []
        for a in alphas:
            imgs = E.render(g, [E.apply_direction(e, entry["vector"], a) for e in base])
            means.append(predict(imgs).mean(0))
        means = torch.stack(means)  # [alphas, attributes]
        delta = means[-1] - means[0]
        tgt = target_of.get(name)
        row = {"direction": name, "method": entry.get("method", "")}
        if tgt is not None:
            ti = ATTRIBUTES.index(tgt)
            steps = means[1:, ti] - means[:-1, ti]
            others = [abs(float(delta[j])) for j in range(len(ATTRIBUTES)) if j != ti]
            row.update({"measured_attribute": tgt, "change_per_alpha_sd": round(float(delta[ti]) / (alphas[-1] - alphas[0]), 3),
                        "monotonic": bool((steps > 0).all() or (steps < 0).all()),
                        "largest_side_effect": ATTRIBUTES[[j for j in range(len(ATTRIBUTES)) if j != ti][int(torch.tensor(others).argmax())]],
                        "side_effect_ratio": round(max(others) / max(abs(float(delta[ti])), 1e-8), 3)})
        rows.append(row)
        print(f"direction {name}: {row}", flush=True)
    return {"directions": rows, "probe_r2": r2}


def bench_lec(g, images, steps: int) -> list[dict]:
    """LEC for W+ and StyleMap inversions, smile and hair directions, α = ±3 (E = encoder if shipped)."""
    from optinv.edit import edits as E
    from optinv.engine import warmstart
    from optinv.edit.directions import load_direction
    from optinv.edit.edits import latent_editing_consistency

    rows = []
    for space in ("wplus", "stylemap"):
        opts = jobs.JobOptions(space=space, recipe="1*L2", steps=steps, batch=len(images), lr=0.1, progress=False)
        enc = warmstart.find_encoder(g, space)
        if enc is not None:  # LEC's E is the encoder: codes E(x) and re-encodings both come from it
            items = [E.from_latent(r.latent) for r in jobs.encode(images, model=g, device="cpu",
                                                                  options=jobs.JobOptions(space=space, batch=len(images)))]
            encode = lambda x, enc=enc: [E.Editable(*_codes_to_editable(c, items[0]), items[0].noise) for c in _split(warmstart.encode(enc, x, g))]
            how = "encoder"
        else:
            items = [E.from_latent(r.latent) for r in jobs.invert(images, model=g, device="cpu", options=opts)]
            encode = E.reinversion_encoder(g, opts)
            how = f"re-inversion ({steps} steps)"
        for dname in ("smile", "blonde_minus_black"):
            _, vec = load_direction(dname, g)
            for alpha in (-3.0, 3.0):
                lec = latent_editing_consistency(g, items, vec, alpha, encode)
                rows.append({"space": space, "direction": dname, "alpha": alpha, "E": how,
                             **{f"lec_{k}": round(v, 3) for k, v in lec.items()}})
                print(f"lec: {rows[-1]}", flush=True)
    return rows


def _split(codes):
    if isinstance(codes, torch.Tensor):
        return list(codes)
    return [[m[i] for m in codes] for i in range(codes[0].shape[0])]


def _codes_to_editable(code, like):
    if isinstance(code, torch.Tensor):
        return code, None
    sizes = [m.shape[-1] for m in like.as_maps()]
    from optinv.edit.edits import resize_map
    return None, [resize_map(m, s) for m, s in zip(code, sizes)]


def bench_domain_sweep(g, images, steps: int, lambdas=(0.0, 0.5, 2.0, 8.0)) -> list[dict]:
    """In-Domain trade-off: reconstruction PSNR against LEC(smile, α=3) as λ_dom grows."""
    from optinv.edit import edits as E
    from optinv.engine import warmstart
    from optinv.edit.directions import load_direction
    from optinv.edit.edits import latent_editing_consistency

    enc = warmstart.find_encoder(g, "wplus")
    if enc is None:
        return []
    _, vec = load_direction("smile", g)
    rows = []
    for lam in lambdas:
        recipe = "1*L2" if lam == 0 else f"1*L2+{lam:g}*DOMAIN"
        opts = jobs.JobOptions(space="wplus", recipe=recipe, steps=steps, batch=len(images), lr=0.05, init="encoder",
                               progress=False)
        res = jobs.invert(images, model=g, device="cpu", options=opts)
        items = [E.from_latent(r.latent) for r in res]
        encode = lambda x: [E.Editable(c, None, items[0].noise) for c in warmstart.encode(enc, x, g)]
        lec = latent_editing_consistency(g, items, vec, 3.0, encode)
        rows.append({"lambda_dom": lam, "median_psnr": round(median([r.metrics["psnr"] for r in res]), 2),
                     "lec_smile_avg": round(lec["avg"], 3)})
        print(f"domain sweep: {rows[-1]}", flush=True)
    return rows


def without_lpips(recipe: str) -> str:
    from losses.recipe import format_recipe, parse_recipe

    terms = [(w, n) for w, n in parse_recipe(recipe) if n != "LPIPS"]
    if not any(n == "L2" for _, n in terms):
        terms.insert(0, (1.0, "L2"))
    return format_recipe(terms)


def bench_presets(g, images, quick: bool) -> list[dict]:
    """Each reference preset on the same images; LPIPS-dependent presets say so when weights are absent."""
    from optinv.errors import OptinvError
    from optinv.engine.presets import PRESETS

    rows = []
    for name, p in PRESETS.items():
        steps = min(p["steps"], 100 if quick else 300)
        variants = [(name, None)]
        if "LPIPS" in p["recipe"]:  # the same procedure without LPIPS (L2 kept or added), clearly labelled
            variants.append((f"{name} (LPIPS→L2)", without_lpips(p["recipe"])))
        for label, recipe in variants:
            opts = jobs.JobOptions(preset=name, recipe=recipe, steps=steps, batch=len(images), progress=False)
            row = {"preset": label, "space": p["space"], "recipe": recipe or p["recipe"], "steps_run": steps,
                   "published_steps": p["steps"]}
            try:
                t = time.perf_counter()
                res = jobs.invert(images, model=g, device="cpu", options=opts)
                secs = time.perf_counter() - t
                row.update({"median_psnr": round(median([r.metrics["psnr"] for r in res]), 2),
                            "median_ssim": round(median([r.metrics["ssim"] for r in res]), 4),
                            "s_per_image": round(secs / len(res), 2)})
            except OptinvError as e:
                row["median_psnr"] = f"not run: {str(e).split(':')[0]}"
            rows.append(row)
            print(f"preset {label}: {row}", flush=True)
    return rows


def bench_batch_throughput(steps: int, model: str | None, n: int = 8) -> list[dict]:
    """Images per minute of `optinv batch` with 1 process and with torchrun --nproc-per-node 2."""
    import shutil
    import subprocess
    import tempfile

    rows = []
    src = tempfile.mkdtemp(prefix="optinv_bench_in_")
    for p in sample_images(n):
        shutil.copy(p, src)
    for procs in (1, 2):
        env = {**os.environ, "OMP_NUM_THREADS": "2" if procs == 1 else "1"}
        out = tempfile.mkdtemp(prefix="optinv_bench_out_")
        args = ["batch", src, "--job", "invert", "--out", out, "--steps", str(steps), "--batch", "4", "-q",
                "--space", "wplus", "--loss", "1*L2"] + (["--model", str(Path(model).resolve())] if model else [])
        cmd = ([sys.executable, "-m", "optinv.cli"] if procs == 1 else
               [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
                "-m", "optinv.cli"]) + args
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
        secs = time.perf_counter() - t
        rows.append({"processes": procs, "threads_each": 2 if procs == 1 else 1, "images": n, "steps": steps,
                     "images_per_minute": round(n / secs * 60, 2), "wall_s": round(secs, 1)})
        print(f"batch throughput: {rows[-1]}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    return rows


SPACE_COLOURS = {"w": (200, 60, 60), "wplus": (60, 120, 220), "zplus": (230, 150, 30), "stylemap": (40, 160, 80)}


def plot_quality_vs_time(curves: dict, s_per_step: dict, path: Path) -> None:
    """PSNR (batch-mean L2) against seconds, one line per space (cold starts)."""
    plot_curves({k: (c, s_per_step[k], 0.0, SPACE_COLOURS.get(k, (0, 0, 0))) for k, c in curves.items()}, path)


def plot_time_to_quality(cold: dict, warm: dict, s_per_step: dict, encoder_s: dict, path: Path,
                         lr: float = WARM_LRS[-1]) -> None:
    """Cold against encoder-started curves per space (each start at ``lr``); a warm line starts
    after its encoder's own time. ``warm``: space → label → trace; ``encoder_s``: label → seconds."""
    palette = {"wplus": [(150, 150, 230), (90, 90, 200), (20, 20, 140)],
               "stylemap": [(240, 160, 120), (220, 90, 40), (160, 40, 0), (90, 20, 0)]}
    lines = {}
    for space in warm:
        colours = palette.get(space, [(0, 0, 0)] * 4)
        lines[f"{space}: cold (w_avg)"] = (cold.get(f"{space}@{lr}", cold[space]), s_per_step[space], 0.0, colours[0])
        starts = [k for k in warm[space] if k.endswith(f", lr {lr}")]
        for j, label in enumerate(starts, 1):
            base = label.rsplit(", lr", 1)[0]
            lines[f"{space}: {base}"] = (warm[space][label], s_per_step[space], encoder_s.get(base, 0.0),
                                         colours[min(j, len(colours) - 1)])
    plot_curves(lines, path, tmax=max(100 * s_per_step[s] for s in warm) * 3, legend_width=330)


def plot_curves(lines: dict[str, tuple[list[float], float, float, tuple]], path: Path,
                tmax: float | None = None, legend_width: int = 150) -> None:
    """Best-so-far PSNR against seconds, drawn with PIL: name → (trace, s/step, start s, colour)."""
    from PIL import Image, ImageDraw

    w, h, m = 640, 400, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    tmax = tmax or max(off + len(c) * sps for c, sps, off, _ in lines.values())
    lo = float(int(min(min(c) for c, *_ in lines.values())))
    hi = float(int(max(max(c) for c, *_ in lines.values())) + 1)

    def xy(t: float, p: float) -> tuple[float, float]:
        return m + (w - 2 * m) * min(t, tmax) / tmax, h - m - (h - 2 * m) * (p - lo) / max(hi - lo, 1e-6)

    d.line([xy(0, lo), xy(tmax, lo)], fill="black")
    d.line([xy(0, lo), xy(0, hi)], fill="black")
    for k in range(5):
        p = lo + (hi - lo) * k / 4
        d.text((5, xy(0, p)[1] - 6), f"{p:.0f}", fill="black")
        t = tmax * k / 4
        d.text((xy(t, lo)[0] - 10, h - m + 5), f"{t:.0f}s", fill="black")
    d.text((w // 2 - 60, h - 18), "seconds (batch of 8, CPU)", fill="black")
    d.text((5, 5), "PSNR (dB)", fill="black")
    for i, (name, (c, sps, off, colour)) in enumerate(lines.items()):
        pts, best = [], -1e9
        for step, p in enumerate(c):
            if off + step * sps > tmax:
                break
            best = max(best, p)
            pts.append(xy(off + step * sps, best))
        d.line(pts, fill=colour, width=2)
        d.text((w - m - legend_width, h - m - 20 - 14 * (len(lines) - i)), name, fill=colour)
    img.save(path)


def update_readme(data: dict) -> None:
    """Replace the README's results block with the headline numbers of this run."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start not in text or end not in text:
        return
    own = own_invert_rows(data)
    inv = {(r["space"], r["steps"]): r for r in own}
    last = max((r["steps"] for r in own), default=0)
    sections = data.get("sections", {})

    def model(section: str) -> str:  # "synthfaces64 (64², 430.11 kimg)" → "synthfaces64"
        return sections.get(section, {}).get("model", "?").split(" (")[0]

    lines = [start, "", f"Embedded models, {len(sample_images(100))} held-out renders available; numbers from "
             f"`python scripts/benchmark.py` on {data['machine']} (each section's command, date and model: "
             "docs/BENCHMARKS.md).", "", "| job | model | setting | result |", "|---|---|---|---|"]
    for space in ("w", "wplus", "zplus", "stylemap"):
        r = inv.get((space, last))
        if r:
            lines.append(f"| invert | {model('invert')} | {space}, {last} steps | median PSNR {r['median_psnr']} dB, "
                         f"SSIM {r.get('median_ssim', '')} |")
    for r in data.get("pulse", []):
        lines.append(f"| pulse | {model('pulse')} | ×{r['scale']}, {r['steps']} steps | "
                     f"{r['within_eps_2e-3'] * 100:.0f}% within eps 2e-3; PSNR vs high-res {r['median_psnr_vs_highres']} dB |")
    for r in data.get("pulse_hires", []):
        if r.get("method", "PULSE") == "PULSE":
            lines.append(f"| pulse | {model('pulse_hires')} | ×{r['scale']}, {r['steps']} steps | "
                         f"{r['within_eps_2e-3'] * 100:.0f}% within eps 2e-3; PSNR vs high-res "
                         f"{r['median_psnr_vs_highres']} dB |")
    for r in data.get("paint", []):
        lines.append(f"| paint | {model('paint')} | {r['images']} RGBA refs | alpha-weighted MSE "
                     f"{r['mean_alpha_weighted_mse']} |")
    for r in data.get("encoder", []):
        passes = f", {r['passes']} passes" if r.get("passes", 1) > 1 else ""
        lines.append(f"| encode | {model('encoder')} | {r['space']} encoder alone{passes} | median PSNR "
                     f"{r['median_psnr']} dB, {r['ms_per_image']} ms/image |")
    for r in data.get("warm_start", []):
        if "warm_steps_to_reach_cold_500" not in r or "first pass" in r["encoder"]:  # older format / ablation rows
            continue
        lines.append(f"| invert | {model('encoder')} | {r['space']}, warm start ({r['encoder']}), lr {r['lr']}, 100 "
                     f"steps | {r['warm_psnr_at_100']} dB; cold 1000 steps: {r['cold_best_psnr']} dB, reached by the "
                     f"warm start at step {r['warm_steps_to_reach_it']} |")
    lines += ["", "![inversion](docs/invert_stylemap.png) ![pulse](docs/pulse_x8.png)", "", end]
    a, b = text.index(start), text.index(end) + len(end)
    readme.write_text(text[:a] + "\n".join(lines) + text[b:])


def write_markdown(data: dict) -> None:
    from md_table import markdown_table

    lines = ["# Benchmarks", "",
             f"Written by `scripts/benchmark.py` on {data['machine']} ({data['threads']} torch threads, "
             f"torch {data['torch']}). The command that last wrote each section, its date and the model it "
             "measured (sections without one name the model in each row):", ""]
    lines += [f"- {name}: `{r['command']}` ({r['date']}{'; ' + r['model'] if r.get('model') else ''})"
              for name, r in sorted(data.get("sections", {}).items())]
    lines.append("")

    def table(rows: list[dict], title: str, note: str = "") -> None:
        if not rows:
            return
        lines.extend([f"## {title}", ""])
        if note:
            lines.extend([note, ""])
        lines.extend(markdown_table(rows))

    table(data.get("world", []), "Embedded world: how sharp and faithful the model is (held-out seeds)",
          "`detail_ratio`: mean squared 4-neighbour Laplacian of `optinv generate` samples ÷ that of renders "
          "(targets: ≥ 0.5); `teacher_psnr_*`: PSNR of G(z) against render(z) for the same z (≥ 26 dB median); "
          "`inv_*`: W+ inversion of held-out renders (L2, w_avg start, the invert job's schedule): PSNR and the "
          "share of the input's high-frequency energy the result keeps (≥ 0.6 at ≥ 30 dB). Training record "
          "from the model card. Also `python scripts/world_quality.py --model FILE`.")
    table(data.get("world_recipes", []), "Embedded world: detail kept by W+ inversion, per offline recipe",
          "The world table's `inv_*` measure (W+ from w_avg, the invert job's schedule, held-out renders at the "
          "model's size) with `EDGE` added at three weights: the term matches local edge energy and local "
          "variation between result and target. `s_per_step`: wall seconds per step for the batch.")
    table(data.get("generator", []), "Generator speed (CPU, batch 1, config-f)",
          "Pure-PyTorch generator; fp32; `forward_backward_s` is one forward + backward to the W+ input.")
    table(data.get("quality_proxy", []), "Quality proxy: W+ inversion of held-out renders",
          "Target: median PSNR ≥ 24 dB at 64×64 after 500 steps (read off the W+ run below).")
    table(data.get("invert", []), "Inversion per space (held-out renders, w_avg init, L2, Adam lr 0.05 fixed, "
          f"β2 {ADAM_BETA2}; zplus: random z, lr 0.2, + 0.005·GEOCROSS)",
          "StyleMap: the default maps, sides {} (coarse, medium, fine). `cpu_s_per_step`: process CPU seconds "
          "(steadier than wall time on a shared machine). Rows with `at_time_of`: the same run read off at the "
          "step where it had used the CPU time W+ used for its steps. Pictures: docs/invert_<space>.png "
          "(input | result | result through the operator).".format(",".join(map(str, DEFAULT_MAP_SIDES))))
    table(data.get("stylemap_res", []), "StyleMap map sizes (same settings as above)",
          "`--stylemap-res C,M,F`: side of the coarse, medium and fine maps; 2,4,1 is pSp's split, "
          f"{','.join(map(str, DEFAULT_MAP_SIDES))} the default (this table, and the edits in "
          "[stylemap_edits.png](stylemap_edits.png): spatial fine maps fit closer but break edits of photos). `non_face_psnr`: the same "
          "inversion of two non-face photos (scikit-image's cat and coffee cup, resized to the model's size): a "
          "face prior should fit them badly; `prior_margin_db`: faces minus non-faces at the same steps. More "
          "spatial freedom fits faces better, and past some point fits anything.")
    table(data.get("pulse", []), "PULSE super-resolution (Z+, 100·L2 + 0.05·GEOCROSS, lr 0.4, linear1cycledrop)",
          "`within_eps` = fraction whose result downscales to MSE ≤ 2e-3 of the input; PSNR is against the "
          "held-out high-resolution render. Pictures: docs/pulse_x8.png, docs/pulse_x16.png.")
    table(data.get("pulse_hires", []), "PULSE ×32 and ×64 on the 256² model (8×8 and 4×4 inputs)",
          "The project's headline example, `optinv pulse samples/lowres/1000000_x32.png --scale 32 --model "
          "synthfaces256`, on the 8 held-out seeds with ×32/×64 files (made from 256² renders by "
          "scripts/make_samples.py); the job's defaults (stop once within eps 2e-3). `faces_in_*`: how many of the "
          "results and of the renders dlib's detector (the `faces` extra) finds a face in, over every input and "
          "seed (each input runs with seeds 0–2: one seed's count moves by ±1 of 8 from seed to seed); it misses "
          "many of the renderer's cartoon faces, so compare the two columns, not either with the total. PSNR is "
          "against the 256² render. `ILO`: the same job with `--ilo` and its defaults (one w from w_avg, then the "
          "4², 8² and 16² feature maps in ℓ1 balls). Pictures (seed 0): "
          "[pulse_x32.png](pulse_x32.png), [pulse_x32_ilo.png](pulse_x32_ilo.png), [pulse_x64.png](pulse_x64.png) "
          "(input | result | result downscaled | render).")
    table(data.get("invert_hires", []), "W+ against StyleMap on the 256² model (4 held-out seeds rendered at 256²)",
          "The invert section's settings on `--hires-model` (default synthfaces256); rows with `at_time_of` are "
          "StyleMap read off at W+'s CPU time. `python scripts/benchmark.py --only invert_hires`.")
    table(data.get("resolution_speed", []), "W+ step time, 64² against 256² (same run, same batch)",
          "`python scripts/benchmark.py --only resolution_speed`: the invert job's W+ step (L2) on random targets, "
          "best of two interleaved rounds of 20 steps. Target for the 256² model: ≤ 3× the 64² step.")
    table(data.get("paint", []), "Paint (RGBA references, 100·L2A + 0.05·GEOCROSS)", "Picture: docs/paint.png.")
    table(data.get("studio", []), "Studio (written by scripts/studio_docs.py)",
          "The studio in headless chromium on the embedded default of the time (the row's model), 2 torch threads for jobs, 1 for slider renders. "
          "`frame`: a direction slider moved → the new image shown in the page (request, render of the "
          "StyleMap latent of a 100-step inversion, PNG, decode), one move at a time; target ≤ 150 ms. `render_*`: "
          "the server's part of a frame, wall and CPU time of its thread. `first_progress`: Run clicked → the "
          "first step's numbers shown (paint; median of the runs after a server's first, whose time is "
          "`first_progress_fresh_ms`). The machine is shared: `load_1min` is its load average during the run; "
          "commands: `python scripts/studio_docs.py --no-screenshots --record` (shared machine) and the same "
          "under `nice -n -15` with `--label 'priority (nice -n -15)'`; the 256² row: "
          "`python scripts/studio_docs.py --no-screenshots --record --label 'idle machine, 256² default'`.")
    table(data.get("photos", []), "Real photographs (written by scripts/real_photos.py)",
          "scikit-image's public-domain astronaut, aligned with `optinv align` to the model's size (the photo column says which) and inverted (the invert job's "
          "defaults; L2, as no LPIPS backbone is on this machine); LFW: scikit-image's `lfw_subset` (25² grey crops, "
          "shipped, no download), enlarged ×8 (bicubic) so the detector finds them, aligned, brought down to "
          "16² and super-resolved to the model's size with `pulse`. `psnr_db`: result against the aligned crop; `fit_psnr_db`: the "
          "result downscaled against the 16² input; `identity_distance`: dlib's ResNet face descriptor, input ↔ "
          "result (< 0.6 = the same person by dlib's threshold); `bicubic_identity_distance`: the same for a plain "
          "bicubic enlargement of the 16² input. `align_s`: with the detector loaded (the first call adds ~0.6 s); `job_s`: "
          "LFW includes its alignment. At 64² the descriptor sees little detail (both sides are enlarged to 256² "
          "for it), so read the 64² distances as rough; the embedded model knows only procedural portraits, and an "
          "FFHQ model is the real test. Picture: docs/real_photo.png (photo | aligned | inverted | +3 smile | pasted back).")
    if data.get("overhead"):
        table([data["overhead"]], "Optimiser overhead",
              "Seconds per step of optinv's loop (best-so-far tracking, per-image losses, projections) ÷ a bare "
              "loop (generator forward, L2, backward, Adam) on the same model and batch, interleaved, best of each. "
              "Target ≤ 1.03.")
    table(data.get("efficiency", []), "Generator forward+backward against this CPU's sgemm rate",
          "W+ inversion's forward + backward (FLOPs counted by torch's FlopCounterMode) ÷ a 2048² fp32 torch.mm in "
          "the same run; `ratio_cpu` uses process CPU seconds (steadier on a shared machine). Target ≥ 0.70. "
          "Code: scripts/bench_speed.py.")
    table(data.get("rosinality", []), "Against rosinality's stylegan2-pytorch on the same weights",
          "One inversion step (forward, MSE, backward, Adam) each, alternated; rosinality's compiled ops replaced "
          "by pure-PyTorch reference versions; `rosinality_fir`: upfirdn2d as one depthwise conv, or as its own "
          "per-channel fallback (`--rosinality-fir`). Target: ours ≥ 2× faster. Run with "
          "`python scripts/benchmark.py --only rosinality --rosinality PATH` (a checkout of it).")
    table(data.get("batch_scaling", []), "Batch scaling (W+, L2)")
    table(data.get("batch_throughput", []), "optinv batch: one process against torchrun with two (8 images, W+)",
          "The same 2-core CPU either way: one process with 2 torch threads, or 2 ranks (gloo) with 1 thread each.")
    if (DOCS / "quality_vs_time.png").exists():
        lines.extend(["## Quality against time", "", "![PSNR against seconds](quality_vs_time.png)", ""])
    if (DOCS / "time_to_quality.png").exists():
        lines.extend(["## Time to quality: cold against encoder-started", "",
                      "Best-so-far PSNR against seconds, W+ and StyleMap, from w_avg (palest) and from each encoder "
                      f"(its time included), L2, Adam lr {WARM_LRS[-1]} fixed, β2 {ADAM_BETA2}, batch of 8 held-out "
                      "renders. `(first pass)`: the iterative encoder stopped after its first pass (the one-pass "
                      "encoder it refines).", "",
                      "![time to quality](time_to_quality.png)", ""])
    table(data.get("encoder", []), "Encoders alone (held-out renders)",
          "Milliseconds per image on this CPU, batch = all images; an iterative encoder has a row per number of "
          "passes (each pass after the first renders the current codes and corrects them). "
          "Command: `python scripts/benchmark.py --only encoder`.")
    table(data.get("warm_start", []), "Warm start: steps to reach what a cold start reaches",
          f"Cold start: w_avg init, L2, Adam fixed lr, β2 {ADAM_BETA2}, 1000 steps; warm start: an encoder's "
          "prediction, L2, the "
          f"same fixed lr ({' and '.join(str(x) for x in WARM_LRS)}: each warm row is compared with the cold run "
          "at its own lr). PSNR of the batch-mean L2, best so far. "
          "Targets: the cold 1000-step PSNR in ≤ 100 warm steps, the cold 500-step PSNR in ≤ 50. "
          "`cold_steps_to_match_warm_100`: how many cold steps the warm start's first 100 are worth. "
          "`(first pass)`: the iterative encoder stopped after its first pass.")
    table(data.get("optimizer", []), "Optimiser defaults: lr and Adam's β2 for the invert job",
          f"Held-out renders, L2, the invert job's {JOB_DEFAULTS['invert']['schedule']} schedule, 300 steps, "
          "from w_avg and from the model "
          "card's encoder; median per-image PSNR. torch's β2 0.999 against 0.9; the job's defaults "
          f"(lr {JOB_DEFAULTS['invert']['lr']}, β2 {ADAM_BETA2}) were chosen from this table. "
          "Command: `python scripts/benchmark.py --only optimizer`.")
    table(data.get("warm_default_schedule", []), "Warm start with the invert job's own schedule",
          f"Median per-image PSNR of 100-step runs with the invert job's own schedule ({JOB_DEFAULTS['invert']['schedule']}, "
          f"lr {JOB_DEFAULTS['invert']['lr']}, β2 {ADAM_BETA2}), cold "
          "and warm (the model card's encoder). Pictures: [W+](warm_start_wplus.png), "
          "[StyleMap](warm_start_stylemap.png) (target | encoder alone | cold | warm, 100 cosine steps).")
    table(data.get("domain_sweep", []), "In-Domain regularizer sweep (W+, encoder init, L2 + λ·DOMAIN)",
          "LEC: ‖E(x) − f⁻¹(E(G(f(E(x)))))‖ with f = +3·smile and E the W+ encoder; lower = edits survive re-encoding.")
    table(data.get("directions", []), "Directions: does each edit move its attribute?",
          "A ridge probe (16×16 renders → renderer labels; R² per attribute: "
          f"{data.get('probe_r2', {})}) measures 16 samples edited at α ∈ {{−3, −1.5, 0, 1.5, 3}}. "
          "`change_per_alpha_sd`: probe change in label standard deviations per unit α; `side_effect_ratio`: "
          "largest change of another attribute ÷ change of the named one (α −3 → 3).")
    table(data.get("lec", []), "Latent editing consistency (held-out inversions)",
          "avg/min/max of ‖·‖ over layers (W+) or map pixels (StyleMap).")
    table(data.get("presets", []), "Reference presets on the embedded model (inverting held-out renders)",
          "Steps are capped at 300 (published counts in `published_steps`). LPIPS needs ImageNet backbone "
          "weights that this machine does not have, so those presets stop, as they do for a user; the "
          "`(LPIPS→L2)` rows run the same space/schedule/noise procedure with L2 in LPIPS's place.")
    for key, picture in (("tuning", "tuning.png"), ("tuning_hires", "tuning_256.png")):
        tuning = data.get(key, {})
        model = data.get("sections", {}).get(key, {}).get("model", "synthfaces64")
        table(tuning.get("rows", []), f"Pivotal tuning on {model.split(' (')[0]}: W+ against PTI (full and low rank) "
              "at equal time (CPU seconds, 1 thread)",
              f"{tuning.get('images', '?')} held-out renders, each in its own process with 1 torch thread; `seconds`: "
              "that process's CPU time (what wall time is on an idle core). Pivot: W, L2, Adam lr 0.05 "
              "fixed; stage 2: L2 + 0.1·locality (a random latent at the typical ‖w − w_avg‖ from the pivot, drawn by "
              "the tuned and the untuned generator); W+ gets the time of pivot + rank-4 tuning (`seconds`: "
              "median per image). `gain_over_wplus_db`: median per-image PSNR gain. `bytes_stored`: the delta in "
              "the latent file (torch.save of its tensors). `edit_ratio_*`: pixel change of each shipped direction "
              "at α = 3 in the edited region (the quarter of pixels the untuned edit changes most), tuned ÷ untuned "
              "generator at the pivot (median over directions and images; min = the worst). `random_samples_psnr`: "
              "16 random samples, tuned against untuned generator (median). LPIPS and identity distance: not "
              "measured (no LPIPS backbone offline; the renders are not photos). "
              f"Picture: [photo → W+ → PTI → PTI + edit]({picture}). Code: scripts/bench_tuning.py.")
    from bench_discover import markdown as discover_markdown
    from bench_ffhq import markdown as ffhq_markdown
    from bench_inverse import markdown as inverse_markdown

    lines += inverse_markdown(data.get("inverse"), levers=False)  # the default model's (256²)
    lines += inverse_markdown(data.get("inverse_64"), picture="inverse_problems_64.png")  # 64²: levers, structural
    lines += discover_markdown(data.get("discover"))
    lines += ffhq_markdown(data, data.get("sections", {}).get("ffhq", {}).get("command",
                                                                            "python scripts/benchmark.py --only ffhq"))
    if data.get("notes"):
        lines.extend(["## Notes", ""] + [f"- {n}" for n in data["notes"]] + [""])
    (DOCS / "BENCHMARKS.md").write_text("\n".join(lines))


HIRES_SECTIONS = {"pulse_hires", "invert_hires", "tuning_hires"}  # measured on --hires-model
PER_ROW_SECTIONS = {"world", "world_recipes", "resolution_speed", "ffhq", "generator", "throughput"}  # each row names its model


def model_label(g) -> str:
    return f"{g.card.get('name', '?')} ({g.size}², {g.card.get('training', {}).get('kimg', '?')} kimg)"


def section_model(name: str, g, hires) -> dict:
    """The model a section measured, as its record says (none where each row names its own)."""
    if name in PER_ROW_SECTIONS:
        return {}
    return {"model": model_label(hires if name in HIRES_SECTIONS else g)}


SECTIONS = ("world", "world_recipes", "generator", "invert", "stylemap_res", "pulse", "pulse_hires", "resolution_speed", "invert_hires",
            "paint", "overhead", "efficiency", "rosinality",
            "batch", "throughput", "encoder", "optimizer",
            "directions", "lec", "domain", "presets", "tuning", "tuning_hires", "discover", "ffhq", "inverse",
            "structural")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--model", default=None)
    ap.add_argument("--hires-model", default="synthfaces256", help="the 256² model of the pulse_hires section")
    ap.add_argument("--hires-maps", default="default", help="invert_hires: ';'-separated StyleMap sides "
                    "('default' = W+ and the default sides; others add StyleMap rows)")
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--spaces", default="w,wplus,zplus,stylemap", help="spaces of the invert section")
    ap.add_argument("--stylemap-res", default=None, help="map sides for the invert section's StyleMap runs "
                    "(default: the engine's)")
    ap.add_argument("--ffhq", default="quality,speed,steps", help="tables of the ffhq section to measure (the others "
                    "keep their last numbers): quality, speed, steps, and jobs (every job at 256² and 1024² beside "
                    "rosinality's generator: needs --rosinality)")
    ap.add_argument("--rosinality", default=None, help="a checkout of rosinality/stylegan2-pytorch: time its generator "
                    "beside ours on the same weights (section rosinality)")
    from bench_speed import FIR_FORMS

    ap.add_argument("--rosinality-fir", default="depthwise", choices=sorted(FIR_FORMS),
                    help="how rosinality's compiled upfirdn2d is replaced: one depthwise conv, or its own "
                         "pure-PyTorch fallback (per-channel)")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    DOCS.mkdir(exist_ok=True)
    json_path = DOCS / "benchmarks.json"
    data = json.loads(json_path.read_text()) if json_path.exists() else {}
    before = json.dumps(data, sort_keys=True)
    data.update({"command": "python scripts/benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                 "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                 "threads": torch.get_num_threads(), "torch": torch.__version__,
                 "date": time.strftime("%Y-%m-%d")})
    g = load_generator(args.model, device="cpu")
    if only - {"world", "world_recipes"}:  # the world table names its own model per row; the header is every other section's
        data["model"] = model_label(g)
    n = args.images or (4 if args.quick else 8)
    images = sample_images(n)
    if "world" in only:
        rows = bench_world(g, images, args.quick)  # one row per model: earlier models stay for comparison
        data["world"] = [r for r in data.get("world", []) if r.get("model") != rows[0]["model"]] + rows
    if "world_recipes" in only:
        data["world_recipes"] = bench_world_recipes(g, images, args.quick)
    if "generator" in only:
        data["generator"] = bench_generator(args.quick)
    curves: dict = {}
    if "invert" in only:
        checkpoints = [50, 100, 150] if args.quick else [200, 500, 1000]
        data["invert"], curves = bench_invert(g, images, checkpoints, args.spaces.split(","), batch=len(images),
                                              stylemap_res=args.stylemap_res)
        sps = {r["space"]: r["s_per_step"] for r in own_invert_rows(data)}
        plot_quality_vs_time(curves, sps, DOCS / "quality_vs_time.png")
        proxy = next(r for r in data["invert"] if r["space"] == "wplus" and r["steps"] == checkpoints[1])
        data["quality_proxy"] = [{"images": proxy["images"], "steps": proxy["steps"], "recipe": "1*L2 (W+, lr 0.05)",
                                  "median_psnr": proxy["median_psnr"], "worst_psnr": proxy["worst_psnr"]}]
    if "stylemap_res" in only:
        data["stylemap_res"] = bench_stylemap_res(g, images, [50, 100, 150] if args.quick else [200, 500, 1000])
    if "pulse" in only:
        data["pulse"] = bench_pulse(g, n, 100 if args.quick else 200, batch=n)
    if "invert_hires" in only:
        sides = [None if m == "default" else m for m in args.hires_maps.split(";")]
        data["invert_hires"] = bench_invert_hires(args.hires_model, 4, [50, 100, 150] if args.quick else [100, 200, 300],
                                                  sides, data.get("invert_hires", []))
    if "resolution_speed" in only:
        data["resolution_speed"] = bench_resolution_speed(("synthfaces64", args.hires_model))
    if "pulse_hires" in only:
        data["pulse_hires"] = bench_pulse_hires(args.hires_model, n, 100 if args.quick else 200)
    if "paint" in only:
        data["paint"] = bench_paint(g, 100 if args.quick else 200, batch=6)
    if "overhead" in only:
        data["overhead"] = bench_overhead(g, 4, 20 if args.quick else 50)
    if "efficiency" in only:
        from bench_speed import bench_efficiency

        data["efficiency"] = bench_efficiency(g, 4, sizes=() if args.quick else (256,))
    if "rosinality" in only and args.rosinality:
        from bench_speed import bench_rosinality

        data["rosinality"] = bench_rosinality(args.rosinality, g, 4, sizes=() if args.quick else (256,),
                                              fir_form=args.rosinality_fir)
    elif "rosinality" in only and args.only != ",".join(SECTIONS):
        print("rosinality: skipped (pass --rosinality PATH, a checkout of rosinality/stylegan2-pytorch)")
    if "batch" in only:
        data["batch_scaling"] = bench_batch_scaling(g, 10 if args.quick else 30)
    if "throughput" in only:
        data["batch_throughput"] = bench_batch_throughput(20 if args.quick else 50, args.model)
    if "optimizer" in only:
        data["optimizer"] = bench_optimizer_defaults(g, images, 150 if args.quick else 300)
    if "encoder" in only:
        key = [data["model"], "quick" if args.quick else "full", f"beta2 {ADAM_BETA2}",
               "maps " + ",".join(map(str, DEFAULT_MAP_SIDES)), *(p.name for p in images)]
        same = data.get("cold_curves_key") == key
        same_maps = curves if args.stylemap_res is None else {k: v for k, v in curves.items() if k != "stylemap"}
        data.update(bench_encoders(g, images, same_maps, 100 if args.quick else 200,
                                   cached=data.get("cold_curves") if same else None,
                                   cold_steps=150 if args.quick else 1000))
        data["cold_curves_key"] = key
        sps = {r["space"]: r["s_per_step"] for r in own_invert_rows(data) if r["space"] in data["warm_curves"]}
        enc_s = {}
        for r in data["encoder"]:  # label → seconds for the batch: first pass, and every pass
            secs = r["ms_per_image"] * len(images) / 1000
            if r["passes"] == 1:
                enc_s[f"{r['encoder']} (first pass)"] = secs
            enc_s[r["encoder"]] = secs  # rows come in pass order: the last one is the full encoder
        if set(sps) == set(data["warm_curves"]):
            plot_time_to_quality(data["cold_curves"], data["warm_curves"], sps, enc_s, DOCS / "time_to_quality.png")
    if "directions" in only:
        data.update(bench_directions(g))
    if "lec" in only:
        data["lec"] = bench_lec(g, images[:4], 50 if args.quick else 200)
    if "domain" in only:
        data["domain_sweep"] = bench_domain_sweep(g, images[:4], 50 if args.quick else 200)
    if "presets" in only:
        data["presets"] = bench_presets(g, images[:4], args.quick)
    if "tuning" in only:
        from bench_tuning import bench_tuning

        data["tuning"] = bench_tuning(args.model, images[:2 if args.quick else 4], 50 if args.quick else 150,
                                      30 if args.quick else 200, DOCS / "tuning.png")
    if "tuning_hires" in only:
        from bench_tuning import bench_tuning

        data["tuning_hires"] = bench_tuning(args.hires_model, images[:2 if args.quick else 4], 50 if args.quick else 150,
                                            30 if args.quick else 200, DOCS / "tuning_256.png")
    if "discover" in only:
        from bench_discover import bench_discover

        name = g.card.get("name", "")
        data["discover"] = bench_discover(
            g, {m: SAMPLES / "models" / f"{name}.{m}.paths.pt" for m in ("linear", "warped", "curvilinear")},
            SAMPLES / "models" / f"{name}.attributes.pt", sample_images(2), DOCS / "discover_order_grid.png",
            n_eff=16 if args.quick else 32, n_comm=8 if args.quick else 16, inversion_steps=50 if args.quick else 150)
    if "ffhq" in only:
        from bench_ffhq import bench_ffhq

        parts = set(args.ffhq.split(","))
        data.update(bench_ffhq(g, images, parts, quick=args.quick, rosinality=args.rosinality))
        data.setdefault("ffhq_commands", {}).update({p: data["command"] for p in parts})
    if "inverse" in only:
        from bench_inverse import bench_inverse

        key, picture = ("inverse", "inverse_problems.png") if g.size >= 128 else ("inverse_64", "inverse_problems_64.png")
        kept = data.get(key, {}).get("structural")
        data[key] = bench_inverse(g, sample_images(2 if args.quick else 4), 80 if args.quick else 150,
                                  picture=DOCS / picture)
        if kept:
            data[key]["structural"] = kept
    if "structural" in only:
        from bench_inverse import bench_structural

        data.setdefault("inverse" if g.size >= 128 else "inverse_64", {})["structural"] = bench_structural(g, sample_images(2 if args.quick else 4),
                                                                        80 if args.quick else 150)
    hires = load_generator(args.hires_model, device="cpu") if only & HIRES_SECTIONS else None
    for name in only & set(SECTIONS):
        data.setdefault("sections", {})[name] = {"command": data["command"], "date": data["date"],
                                                 **section_model(name, g, hires)}
    start = json.loads(before)  # keep what other runs wrote meanwhile; overlay only what this run changed
    fresh = json.loads(json_path.read_text()) if json_path.exists() else {}
    sections = {**fresh.get("sections", {}), **{n: data["sections"][n] for n in only & set(SECTIONS)}}
    fresh.update({k: v for k, v in data.items() if start.get(k) != v})
    fresh["sections"] = sections
    data = fresh
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    write_markdown(data)
    update_readme(data)
    print(f"wrote {DOCS / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
