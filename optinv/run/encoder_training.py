"""Train a W+ or StyleMap encoder for any generator (warm starts and the DOMAIN regularizer).

Synthetic pairs: w+ (mixing two w's half of the time) → x = G(w+); loss = latent MSE
‖E(x) − w+‖² + ``--image-weight``·image MSE ‖G(E(x)) − x‖² every ``--image-every`` steps.
Optionally real images from ``--data`` (a ``--real-fraction`` of each batch) get the image loss
only (the domain-guided encoder idea). Resumes exactly from OUT/latest.pt.

``--passes P`` (> 1, W+ only) trains the refiner of an iterative encoder (ReStyle-style) on top
of a one-pass ``--init`` encoder, which stays frozen as the first pass: the refiner sees target
and reconstruction side by side and predicts a correction. Each step draws how many refinement
passes precede the trained one (0 … P−2, run without gradients), so every pass learns from the
states the earlier ones leave. The refiner starts as a zero correction.

Why the image term is weighted 100: the latent MSE cannot go below the variance of the latent
dimensions the generator ignores (≈0.7 on the embedded model), while image MSE is ~0.01; at
weight 1 the image term is drowned out and the encoder learns to be right in latent space and
wrong on screen. Changing a loss weight on resume restarts Adam (its second moments are scaled
to the old losses; keeping them makes the first steps ~100× too large and wrecks the encoder).

  optinv train-encoder runs/enc_wplus --kind wplus --kimg 60
  optinv train-encoder runs/restyle --init samples/models/synthfaces64.enc_wplus.pt --passes 3
  optinv train-encoder runs/enc_wplus --export samples/models/synthfaces64.enc_wplus.pt --attach --half

(``python scripts/train_encoder.py`` takes the same arguments.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from losses.perceptual import LPIPSLoss, make_lpips
from optinv.io.checkpoints import load_generator
from optinv.engine.encoder import (Encoder, build_for, grow_encoder, iterate, load_encoder, save_encoder,
                                   widen_to_iterative)
from optinv.errors import OptinvError
from optinv.engine.progress import progress
from optinv.io.fileio import atomic_torch_save, first_line
from optinv.io.image_files import load_image, save_grid
from optinv.io.image_files import to_pil
from optinv.io.ranges import to_unit


def synthetic_batch(g, batch: int, gen: torch.Generator, mixing: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """(x in [0, 1], w+) from random z; half the batch mixes two w's at a random layer."""
    dev = g.w_avg.device
    z = torch.randn(batch, 2, g.style_dim, generator=gen).to(dev)
    with torch.no_grad():
        w = g.mapping(z)
        wplus = w[:, :1].expand(-1, g.n_latent, -1).clone()
        cut = torch.randint(1, g.n_latent, (batch,), generator=gen)
        mix = torch.rand(batch, generator=gen) < mixing
        for i in torch.nonzero(mix).flatten().tolist():
            wplus[i, cut[i]:] = w[i, 1]
        x = to_unit(g.synthesis(wplus)).clamp(0, 1)
    return x, wplus


def predict(g, enc, x: torch.Tensor, prior_passes: int = 0):
    """The encoder's codes for x. An iterative encoder runs its first pass and ``prior_passes``
    refinement rounds without gradients, then the refinement pass being trained. A grown encoder
    (``trains_first_pass``) keeps the first pass's gradient when no round comes between: its new
    detail branch and heads learn to give the refiner a better start."""
    if not enc.iterative:
        return enc(x)
    if trains_first_pass(enc) and prior_passes == 0:
        codes = enc(x)
        with torch.no_grad():
            previous = render(g, codes).clamp(0, 1)
        return enc(x, previous, codes)
    with torch.no_grad():
        codes = iterate(enc, lambda c: render(g, c).clamp(0, 1), x, prior_passes + 1)
        previous = render(g, codes).clamp(0, 1)
    return enc(x, previous, codes)


def trains_first_pass(enc) -> bool:
    """An iterative encoder grown to a larger input trains whole; otherwise its first pass is frozen."""
    return enc.input_size != enc.size


def latent_loss(pred, wplus: torch.Tensor) -> torch.Tensor:
    if isinstance(pred, torch.Tensor):
        return (pred - wplus).pow(2).mean()
    return sum((m - wplus[:, i, :, None, None]).pow(2).mean() for i, m in enumerate(pred)) / len(pred)


def render(g, pred) -> torch.Tensor:
    styles = pred if isinstance(pred, torch.Tensor) else [m[:, :, 0, 0] if m.shape[-1] == 1 else m for m in pred]
    return to_unit(g.synthesis(styles))


