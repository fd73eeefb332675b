#!/usr/bin/env python
"""Measure optinv on the embedded model and samples/, and write docs/BENCHMARKS.md.

  python scripts/benchmark.py                 # everything (tens of minutes on a 2-core CPU)
  python scripts/benchmark.py --quick         # a few minutes: fewer images and steps
  python scripts/benchmark.py --only invert,pulse

Sections: generator speed (256² and 1024² config-f), inversion per space, W+ quality proxy,
PULSE ×8/×16, paint, and the optimiser's overhead over a bare loop. Raw numbers go to
docs/benchmarks.json with the machine and the command; pictures to docs/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from optinv import jobs  # noqa: E402
from optinv.checkpoints import load_generator  # noqa: E402
from optinv.generator import Generator  # noqa: E402
from optinv.imageio import load_image, make_grid  # noqa: E402
from optinv.outputs import compare_strip  # noqa: E402

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
        del g
    return rows


def sample_images(n: int) -> list[Path]:
    return sorted((SAMPLES / "images").glob("*.png"))[:n]


def bench_invert(g, images, steps_list, spaces, batch) -> list[dict]:
    rows = []
    for space in spaces:
        for steps in steps_list:
            opts = jobs.JobOptions(space=space, steps=steps, batch=batch, progress=False,
                                   recipe="1*L2" if space != "zplus" else "1*L2+0.005*GEOCROSS",
                                   lr=0.1 if space != "zplus" else 0.2, schedule="cosine-ramp",
                                   noise="fixed")
            t = time.perf_counter()
            res = jobs.invert(images, model=g, device="cpu", options=opts)
            secs = time.perf_counter() - t
            ps = [r.metrics["psnr"] for r in res]
            rows.append({"space": space, "steps": steps, "images": len(res),
                         "median_psnr": round(median(ps), 2), "worst_psnr": round(min(ps), 2),
                         "median_ssim": round(median([r.metrics["ssim"] for r in res]), 4),
                         "median_mse": round(median([r.metrics["fit_mse"] for r in res]), 5),
                         "s_per_step_per_batch": round(secs / steps / ((len(res) + batch - 1) // batch), 4),
                         "s_per_image": round(secs / len(res), 2)})
            print(f"invert {space} {steps}: {rows[-1]}", flush=True)
            if steps == max(steps_list):
                save_strips(res[:4], DOCS / f"invert_{space}.png")
    return rows


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
        ps = [10 * torch.log10(1 / ((r.image - (h + 1) / 2).pow(2).mean())).item() for r, h in zip(res, hi)]
        rows.append({"scale": factor, "images": len(res), "steps": steps,
                     "within_eps_2e-3": round(sum(r.metrics["within_eps"] for r in res) / len(res), 3),
                     "median_fit_mse": round(median([r.metrics["fit_mse"] for r in res]), 5),
                     "median_psnr_vs_highres": round(median(ps), 2), "s_per_image": round(secs / len(res), 2)})
        print(f"pulse x{factor}: {rows[-1]}", flush=True)
        save_strips(res[:4], DOCS / f"pulse_x{factor}.png")
    return rows


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


def bench_overhead(g, batch: int, steps: int) -> dict:
    """optinv's loop (W+, L2, fixed noise) against the bare minimum loop on the same work."""
    images = sample_images(batch)
    target = torch.stack([(load_image(p, size=g.size) + 1) / 2 for p in images])
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
    from optinv.operators import Identity
    from optinv.optimize import Problem, Settings, run
    from optinv.spaces import make_space

    def ours():
        sp = make_space("wplus", g, batch=batch)
        run(g, sp, Problem(target=target, operator=Identity()), build_objective("1*L2"),
            Settings(steps=steps, lr=0.05, progress=False))

    t_bare = min(timed(bare, 1) for _ in range(2))
    t_ours = min(timed(ours, 1) for _ in range(2))
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


