#!/usr/bin/env python
"""Train a small StyleGAN2 for optinv: distil the portrait renderer, and/or train adversarially.

Modes
  distill  regress G(z) onto render(params(z)), params(z) = Φ(pixelnorm(z)[:N_PARAMS]):
           no discriminator, every z is a valid portrait (what PULSE's sphere search needs).
           ``--adv-weight`` adds a non-saturating adversarial term (renders as reals) on top,
           for the last bit of sharpness that regression alone averages away.
  gan      StyleGAN2 training on a folder of images: non-saturating logistic loss, lazy R1 on
           reals, EMA generator, mixing regularisation, Adam(0, 0.99). ``--init`` fine-tunes a
           distilled checkpoint.

What makes distillation fast on a CPU (measured on 2 cores, 64², docs/BENCHMARKS.md "world"):
  - bf16 autocast (``--amp``): 1.75× the images per second of fp32 on an AVX512-BF16 CPU;
  - ``--style-init relevant``: the renderer reads only the first N_PARAMS of z's 256
    dimensions, so the style affines start blind to the rest; otherwise every layer is
    modulated by 217 dimensions of noise that training must first learn to ignore
    (+1.4 dB teacher PSNR after 8 kimg from scratch);
  - ``--loss pyramid``: L1 on every level of a Laplacian pyramid plus L2, so edges (eyes,
    glasses, hair lines) weigh as much as the colour of the background.

Runs resume exactly from OUT/latest.pt (weights, optimisers, RNG, step): rerun the same command.
``--minutes`` bounds one call by wall time (a lent GPU, a CPU between other jobs).
``--export FILE [--half]`` writes the EMA generator in optinv's format with its model card.

  python scripts/train_generator.py runs/synth64 --mode distill --kimg 600 --threads 1
  python scripts/train_generator.py runs/synth64 --export samples/models/synthfaces64.pt --half
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset
from tqdm import tqdm

from losses import pixel
from optinv.world import synthfaces
from optinv.io.checkpoints import load_generator, save_generator
from optinv.world.discriminator import Discriminator
from optinv.world.grow import grow_generator
from optinv.io.fileio import atomic_torch_save
from optinv.engine.generator import Generator, ModulatedConv2d
from optinv.io.image_files import save_grid, to_pil
from optinv.io.ranges import to_unit
from optinv.world.teacher import render_teacher

RESUMED_ARGS = ("size", "style_dim", "n_mlp", "lr_mlp", "batch", "mode", "seed", "data", "loss", "style_init",
                "init_record", "train_from", "edge_weight", "grown_from", "encoders")


def worker_steps(start: int):
    """The steps this data worker makes: worker k of n takes start+k, start+k+n, …

    DataLoader collects from its workers in turn, so the batches arrive in step order whatever
    the number of workers (exact resume), and no two workers render the same batch.
    """
    info = torch.utils.data.get_worker_info()
    k, n = (info.id, info.num_workers) if info is not None else (0, 1)
    step = start + k
    while True:
        yield step
        step += n


class TeacherStream(IterableDataset):
    """Batches (z, render) where batch ``s`` depends only on (seed, s): exact resume."""

    def __init__(self, seed: int, start_step: int, batch: int, style_dim: int, size: int):
        self.seed, self.start, self.batch, self.style_dim, self.size = seed, start_step, batch, style_dim, size

    def __iter__(self):
        for step in worker_steps(self.start):
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            z = torch.randn(self.batch, self.style_dim, generator=gen)
            yield z, render_teacher(z, self.size)


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
        for step in worker_steps(self.start):
            rng = np.random.default_rng(self.seed * 1_000_003 + step)
            idx = rng.integers(0, len(self.files), self.batch)
            arr = np.stack([self._load(self.files[i]) for i in idx]).astype(np.float32) / 127.5 - 1.0
            flip = rng.random(self.batch) < 0.5
            arr[flip] = arr[flip, :, ::-1]
            yield torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------- initialisation


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


def relevant_styles_(g: Generator, n_relevant: int) -> None:
    """Start every style affine blind to w's dimensions ≥ ``n_relevant``.

    With the identity mapping, w's first N_PARAMS dimensions are the renderer's parameters and
    the rest are noise; random affines would modulate every layer by that noise. Zeroed, those
    weights still train (their gradient is not zero), they just start from "ignore".
    """
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, ModulatedConv2d):
                m.modulation.weight[:, n_relevant:] = 0


def freeze_below_(g: Generator, resolution: int) -> None:
    """Only the synthesis blocks at ``resolution``² and above stay trainable.

    A grown model whose lower blocks are already sharp at their own size (the 64² core) needs its
    top blocks taught to draw edges; freezing the rest keeps what it knows and skips their backward.
    """
    if resolution not in {2 ** k for k in range(3, int(math.log2(g.size)) + 1)}:
        raise SystemExit(f"error: --train-from must be one of the model's block sizes 8…{g.size}")
    g.requires_grad_(False)
    for i, to_rgb in enumerate(g.to_rgbs):
        if 8 * 2 ** i >= resolution:
            to_rgb.requires_grad_(True)
            g.convs[2 * i].requires_grad_(True)
            g.convs[2 * i + 1].requires_grad_(True)


# ---------------------------------------------------------------- losses


def laplacian_pyramid_l1(img: torch.Tensor, target: torch.Tensor, levels: int | None = None) -> torch.Tensor:
    """Mean L1 over the levels of a Laplacian pyramid (each level counts the same).

    Levels default to log2(side) − 2 (4 at 64², 6 at 256²): the coarsest level is 8×8 at any
    size, so a grown model weighs the face's layout as much as the 64² model did.
    """
    import kornia

    levels = levels or max(1, int(math.log2(img.shape[-1])) - 2)
    a = kornia.geometry.transform.build_laplacian_pyramid(img, levels)
    b = kornia.geometry.transform.build_laplacian_pyramid(target, levels)
    return sum((x - y).abs().mean() for x, y in zip(a, b)) / levels


def distill_loss(img: torch.Tensor, target: torch.Tensor, kind: str, edge_weight: float = 0.0
                 ) -> tuple[torch.Tensor, dict]:
    l2 = (img - target).pow(2).mean()
    if kind == "pyramid":
        lap = laplacian_pyramid_l1(img, target)
        loss, stats = lap + l2, {"lap": lap.item(), "l2": l2.item()}
        if edge_weight:
            edges = pixel.edge_match(img, target).mean()
            loss, stats["edges"] = loss + edge_weight * edges, edges.item()
        return loss, stats
    l1 = (img - target).abs().mean()
    coarse = (F.avg_pool2d(img, 4) - F.avg_pool2d(target, 4)).pow(2).mean()
    return l1 + l2 + coarse, {"l1": l1.item(), "l2": l2.item()}


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


def ema_update(g_ema: Generator, g: Generator, beta: float) -> None:
    with torch.no_grad():
        for pe, p in zip(g_ema.parameters(), g.parameters()):
            pe.lerp_(p, 1.0 - beta)


# ---------------------------------------------------------------- the run


@dataclass
class Run:
    """Everything one training call holds; ``state()`` is what latest.pt keeps."""

    args: argparse.Namespace
    channels: dict[int, int]
    g: Generator
    g_ema: Generator
    d: Discriminator | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    step: int = 0
    seconds: float = 0.0
    history: list[str] | None = None

    def state(self) -> dict:
        return {"g": self.g.state_dict(), "g_ema": self.g_ema.state_dict(),
                "d": self.d.state_dict() if self.d is not None else None,
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
                "step": self.step, "seconds": self.seconds, "rng": torch.get_rng_state(), "history": self.history,
                "args": vars(self.args), "channels": {str(k): v for k, v in self.channels.items()}}


def amp_dtype(choice: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the hardware computes it natively (CUDA, AVX512/AMX CPUs); fp32 elsewhere."""
    if choice == "off":
        return None
    if choice == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    capability = torch.backends.cpu.get_cpu_capability() if device.type == "cpu" else ""
    return torch.bfloat16 if capability in ("AVX512", "AMX") else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="run folder (checkpoints, sample grids, log)")
    ap.add_argument("--mode", choices=["distill", "gan"], default="distill")
    ap.add_argument("--data", help="image folder for --mode gan")
    ap.add_argument("--init", help="start from a run folder, its latest.pt, or an exported model")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--style-dim", type=int, default=256)
    ap.add_argument("--n-mlp", type=int, default=8)
    ap.add_argument("--lr-mlp", type=float, default=0.01, help="mapping lr multiplier (StyleGAN2's 0.01)")
    ap.add_argument("--mapping-init", choices=["identity", "random"], default=None,
                    help="identity (default for distill: z stays readable) or random (StyleGAN2)")
    ap.add_argument("--style-init", choices=["relevant", "random"], default=None,
                    help="relevant (default for distill): style affines start blind to z's non-renderer dimensions")
    ap.add_argument("--loss", choices=["pyramid", "l1l2"], default="pyramid",
                    help="distill loss: Laplacian-pyramid L1 + L2, or L1 + L2 + 4×-pooled L2")
    ap.add_argument("--adv-weight", type=float, default=0.0,
                    help="distill: add this weight × the non-saturating GAN loss (renders as reals)")
    ap.add_argument("--edge-weight", type=float, default=0.0,
                    help="distill: weight of the local edge-energy match (crisp edges without pixel-exact placement)")
    ap.add_argument("--train-from", type=int, default=0,
                    help="train only the blocks at this resolution and above (e.g. 128: sharpen a grown model's new layers)")
    ap.add_argument("--channels", default="256,256,192,96,48", help="widths for 4,8,…,size")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None, help="Adam lr (default: 0.006 distill, 0.002 gan)")
    ap.add_argument("--kimg", type=float, default=200.0, help="total training images (thousands)")
    ap.add_argument("--ema-kimg", type=float, default=2.0)
    ap.add_argument("--r1", type=float, default=1.0)
    ap.add_argument("--r1-every", type=int, default=16)
    ap.add_argument("--mixing", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--amp", choices=["auto", "bf16", "off"], default="auto",
                    help="bf16 autocast (auto: where the hardware has native bf16)")
    ap.add_argument("--save-every", type=int, default=200, help="steps between checkpoints")
    ap.add_argument("--sample-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--workers", type=int, default=1, help="data worker processes")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps in this call (0: no cap)")
    ap.add_argument("--minutes", type=float, default=0.0, help="stop after this much wall time in this call (0: no cap)")
    ap.add_argument("--export", help="write the EMA generator in optinv format to this file and exit")
    ap.add_argument("--half", action="store_true", help="with --export: store weights as float16 (half the size)")
    ap.set_defaults(init_record=None, grown_from=None, encoders=None)  # from the --init model: its training record and parent, kept across resumes
    return ap.parse_args(argv)