RECIPE_DEFAULTS = {"lr": 1e-3, "latent_weight": 1.0, "image_weight": 100.0, "lpips_weight": 0.0, "image_every": 1,
                   "data": None, "real_fraction": 0.25, "model": None}
RECIPE_KEYS = tuple(RECIPE_DEFAULTS)
LOSS_KEYS = ("latent_weight", "image_weight", "lpips_weight", "image_every")  # a change rescales the gradients


def recipe_of(args: argparse.Namespace) -> dict:
    """The settings that define the loss and its step size (one history segment each)."""
    return {k: getattr(args, k) for k in RECIPE_KEYS}


def last_recipe(history: list[dict]) -> dict:
    """The recipe of the newest history segment (empty before the first)."""
    return {k: history[-1].get(k) for k in RECIPE_KEYS} if history else {}


def describe_recipe(seg: dict) -> str:
    data = f" + real images ({seg['data']}, {seg['real_fraction']:.0%} of a batch)" if seg.get("data") else ""
    lp = f" + {seg['lpips_weight']}·LPIPS" if seg.get("lpips_weight") else ""
    return (f"steps {seg['from']}–{seg['to']}: {seg.get('latent_weight', 1)}·latent MSE + {seg['image_weight']}·image MSE"
            f"{lp} every {seg['image_every']} steps{data}, lr {seg['lr']}"
            + (f", generator {Path(seg['model']).name}" if seg.get("model") else ""))


def attach_to_card(model: str | None, kind: str, encoder_file: Path) -> None:
    """Name the encoder in the generator's card (relative path), so invert/encode find it."""
    from optinv.io.checkpoints import resolve_model_path, save_generator

    path = resolve_model_path(model)
    g = load_generator(path)
    rel = os.path.relpath(encoder_file.resolve(), path.resolve().parent)
    g.card.setdefault("encoders", {})[kind] = rel
    stored = torch.load(path, map_location="cpu", weights_only=True).get("state_dict", {})
    half = any(v.dtype == torch.float16 for v in stored.values() if isinstance(v, torch.Tensor))
    save_generator(g, path, half=half)  # keep a float16 model float16
    print(f"{path}: card now lists the {kind} encoder {rel}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="optinv train-encoder", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--model", default=None, help="generator (default: the embedded model)")
    ap.add_argument("--kind", choices=["wplus", "stylemap"], default="wplus")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--passes", type=int, default=1, help="> 1: an iterative W+ encoder (ReStyle) with this many passes")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=None, help=f"default {RECIPE_DEFAULTS['lr']}")
    ap.add_argument("--kimg", type=float, default=60.0)
    ap.add_argument("--image-every", type=int, default=None, help="image loss through G every k steps (0: never; default 1)")
    ap.add_argument("--image-weight", type=float, default=None, help="default 100")
    ap.add_argument("--latent-weight", type=float, default=None, help="default 1")
    ap.add_argument("--lpips-weight", type=float, default=None,
                    help="LPIPS through G on the image steps (default 0; pSp uses 0.8 next to L2 weight 1)")
    ap.add_argument("--lpips-net", default="vgg", choices=["vgg", "alex", "squeeze"])
    ap.add_argument("--lpips-backbone", default=None, help="ImageNet backbone weights for LPIPS (never downloaded)")
    ap.add_argument("--data", default=None, help="optional folder of real images (image loss only; 'none' drops it on resume)")
    ap.add_argument("--real-fraction", type=float, default=None, help="with --data: share of each batch (default 0.25)")
    ap.add_argument("--init", default=None,
                    help="a new run starts from this exported encoder (fine-tuning it for a retrained generator)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--reset-optimizer", action="store_true",
                    help="on resume, start Adam afresh (needed after changing loss weights: its moments are scaled to the old losses)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--export", default=None, help="write the trained encoder to this file and exit")
    ap.add_argument("--attach", action="store_true",
                    help="with --export: record the encoder in the generator's model card (optinv format only)")
    ap.add_argument("--half", action="store_true", help="with --export: store float16 weights (half the size; "
                    "loaded back as float32)")
    return ap.parse_args(argv)


@dataclass
class Run:
    """One training run: the networks, the optimiser, the data RNG and the recipe history."""

    args: argparse.Namespace
    g: Any
    enc: Any
    opt: torch.optim.Optimizer
    gen: torch.Generator
    history: list[dict]
    step: int = 0
    seconds: float = 0.0


