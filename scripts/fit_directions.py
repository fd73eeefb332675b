#!/usr/bin/env python
"""Fit named edit directions for the embedded model from its own samples and the renderer's labels.

  python scripts/fit_directions.py                       # → samples/models/synthfaces64.directions.pt
  python scripts/fit_directions.py --model M --count 4000

The embedded model was distilled from render(params(z)), so the labels of G(z) are the
renderer's labels of params(z) (optinv.world.teacher): no inversion is needed to get labelled latents.
Binary attributes get a logistic-regression boundary, continuous ones a ridge fit, and
"blonde_minus_black" is the difference of class means (PULSE-RGBA's hair-colour vector).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from optinv.io.checkpoints import SAMPLES_MODELS, load_generator
from optinv.edit.directions import save_directions
from optinv.edit.edits import difference_direction, fit_direction
from optinv.world.teacher import teacher_labels

CONTINUOUS = ("smile", "hair_length", "skin_tone")
BINARY = ("glasses", "bangs", "hair_dyed")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--count", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    g = load_generator(args.model)
    z = torch.randn(args.count, g.style_dim, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        w = torch.cat([g.mapping(c) for c in z.split(1000)])
    labels = teacher_labels(z)
    found = {}
    for name in CONTINUOUS + BINARY:
        y = torch.tensor([float(lb[name]) for lb in labels])
        found[name] = {"vector": fit_direction(w, y), "method": "ridge" if name in CONTINUOUS else "logistic",
                       "label": name, "samples": args.count}
    black = torch.tensor([lb["hair_color"] == "black" for lb in labels])
    blonde = torch.tensor([lb["hair_color"] == "blonde" for lb in labels])
    found["blonde_minus_black"] = {"vector": difference_direction(w[black], w[blonde]), "method": "difference of means",
                                   "label": f"hair_color blonde ({int(blonde.sum())}) − black ({int(black.sum())})",
                                   "samples": int(black.sum() + blonde.sum())}
    out = Path(args.out) if args.out else SAMPLES_MODELS / f"{g.card.get('name', 'model')}.directions.pt"
    save_directions(found, g, out)
    print(f"wrote {len(found)} directions to {out}: {', '.join(found)}")


if __name__ == "__main__":
    main()
