#!/usr/bin/env python
"""Write samples/: held-out renders, their low-res versions and RGBA paint references.

  python scripts/make_samples.py            # (re)writes samples/images, samples/lowres, samples/paint

Everything is made at the embedded default's 256²: ×8, ×16, ×32 and ×64 files (32², 16², 8², 4²)
are bicubic downscales of the 256² renders; paint references are 64². For the 64² model
(``--model synthfaces64``) the ×32 files are its ×8 and the ×64 files its ×16.

Seeds start at 1,000,000: the generator was trained on renders of params(z) for Gaussian z,
never on these renderer seeds. Low-res files use the same bicubic operator as `optinv pulse`.
Paint references keep skin and background at their rendered colour (alpha 1), repaint the hair
(alpha 1) and leave everything else free (alpha 0), as in PULSE's RGBA experiment.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from optinv.engine.operators import BicubicDownscale
from optinv.world import synthfaces

ROOT = Path(__file__).resolve().parents[1]

FIRST_SEED = 1_000_000
HAIR_PAINTS = {"blue": (40, 80, 230), "pink": (240, 90, 170), "blonde": (230, 200, 120), "green": (50, 190, 90)}


def downscale_u8(arr: np.ndarray, factor: int) -> np.ndarray:
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255.0
    y = BicubicDownscale(factor)(x)[0].clamp(0, 1)
    return (y.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def paint_reference(seed: int, size: int, ref_size: int, colour: tuple[int, int, int]) -> Image.Image:
    params = synthfaces.params_from_seed(seed)
    rgb, masks = synthfaces.render_params(params, size=ref_size, return_masks=True)
    hair, keep = masks["hair"], masks["skin"] + masks["background"]
    out = rgb.astype(np.float32)
    out = out * (1 - hair[..., None]) + np.array(colour, np.float32) * hair[..., None]
    alpha = np.where(hair > 0.5, 1.0, np.where(keep > 0.9, 1.0, 0.0))
    rgba = np.concatenate([out, alpha[..., None] * 255.0], axis=2)
    return Image.fromarray(np.clip(rgba + 0.5, 0, 255).astype(np.uint8), "RGBA")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "samples"))
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--paint-size", type=int, default=64)
    ap.add_argument("--factors", default="8,16,32,64", help="low-res factors (each must divide --size)")
    args = ap.parse_args(argv)
    factors = [int(f) for f in args.factors.split(",")]
    if any(args.size % f for f in factors):
        raise SystemExit(f"error: every factor must divide --size {args.size}")
    out = Path(args.out)
    for sub in ("images", "lowres", "paint"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        seed = FIRST_SEED + i
        img, _labels = synthfaces.render(seed, args.size)
        img.save(out / "images" / f"{seed}.png")
        arr = np.asarray(img)
        for factor in factors:
            Image.fromarray(downscale_u8(arr, factor)).save(out / "lowres" / f"{seed}_x{factor}.png")
    names = list(HAIR_PAINTS)
    for i in range(6):
        seed = FIRST_SEED + i
        colour = names[i % len(names)]
        paint_reference(seed, args.size, args.paint_size, HAIR_PAINTS[colour]).save(out / "paint" / f"{seed}_{colour}_hair.png")
    print(f"wrote {args.count} images, {len(factors) * args.count} low-res files and "
          f"6 paint references under {out}")


if __name__ == "__main__":
    main()
