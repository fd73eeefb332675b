#!/usr/bin/env python
"""How good must a warm start be to reach a long cold run's PSNR in 100 steps?

Runs the benchmark's cold W+ inversion (w_avg init, L2, Adam lr 0.05 fixed) for k steps, then
restarts Adam from that run's best latent for ``--extra`` steps, as if an encoder had predicted
it. The end PSNR against the start PSNR bounds what any encoder can buy under those settings.

  python scripts/warm_start_bound.py                 # k = 100, 200, 300, 500; 8 held-out renders
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from losses.recipe import build_objective
from optinv.io.checkpoints import load_generator
from optinv.io.image_files import load_image
from optinv.engine.operators import Identity
from optinv.engine.optimize import Problem, Settings, run
from optinv.engine.spaces import make_space

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--starts", default="100,200,300,500", help="cold steps before the restart")
    ap.add_argument("--extra", type=int, default=100, help="steps after the restart")
    ap.add_argument("--schedule", default="fixed", help="schedule of the restarted run (fixed | cosine-ramp)")
    args = ap.parse_args(argv)
    g = load_generator(args.model)
    files = sorted((ROOT / "samples" / "images").glob("*.png"))[:args.images]
    target = torch.stack([load_image(p, size=g.size) for p in files])
    problem, objective = Problem(target=target, operator=Identity()), build_objective("1*L2")

    def optimise(init_w: torch.Tensor, steps: int, schedule: str = "fixed") -> tuple[torch.Tensor, float]:
        trace: list[float] = []
        space = make_space("wplus", g, init_w, batch=len(files))
        res = run(g, space, problem, objective, Settings(steps=steps, lr=0.05, schedule=schedule, noise="fixed",
                                                          progress=False),
                  callback=lambda step, record, parts: trace.append(10 * math.log10(1 / record["L2"])))
        return res.latent["wplus"].detach(), max(trace)

    mean = g.w_avg.detach()[None, None].expand(len(files), g.n_latent, -1).clone()
    print("| cold steps | PSNR at the restart | after restart + %d (%s) |" % (args.extra, args.schedule))
    print("|---|---|---|")
    for k in (int(s) for s in args.starts.split(",")):
        start, psnr0 = optimise(mean, k)
        _, psnr1 = optimise(start, args.extra, args.schedule)
        print(f"| {k} | {psnr0:.2f} | {psnr1:.2f} |", flush=True)


if __name__ == "__main__":
    main()
