#!/usr/bin/env python
"""FFHQ scale: what a config-f generator costs here, in fp32 and in bf16, and how close to the CPU's
own matrix-multiply rate its steps run.

  python scripts/bench_ffhq.py                       # all three tables (about fifteen minutes on 2 cores)
  python scripts/bench_ffhq.py --only speed          # quality | speed | steps

- quality: W+ inversion of held-out renders of the embedded model at equal steps, fp32 and bf16,
  and bf16 at twice the steps (about equal time): PSNR against the render, and the step time of
  both precisions, interleaved;
- speed: config-f 256² (random weights), batch 1, forward+backward to W+, fp32 and bf16 in
  alternating rounds, against fp32 and bf16 ``torch.mm`` GFLOP/s measured in the same run;
- steps: the invert job itself at 1024² (config-f, random weights), each row in its own process:
  seconds per step, peak resident memory, and optinv.engine.memory's estimate beside it.

Used by ``scripts/benchmark.py --only ffhq``; every function returns table rows (dicts).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench_speed import count_flops, config_f, wplus_start  # noqa: E402
from optinv.engine.precision import autocast, cpu_bf16_units, cpu_flags  # noqa: E402

Row = dict[str, Any]
PRECISIONS = ("fp32", "bf16")


def isa_line() -> str:
    """The vector/matrix extensions lscpu would list, the ones that decide bf16's speed."""
    flags = cpu_flags()
    keep = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))
    return " ".join(keep) or "unknown"


def gemm_rate(dtype: torch.dtype, n: int = 2048, repeat: int = 3) -> tuple[float, float]:
    """(wall, CPU) GFLOP/s of an n×n ``torch.mm`` in ``dtype``, best of ``repeat``."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(dtype) for _ in range(2))
    torch.mm(a, b)
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    flops = 2.0 * n ** 3
    return flops / min(wall) / 1e9, flops / min(cpu) / 1e9


def _fb(g, batch: int, precision: str) -> Callable[[], None]:
    w = wplus_start(g, batch).requires_grad_(True)
    noise = g.noise_list()

    def step() -> None:
        w.grad = None
        with autocast(precision, "cpu"):
            out = g.synthesis(w, noise=noise)
        out.float().square().mean().backward()

    return step


def interleaved(fns: dict[str, Callable[[], None]], rounds: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each function, called in alternating rounds after one warm-up each."""
    for fn in fns.values():
        fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def bench_speed(size: int = 256, batch: int = 1, rounds: int = 5) -> list[Row]:
    """Forward+backward of config-f at ``size`` in fp32 and bf16, as a fraction of each GEMM rate."""
    g = config_f(size)
    steps = {p: _fb(g, batch, p) for p in PRECISIONS}
    flops = count_flops(steps["fp32"])
    before = {p: gemm_rate(torch.float32 if p == "fp32" else torch.bfloat16) for p in PRECISIONS}
    times = interleaved(steps, rounds)
    after = {p: gemm_rate(torch.float32 if p == "fp32" else torch.bfloat16) for p in PRECISIONS}
    rows = []
    for p in PRECISIONS:
        gemm_wall = max(before[p][0], after[p][0])
        gemm_cpu = max(before[p][1], after[p][1])
        wall, cpu = times[p]
        rows.append({"model": f"config-f {size}² (random)", "batch": batch, "precision": p,
                     "threads": torch.get_num_threads(), "gflop_per_step": round(flops / 1e9, 2),
                     "s_per_step": round(wall, 3), "cpu_s_per_step": round(cpu, 3),
                     "gflops_per_cpu_s": round(flops / cpu / 1e9, 1), "gemm_gflops_per_cpu_s": round(gemm_cpu, 1),
                     "fraction_of_gemm": round(flops / cpu / 1e9 / gemm_cpu, 3),
                     "speedup_vs_fp32": round(times["fp32"][1] / cpu, 2),
                     "gemm_gflops_per_s": round(gemm_wall, 1)})
        print(f"speed {size}² {p}: {cpu:.3f} CPU-s/step, {rows[-1]['fraction_of_gemm']} of its GEMM "
              f"({gemm_cpu:.0f} GFLOP/CPU-s)", flush=True)
    for r in rows:
        r["isa"] = isa_line()
    return rows