def build(args: argparse.Namespace, dev: torch.device) -> Run:
    """Models and optimisers, restored from OUT/latest.pt (the run's own settings win) or --init."""
    ckpt = Path(args.out) / "latest.pt"
    channels = parse_channels(args.channels, args.size)
    state = torch.load(ckpt, map_location="cpu", weights_only=True) if ckpt.exists() else None
    if state is not None:  # a resumed run is the same run
        for k in RESUMED_ARGS:
            setattr(args, k, state["args"].get(k, getattr(args, k)))
        channels = {int(k): v for k, v in state["channels"].items()}
    if args.lr is None:
        args.lr = 0.006 if args.mode == "distill" else 0.002
    torch.manual_seed(args.seed)
    make = lambda: Generator(args.size, args.style_dim, args.n_mlp, channels=channels, lr_mlp=args.lr_mlp).to(dev)  # noqa: E731
    g, g_ema = make(), make()
    distill = args.mode == "distill"
    if (args.mapping_init or ("identity" if distill else "random")) == "identity":
        identity_mapping_(g)
    if args.style_init is None:
        args.style_init = "relevant" if distill and not args.init else "random"
    if args.style_init == "relevant":
        relevant_styles_(g, synthfaces.N_PARAMS)
    g_ema.load_state_dict(g.state_dict())
    g_ema.requires_grad_(False).eval()
    d = Discriminator(args.size, channels).to(dev) if (not distill or args.adv_weight > 0) else None
    betas = (0.0, 0.99) if not distill else (0.9, 0.99)
    if args.train_from:
        freeze_below_(g, args.train_from)
    opt_g = torch.optim.Adam([p for p in g.parameters() if p.requires_grad], lr=args.lr, betas=betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=args.lr if not distill else 0.002, betas=(0.0, 0.99)) if d else None
    run = Run(args, channels, g, g_ema, d, opt_g, opt_d, history=[])
    if state is not None:
        restore(run, state)
        print(f"resumed {ckpt} at step {run.step} ({run.step * args.batch / 1000:.1f} kimg)")
    elif args.init:
        src = Path(args.init) / "latest.pt" if Path(args.init).is_dir() else Path(args.init)
        init = torch.load(src, map_location="cpu", weights_only=True)
        if "g_ema" in init:
            weights = init["g_ema"]
        else:  # an exported model: its training record continues in this run's card
            source = load_generator(src)
            # a grown model serves its parent's encoders and says so (optinv.engine.warmstart)
            args.grown_from = source.card.get("grown_from") or (
                source.card.get("name") if source.size < args.size else None)
            args.encoders = source.card.get("encoders") if args.grown_from else None  # the parent's, still valid
            if source.size < args.size:  # progressive growing: new blocks start as the upsampled image
                print(f"growing {source.size}² → {args.size}² (new toRGB at zero: starts as the upsampled image)")
                source = grow_generator(source.float(), args.size, channels, synthfaces.N_PARAMS)
            weights = source.state_dict()
            args.init_record = source.card.get("training")
        weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
        g.load_state_dict(weights)
        if args.style_init == "relevant":  # asked for explicitly: prune a trained model's noise inputs too
            relevant_styles_(g, synthfaces.N_PARAMS)
        g_ema.load_state_dict(g.state_dict())
        print(f"initialised from {args.init}")
    return run