def start(args: argparse.Namespace, ckpt: Path) -> Run:
    """A new run, or the one in ``ckpt`` resumed (unset flags continue its last recipe)."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True) if ckpt.exists() else None
    if state is not None:
        for k in ("kind", "width", "batch", "seed"):
            setattr(args, k, state["args"][k])
        args.passes = state["args"].get("passes", 1)
        if args.model is None:  # an explicit --model continues the run on that generator (a retrained one)
            args.model = state["args"]["model"]
        elif args.model != state["args"]["model"]:
            print(f"continuing on {args.model} (the run so far trained on {state['args']['model']})")
    history = list(state.get("history", [])) if state is not None else []
    for k, default in RECIPE_DEFAULTS.items():
        if getattr(args, k) is None:
            setattr(args, k, history[-1].get(k, default) if history else default)
    if args.data in ("", "none"):
        args.data = None
    dev = torch.device(args.device)
    g = load_generator(args.model, device=dev)
    torch.manual_seed(args.seed)
    if args.passes > 1 and args.kind != "wplus":
        raise SystemExit("error: --passes > 1 trains an iterative W+ encoder (use --kind wplus)")
    init = None
    if state is not None and "config" in state:  # a grown encoder's shape is not build_for's
        enc = Encoder(**state["config"])
        enc.w_avg.copy_(g.w_avg.detach().cpu())
    elif state is None and args.init:
        init = initial_encoder(args, g, dev)
        enc = Encoder(**init.config)
    else:
        enc = build_for(g, args.kind, args.width, args.passes)
    enc = enc.to(dev)
    if enc.iterative:
        if state is None and not args.init:
            raise SystemExit("error: --passes > 1 refines a trained one-pass encoder: give it as --init")
        if not trains_first_pass(enc):
            enc.backbone.requires_grad_(False)  # the first pass stays as trained; only the refiner learns
            enc.heads.requires_grad_(False)
    run = Run(args, g, enc, torch.optim.Adam(enc.parameters(), lr=args.lr, betas=(0.9, 0.999)),
              torch.Generator().manual_seed(args.seed), history)
    if state is not None:
        resume(run, state)
        print(f"resumed {ckpt} at step {run.step}")
    elif init is not None:
        enc.load_state_dict(init.state_dict())
        history.extend(init.card.get("history", []))
        print(f"initialised from {args.init}" + (f" (grown to {enc.layers} layers, {enc.input_size}² input)"
                                                  if trains_first_pass(enc) or enc.layers > enc.n_latent else ""))
    return run


def initial_encoder(args: argparse.Namespace, g, dev: torch.device) -> Encoder:
    """``--init`` as this run trains it: widened to ``--passes``, and, when the generator was grown
    from the encoder's model, grown to the generator's layers and input size (``grow_encoder``)."""
    init = load_encoder(args.init, device=dev)
    if args.passes > 1 and not init.iterative:
        card = init.card
        init = widen_to_iterative(init, args.passes).to(dev)
        init.card = card
    expected = build_for(g, args.kind, args.width, args.passes).config
    grows = init.layers < g.n_latent or init.input_size < g.size
    same = ("kind", "width", "passes", "style_dim") if grows else tuple(expected)
    if any(init.config.get(k) != expected.get(k) for k in same):
        raise SystemExit(f"error: {args.init} is a {init.config} encoder; this run builds {expected}")
    if grows:
        if g.card.get("grown_from") != init.card.get("generator"):
            raise SystemExit(f"error: {args.init} belongs to {init.card.get('generator', 'another model')}; "
                             f"{g.card.get('name', 'this generator')} was not grown from it")
        init = grow_encoder(init, g.n_latent, g.size)
        init.w_avg.copy_(g.w_avg.detach().to(init.w_avg))
    return init


def resume(run: Run, state: dict) -> None:
    args, history = run.args, run.history
    run.enc.load_state_dict(state["enc"])
    changed = bool(history) and any(getattr(args, k) != last_recipe(history)[k] for k in LOSS_KEYS)
    if args.reset_optimizer or (changed and not args.export):
        print("loss settings changed: restarting Adam" if changed else "restarting Adam (--reset-optimizer)")
    else:
        run.opt.load_state_dict(state["opt"])
        for group in run.opt.param_groups:  # a new --lr applies; Adam's moments stay
            group["lr"] = args.lr
    run.step, run.seconds = state["step"], state["seconds"]
    run.gen.set_state(state["gen"])


def export(run: Run) -> None:
    args = run.args
    card = {"kind": args.kind, "generator": run.g.card.get("name", ""), "steps": run.step, "batch": args.batch,
            "kimg": round(run.step * args.batch / 1000, 2), "seconds": round(run.seconds),
            "losses": " then ".join(describe_recipe(h) for h in run.history) or "unknown", "history": run.history}
    save_encoder(run.enc.cpu(), args.export, card, half=args.half)
    print(f"wrote {args.export} ({card['kimg']} kimg, {run.seconds / 60:.0f} min)")
    if args.attach:
        attach_to_card(args.model, args.kind, Path(args.export))


def loss_inputs(args: argparse.Namespace, g) -> tuple[Any, torch.Tensor | None]:
    """(LPIPS or None, real images in [0, 1] or None) as the recipe asks."""
    lpips = None
    if args.lpips_weight:
        try:
            lpips = LPIPSLoss(make_lpips(args.lpips_net, args.lpips_backbone)).to(g.w_avg.device)
        except OptinvError as e:
            raise SystemExit(f"error: {first_line(e)}") from None
    reals = None
    if args.data:
        files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise SystemExit(f"error: {args.data} holds no .png/.jpg images")
        bar = progress(len(files), desc="loading --data", unit="img")
        images = []
        for p in files:
            images.append(load_image(p, size=g.size))
            bar.update(1)
        bar.close()
        reals = torch.stack(images)
    return lpips, reals


def train_step(run: Run, lpips, reals: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One Adam step on a synthetic batch (+ real images on image steps); (latent loss, image loss)."""
    args, g, enc = run.args, run.g, run.enc
    x, wplus = synthetic_batch(g, args.batch, run.gen)
    prior = int(torch.randint(0, enc.passes - 1, (1,), generator=run.gen)) if enc.iterative else 0
    pred = predict(g, enc, x, prior)
    l_lat = latent_loss(pred, wplus)
    loss = args.latent_weight * l_lat
    l_img = torch.zeros(())
    if args.image_every and run.step % args.image_every == 0:
        targets, recons = [x], [render(g, pred)]
        if reals is not None:
            idx = torch.randint(0, len(reals), (max(1, round(args.batch * args.real_fraction)),), generator=run.gen)
            xr = reals[idx].to(g.w_avg.device)
            targets.append(xr)
            recons.append(render(g, predict(g, enc, xr, prior)))
        l_img = sum(F.mse_loss(r, t) for r, t in zip(recons, targets))
        loss = loss + args.image_weight * l_img
        if lpips is not None:
            loss = loss + args.lpips_weight * sum(lpips(r.clamp(0, 1), t).mean() for r, t in zip(recons, targets))
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    run.opt.step()
    return l_lat, l_img