def bench_quality(g, images: list[Path], steps: int = 200, rounds: int = 5) -> list[Row]:
    """W+ inversion of held-out renders at equal steps, fp32 and bf16: PSNR and step time."""
    from optinv.engine import jobs, metrics
    from optinv.io.image_files import load_image
    from optinv.engine.operators import Identity

    targets = torch.stack([load_image(p, size=g.size) for p in images])
    names = [p.stem for p in images]
    psnrs: dict[str, list[float]] = {}
    runs = {"fp32": ("fp32", steps), "bf16": ("bf16", steps), "bf16 (2× steps)": ("bf16", 2 * steps)}
    for label, (p, n) in runs.items():
        opts = jobs.JobOptions(space="wplus", recipe="1*L2", steps=n, lr=0.05, schedule="fixed", noise="fixed",
                               init="mean", adam_beta2=0.9, batch=len(images), progress=False, precision=p)
        res = jobs.solve("invert", g, targets, names, Identity(), opts)
        psnrs[label] = [metrics.psnr(r.image, r.target) for r in res]
        print(f"quality {label}: {statistics.median(psnrs[label]):.2f} dB", flush=True)
    # the step itself (render, L2, backward, Adam on W+), timed in alternating rounds
    w0 = wplus_start(g, len(images))

    def step_fn(p: str) -> Callable[[], None]:
        w = w0.clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=0.05)

        def step() -> None:
            with autocast(p, "cpu"):
                out = g.synthesis(w, noise=g.noise_list())
            loss = ((out.float() + 1) / 2 - targets).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    times = interleaved({p: step_fn(p) for p in PRECISIONS}, rounds)
    rows = []
    for label, (p, n) in runs.items():
        diff = [a - b for a, b in zip(psnrs[label], psnrs["fp32"])]
        rows.append({"model": f"{g.card.get('name', 'model')} ({g.size}²)", "images": len(images), "steps": n,
                     "precision": label, "median_psnr": round(statistics.median(psnrs[label]), 2),
                     "median_diff_vs_fp32_db": round(statistics.median(diff), 3),
                     "worst_diff_vs_fp32_db": round(min(diff), 3),
                     "cpu_s_per_step": round(times[p][1], 4),
                     "step_time_vs_fp32": round(times[p][1] / times["fp32"][1], 2)})
    return rows


# ----------------------------------------------------------------------------- 1024² jobs, one process each
def _child(size: int, batch: int, precision: str, steps: int, space: str) -> Row:
    """The invert job on config-f ``size`` (random weights): s/step, peak memory, the estimate."""
    from optinv.engine import jobs
    from optinv.engine.memory import GIB, estimate, resident_bytes
    from optinv.engine.operators import Identity
    from optinv.engine.spaces import parse_map_sizes

    g = config_f(size)
    with torch.no_grad():
        g.w_avg.copy_(g.mean_latent(1000))
    g.card = {"name": f"config-f {size}"}
    est = estimate(g, batch, "cpu", map_sizes=parse_map_sizes(None, g.n_latent) if space == "stylemap" else None)
    held = resident_bytes()
    targets = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    stamps: list[float] = []
    start = time.perf_counter()
    opts = jobs.JobOptions(space=space, recipe="1*L2", steps=steps, lr=0.05, schedule="fixed", noise="fixed",
                           init="mean", batch=batch, progress=False, precision=precision,
                           callback=lambda *a: stamps.append(time.perf_counter()), extra={"fp32_tail": 0.0})
    jobs.solve("invert", g, targets, [f"i{k}" for k in range(batch)], Identity(), opts)
    # callbacks come after each step's forward pass: the gap between two is a backward, an update and
    # a forward; the last gap's forward only scores (no graph), so a whole step is the one before it
    per_step = [b - a for a, b in zip(stamps, stamps[1:])]
    full = per_step[-2] if len(per_step) >= 2 else per_step[-1]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"resolution": size, "space": space, "batch": batch, "precision": precision,
            "s_per_step": round(full, 2), "first_step_s": round(stamps[0] - start + per_step[0], 2),
            "s_per_image_step": round(full / batch, 2),
            "peak_gib": round(peak / GIB, 2), "model_loaded_gib": round(held / GIB, 2),
            "estimate_gib": round((est.total + held) / GIB, 2)}


