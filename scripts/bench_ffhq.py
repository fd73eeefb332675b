#!/usr/bin/env python
"""FFHQ scale: what a config-f generator costs here, in fp32 and in bf16, and how close to the CPU's
own matrix-multiply rate its steps run.

  python scripts/bench_ffhq.py                       # quality, speed, steps (about fifteen minutes on 2 cores)
  python scripts/bench_ffhq.py --only speed          # quality | speed | steps | jobs
  python scripts/bench_ffhq.py --only jobs --rosinality ~/stylegan2-pytorch   # about twenty minutes, 1 thread

- quality: W+ inversion of held-out renders of the embedded model at equal steps, fp32 and bf16,
  and bf16 at twice the steps (about equal time): PSNR against the render, and the step time of
  both precisions, interleaved;
- speed: config-f 256² (random weights), batch 1, forward+backward to W+, fp32 and bf16 in
  alternating rounds, against fp32 and bf16 ``torch.mm`` GFLOP/s measured in the same run;
- steps: the invert job itself at 1024² (config-f, random weights), each row in its own process:
  seconds per step, peak resident memory, and optinv.engine.memory's estimate beside it;
- jobs: every job (W+, StyleMap, Z+, tuning) beside rosinality's generator doing its W+ step on the
  same weights file, each row in its own process: peak memory at 1024², batch 1 and 4 (table
  ffhq_memory), seconds per step at 256² and 1024², batch 1, fp32 and bf16 (table ffhq_time).

Used by ``scripts/benchmark.py --only ffhq``; every function returns table rows (dicts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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


# ----------------------------------------------------------------------------- every job beside rosinality's
JOBS = {"W+": "wplus", "StyleMap": "stylemap", "Z+": "zplus", "tuning": "tune"}
ROSINALITY = "rosinality W+"
ROSINALITY_FIR = "per-channel"  # rosinality's own CPU path (op/upfirdn2d.py: upfirdn2d_native)


def write_weights(size: int, folder: Path) -> Path:
    """config-f at ``size`` (seeded random weights, w_avg the mean of 1000 mapped z) in rosinality's
    layout: every row, ours and theirs, loads this one file."""
    g = config_f(size)
    with torch.no_grad():
        g.w_avg.copy_(g.mean_latent(1000))
    from optinv.io.checkpoints import save_rosinality

    return save_rosinality(g, folder / f"config_f_{size}.pt")


class _Clock:
    """Wall and process-CPU stamps; ``steps(skip)``: the median gap between stamps after ``skip`` gaps."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __call__(self, *_: Any, **__: Any) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def gaps(self, stamps: list[float]) -> list[float]:
        return [b - a for a, b in zip(stamps, stamps[1:])]

    def step(self, skip: int, end: int | None = None) -> tuple[float | None, float | None]:
        wall, cpu = self.gaps(self.wall)[skip:end], self.gaps(self.cpu)[skip:end]
        if not wall:
            return None, None
        return round(statistics.median(wall), 2), round(statistics.median(cpu), 2)


def _ours_child(weights: str, batch: int, precision: str, steps: int, job: str) -> Row:
    """One of our jobs on the weights file: ``steps`` clean steps timed (plus the ones around them)."""
    import optinv.engine.solve as solve_module
    from optinv.engine import jobs
    from optinv.io.checkpoints import load_generator
    from optinv.engine.memory import estimate, resident_bytes
    from optinv.engine.operators import Identity
    from optinv.engine.spaces import parse_map_sizes

    g = load_generator(weights)
    space, tune = JOBS[job], JOBS[job] == "tune"
    est = estimate(g, batch, "cpu", tune="lowrank" if tune else None, locality=tune,
                   map_sizes=parse_map_sizes(None, g.n_latent) if space == "stylemap" else None)
    held = resident_bytes()
    targets = torch.rand(batch, 3, g.size, g.size, generator=torch.Generator().manual_seed(0))
    clock = _Clock()
    common = dict(recipe="1*L2", lr=0.05, schedule="fixed", noise="fixed", init="mean", batch=batch, progress=False,
                  precision=precision, extra={"fp32_tail": 0.0})
    if tune:  # the pivot (W, one step), then `steps` + 1 tuning steps per image; the first image's are stamped
        real = solve_module.tune

        def timed_tune(*a: Any, **k: Any) -> Any:
            first_image = not clock.wall
            if first_image:
                clock()
            return real(*a, callback=clock if first_image else None, **k)

        solve_module.tune = timed_tune
        opts = jobs.JobOptions(space="w", steps=1, tune=True, tune_steps=steps + 1, **common)
    else:  # a stamp after each step's forward: the gap between two is a backward, an update and a forward
        opts = jobs.JobOptions(space=space, steps=steps + 2 if steps else 1, callback=clock, **common)
    start = time.perf_counter()
    jobs.solve("invert", g, targets, [f"i{k}" for k in range(batch)], Identity(), opts)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if tune:  # stamps: tune() entered, then each tuning step's end; the first step carries the set-up
        first = clock.wall[1] - clock.wall[0]
        s_wall, s_cpu = clock.step(1, steps + 1)
    else:  # the first gap follows the first backward; the last one's forward only scores (no graph)
        first = clock.wall[1] - start
        s_wall, s_cpu = clock.step(1, -1)
    return {"s_per_step": s_wall, "cpu_s_per_step": s_cpu, "first_step_s": round(first, 2),
            "peak_bytes": peak, "loaded_bytes": held, "estimate_bytes": est.total + held}