def save(run: Run, ckpt: Path, out: Path) -> None:
    """The resumable checkpoint and a picture of reconstructions."""
    atomic_torch_save({"enc": run.enc.state_dict(), "config": run.enc.config, "opt": run.opt.state_dict(), "step": run.step,
                       "seconds": run.seconds, "gen": run.gen.get_state(), "args": vars(run.args),
                       "history": run.history}, ckpt)
    with torch.no_grad():
        xs, _ = synthetic_batch(run.g, 8, torch.Generator().manual_seed(99))
        rec = render(run.g, predict(run.g, run.enc, xs, run.enc.passes - 2))
    save_grid([to_pil(t.cpu()) for t in torch.cat([xs, rec])], out / "recon.png", cols=8, scale=2)


def train(run: Run, out: Path, ckpt: Path) -> None:
    args = run.args
    lpips, reals = loss_inputs(args, run.g)
    if not run.history or run.history[-1]["to"] != run.step or recipe_of(args) != last_recipe(run.history):
        run.history.append({"from": run.step, "to": run.step, **recipe_of(args)})
    total = int(math.ceil(args.kimg * 1000 / args.batch))
    stop = min(total, run.step + args.max_steps) if args.max_steps else total
    bar = progress(total, desc=f"encoder {args.kind}", initial=run.step, leave=True)  # a line now and then in a log
    t_last = time.time()
    with open(out / "log.jsonl", "a") as log:
        while run.step < stop:
            l_lat, l_img = train_step(run, lpips, reals)
            run.step += 1
            run.history[-1]["to"] = run.step
            now = time.time()
            run.seconds += now - t_last
            t_last = now
            bar.update(1)
            bar.set_postfix(latent=f"{l_lat.item():.4f}", image=f"{l_img.item():.4f}")
            if run.step % 20 == 0:
                log.write(json.dumps({"step": run.step, "latent": l_lat.item(), "image": l_img.item(),
                                      "seconds": round(run.seconds, 1)}) + "\n")
                log.flush()
            if run.step % args.save_every == 0 or run.step == stop:
                save(run, ckpt, out)
    bar.close()
    print(f"stopped at step {run.step}/{total} ({run.seconds / 60:.1f} min)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "latest.pt"
    run = start(args, ckpt)
    if args.export:
        export(run)
        return
    train(run, out, ckpt)


if __name__ == "__main__":
    main()
