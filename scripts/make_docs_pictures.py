#!/usr/bin/env python
"""Pictures for docs/: model samples beside renders, and editing figures from real inversions.

  python scripts/make_docs_pictures.py [--steps 300]

Writes docs/samples_vs_renders.png, docs/edit_<direction>.png, docs/interpolation.png,
docs/mix.png and docs/stylemap_blend.png (inputs along the top row and the left column,
each cell = top half from the column's image, bottom half from the row's, smooth ramp).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from optinv.edit import edits as E
from optinv.engine import jobs
from optinv.io.checkpoints import load_generator
from optinv.edit.directions import load_direction, shipped_directions_path
from optinv.io.image_files import make_grid
from optinv.io.image_files import to_pil
from optinv.io.ranges import to_unit
from optinv.world import synthfaces

ROOT = Path(__file__).resolve().parents[1]

DOCS = ROOT / "docs"


def pil_row(images: torch.Tensor) -> list[Image.Image]:
    return [to_pil(x.cpu()) for x in images]


def labelled(grid: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (grid.width, grid.height + 14), "white")
    out.paste(grid, (0, 14))
    ImageDraw.Draw(out).text((4, 1), text, fill=(0, 0, 0))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args(argv)
    DOCS.mkdir(exist_ok=True)
    g = load_generator(args.model)
    zoom = max(1, 128 // g.size)  # 64² cells shown at 128², 256² cells as they are
    # samples vs renders
    z = torch.randn(16, g.style_dim, generator=torch.Generator().manual_seed(2024))
    with torch.no_grad():
        samples = to_unit(g(z))
    renders = [synthfaces.render(1_000_100 + i, g.size)[0] for i in range(16)]
    left = labelled(make_grid(renders, cols=4, scale=zoom), "renders (optinv.synthfaces)")
    right = labelled(make_grid(pil_row(samples), cols=4, scale=zoom), f"samples of {g.card.get('name')} (z seed 2024)")
    both = Image.new("RGB", (left.width + right.width + 10, left.height), "white")
    both.paste(left, (0, 0))
    both.paste(right, (left.width + 10, 0))
    both.save(DOCS / "samples_vs_renders.png")

    images = sorted((ROOT / "samples" / "images").glob("*.png"))[:4]
    inv = {}
    for space in ("wplus", "stylemap"):
        opts = jobs.JobOptions(space=space, steps=args.steps, batch=4, progress=False)
        inv[space] = [E.from_latent(r.latent) for r in jobs.invert(images, model=g, device="cpu", options=opts)]
    alphas = (-3.0, -1.5, 0.0, 1.5, 3.0)
    if shipped_directions_path(g).exists():
        names = list(torch.load(shipped_directions_path(g), weights_only=True)["directions"])
        for name in names:
            _, vec = load_direction(name, g)
            rows = []
            for e in inv["stylemap"][:3]:
                rows += pil_row(E.render(g, [E.apply_direction(e, vec, a) for a in alphas]))
            labelled(make_grid(rows, cols=len(alphas), scale=zoom),
                     f"{name}: alpha {', '.join(f'{a:g}' for a in alphas)} (StyleMap inversions)").save(DOCS / f"edit_{name}.png")
    a, b = inv["stylemap"][0], inv["stylemap"][1]
    ts = [i / 6 for i in range(7)]
    labelled(make_grid(pil_row(E.render(g, E.interpolate(a, b, ts))), cols=7, scale=zoom),
             "interpolation between two StyleMap inversions").save(DOCS / "interpolation.png")
    coarse = E.parse_layers(f"0-{max(0, g.n_latent // 3 - 1)}", g.n_latent)
    cells = [Image.new("RGB", (g.size, g.size), "white")] + pil_row(E.render(g, inv["wplus"]))
    for src in inv["wplus"]:
        cells += pil_row(E.render(g, [src]))
        cells += pil_row(E.render(g, [E.mix(dst, src, coarse) for dst in inv["wplus"]]))
    labelled(make_grid(cells, cols=5, scale=zoom),
             f"style mixing: row image's layers {coarse[0]}-{coarse[-1]} into each column image").save(DOCS / "mix.png")
    mask = E.vertical_mask(g.size)
    sm = inv["stylemap"]
    cells = [Image.new("RGB", (g.size, g.size), "white")] + pil_row(E.render(g, sm))
    for row in sm:
        cells += pil_row(E.render(g, [row]))
        cells += pil_row(E.render(g, [E.blend_maps(col, row, mask, feature_sizes=g.layer_sizes()) for col in sm]))
    labelled(make_grid(cells, cols=5, scale=zoom),
             "StyleMap blend: top from the column image, bottom from the row image").save(DOCS / "stylemap_blend.png")
    print(f"wrote pictures to {DOCS}")


if __name__ == "__main__":
    main()
