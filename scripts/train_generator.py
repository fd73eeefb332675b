#!/usr/bin/env python
"""Train a small StyleGAN2 for optinv: distil the portrait renderer, and/or train adversarially.

Modes
  distill  regress G(z) onto render(params(z)), params(z) = Φ(pixelnorm(z)[:N_PARAMS]):
           no discriminator, every z is a valid portrait (what PULSE's sphere search needs).
  gan      StyleGAN2 training on a folder of images: non-saturating logistic loss, lazy R1 on
           reals, EMA generator, mixing regularisation, Adam(0, 0.99). ``--init`` fine-tunes a
           distilled checkpoint.

Runs resume exactly from OUT/latest.pt (weights, optimisers, RNG, step): rerun the same command.
``--export FILE`` writes the EMA generator in optinv's format with its model card.

  python scripts/train_generator.py runs/synth64 --mode distill --kimg 200
  python scripts/train_generator.py runs/synth64 --export samples/models/synthfaces64.pt
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from optinv import synthfaces  # noqa: E402
from optinv.checkpoints import load_generator, save_generator  # noqa: E402
from optinv.discriminator import Discriminator  # noqa: E402
from optinv.generator import Generator  # noqa: E402
from optinv.imageio import save_grid, tensor_to_pil  # noqa: E402
from optinv.teacher import render_teacher  # noqa: E402


class TeacherStream(IterableDataset):
    """Batches (z, render) where batch ``s`` depends only on (seed, s): exact resume."""

    def __init__(self, seed: int, start_step: int, batch: int, style_dim: int, size: int):
        self.seed, self.start, self.batch, self.style_dim, self.size = seed, start_step, batch, style_dim, size

    def __iter__(self):
        step = self.start
        while True:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            z = torch.randn(self.batch, self.style_dim, generator=gen)
            yield z, render_teacher(z, self.size)
            step += 1


class FolderStream(IterableDataset):
    """Random batches of real images from a folder (PNG/JPEG), resized to ``size``."""

    def __init__(self, folder: str, seed: int, start_step: int, batch: int, size: int):
        self.files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
        if not self.files:
            raise SystemExit(f"error: no images in {folder}")
        self.seed, self.start, self.batch, self.size = seed, start_step, batch, size

    def _load(self, p: Path) -> np.ndarray:
        im = Image.open(p).convert("RGB")
        if im.size != (self.size, self.size):
            im = im.resize((self.size, self.size), Image.LANCZOS)
        return np.asarray(im)

    def __iter__(self):
        step = self.start
        while True:
            rng = np.random.default_rng(self.seed * 1_000_003 + step)
            idx = rng.integers(0, len(self.files), self.batch)
            arr = np.stack([self._load(self.files[i]) for i in idx]).astype(np.float32) / 127.5 - 1.0
            flip = rng.random(self.batch) < 0.5
            arr[flip] = arr[flip, :, ::-1]
            yield torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
            step += 1


def parse_channels(text: str, size: int) -> dict[int, int]:
    vals = [int(v) for v in text.split(",")]
    res = [2 ** k for k in range(2, int(math.log2(size)) + 1)]
    if len(vals) != len(res):
        raise SystemExit(f"error: --channels needs {len(res)} values (for {res}), got {len(vals)}")
    return dict(zip(res, vals))


def identity_mapping_(g: Generator) -> None:
    """Make the mapping the identity on pixel-normalised z: layers alternate +c·I and −c·I.

    With leaky-ReLU slope 0.2 and gain √2, lrelu(−c·lrelu(c·x)) = −0.4·c²·x for either sign
    of x, so c = √(1/0.4) makes each pair exactly −identity. A random 8-layer mapping
    scrambles z (a linear read-out recovers ~3 % of the renderer's parameters from w, against
    95 % from z), and distillation then collapses to the mean face; starting from the identity
    keeps z readable and lets the mapping learn from there.
    """
    if g.n_mlp % 2:
        raise SystemExit("error: --mapping-init identity needs an even --n-mlp")
    c = math.sqrt(1 / 0.4)
    with torch.no_grad():
        for i, layer in enumerate(list(g.style)[1:]):
            eye = torch.eye(g.style_dim) * (c if i % 2 == 0 else -c)
            layer.weight.copy_(eye / layer.scale)
            layer.bias.zero_()


def ema_update(g_ema: Generator, g: Generator, beta: float) -> None:
    with torch.no_grad():
        for pe, p in zip(g_ema.parameters(), g.parameters()):
            pe.lerp_(p, 1.0 - beta)


def d_r1(d: Discriminator, real: torch.Tensor) -> torch.Tensor:
    real = real.detach().requires_grad_(True)
    out = d(real)
    (grad,) = torch.autograd.grad(out.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def mixed_styles(g: Generator, z: torch.Tensor, prob: float) -> torch.Tensor:
    """W+ from one z, or from two z with a random crossover layer (mixing regularisation)."""
    w = g.mapping(z)
    wplus = w[:, None].expand(-1, g.n_latent, -1)
    if prob > 0 and torch.rand(()) < prob:
        w2 = g.mapping(torch.randn_like(z))
        cut = int(torch.randint(1, g.n_latent, ()))
        wplus = torch.cat([wplus[:, :cut], w2[:, None].expand(-1, g.n_latent - cut, -1)], 1)
    return wplus


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def build_card(args, kimg: float, seconds: float, history: list[str]) -> dict:
    return {
        "name": Path(args.export).stem if args.export else "synthfaces",
        "trained_on": "optinv.synthfaces procedural portraits (renders of params(z), optinv.teacher)",
        "training": {"mode": args.mode, "kimg": round(kimg, 2), "batch": args.batch, "seconds": round(seconds),
                     "seed": args.seed, "lr_mlp": args.lr_mlp, "init": args.init, "commands": history,
                     "hardware": "CPU, 1 torch thread + 1 data worker"},
        "held_out_seeds": "renderer seeds >= 1000000 (samples/images) were never rendered for training",
        "default_recipes": {"invert": "1*L2", "pulse": "100*L2+0.05*GEOCROSS", "paint": "100*L2A+0.05*GEOCROSS"},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="run folder (checkpoints, sample grids, log)")
    ap.add_argument("--mode", choices=["distill", "gan"], default="distill")
    ap.add_argument("--data", help="image folder for --mode gan")
    ap.add_argument("--init", help="start from this run's latest.pt weights (e.g. a distilled run)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--style-dim", type=int, default=256)
    ap.add_argument("--n-mlp", type=int, default=8)
    ap.add_argument("--lr-mlp", type=float, default=0.01, help="mapping lr multiplier (StyleGAN2's 0.01)")
    ap.add_argument("--mapping-init", choices=["identity", "random"], default=None,
                    help="identity (default for distill: z stays readable) or random (StyleGAN2)")
    ap.add_argument("--channels", default="256,256,192,96,48", help="widths for 4,8,…,size")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None, help="Adam lr (default: 0.006 distill, 0.002 gan)")
    ap.add_argument("--kimg", type=float, default=200.0, help="total training images (thousands)")
    ap.add_argument("--ema-kimg", type=float, default=2.0)
    ap.add_argument("--r1", type=float, default=1.0)
    ap.add_argument("--r1-every", type=int, default=16)
    ap.add_argument("--mixing", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=200, help="steps between checkpoints")
    ap.add_argument("--sample-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--workers", type=int, default=1, help="data worker processes")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps in this call (0: no cap)")
    ap.add_argument("--export", help="write the EMA generator in optinv format to this file and exit")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "latest.pt"
    dev = torch.device(args.device)

    channels = parse_channels(args.channels, args.size)
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True) if ckpt_path.exists() else None
    if state is not None:  # the run's own settings win, so a resumed run is the same run
        for k in ("size", "style_dim", "n_mlp", "lr_mlp", "batch", "mode", "seed", "data"):
            setattr(args, k, state["args"][k])
        channels = {int(k): v for k, v in state["channels"].items()}
    if args.lr is None:
        args.lr = 0.006 if args.mode == "distill" else 0.002
    torch.manual_seed(args.seed)
    g = Generator(args.size, args.style_dim, args.n_mlp, channels=channels, lr_mlp=args.lr_mlp).to(dev)
    g_ema = Generator(args.size, args.style_dim, args.n_mlp, channels=channels, lr_mlp=args.lr_mlp).to(dev)
    if (args.mapping_init or ("identity" if args.mode == "distill" else "random")) == "identity":
        identity_mapping_(g)
    g_ema.load_state_dict(g.state_dict())
    g_ema.requires_grad_(False).eval()
    d = Discriminator(args.size, channels).to(dev) if args.mode == "gan" else None
    betas = (0.0, 0.99) if args.mode == "gan" else (0.9, 0.99)
    opt_g = torch.optim.Adam(g.parameters(), lr=args.lr, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=args.lr, betas=betas) if d is not None else None
    step, seconds = 0, 0.0
    history: list[str] = []
    if state is not None:
        history = list(state.get("history") or [f"steps 0-{state['step']}: command not recorded"])
        g.load_state_dict(state["g"])
        g_ema.load_state_dict(state["g_ema"])
        opt_g.load_state_dict(state["opt_g"])
        if d is not None and state.get("d") is not None:
            d.load_state_dict(state["d"])
            opt_d.load_state_dict(state["opt_d"])
        for opt in (opt_g, opt_d):  # --lr on a resumed run takes effect (manual decay)
            for group in (opt.param_groups if opt is not None else []):
                group["lr"] = args.lr
        step, seconds = state["step"], state["seconds"]
        torch.set_rng_state(state["rng"])
        print(f"resumed {ckpt_path} at step {step} ({step * args.batch / 1000:.1f} kimg)")
    elif args.init:  # a run folder, its latest.pt, or an exported model (e.g. the shipped one)
        src = Path(args.init) / "latest.pt" if Path(args.init).is_dir() else Path(args.init)
        init = torch.load(src, map_location="cpu", weights_only=True)
        weights = init["g_ema"] if "g_ema" in init else load_generator(src).state_dict()
        g.load_state_dict(weights)
        g_ema.load_state_dict(weights)
        print(f"initialised from {args.init}")

    if args.export:
        g_ema.w_avg.copy_(g_ema.mean_latent(10000))
        kimg = step * args.batch / 1000
        save_generator(g_ema.cpu(), args.export, card=build_card(args, kimg, seconds, history), half=False)
        print(f"wrote {args.export} ({kimg:.1f} kimg, {seconds / 60:.0f} min of training)")
        return

    total_steps = int(math.ceil(args.kimg * 1000 / args.batch))
    history.append(f"from step {step}: python scripts/train_generator.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    if args.mode == "distill":
        if args.style_dim < synthfaces.N_PARAMS:
            raise SystemExit(f"error: distill needs --style-dim ≥ {synthfaces.N_PARAMS} (the renderer's parameters)")
        stream = TeacherStream(args.seed, step, args.batch, args.style_dim, args.size)
    else:
        if not args.data:
            raise SystemExit("error: --mode gan needs --data FOLDER")
        stream = FolderStream(args.data, args.seed, step, args.batch, args.size)
    # its own generator: DataLoader would otherwise draw a seed from the global RNG and break exact resume
    loader = DataLoader(stream, batch_size=None, num_workers=args.workers, prefetch_factor=4 if args.workers else None,
                        generator=torch.Generator().manual_seed(args.seed))
    sample_z = torch.randn(16, args.style_dim, generator=torch.Generator().manual_seed(1234)).to(dev)
    ema_beta = 0.5 ** (args.batch / max(args.ema_kimg * 1000, 1e-8))
    log = open(out / "log.jsonl", "a")
    stop_at = min(total_steps, step + args.max_steps) if args.max_steps else total_steps
    bar = tqdm(total=total_steps, initial=step, unit="step", desc=args.mode, dynamic_ncols=True)
    t_last = time.time()
    it = iter(loader)
    while step < stop_at:
        batch = next(it)
        if args.mode == "distill":
            z, target = (t.to(dev) for t in batch)
            img = g(z, randomize_noise=True)
            l1 = (img - target).abs().mean()
            l2 = (img - target).pow(2).mean()
            coarse = (F.avg_pool2d(img, 4) - F.avg_pool2d(target, 4)).pow(2).mean()
            loss = l1 + l2 + coarse
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            stats = {"l1": l1.item(), "l2": l2.item()}
        else:
            real = batch.to(dev)
            z = torch.randn(args.batch, args.style_dim, device=dev)
            g.requires_grad_(False)
            d.requires_grad_(True)
            with torch.no_grad():
                fake = g.synthesis(mixed_styles(g, z, args.mixing), randomize_noise=True)
            loss_d = F.softplus(d(fake)).mean() + F.softplus(-d(real)).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            if step % args.r1_every == 0:
                r1 = d_r1(d, real)
                opt_d.zero_grad(set_to_none=True)
                (args.r1 / 2 * r1 * args.r1_every).backward()
                opt_d.step()
            g.requires_grad_(True)
            d.requires_grad_(False)
            fake = g.synthesis(mixed_styles(g, z, args.mixing), randomize_noise=True)
            loss_g = F.softplus(-d(fake)).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            stats = {"d": loss_d.item(), "g": loss_g.item()}
        ema_update(g_ema, g, ema_beta)
        step += 1
        now = time.time()
        seconds += now - t_last
        t_last = now
        bar.update(1)
        bar.set_postfix({k: f"{v:.4f}" for k, v in stats.items()})
        if step % 20 == 0:
            log.write(json.dumps({"step": step, "kimg": step * args.batch / 1000, "seconds": round(seconds, 1), **stats}) + "\n")
            log.flush()
        if step % args.sample_every == 0 or step == stop_at:
            with torch.no_grad():
                grid = g_ema(sample_z)
            save_grid([tensor_to_pil(x) for x in grid], out / f"samples_{step:07d}.png", cols=8, scale=2)
        if step % args.save_every == 0 or step == stop_at:
            atomic_save({"g": g.state_dict(), "g_ema": g_ema.state_dict(),
                         "d": d.state_dict() if d is not None else None,
                         "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict() if opt_d is not None else None,
                         "step": step, "seconds": seconds, "rng": torch.get_rng_state(), "history": history,
                         "args": vars(args), "channels": {str(k): v for k, v in channels.items()}}, ckpt_path)
    bar.close()
    print(f"stopped at step {step}/{total_steps} ({step * args.batch / 1000:.1f} kimg, {seconds / 60:.1f} min)")


if __name__ == "__main__":
    main()
