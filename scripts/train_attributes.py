"""Train the attribute predictor that names discovered paths and judges edits.

Data: renders of training seeds (never the held-out ones) with their labels, plus the model's
own images G(z) labelled by the renderer's labels of the same z (the teacher), so the judge also
knows the generator's look. Writes MODEL.attributes.pt beside the model.

    OMP_NUM_THREADS=1 python scripts/train_attributes.py --renders 6000 --model-images 2000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from optinv.io.checkpoints import load_generator, resolve_model_path
from optinv.edit.discover.attributes import ATTRIBUTES, BINARY, AttributePredictor, attribute_vector, save_predictor
from optinv.world import synthfaces
from optinv.world.teacher import teacher_labels


def render_set(seeds: range, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    ims, ys = [], []
    for s in seeds:
        im, lab = synthfaces.render(s, size=size)
        ims.append(np.asarray(im))
        ys.append(attribute_vector(lab))
    x = torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x, torch.tensor(ys, dtype=torch.float32)


WORK_SIZE = 64  # images are kept at most this large: the predictor reads 32², and 256² sets would fill memory


@torch.no_grad()
def model_set(g, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, g.style_dim, generator=gen)
    side = min(g.size, WORK_SIZE)
    x = torch.cat([F.interpolate(g(z[i:i + 32]).clamp(-1, 1), size=side, mode="area") for i in range(0, n, 32)])
    y = torch.tensor([attribute_vector(lab) for lab in teacher_labels(z)], dtype=torch.float32)
    return x, y


def errors(p: AttributePredictor, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Per attribute: mean absolute error (continuous) or accuracy (binary)."""
    pred = p.predict(x)
    out = {}
    for i, name in enumerate(ATTRIBUTES):
        if name in BINARY:
            out[f"{name}_acc"] = float(((pred[:, i] > 0.5) == (y[:, i] > 0.5)).float().mean())
        else:
            out[f"{name}_mae"] = float((pred[:, i] - y[:, i]).abs().mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="synthfaces64")
    ap.add_argument("--renders", type=int, default=6000)
    ap.add_argument("--model-images", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    g = load_generator(args.model).requires_grad_(False)
    t0 = time.time()
    side = min(g.size, WORK_SIZE)
    xr, yr = render_set(range(0, args.renders), side)
    xg, yg = model_set(g, args.model_images, seed=1)
    x, y = torch.cat([xr, xg]), torch.cat([yr, yg])
    # held out for the record: renders of held-out seeds and G(z) of another z seed
    xv, yv = render_set(range(1_000_000, 1_000_300), side)
    xgv, ygv = model_set(g, 300, seed=2)
    print(f"data {len(x)} in {time.time() - t0:.0f}s", flush=True)
    p = AttributePredictor()
    opt = torch.optim.Adam(p.parameters(), lr=1e-3)
    steps = args.epochs * (len(x) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    step = 0
    for epoch in range(args.epochs):
        p.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x) - 63, 64):
            idx = perm[i:i + 64]
            xb = x[idx]
            if torch.rand(()) < 0.5:  # a little blur: the model's images are softer than renders
                xb = F.avg_pool2d(F.pad(xb, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
            loss = F.binary_cross_entropy_with_logits(p.logits(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}  {time.time() - t0:.0f}s", flush=True)
    card = {"trained_on": f"{args.renders} renders (seeds 0..) + {args.model_images} model images (teacher labels)",
            "held_out_renders": errors(p, xv, yv), "held_out_model_images": errors(p, xgv, ygv),
            "attributes": list(ATTRIBUTES)}
    print(card, flush=True)
    out = args.out or str(resolve_model_path(args.model)).replace(".pt", ".attributes.pt")
    save_predictor(p, out, card)
    print(f"→ {out}")


if __name__ == "__main__":
    main()
