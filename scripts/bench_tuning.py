"""Pivotal tuning on the embedded model: W+ against PTI (full, low rank) at equal wall time.

Used by ``scripts/benchmark.py --only tuning``. Per held-out render, one image at a time:

1. the pivot: W, L2, Adam lr 0.05 fixed (the benchmark's inversion settings), ``pivot_steps``;
2. stage 2 from that pivot for each configuration (full at PTI's lr 3e-4 and at 1e-3; low rank
   1/4/8 at lr 1e-2; rank 4 without the locality term), ``tune_steps`` each;
3. W+ (same settings as the pivot) for as many steps as take the time of pivot + rank-4 tuning
   (seconds per W+ step measured just before, on the same image).

Each image runs in its own process with 1 torch thread; times are that process's CPU seconds
(``time.process_time``), which is what wall time is on an otherwise idle core and does not
depend on how many other jobs share the machine.

Editability: each shipped direction at α = 3 on the pivot, rendered by the untuned and by the
tuned generator; the ratio of the mean pixel change in the edited region (the quarter of pixels
the untuned edit changes most). Locality: 16 random samples rendered by both generators (PSNR).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from optinv.engine import jobs
from optinv.engine import tuning as T
from optinv.io.latents import render_inputs
from optinv.engine.metrics import psnr, ssim

CONFIGS = [  # label, mode, rank, lr, locality
    ("full, lr 3e-4 (PTI)", "full", 0, 3e-4, 0.1),
    ("full, lr 1e-3", "full", 0, 1e-3, 0.1),
    ("rank 1", "lowrank", 1, 1e-2, 0.1),
    ("rank 4", "lowrank", 4, 1e-2, 0.1),
    ("rank 8", "lowrank", 8, 1e-2, 0.1),
    ("rank 4, no locality", "lowrank", 4, 1e-2, 0.0),
]
EDIT_ALPHA = 3.0
PICTURE_DIRECTION = "hair_length"


def _options(space: str, steps: int) -> jobs.JobOptions:
    return jobs.JobOptions(space=space, steps=steps, batch=1, recipe="1*L2", lr=0.05, schedule="fixed",
                           noise="fixed", init="mean", progress=False)


def _invert(g, image: Path, space: str, steps: int):
    t = time.process_time()
    res = jobs.invert([image], model=g, device="cpu", options=_options(space, steps))[0]
    return res, time.process_time() - t


def _tune(g, styles, noise, target, s: T.TuneSettings):
    t = time.process_time()
    res = T.tune(g, styles, noise, target, s)
    return res, time.process_time() - t


def _render(g, wplus: torch.Tensor, noise) -> torch.Tensor:
    with torch.no_grad():
        return (g.synthesis(wplus, noise=noise) + 1) / 2


def edit_ratios(g, g2, pivot_wplus: torch.Tensor, noise, directions: dict) -> dict[str, float]:
    """Per direction: pixel change of the tuned edit ÷ that of the untuned one (edited region)."""
    out = {}
    for name, entry in directions.items():
        moved = pivot_wplus + EDIT_ALPHA * entry["vector"].float().reshape(1, 1, -1)
        before = (_render(g, moved, noise) - _render(g, pivot_wplus, noise)).abs().sum(1)
        after = (_render(g2, moved, noise) - _render(g2, pivot_wplus, noise)).abs().sum(1)
        region = before >= before.flatten().quantile(0.75)
        out[name] = float(after[region].mean() / before[region].mean().clamp_min(1e-8))
    return out


def locality_psnr(g, g2, n: int = 16, seed: int = 7) -> float:
    """Median PSNR of random samples drawn by the tuned generator against the untuned one."""
    z = torch.randn(n, g.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        w = g.mapping(z)[:, None].expand(-1, g.n_latent, -1)
    a, b = _render(g, w, None), _render(g2, w, None)
    return statistics.median(psnr(a[i], b[i]) for i in range(n))


def one_image(model: str | None, path: Path, pivot_steps: int, tune_steps: int) -> tuple[dict, list[torch.Tensor]]:
    """Every method on one image (in its own process, 1 thread): rows per method and the picture row."""
    from optinv.io.checkpoints import load_generator
    from optinv.edit.directions import shipped_directions_path

    torch.set_num_threads(1)
    g = load_generator(model, device="cpu")
    directions = torch.load(shipped_directions_path(g), weights_only=True)["directions"]
    rows: dict[str, dict] = {}
    pivot, pivot_s = _invert(g, path, "w", pivot_steps)
    styles, noise = render_inputs(g, pivot.latent)
    target = pivot.target
    wp = pivot.latent["wplus"][None]
    tuned = {}
    for label, mode, rank, lr, loc in CONFIGS:
        s = T.TuneSettings(steps=tune_steps, lr=lr, mode=mode, rank=rank, locality=loc, progress=False)
        res, secs = _tune(g, styles, noise, target[None], s)
        g2 = T.tuned_generator(g, res.record)
        ratios = edit_ratios(g, g2, wp, noise, directions)
        rows[label] = {"psnr": psnr(res.image, target), "ssim": ssim(res.image, target), "seconds": pivot_s + secs,
                       "bytes": T.tuning_bytes(res.record), "edit_ratio_median": statistics.median(ratios.values()),
                       "edit_ratio_min": min(ratios.values()), "locality_psnr": locality_psnr(g, g2),
                       "pivot_psnr": pivot.metrics["psnr"]}
        tuned[label] = (res, g2)
        print(f"tuning {path.name} {label}: { {k: round(v, 3) for k, v in rows[label].items()} }", flush=True)
    budget = rows["rank 4"]["seconds"]
    _, calib_s = _invert(g, path, "wplus", 20)
    wplus_steps = max(1, round(budget / (calib_s / 20)))
    wres, wsec = _invert(g, path, "wplus", wplus_steps)
    rows["W+"] = {"psnr": wres.metrics["psnr"], "ssim": wres.metrics["ssim"], "seconds": wsec, "bytes": 0,
                  "steps": wplus_steps}
    print(f"tuning {path.name} W+ {wplus_steps} steps: psnr {wres.metrics['psnr']:.2f} in {wsec:.1f} s", flush=True)
    res4, g4 = tuned["rank 4"]
    moved = wp + EDIT_ALPHA * directions[PICTURE_DIRECTION]["vector"].float().reshape(1, 1, -1)
    return rows, [target, wres.image, res4.image, _render(g4, moved, noise)[0]]


def bench_tuning(model: str | None, images: list[Path], pivot_steps: int, tune_steps: int,
                 picture: Path | None) -> dict:
    """All images in parallel processes (1 thread each); times are CPU seconds of each process,
    so they do not depend on how many other jobs share the machine."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(len(images), mp_context=mp.get_context("spawn")) as pool:
        done = list(pool.map(one_image, [model] * len(images), images, [pivot_steps] * len(images),
                             [tune_steps] * len(images)))
    per: dict[str, list[dict]] = {}
    for rows, _ in done:
        for label, row in rows.items():
            per.setdefault(label, []).append(row)
    if picture is not None:
        save_strip([strip for _, strip in done], picture, ["photo", "W+", "PTI (rank 4)", f"PTI + {PICTURE_DIRECTION}"])
    return {"rows": summarise(per, pivot_steps, tune_steps), "images": len(images)}


