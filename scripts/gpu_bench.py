#!/usr/bin/env python
"""GPU benchmark of W+ inversion steps: batch size × precision × torch.compile.

Times what one inversion step costs on an accelerator, to tell whether batching and bf16 pay
off and whether a 500-step 1024² inversion fits in 15 s. Generators are StyleGAN2 config-f
(style_dim 512, n_mlp 8, channel_multiplier 2) with random weights: speed only, no quality.

On a GPU machine (compile on adds one compile per row, up to minutes each at 1024²; the JSON
is rewritten after every row, so a cut-short run keeps what it measured):

  python scripts/gpu_bench.py --out docs/gpu_bench.json --markdown docs/gpu_bench.md

Shorter runs and the CPU check:

  python scripts/gpu_bench.py --sizes 256 --compile off        # no compile, one resolution
  python scripts/gpu_bench.py --tiny --device cpu --steps 2 --warmup 1 --batches 1,2 --compile off

A step is: zero grad, render ``g.synthesis(w, noise=fixed)`` (under bf16 autocast for bf16),
MSE to a fixed target, backward, Adam (lr 0.05) on ``w`` [B, n_latent, style_dim]. Warm-up
steps (at least one when compiling, which also pays the compile) are not timed; CUDA is
synchronised before and after the timed steps. With compile on, the compiled render is
compared with eager on the same ``w`` (max abs diff; within 1e-4 required in fp32).

Derived targets per (resolution, precision, compile): images/s at the largest batch ÷ images/s
at batch 1 (target ≥ 8× for batch 16), and at 1024² the seconds of a 500-step single-image
inversion, extrapolated from the timed steps at batch 1 (target < 15 s).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from optinv.engine.device import resolve_device
from optinv.errors import OptinvError
from optinv.engine.generator import Generator

CONFIG_F = {"style_dim": 512, "n_mlp": 8, "channel_multiplier": 2}
TINY = {"size": 32, "style_dim": 64, "n_mlp": 2, "channels": {4: 64, 8: 64, 16: 32, 32: 32}}
EQUIV_TOL = 1e-4
SCALING_TARGET = 8.0
INVERSION_STEPS = 500
INVERSION_TARGET_S = 15.0
INVERSION_SIZE = 1024
DEFAULT_JSON = Path(__file__).resolve().parents[1] / "docs" / "gpu_bench.json"

Render = Callable[[torch.Tensor], torch.Tensor]


def csv_list(text: str, kind: type = str) -> list:
    """``"1,4,16"`` → ``[1, 4, 16]`` (empty items dropped)."""
    return [kind(t.strip()) for t in text.split(",") if t.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu_bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sizes", default=None, help="resolutions (default 256,1024; 32 with --tiny)")
    p.add_argument("--batches", default="1,4,16")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--compile", default="off,on", help="on, off or both (off,on)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per row")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    p.add_argument("--tf32", choices=("on", "off"), default="off",
                   help="TF32 for fp32 convs/matmuls on CUDA (off: fp32 rows are true fp32)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--tiny", action="store_true", help="tiny generator, seconds on a CPU")
    p.add_argument("--out", default=None, help=f"JSON file (default {DEFAULT_JSON.name} in docs/ on CUDA)")
    p.add_argument("--markdown", default=None, help="also write the markdown tables here")
    args = p.parse_args(argv)
    args.sizes = csv_list(args.sizes or ("32" if args.tiny else "256,1024"), int)
    args.batches = csv_list(args.batches, int)
    args.precisions = csv_list(args.precisions)
    args.compile = [c == "on" for c in csv_list(args.compile)]
    if any(pr not in ("fp32", "bf16") for pr in args.precisions):
        p.error("--precisions takes fp32 and/or bf16")
    if args.steps < 1 or args.warmup < 0 or not args.batches or min(args.batches) < 1:
        p.error("--steps ≥ 1, --warmup ≥ 0 and batches ≥ 1 are required")
    return args


def pick_device(name: str, tf32: bool = False) -> torch.device:
    """The device asked for; ``cuda`` without one raises OptinvError (main exits 2).

    TF32 is off by default so fp32 rows measure fp32 and the compiled/eager check at 1e-4 is
    not swamped by TF32 rounding where inductor picks another conv layout.
    """
    dev = resolve_device(name)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return dev


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine() or "cpu"


def sync(dev: torch.device) -> None:
    """Wait for queued kernels so wall time covers the work, not its launch."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def build_generator(size: int, tiny: bool, dev: torch.device, seed: int = 0) -> Generator:
    """Config-f (or the tiny config) with random weights, frozen: only w is optimised."""
    torch.manual_seed(seed)
    if tiny:
        cfg = dict(TINY, size=size)
        chans = {r: c for r, c in TINY["channels"].items() if r <= size}
        chans.update({2 ** k: 32 for k in range(2, size.bit_length()) if 2 ** k not in chans})
        g = Generator(size, cfg["style_dim"], cfg["n_mlp"], channels=chans)
    else:
        g = Generator(size, **CONFIG_F)
    with torch.no_grad():  # noise strengths ≠ 0 so the noise path costs what it costs in a trained model
        for name, prm in g.named_parameters():
            if name.endswith("noise.weight"):
                prm.fill_(0.1)
    return g.to(dev).eval().requires_grad_(False)