def restore(run: Run, state: dict) -> None:
    run.history = list(state.get("history") or [f"steps 0-{state['step']}: command not recorded"])
    run.g.load_state_dict(state["g"])
    run.g_ema.load_state_dict(state["g_ema"])
    run.opt_g.load_state_dict(state["opt_g"])
    if run.d is not None and state.get("d") is not None:
        run.d.load_state_dict(state["d"])
        run.opt_d.load_state_dict(state["opt_d"])
    for group in run.opt_g.param_groups:  # --lr on a resumed run takes effect (manual decay)
        group["lr"] = run.args.lr
    if run.opt_d is not None and run.args.mode == "gan":
        for group in run.opt_d.param_groups:
            group["lr"] = run.args.lr
    run.step, run.seconds = state["step"], state["seconds"]
    torch.set_rng_state(state["rng"])


def build_card(args, kimg: float, seconds: float, history: list[str], device: str) -> dict:
    before = getattr(args, "init_record", None) or {}
    if before:  # continued from an exported model: count its images, time and commands too
        kimg += float(before.get("kimg", 0))
        seconds += float(before.get("seconds", 0))
        history = [*before.get("commands", []), "then, continued from that model:", *history]
    return {
        "name": Path(args.export).stem if args.export else "synthfaces",
        "trained_on": "optinv.synthfaces procedural portraits (renders of params(z), optinv.world.teacher)",
        "training": {"mode": args.mode, "kimg": round(kimg, 2), "batch": args.batch, "seconds": round(seconds),
                     "hours": round(seconds / 3600, 2), "seed": args.seed, "lr_mlp": args.lr_mlp,
                     "loss": args.loss, "style_init": args.style_init, "adv_weight": args.adv_weight,
                     "edge_weight": args.edge_weight, "train_from": args.train_from, "init": args.init, "commands": history, "device": device},
        **({"grown_from": args.grown_from} if getattr(args, "grown_from", None) else {}),
        **({"encoders": args.encoders} if getattr(args, "encoders", None) else {}),
        "held_out_seeds": "renderer seeds >= 1000000 (samples/images) and torch seeds >= 1e9 were never "
                          "rendered for training",
        "default_recipes": {"invert": "1*L2", "pulse": "100*L2+0.05*GEOCROSS", "paint": "100*L2A+0.05*GEOCROSS"},
    }