def write_markdown(data: dict) -> None:
    lines = ["# Benchmarks", "",
             f"Written by `{data['command']}` on {data['machine']} ({data['threads']} torch threads, "
             f"torch {data['torch']}), {data['date']}. Model: `{data['model']}`.", ""]

    def table(rows: list[dict], title: str, note: str = "") -> None:
        if not rows:
            return
        lines.extend([f"## {title}", ""])
        if note:
            lines.extend([note, ""])
        keys = list(rows[0])
        lines.append("| " + " | ".join(keys) + " |")
        lines.append("|" + "---|" * len(keys))
        for r in rows:
            lines.append("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
        lines.append("")

    table(data.get("generator", []), "Generator speed (CPU, batch 1, config-f)",
          "Pure-PyTorch generator; fp32; `forward_backward_s` is one forward + backward to the W+ input.")
    table(data.get("quality_proxy", []), "Quality proxy: W+ inversion of held-out renders (L2, 500 steps, seed 0)",
          "Target: median PSNR ≥ 24 dB at 64×64.")
    table(data.get("invert", []), "Inversion per space (held-out renders, recipe L2; zplus adds 0.005·GEOCROSS)",
          "StyleMap: coarse 2×2, medium 4×4, fine 1×1 maps. Pictures: docs/invert_<space>.png "
          "(input | result | result through the operator).")
    table(data.get("pulse", []), "PULSE super-resolution (Z+, 100·L2 + 0.05·GEOCROSS, lr 0.4, linear1cycledrop)",
          "`within_eps` = fraction whose result downscales to MSE ≤ 2e-3 of the input; PSNR is against the "
          "held-out high-resolution render. Pictures: docs/pulse_x8.png, docs/pulse_x16.png.")
    table(data.get("paint", []), "Paint (RGBA references, 100·L2A + 0.05·GEOCROSS)", "Picture: docs/paint.png.")
    if data.get("overhead"):
        table([data["overhead"]], "Optimiser overhead",
              "Seconds per step of optinv's loop (best-so-far tracking, per-image losses, projections) ÷ a bare "
              "loop (generator forward, L2, backward, Adam) on the same model and batch. Target ≤ 1.10.")
    table(data.get("batch_scaling", []), "Batch scaling (W+, L2)")
    if data.get("notes"):
        lines.extend(["## Notes", ""] + [f"- {n}" for n in data["notes"]] + [""])
    (DOCS / "BENCHMARKS.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="generator,proxy,invert,pulse,paint,overhead,batch")
    ap.add_argument("--model", default=None)
    ap.add_argument("--images", type=int, default=None)
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    DOCS.mkdir(exist_ok=True)
    json_path = DOCS / "benchmarks.json"
    data = json.loads(json_path.read_text()) if json_path.exists() else {}
    data.update({"command": "python scripts/benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                 "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                 "threads": torch.get_num_threads(), "torch": torch.__version__,
                 "date": time.strftime("%Y-%m-%d")})
    g = load_generator(args.model, device="cpu")
    data["model"] = f"{g.card.get('name', '?')} ({g.size}², {g.card.get('training', {}).get('kimg', '?')} kimg)"
    n = args.images or (4 if args.quick else 8)
    images = sample_images(n)
    if "generator" in only:
        data["generator"] = bench_generator(args.quick)
    if "proxy" in only:
        opts = jobs.JobOptions(space="wplus", recipe="1*L2", steps=100 if args.quick else 500, batch=8,
                               lr=0.1, schedule="cosine-ramp", noise="fixed", seed=0, progress=False)
        res = jobs.invert(sample_images(16 if not args.quick else 4), model=g, device="cpu", options=opts)
        ps = [r.metrics["psnr"] for r in res]
        data["quality_proxy"] = [{"images": len(res), "steps": opts.steps, "median_psnr": round(median(ps), 2),
                                  "worst_psnr": round(min(ps), 2), "best_psnr": round(max(ps), 2)}]
        print(f"proxy: {data['quality_proxy']}", flush=True)
    if "invert" in only:
        steps = [50, 150] if args.quick else [200, 1000]
        data["invert"] = bench_invert(g, images, steps, ["w", "wplus", "zplus", "stylemap"], batch=len(images))
    if "pulse" in only:
        data["pulse"] = bench_pulse(g, n, 100 if args.quick else 200, batch=n)
    if "paint" in only:
        data["paint"] = bench_paint(g, 100 if args.quick else 200, batch=6)
    if "overhead" in only:
        data["overhead"] = bench_overhead(g, 4, 20 if args.quick else 50)
    if "batch" in only:
        data["batch_scaling"] = bench_batch_scaling(g, 10 if args.quick else 30)
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    write_markdown(data)
    print(f"wrote {DOCS / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