def make_render(g: Generator, noise: list[torch.Tensor], precision: str, dev: torch.device) -> Render:
    """w → image under the row's precision (bf16: autocast; fp32: plain)."""
    def render(w: torch.Tensor) -> torch.Tensor:
        ctx = (torch.autocast(dev.type, dtype=torch.bfloat16) if precision == "bf16"
               else contextlib.nullcontext())
        with ctx:
            return g.synthesis(w, noise=noise)
    return render


def compiled(render: Render, backend: str = "inductor") -> Render:
    """A fresh torch.compile of ``render`` (dynamo reset so rows neither share nor exhaust caches)."""
    torch._dynamo.reset()
    return torch.compile(render, backend=backend)


def compare(fast: Render, reference: Render, w: torch.Tensor) -> dict[str, float]:
    """Largest |fast(w) − reference(w)| (in fp32) and the reference's largest |pixel|, for scale.

    Called in grad mode with the row's own ``w`` so a compiled ``fast`` is not recompiled.
    """
    a = fast(w).detach().float()
    b = reference(w).detach().float()
    return {"max_abs_diff": float((a - b).abs().max()), "image_absmax": float(b.abs().max())}


def max_abs_diff(fast: Render, reference: Render, w: torch.Tensor) -> float:
    """Largest |fast(w) − reference(w)| over the image."""
    return compare(fast, reference, w)["max_abs_diff"]


def compile_equivalence(g: Generator, w: torch.Tensor, noise: list[torch.Tensor],
                        backend: str = "inductor") -> float:
    """Max abs diff of the compiled fp32 render against eager on the same w."""
    eager = make_render(g, noise, "fp32", w.device)
    return max_abs_diff(compiled(eager, backend), eager, w)


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception as one short line for a table cell (compile errors span pages)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:limit]


def inversion_setup(g: Generator, dev: torch.device, seed: int = 1) -> tuple[list, torch.Tensor, torch.Tensor]:
    """Fixed noise, a fixed target image (from a random w) and the start latent (mean w)."""
    gen = torch.Generator().manual_seed(seed)
    noise = [n.clone() for n in g.noise_list()]
    w_start = g.mean_latent(1000)
    with torch.no_grad():
        w_t = g.mapping(torch.randn(1, g.style_dim, generator=gen).to(dev))
        target = g.synthesis(w_t[:, None].expand(1, g.n_latent, -1), noise=noise).float()
    return noise, target, w_start


def inversion_step(render: Render, w: torch.Tensor, opt: torch.optim.Optimizer,
                   target: torch.Tensor) -> torch.Tensor:
    """One W+ step; the loss stays on the device (no per-step sync)."""
    opt.zero_grad(set_to_none=True)
    loss = F.mse_loss(render(w).float(), target)
    loss.backward()
    opt.step()
    return loss.detach()