def export(run: Run, path: str, half: bool) -> None:
    args, g_ema = run.args, run.g_ema
    if args.init and not args.init_record and Path(args.init).is_file():  # a run started before records were kept
        args.init_record = load_generator(args.init).card.get("training")
    g_ema.w_avg.copy_(g_ema.mean_latent(10000))
    kimg = run.step * args.batch / 1000
    heads = [h.split(":", 1)[0] for h in run.history or [] if h.startswith("from step")]
    device = ", ".join(sorted({head.split(" on ", 1)[1] for head in heads if " on " in head})) or "CPU"
    save_generator(g_ema.cpu(), path, card=build_card(args, kimg, run.seconds, run.history or [], device), half=half)
    print(f"wrote {path} ({kimg:.1f} kimg, {run.seconds / 60:.0f} min of training)")


def distill_step(run: Run, batch, dev: torch.device, amp) -> dict:
    g, args = run.g, run.args
    z, target = (t.to(dev) for t in batch)
    with amp:
        img = g(z, randomize_noise=True)
    img = img.float()
    loss, stats = distill_loss(img, target, args.loss, args.edge_weight)
    if run.d is not None:  # renders are the reals: the adversary only has to tell blur from edges
        loss_d = discriminator_step(run, target, img.detach(), amp)
        with amp:
            adv = F.softplus(-run.d(img)).float().mean()
        loss = loss + args.adv_weight * adv
        stats.update({"adv": adv.item(), "d": loss_d})
    run.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    run.opt_g.step()
    return stats