def _rosinality_child(weights: str, batch: int, steps: int, checkout: str, fir: str) -> Row:
    """rosinality's Generator on the same file: the W+ step of its projector (render, MSE, backward,
    Adam on W+; frozen weights, fixed noise), ``steps`` clean steps timed after a first one."""
    import gc

    from bench_speed import import_rosinality, rosinality_generator
    from optinv.io.checkpoints import infer_rosinality_config
    from optinv.engine.memory import resident_bytes

    model = import_rosinality(checkout, fir)
    ckpt = torch.load(weights, map_location="cpu", weights_only=True)
    cfg = infer_rosinality_config(ckpt["g_ema"])
    twin = rosinality_generator(model, ckpt["g_ema"], cfg["size"], cfg["style_dim"], cfg["n_mlp"], cfg["channels"])
    w_avg = ckpt["latent_avg"].float().reshape(1, 1, -1)
    del ckpt
    gc.collect()
    held = resident_bytes()
    size = cfg["size"]
    w = w_avg.expand(batch, twin.n_latent, -1).clone().requires_grad_(True)
    noise = [getattr(twin.noises, f"noise_{i}") for i in range(twin.num_layers)]
    target = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    opt = torch.optim.Adam([w], lr=0.05)
    clock = _Clock()
    clock()
    for _ in range(steps + 1):
        image, _ = twin([w], input_is_latent=True, noise=noise)
        loss = (image - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        clock()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    s_wall, s_cpu = clock.step(1)
    return {"s_per_step": s_wall, "cpu_s_per_step": s_cpu, "first_step_s": round(clock.wall[1] - clock.wall[0], 2),
            "peak_bytes": peak, "loaded_bytes": held}


MEMORY_LIMIT_GIB = 15  # address space a row may add to what it maps at start (torch alone maps ~3 GiB): a row
#                        that needs more fails alone, on a shared machine, instead of waking the OOM killer


def _job_row(spec: dict[str, Any]) -> Row:
    """One row, in this (fresh) process, under an address-space limit."""
    from optinv.engine.memory import _meminfo

    limit = spec.get("memory_limit_gib", MEMORY_LIMIT_GIB)
    cap = _meminfo("/proc/self/status").get("VmSize", 0) + int(limit * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        if spec["job"] == ROSINALITY:
            return _rosinality_child(spec["weights"], spec["batch"], spec["steps"], spec["rosinality"], spec["fir"])
        return _ours_child(spec["weights"], spec["batch"], spec["precision"], spec["steps"], spec["job"])
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and "allocate" not in str(e):
            raise
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {"error": f"out of memory: needs more than {limit} GiB of address space beyond torch's "
                         f"(resident {peak / 2 ** 30:.1f} GiB when an allocation failed)"}


def run_job_rows(specs: list[dict[str, Any]], env: dict[str, str] | None = None) -> list[Row]:
    """Each spec in a fresh process (peak memory is that row's alone): raw rows, or ``error``."""
    rows = []
    for spec in specs:
        cmd = [sys.executable, __file__, "--job-child", json.dumps(spec)]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
        row = {k: spec[k] for k in ("resolution", "job", "batch", "precision")}
        if out.returncode != 0:
            row["error"] = (out.stderr.strip().splitlines() or ["?"])[-1][:200]
        else:
            row.update(json.loads(out.stdout.strip().splitlines()[-1]))
        rows.append(row)
        print(f"jobs: {row}", flush=True)
    return rows


def job_specs(sizes: tuple[int, int] = (256, 1024), big_batch: int = 4, steps: int = 2,
              rosinality: bool = True) -> list[tuple[int, str, int, str, int]]:
    """(resolution, job, batch, precision, timed steps): time at both sizes (batch 1, fp32, and bf16 at the
    larger), memory at the larger with ``big_batch`` too (one step: the first step's peak is the job's)."""
    small, big = sizes
    ours = list(JOBS)
    theirs = [ROSINALITY] if rosinality else []
    specs = [(big, j, 1, "fp32", steps) for j in ours + theirs]
    specs += [(big, j, 1, "bf16", steps) for j in ours]
    specs += [(big, j, big_batch, "fp32", 0) for j in ours + theirs]
    specs += [(small, j, 1, "fp32", steps) for j in ours + theirs]
    return specs


def bench_jobs(rosinality: str | None, sizes: tuple[int, int] = (256, 1024), big_batch: int = 4, steps: int = 2,
               fir: str = ROSINALITY_FIR) -> Row:
    """The memory and time tables of every job beside rosinality's W+ step, on the same weights."""
    import tempfile

    from optinv.io.checkpoints import load_generator
    from optinv.engine.spaces import gaussian_fit

    from optinv.io.fileio import CACHE_ENV

    with tempfile.TemporaryDirectory(prefix="optinv-ffhq-") as tmp:
        folder = Path(tmp)
        weights = {s: write_weights(s, folder) for s in sorted(set(sizes))}
        env = {CACHE_ENV: str(folder / "cache")}  # Z+'s Gaussian fit: made once here (mapping shared), not in a row
        with _environ(env):
            for path in weights.values():
                gaussian_fit(load_generator(path))
        specs = [{"resolution": r, "job": j, "batch": b, "precision": p, "steps": n, "weights": str(weights[r]),
                  "rosinality": rosinality, "fir": fir}
                 for r, j, b, p, n in job_specs(sizes, big_batch, steps, rosinality is not None)]
        rows = run_job_rows(specs, env)
    return {"ffhq_memory": memory_table(rows, max(sizes)), "ffhq_time": time_table(rows),
            "ffhq_jobs_fir": fir}


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _gib(n: Any) -> Any:
    return round(n / 2 ** 30, 2) if isinstance(n, (int, float)) else n


def memory_table(rows: list[Row], size: int) -> list[Row]:
    """Peak resident memory per job at ``size``, fp32, beside rosinality's W+ step at the same batch."""
    out = []
    theirs = {r["batch"]: r.get("peak_bytes") for r in rows if r["job"] == ROSINALITY and r["resolution"] == size}
    for r in rows:
        if r["resolution"] != size or r["precision"] != "fp32":
            continue
        row = {"job": r["job"], "batch": r["batch"]}
        if "error" in r:
            out.append({**row, "error": r["error"]})
            continue
        row.update(peak_gib=_gib(r["peak_bytes"]), model_loaded_gib=_gib(r["loaded_bytes"]),
                   step_gib=_gib(r["peak_bytes"] - r["loaded_bytes"]), estimate_gib=_gib(r.get("estimate_bytes", "")))
        if theirs.get(r["batch"]):
            row["peak_vs_rosinality"] = round(r["peak_bytes"] / theirs[r["batch"]], 2)
        out.append(row)
    return sorted(out, key=lambda x: (x["batch"], x["job"] == ROSINALITY))


def time_table(rows: list[Row]) -> list[Row]:
    """Seconds per step at batch 1 per resolution, job and precision; rosinality's fp32 W+ step ÷ this one."""
    theirs = {r["resolution"]: r.get("cpu_s_per_step") for r in rows
              if r["job"] == ROSINALITY and r["batch"] == 1 and "error" not in r}
    out = []
    for r in rows:
        if r["batch"] != 1:
            continue
        row = {"resolution": r["resolution"], "job": r["job"], "precision": r["precision"]}
        if "error" in r:
            out.append({**row, "error": r["error"]})
            continue
        row.update(s_per_step=r["s_per_step"], cpu_s_per_step=r["cpu_s_per_step"], first_step_s=r["first_step_s"])
        if theirs.get(r["resolution"]) and r["cpu_s_per_step"]:
            row["rosinality_cpu_s_over_this"] = round(theirs[r["resolution"]] / r["cpu_s_per_step"], 2)
        out.append(row)
    order = {j: k for k, j in enumerate([*JOBS, ROSINALITY])}
    return sorted(out, key=lambda x: (x["resolution"], order[x["job"]], PRECISIONS.index(x["precision"])))


def bench_ffhq(g=None, images: list[Path] | None = None, only: set[str] | None = None, quick: bool = False,
               rosinality: str | None = None) -> Row:
    """The tables named in ``only``: {'ffhq_quality', 'ffhq_speed', 'ffhq_steps', 'ffhq_memory' + 'ffhq_time'
    (part "jobs": every job beside rosinality's W+ step, with ``rosinality`` a checkout of it)}."""
    only = only or {"quality", "speed", "steps"}
    out: Row = {"ffhq_isa": isa_line(), "ffhq_bf16_units": cpu_bf16_units() or "none"}
    if "speed" in only:
        out["ffhq_speed"] = bench_speed(256, 1, rounds=3 if quick else 5)
    if "quality" in only and g is not None and images:
        out["ffhq_quality"] = bench_quality(g, images, steps=50 if quick else 150)
    if "steps" in only:
        out["ffhq_steps"] = bench_steps(DEFAULT_STEPS[:2] if quick else DEFAULT_STEPS)
    if "jobs" in only and rosinality:
        out.update(bench_jobs(rosinality, sizes=(64, 128) if quick else (256, 1024)))
    elif "jobs" in only:
        print("ffhq jobs: skipped (pass --rosinality PATH, a checkout of rosinality/stylegan2-pytorch: the tables "
              "stand beside its generator)")
    return out


def _table(rows: list[Row]) -> list[str]:
    from md_table import markdown_table

    return markdown_table(rows, skip=("isa",))


def markdown(data: dict, command: str = "python scripts/benchmark.py --only ffhq") -> list[str]:
    """The "FFHQ scale" section of BENCHMARKS.md: precision quality, speed against GEMM, 1024² jobs."""
    if not any(data.get(k) for k in ("ffhq_speed", "ffhq_quality", "ffhq_steps", "ffhq_memory", "ffhq_time")):
        return []
    cmds = data.get("ffhq_commands", {})

    def cmd(part: str) -> str:
        return f"Command: `{cmds.get(part, command)}`."

    def section(title: str, rows: list[dict] | None, note: str) -> list[str]:
        return [f"### {title}", "", note, ""] + _table(rows) if rows else []

    lines = ["## FFHQ scale", "",
             f"Code: scripts/bench_ffhq.py (`python scripts/benchmark.py --only ffhq --ffhq quality,speed,steps,jobs "
             f"--rosinality PATH` measures the tables named; `python scripts/bench_ffhq.py --only steps` prints one "
             f"without writing). CPU extensions (from /proc/cpuinfo, as `lscpu` lists them): "
             f"{data.get('ffhq_isa', '?')}; bf16 units: {data.get('ffhq_bf16_units', '?')} (no AMX). Every row: "
             "1 torch thread (`OMP_NUM_THREADS=1`) while another job kept the second core busy, so compare "
             "seconds within a table. No GPU was available for these runs: no GPU figures here "
             "(scripts/gpu_bench.py measures them where one is).", ""]
    fir = data.get("ffhq_jobs_fir", ROSINALITY_FIR)
    rosinality_setup = (
        "config-f (seeded random weights: FFHQ's cannot be downloaded here, their shapes can) written once in "
        "rosinality's layout; every row loads that file: ours through optinv.io.checkpoints, theirs strictly into the "
        "Generator of rosinality/stylegan2-pytorch's model.py (its compiled ops replaced by scripts/bench_speed.py's "
        f"stand-ins, upfirdn2d {fir}: "
        + ("the arrangement of its own CPU path, op/upfirdn2d.py's upfirdn2d_native" if fir == "per-channel"
           else "one depthwise convolution, faster than its own CPU path") + "). Each row is a fresh process, "
        "1 torch thread. Ours: the invert job with L2 (no LPIPS: its VGG weights cannot be downloaded here), "
        "Adam lr 0.05, w_avg start, fixed noise; W+; StyleMap (default sides 4,8,1); Z+ (PULSE's Gaussian fit "
        "of the mapping made before the rows); tuning (`invert --tune`: one W pivot step, then the tuning steps: "
        "low-rank delta, rank 4, with the locality term, so each renders the pivot and a nearby sample as a "
        "batch of 2 and a third image without gradients). rosinality W+: its projector's step (render, MSE, "
        "backward, Adam on W+), weights frozen, fixed noise.")
    lines += section("Every job at 1024²: peak memory beside rosinality's generator", data.get("ffhq_memory"),
                  rosinality_setup + " fp32; the batch-4 rows run one step (the first step's peak is the job's); a row may map "
                  f"{MEMORY_LIMIT_GIB} GiB beyond what it maps at start (the machine has 23 GiB, shared): one that "
                  "needs more fails alone and says so. "
                  "`peak_gib`: the process's peak resident memory (ru_maxrss); `model_loaded_gib`: resident after "
                  "loading the model; `step_gib`: the difference; `estimate_gib`: what optinv.engine.memory predicts "
                  "before the job; `peak_vs_rosinality`: this row's peak ÷ rosinality's at the same batch (the "
                  "target: ≤ 1). " + cmd("jobs"))
    lines += section("Every job at 256² and 1024²: seconds per step beside rosinality's", data.get("ffhq_time"),
                  "The batch-1 rows of the same run (set-up as above; bf16 rows: ours in bf16 autocast). "
                  "`s_per_step`: wall seconds, `cpu_s_per_step`: process CPU seconds (the steadier figure on a "
                  "shared machine), each the median of 2 steps after the first (`first_step_s`: wall seconds of "
                  "the first, one-off costs included); `rosinality_cpu_s_over_this`: rosinality's fp32 W+ step ÷ "
                  "this row's, in CPU seconds (the target: ≥ 2.5 for W+ in fp32 at 1024²). A tuning step fits "
                  "the generator to two images: compare it with the W+ rows rather than with rosinality's. "
                  + cmd("jobs"))
    lines += section("Forward + backward against the machine's own GEMM rate", data.get("ffhq_speed"),
                  "config-f 256² (random weights), batch 1, forward + backward to W+, fp32 and bf16 autocast in "
                  "alternating rounds; FLOPs counted by torch (conv, mm), divided by the median process-CPU seconds "
                  "(steadier than wall time on a shared machine), against an n = 2048 `torch.mm` in the same dtype "
                  "measured before and after (the better one). `fraction_of_gemm`: the goal is ≥ 0.5. "
                  + cmd("speed"))
    lines += section("bf16 at equal steps: held-out renders", data.get("ffhq_quality"),
                  "W+ inversion (L2, Adam lr 0.05 fixed, β2 0.9, w_avg start, fixed noise) of held-out renders of "
                  "the embedded model; PSNR of the saved result (re-rendered in fp32) against the render; "
                  "`*_diff_vs_fp32_db`: per image, this run minus fp32 (`worst` = the lowest). Step times: the "
                  "same step for both precisions, interleaved (CPU seconds). " + cmd("quality"))
    lines += section("The invert job at 1024² and 256²: time and memory per step", data.get("ffhq_steps"),
                  "config-f (random weights: FFHQ's weights cannot be downloaded here, their shapes can), W+, L2, "
                  "each row in a fresh process, 3 steps, all in the row's precision: `s_per_step` is the second "
                  "step (forward, backward, Adam; the first carries one-off costs: `first_step_s`), `peak_gib` the process's peak resident memory (ru_maxrss), "
                  "`model_loaded_gib` its resident memory before the job, `estimate_gib` what optinv.engine.memory "
                  "predicts for the job (a batch whose estimate exceeds the memory available is refused before it "
                  "starts). " + cmd("steps"))
    if data.get("ffhq_notes"):
        lines += [f"- {n}" for n in data["ffhq_notes"]] + [""]
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="quality,speed,steps", help="tables: quality, speed, steps, jobs")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--rosinality", default=None, help="a rosinality/stylegan2-pytorch checkout (part jobs)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--job-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.job_child:
        torch.manual_seed(0)
        print(json.dumps(_job_row(json.loads(args.job_child))))
        return
    if args.child:
        size, batch, precision, steps, space = json.loads(args.child)
        print(json.dumps(_child(size, batch, precision, steps, space)))
        return
    from optinv.io.checkpoints import load_generator

    images = sorted((ROOT / "samples" / "images").glob("*.png"))[: args.images]
    print(json.dumps(bench_ffhq(load_generator(None), images, set(args.only.split(",")), args.quick, args.rosinality),
                     indent=1))


if __name__ == "__main__":
    main()
