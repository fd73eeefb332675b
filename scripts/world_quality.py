#!/usr/bin/env python
"""How sharp and how faithful is an embedded-world generator? Three measures on held-out seeds.

- detail ratio: mean high-frequency energy (squared 4-neighbour Laplacian) of samples G(z)
  ÷ that of renderer portraits at the same size (1.0 = as detailed as the renders);
- teacher fidelity: PSNR of G(z) against render(z) for the same z (median, min, max);
- inversion detail: W+ inversion of held-out renders (samples/images) for a fixed number of
  steps: PSNR, and the share of the input's high-frequency energy the result keeps.

Held-out: z come from torch seeds ≥ 10**9, which training never draws (its batches use seeds
``seed * 1_000_003 + step``), and samples/images are renderer seeds ≥ 1,000,000.

  python scripts/world_quality.py --model samples/models/synthfaces64.pt
  python scripts/world_quality.py --z 0 --space stylemap --init auto   # the invert job's own start and space
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from losses.pixel import LAPLACE4
from optinv.engine.warmstart import INITS
from optinv.engine import metrics
from optinv.io.checkpoints import load_generator
from optinv.engine.generator import Generator
from optinv.io.ranges import to_signed, to_unit
from optinv.world.teacher import render_teacher

HELD_OUT_SEED = 10**9 + 7


def high_freq_energy(images: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared 4-neighbour Laplacian of [B,3,H,W] images in [0, 1] (reflect borders)."""
    x = images.float().clamp(0, 1)
    k = LAPLACE4.to(x)[None, None].expand(x.shape[1], 1, 3, 3)
    lap = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), k, groups=x.shape[1])
    return lap.pow(2).flatten(1).mean(1)


def held_out_z(n: int, style_dim: int, seed: int = HELD_OUT_SEED) -> torch.Tensor:
    return torch.randn(n, style_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def sample(g: Generator, z: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """G(z) with the model's fixed noise, as ``optinv generate`` draws it."""
    return torch.cat([g(z[i:i + chunk], randomize_noise=False) for i in range(0, len(z), chunk)])


def detail_and_fidelity(g: Generator, n: int = 64) -> dict:
    z = held_out_z(n, g.style_dim)
    fake, real = to_unit(sample(g, z)).clamp(0, 1), to_unit(render_teacher(z, g.size))
    p = [metrics.psnr(a, b) for a, b in zip(fake, real)]
    return {"detail_ratio": round(high_freq_energy(fake).mean().item() / high_freq_energy(real).mean().item(), 3),
            "teacher_psnr_median": round(statistics.median(p), 2), "teacher_psnr_min": round(min(p), 2),
            "teacher_psnr_max": round(max(p), 2), "z": n}


def held_out_renders(images: list[Path], size: int) -> list:
    """The sample files, or, for a model larger than they are, the same seeds rendered at its size.

    An upsampled 64² file has none of a 256² render's detail; "detail kept" must be measured
    against what the model could show.
    """
    from PIL import Image

    from optinv.world import synthfaces

    if all(Image.open(p).width >= size for p in images):
        return [str(p) for p in images]
    out = []
    for p in images:
        arr = np.array(synthfaces.render(int(p.stem), size)[0])
        out.append((p.stem, to_signed(torch.from_numpy(arr).permute(2, 0, 1) / 255.0)))
    return out


def inversion_detail(g: Generator, images: list[Path], steps: int = 300, recipe: str = "1*L2",
                     space: str = "wplus", init: str = "mean") -> dict:
    """Inversion (``recipe``, the invert job's schedule) of held-out renders: by default W+ from w_avg, the
    measure the targets name; ``space="stylemap", init="auto"`` is what the invert job does by default."""
    from optinv.engine import jobs

    opts = jobs.JobOptions(space=space, recipe=recipe, steps=steps, init=init, eps=0.0,
                           batch=len(images), progress=False)
    t = time.time()
    results = jobs.invert(held_out_renders(images, g.size), model=g, device="cpu", options=opts)
    seconds = time.time() - t
    target = torch.stack([r.target[:3] for r in results])
    out = torch.stack([r.image for r in results])
    kept = (high_freq_energy(out) / high_freq_energy(target)).tolist()
    p = [r.metrics["psnr"] for r in results]
    job = {} if (space, init) == ("wplus", "mean") else {"space": space, "init": init}
    return {"images": len(images), "steps": steps, **job, "recipe": recipe, "psnr_median": round(statistics.median(p), 2),
            "detail_kept_median": round(statistics.median(kept), 3), "s_per_step": round(seconds / steps, 4)}


def samples_beside_renders(g: Generator, path: Path, n: int = 64, scale: int = 2) -> Path:
    """An 8-column grid of G(z) beside the renders of the same held-out z, with a caption."""
    from PIL import Image, ImageDraw

    from optinv.io.image_files import make_grid, to_pil
    from optinv.io.ranges import to_unit

    z = held_out_z(n, g.style_dim)
    fake = make_grid([to_pil(to_unit(x)) for x in sample(g, z)], cols=8, scale=scale)
    real = make_grid([to_pil(to_unit(x)) for x in render_teacher(z, g.size)], cols=8, scale=scale)
    training = g.card.get("training", {})
    caption = (f"left: samples of {g.card.get('name', '?')} ({training.get('kimg', '?')} kimg), "
               f"right: the renders of the same z (held-out seeds)")
    canvas = Image.new("RGB", (fake.width + real.width + 12, fake.height + 18), "white")
    canvas.paste(fake, (0, 18))
    canvas.paste(real, (fake.width + 12, 18))
    ImageDraw.Draw(canvas).text((4, 3), caption, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def measure(g: Generator, images: list[Path], steps: int = 300, n: int = 64, recipe: str = "1*L2",
            space: str = "wplus", init: str = "mean") -> dict:
    """One row: detail and fidelity on ``n`` held-out z (0: skipped), then the inversion measure."""
    row = {"model": g.card.get("name", "?"), "kimg": g.card.get("training", {}).get("kimg")}
    if n:
        row.update(detail_and_fidelity(g, n))
    if images and steps:
        row.update({f"inv_{k}": v for k, v in inversion_detail(g, images, steps, recipe, space, init).items()})
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--images", type=int, default=8, help="held-out renders from samples/images")
    ap.add_argument("--steps", type=int, default=300, help="W+ inversion steps (0: skip)")
    ap.add_argument("--z", type=int, default=64, help="held-out z for detail and fidelity (0: skip)")
    ap.add_argument("--recipes", default="1*L2", help="inversion recipes, ';'-separated (each one run)")
    ap.add_argument("--space", default="wplus", help="inversion space (the targets name W+; the invert job's "
                    "default is stylemap)")
    ap.add_argument("--init", default="mean", choices=INITS, help="inversion start: mean (w_avg); auto (the model "
                    "card's encoder when it has one, as the invert job does)")
    ap.add_argument("--grid", type=Path, help="also write 8×8 samples beside renders of the same z here")
    args = ap.parse_args()
    g = load_generator(args.model, device="cpu")
    root = Path(__file__).resolve().parents[1]
    images = sorted((root / "samples" / "images").glob("*.png"))[: args.images]
    rows = [measure(g, images, args.steps, args.z if i == 0 else 0, recipe, args.space, args.init)  # detail and fidelity once
            for i, recipe in enumerate(args.recipes.split(";"))]
    print(json.dumps(rows[0] if len(rows) == 1 else rows, indent=2))
    if args.grid:
        print(f"wrote {samples_beside_renders(g, args.grid)}", file=sys.stderr)


if __name__ == "__main__":
    main()