def discriminator_step(run: Run, real: torch.Tensor, fake: torch.Tensor, amp) -> float:
    d, args = run.d, run.args
    d.requires_grad_(True)
    with amp:
        loss_d = (F.softplus(d(fake)) + F.softplus(-d(real))).float().mean()
    run.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    run.opt_d.step()
    if run.step % args.r1_every == 0:
        r1 = d_r1(d, real)
        run.opt_d.zero_grad(set_to_none=True)
        (args.r1 / 2 * r1 * args.r1_every).backward()
        run.opt_d.step()
    d.requires_grad_(False)
    return loss_d.item()


def gan_step(run: Run, batch, dev: torch.device, amp) -> dict:
    g, args = run.g, run.args
    real = batch.to(dev)
    z = torch.randn(args.batch, args.style_dim, device=dev)
    g.requires_grad_(False)
    with torch.no_grad(), amp:
        fake = g.synthesis(mixed_styles(g, z, args.mixing), randomize_noise=True).float()
    loss_d = discriminator_step(run, real, fake, amp)
    g.requires_grad_(True)
    with amp:
        fake = g.synthesis(mixed_styles(g, z, args.mixing), randomize_noise=True)
        loss_g = F.softplus(-run.d(fake)).float().mean()
    run.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    run.opt_g.step()
    return {"d": loss_d, "g": loss_g.item()}


def data_loader(run: Run) -> DataLoader:
    args = run.args
    if args.mode == "distill":
        if args.style_dim < synthfaces.N_PARAMS:
            raise SystemExit(f"error: distill needs --style-dim ≥ {synthfaces.N_PARAMS} (the renderer's parameters)")
        stream = TeacherStream(args.seed, run.step, args.batch, args.style_dim, args.size)
    else:
        if not args.data:
            raise SystemExit("error: --mode gan needs --data FOLDER")
        stream = FolderStream(args.data, args.seed, run.step, args.batch, args.size)
    # its own generator: DataLoader would otherwise draw a seed from the global RNG and break exact resume
    return DataLoader(stream, batch_size=None, num_workers=args.workers, prefetch_factor=4 if args.workers else None,
                      generator=torch.Generator().manual_seed(args.seed))


def train(run: Run, dev: torch.device) -> None:
    args, out = run.args, Path(run.args.out)
    total_steps = int(math.ceil(args.kimg * 1000 / args.batch))
    dtype = amp_dtype(args.amp, dev)
    amp = (lambda: torch.autocast(dev.type, dtype=dtype)) if dtype is not None else nullcontext
    step_fn = distill_step if args.mode == "distill" else gan_step
    sample_z = torch.randn(16, args.style_dim, generator=torch.Generator().manual_seed(1234)).to(dev)
    ema_beta = 0.5 ** (args.batch / max(args.ema_kimg * 1000, 1e-8))
    stop_at = min(total_steps, run.step + args.max_steps) if args.max_steps else total_steps
    deadline = time.time() + args.minutes * 60 if args.minutes else math.inf
    bar = tqdm(total=total_steps, initial=run.step, unit="step", desc=args.mode, dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 30.0)
    it = iter(data_loader(run))
    t_last = time.time()
    with open(out / "log.jsonl", "a") as log:
        while run.step < stop_at:
            stats = step_fn(run, next(it), dev, amp())
            ema_update(run.g_ema, run.g, ema_beta)
            run.step += 1
            now = time.time()
            run.seconds += now - t_last
            t_last = now
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in stats.items()}, refresh=False)
            last = run.step == stop_at or now >= deadline
            if run.step % 20 == 0:
                log.write(json.dumps({"step": run.step, "kimg": run.step * args.batch / 1000,
                                      "seconds": round(run.seconds, 1), **stats}) + "\n")
                log.flush()
            if run.step % args.sample_every == 0 or last:
                with torch.no_grad():
                    grid = run.g_ema(sample_z, randomize_noise=False)
                save_grid([to_pil(to_unit(x)) for x in grid], out / f"samples_{run.step:07d}.png", cols=8,
                          scale=2 if args.size <= 64 else 1)
            if run.step % args.save_every == 0 or last:
                atomic_torch_save(run.state(), out / "latest.pt")
            if last:
                break
    bar.close()
    print(f"stopped at step {run.step}/{total_steps} ({run.step * args.batch / 1000:.1f} kimg, "
          f"{run.seconds / 60:.1f} min)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes every step: let cuDNN pick its fastest kernels
    run = build(args, dev)
    if args.export:
        export(run, args.export, args.half)
        return
    run.history.append(f"from step {run.step} on {dev.type}: python scripts/train_generator.py "
                       + " ".join(argv if argv is not None else sys.argv[1:]))
    train(run, dev)


if __name__ == "__main__":
    main()