def timed(fn: Callable[[], object], n: int, dev: torch.device) -> tuple[float, object]:
    """Wall seconds of ``n`` calls between two device synchronisations, and the last result."""
    sync(dev)
    t0 = time.perf_counter()
    out = None
    for _ in range(n):
        out = fn()
    sync(dev)
    return time.perf_counter() - t0, out


def run_row(g: Generator, setup: tuple, batch: int, precision: str, use_compile: bool,
            steps: int, warmup: int, dev: torch.device) -> dict:
    """Time ``steps`` W+ steps at one (batch, precision, compile); a compile failure is a row."""
    noise, target, w_start = setup
    row: dict = {"size": g.size, "batch": batch, "precision": precision, "compile": use_compile}
    eager = make_render(g, noise, precision, dev)
    render = compiled(eager) if use_compile else eager
    w = w_start.detach()[None, None].repeat(batch, g.n_latent, 1).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=0.05)
    tgt = target.expand(batch, -1, -1, -1)
    step = lambda: inversion_step(render, w, opt, tgt)  # noqa: E731
    warm = max(warmup, 1) if use_compile else warmup  # the first compiled call compiles: never timed
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    try:
        row["warmup_s"], _ = timed(step, warm, dev)
    except Exception as err:  # noqa: BLE001 - inductor/triton raise many types
        if not use_compile:
            raise
        row["compile_error"] = one_line(err)
        return row
    elapsed, loss = timed(step, steps, dev)
    row.update(warmup_steps=warm, timed_steps=steps, seconds=elapsed, s_per_step=elapsed / steps,
               steps_per_s=steps / elapsed, images_per_s=batch * steps / elapsed, final_loss=float(loss))
    if dev.type == "cuda":
        row["peak_mem_gib"] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
    if use_compile:
        row.update(compare(render, eager, w))
        row["diff_ok"] = row["max_abs_diff"] <= EQUIV_TOL if precision == "fp32" else None
    return row


def safe_row(g: Generator, setup: tuple, batch: int, precision: str, use_compile: bool,
             steps: int, warmup: int, dev: torch.device) -> dict:
    """run_row, with an out-of-memory or other failure kept as the row's error."""
    try:
        return run_row(g, setup, batch, precision, use_compile, steps, warmup, dev)
    except Exception as err:  # noqa: BLE001 - one bad row must not lose the others
        return {"size": g.size, "batch": batch, "precision": precision, "compile": use_compile,
                "error": one_line(err)}
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def derived_targets(rows: list[dict]) -> list[dict]:
    """Batch scaling and the 500-step single-image time per (size, precision, compile)."""
    groups: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        if "s_per_step" in r:
            groups.setdefault((r["size"], r["precision"], r["compile"]), {})[r["batch"]] = r
    out = []
    for (size, precision, use_compile), by_batch in groups.items():
        t: dict = {"size": size, "precision": precision, "compile": use_compile}
        hi = max(by_batch)
        if 1 in by_batch and hi > 1:
            ratio = by_batch[hi]["images_per_s"] / by_batch[1]["images_per_s"]
            t.update(batch_hi=hi, batch_scaling=ratio, scaling_target=SCALING_TARGET,
                     scaling_ok=(ratio >= SCALING_TARGET) if hi >= 16 else None)
        if 1 in by_batch:
            one = by_batch[1]
            secs = INVERSION_STEPS * one["s_per_step"]
            t.update(inversion_500_s=secs, inversion_target_s=INVERSION_TARGET_S,
                     inversion_ok=(secs < INVERSION_TARGET_S) if size == INVERSION_SIZE else None,
                     inversion_note=f"extrapolated from {one['timed_steps']} timed steps at batch 1")
        out.append(t)
    return out


