#!/usr/bin/env python
"""Which optimiser refines an encoder's W+ prediction fastest? (the warm-start ratio's bottleneck)

From the model card's W+ encoder on the held-out renders, minimise the batch's L2 in W+ with:
- ``adam``: Adam, fixed lr, β2 0.9 (the invert job's and the warm-start table's setting);
- ``lbfgs``: torch's L-BFGS with a strong-Wolfe line search, one problem for the whole batch
  (``--lbfgs-images 1`` runs image by image, as a per-image L-BFGS would);
- ``whitened``: Adam on u with w = μ + u·diag(σ)·Vᵀ, the PCA of W (σ floored at ``--floor``·max σ),
  so Adam's per-coordinate scaling follows W's principal axes instead of the raw coordinates.

Every generator forward+backward counts as one evaluation (a line search spends several per
L-BFGS iteration); prints the best-so-far PSNR of the batch-mean L2 at fixed evaluation counts.

  python scripts/warm_optimizers.py                  # all three, 150 evaluations, 8 renders
  python scripts/warm_optimizers.py --only lbfgs --lbfgs-images 1
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Callable

import torch

from optinv.engine import warmstart
from optinv.io.checkpoints import load_generator
from optinv.io.image_files import load_image
from optinv.io.ranges import to_unit

ROOT = Path(__file__).resolve().parents[1]
READ_AT = (0, 10, 25, 50, 75, 100, 125, 149, 199, 299)


def batch_l2(g, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda w: (to_unit(g.synthesis(w)) - x).pow(2).mean(dim=(1, 2, 3)).sum()


def run_adam(loss, w0: torch.Tensor, evals: int, lr: float, to_w=lambda u: u, from_w=lambda w: w) -> list[float]:
    u = from_w(w0).clone().requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr, betas=(0.9, 0.9))
    values = []
    for _ in range(evals):
        opt.zero_grad()
        value = loss(to_w(u))
        value.backward()
        values.append(float(value.detach()))
        opt.step()
    return values


def run_lbfgs(loss, w0: torch.Tensor, evals: int, history: int) -> list[float]:
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=10 * evals, max_eval=evals, history_size=history,
                            line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)
    values: list[float] = []

    def closure():
        opt.zero_grad()
        value = loss(w)
        value.backward()
        values.append(float(value.detach()))
        return value

    opt.step(closure)
    return values[:evals]


def whitening(g, samples: int = 20000, floor: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """μ, A (u·A = w − μ) and A⁻¹ from the PCA of W."""
    with torch.no_grad():
        ws = g.mapping(torch.randn(samples, g.style_dim, generator=torch.Generator().manual_seed(0)))
    mu = ws.mean(0)
    eigval, eigvec = torch.linalg.eigh(torch.cov((ws - mu).T))
    sigma = eigval.clamp_min(1e-8).sqrt()
    sigma = torch.maximum(sigma, floor * sigma.max())
    a = (eigvec * sigma).T
    return mu, a, torch.linalg.inv(a)


def psnr_trace(values: list[float], images: int) -> list[float]:
    best, out = math.inf, []
    for v in values:
        best = min(best, v / images)
        out.append(10 * math.log10(1 / max(best, 1e-12)))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--evals", type=int, default=150)
    ap.add_argument("--only", default="adam,lbfgs,whitened")
    ap.add_argument("--lr", type=float, default=0.1, help="Adam's lr (raw and whitened)")
    ap.add_argument("--history", type=int, default=20, help="L-BFGS history")
    ap.add_argument("--lbfgs-images", type=int, default=0, help="L-BFGS on groups of this many images (0: the batch)")
    ap.add_argument("--floor", type=float, default=0.0, help="whitened: σ floor as a fraction of the largest σ")
    args = ap.parse_args(argv)
    g = load_generator(args.model)
    for p in g.parameters():
        p.requires_grad_(False)
    files = sorted((ROOT / "samples" / "images").glob("*.png"))[:args.images]
    enc = warmstart.find_encoder(g, "wplus")
    if enc is None:
        raise SystemExit("error: the model card lists no W+ encoder")
    x = torch.stack([load_image(p, size=g.size) for p in files])
    w0 = warmstart.encode(enc, x, g, None).detach()
    for method in args.only.split(","):
        t = time.process_time()
        if method == "adam":
            values = run_adam(batch_l2(g, x), w0, args.evals, args.lr)
        elif method == "lbfgs":
            size = args.lbfgs_images or len(x)
            groups = [run_lbfgs(batch_l2(g, x[i:i + size]), w0[i:i + size], args.evals, args.history)
                      for i in range(0, len(x), size)]
            values = [sum(v[min(k, len(v) - 1)] for v in groups) for k in range(max(map(len, groups)))]
        elif method == "whitened":
            mu, a, a_inv = whitening(g, floor=args.floor)
            values = run_adam(batch_l2(g, x), w0, args.evals, args.lr, to_w=lambda u: u @ a + mu,
                              from_w=lambda w: (w - mu) @ a_inv)
        else:
            raise SystemExit(f"error: unknown method {method!r} (known: adam, lbfgs, whitened)")
        trace = psnr_trace(values, len(x))
        cpu = (time.process_time() - t) / len(values)
        print(f"{method}: " + " ".join(f"{k}:{trace[k]:.2f}" for k in READ_AT if k < len(trace))
              + f"  ({cpu:.3f} CPU s per evaluation)", flush=True)


if __name__ == "__main__":
    main()