def summarise(per: dict[str, list[dict]], pivot_steps: int, tune_steps: int) -> list[dict]:
    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    full_bytes = med(per["full, lr 1e-3"], "bytes")
    out = []
    w = per.pop("W+")
    out.append({"method": f"W+ ({round(med(w, 'steps'))} steps, same time as rank 4)", "median_psnr": round(med(w, "psnr"), 2),
                "gain_over_wplus_db": 0.0, "median_ssim": round(med(w, "ssim"), 4), "seconds": round(med(w, "seconds"), 1),
                "bytes_stored": 0, "size_vs_full": "", "edit_ratio_median": "", "edit_ratio_min": "",
                "random_samples_psnr": ""})
    for label, rows in per.items():
        gains = [r["psnr"] - x["psnr"] for r, x in zip(rows, w)]
        out.append({"method": f"PTI {label} (W pivot {pivot_steps} + {tune_steps} steps)",
                    "median_psnr": round(med(rows, "psnr"), 2), "gain_over_wplus_db": round(statistics.median(gains), 2),
                    "median_ssim": round(med(rows, "ssim"), 4), "seconds": round(med(rows, "seconds"), 1),
                    "bytes_stored": int(med(rows, "bytes")), "size_vs_full": f"1/{full_bytes / max(med(rows, 'bytes'), 1):.0f}",
                    "edit_ratio_median": round(med(rows, "edit_ratio_median"), 3),
                    "edit_ratio_min": round(min(r["edit_ratio_min"] for r in rows), 3),
                    "random_samples_psnr": round(med(rows, "locality_psnr"), 2)})
    pivot = statistics.median(r["pivot_psnr"] for r in next(iter(per.values())))
    out.append({"method": f"W pivot alone ({pivot_steps} steps)", "median_psnr": round(pivot, 2)})
    return out


def save_strip(rows: list[list[torch.Tensor]], path: Path, labels: list[str], scale: int = 3) -> None:
    from PIL import Image, ImageDraw

    side = rows[0][0].shape[-1] * scale
    head = 14
    canvas = Image.new("RGB", (side * len(labels), head + side * len(rows)), "white")
    draw = ImageDraw.Draw(canvas)
    for j, text in enumerate(labels):
        draw.text((j * side + 3, 1), text, fill="black")
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            arr = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            tile = Image.fromarray(arr).resize((side, side), Image.NEAREST)
            canvas.paste(tile, (j * side, head + i * side))
    canvas.save(path)