def _num(x: object, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def _flag(ok: object) -> str:
    return "" if ok is None else ("yes" if ok else "**no**")


def markdown(report: dict) -> str:
    """The rows and the derived targets as two markdown tables."""
    lines = [f"GPU bench {report['date']} on {report['device']} (torch {report['torch']}, "
             f"{report['generator']})", "",
             "| size | batch | precision | compile | steps/s | images/s | s/step | warm-up s | "
             "compiled−eager max diff | note |",
             "|---:|---:|---|---|---:|---:|---:|---:|---:|---|"]
    for r in report["rows"]:
        note = r.get("compile_error") or r.get("error") or ""
        if r.get("diff_ok") is False:
            note = f"diff above {EQUIV_TOL:g}"
        lines.append(f"| {r['size']} | {r['batch']} | {r['precision']} | {'on' if r['compile'] else 'off'} | "
                     f"{_num(r.get('steps_per_s'), '.2f')} | {_num(r.get('images_per_s'), '.2f')} | "
                     f"{_num(r.get('s_per_step'), '.4f')} | {_num(r.get('warmup_s'), '.3g')} | "
                     f"{_num(r.get('max_abs_diff'), '.2e')} | {note} |")
    lines += ["", f"| size | precision | compile | images/s bN ÷ b1 (≥ {SCALING_TARGET:g}× at 16) | ok | "
              f"{INVERSION_STEPS}-step inversion s (< {INVERSION_TARGET_S:g} s at {INVERSION_SIZE}²) | ok | note |",
              "|---:|---|---|---:|---|---:|---|---|"]
    for t in report["targets"]:
        scaling = f"b{t['batch_hi']}: {t['batch_scaling']:.2f}×" if "batch_scaling" in t else ""
        lines.append(f"| {t['size']} | {t['precision']} | {'on' if t['compile'] else 'off'} | {scaling} | "
                     f"{_flag(t.get('scaling_ok'))} | {_num(t.get('inversion_500_s'), '.1f')} | "
                     f"{_flag(t.get('inversion_ok'))} | {t.get('inversion_note', '')} |")
    return "\n".join(lines) + "\n"


def header(args: argparse.Namespace, argv: list[str], dev: torch.device) -> dict:
    """What a reader needs to reproduce the numbers: when, where, which torch and settings."""
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device_name(dev), "device_type": dev.type, "torch": torch.__version__,
        "cuda": torch.version.cuda, "python": platform.python_version(),
        "command": " ".join(["python", "scripts/gpu_bench.py", *argv]),
        "generator": "tiny (style_dim 64, n_mlp 2, 32–64 channels)" if args.tiny
        else "StyleGAN2 config-f (style_dim 512, n_mlp 8, channel_multiplier 2), random weights",
        "threads": torch.get_num_threads(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
        "settings": {"sizes": args.sizes, "batches": args.batches, "precisions": args.precisions,
                     "compile": args.compile, "steps": args.steps, "warmup": args.warmup,
                     "optimizer": "Adam lr 0.05 on W+", "loss": "MSE to a fixed target, fixed noise"},
        "rows": [], "targets": [],
    }


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        dev = pick_device(args.device, tf32=args.tf32 == "on")
    except OptinvError as err:
        print(f"gpu_bench: error: {err}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else (DEFAULT_JSON if dev.type == "cuda" else None)
    report = header(args, argv, dev)
    for size in args.sizes:
        g = build_generator(size, args.tiny, dev)
        setup = inversion_setup(g, dev)
        for use_compile in args.compile:
            for precision in args.precisions:
                for batch in args.batches:
                    row = safe_row(g, setup, batch, precision, use_compile, args.steps, args.warmup, dev)
                    report["rows"].append(row)
                    report["targets"] = derived_targets(report["rows"])
                    print(f"gpu_bench: {json.dumps(row)}", file=sys.stderr, flush=True)
                    if out is not None:  # kept after every row: a cut-short run keeps what it measured
                        write_text(out, json.dumps(report, indent=2) + "\n")
        del g, setup
    table = markdown(report)
    if args.markdown:
        write_text(Path(args.markdown), table)
    if out is None:
        print(json.dumps(report, indent=2))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