def bench_steps(rows_spec: list[tuple[int, int, str, str]], steps: int = 3) -> list[Row]:
    """Each (size, batch, precision, space) in a fresh process (so peak memory is that job's alone)."""
    rows = []
    for size, batch, precision, space in rows_spec:
        cmd = [sys.executable, __file__, "--child", json.dumps([size, batch, precision, steps, space])]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            rows.append({"resolution": size, "space": space, "batch": batch, "precision": precision,
                         "error": (out.stderr.strip().splitlines() or ["?"])[-1][:200]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"steps: {rows[-1]}", flush=True)
    return rows


DEFAULT_STEPS = [(1024, 1, "fp32", "wplus"), (1024, 1, "bf16", "wplus"), (1024, 4, "fp32", "wplus"),
                 (256, 1, "fp32", "wplus"), (256, 1, "bf16", "wplus")]


def bench_ffhq(g=None, images: list[Path] | None = None, only: set[str] | None = None, quick: bool = False) -> Row:
    """All three tables: {'ffhq_quality': rows, 'ffhq_speed': rows, 'ffhq_steps': rows}."""
    only = only or {"quality", "speed", "steps"}
    out: Row = {"ffhq_isa": isa_line(), "ffhq_bf16_units": cpu_bf16_units() or "none"}
    if "speed" in only:
        out["ffhq_speed"] = bench_speed(256, 1, rounds=3 if quick else 5)
    if "quality" in only and g is not None and images:
        out["ffhq_quality"] = bench_quality(g, images, steps=50 if quick else 150)
    if "steps" in only:
        out["ffhq_steps"] = bench_steps(DEFAULT_STEPS[:2] if quick else DEFAULT_STEPS)
    return out


def _table(rows: list[Row]) -> list[str]:
    from md_table import markdown_table

    return markdown_table(rows, skip=("isa",))


def markdown(data: dict, command: str = "python scripts/benchmark.py --only ffhq") -> list[str]:
    """The "FFHQ scale" section of BENCHMARKS.md: precision quality, speed against GEMM, 1024² jobs."""
    if not any(data.get(k) for k in ("ffhq_speed", "ffhq_quality", "ffhq_steps")):
        return []
    cmds = data.get("ffhq_commands", {})

    def cmd(part: str) -> str:
        return f"Command: `{cmds.get(part, command)}`."

    lines = ["## FFHQ scale", "",
             f"Code: scripts/bench_ffhq.py (`python scripts/benchmark.py --only ffhq --ffhq quality,speed,steps` "
             f"measures the tables named; `python scripts/bench_ffhq.py --only steps` prints one without writing). CPU extensions (from /proc/cpuinfo, as `lscpu` lists them): "
             f"{data.get('ffhq_isa', '?')}; bf16 units: {data.get('ffhq_bf16_units', '?')} (no AMX). Every row: "
             "1 torch thread (`OMP_NUM_THREADS=1`) while another job kept the second core busy, so compare "
             "seconds within a table. No GPU was available for these runs: no GPU figures here "
             "(scripts/gpu_bench.py measures them where one is).", ""]
    if data.get("ffhq_speed"):
        lines += ["### Forward + backward against the machine's own GEMM rate", "",
                  "config-f 256² (random weights), batch 1, forward + backward to W+, fp32 and bf16 autocast in "
                  "alternating rounds; FLOPs counted by torch (conv, mm), divided by the median process-CPU seconds "
                  "(steadier than wall time on a shared machine), against an n = 2048 `torch.mm` in the same dtype "
                  "measured before and after (the better one). `fraction_of_gemm`: the goal is ≥ 0.5. "
                  + cmd("speed"), ""]
        lines += _table(data["ffhq_speed"])
    if data.get("ffhq_quality"):
        lines += ["### bf16 at equal steps: held-out renders", "",
                  "W+ inversion (L2, Adam lr 0.05 fixed, β2 0.9, w_avg start, fixed noise) of held-out renders of "
                  "the embedded model; PSNR of the saved result (re-rendered in fp32) against the render; "
                  "`*_diff_vs_fp32_db`: per image, this run minus fp32 (`worst` = the lowest). Step times: the "
                  "same step for both precisions, interleaved (CPU seconds). " + cmd("quality"), ""]
        lines += _table(data["ffhq_quality"])
    if data.get("ffhq_steps"):
        lines += ["### The invert job at 1024² and 256²: time and memory per step", "",
                  "config-f (random weights: FFHQ's weights cannot be downloaded here, their shapes can), W+, L2, "
                  "each row in a fresh process, 3 steps, all in the row's precision: `s_per_step` is the second "
                  "step (forward, backward, Adam; the first carries one-off costs: `first_step_s`), `peak_gib` the process's peak resident memory (ru_maxrss), "
                  "`model_loaded_gib` its resident memory before the job, `estimate_gib` what optinv.engine.memory "
                  "predicts for the job (a batch whose estimate exceeds the memory available is refused before it "
                  "starts). " + cmd("steps"), ""]
        lines += _table(data["ffhq_steps"])
    if data.get("ffhq_notes"):
        lines += [f"- {n}" for n in data["ffhq_notes"]] + [""]
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="quality,speed,steps")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        size, batch, precision, steps, space = json.loads(args.child)
        print(json.dumps(_child(size, batch, precision, steps, space)))
        return
    from optinv.io.checkpoints import load_generator

    images = sorted((ROOT / "samples" / "images").glob("*.png"))[: args.images]
    print(json.dumps(bench_ffhq(load_generator(None), images, set(args.only.split(",")), args.quick), indent=1))


if __name__ == "__main__":
    main()
