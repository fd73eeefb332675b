"""The ``optinv`` command: a thin layer that parses options, calls the engine, writes outputs."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from .errors import OptinvError

DEBUG_ENV = "OPTINV_DEBUG"


def job_options(f):
    """Options shared by invert, pulse and paint."""
    opts = [
        click.option("--model", "-m", default=None, help="generator file or shipped model name (default: embedded synthfaces64)"),
        click.option("--out", "-o", default="out", show_default=True, type=click.Path(file_okay=False), help="output folder"),
        click.option("--space", type=click.Choice(["w", "wplus", "zplus", "stylemap"]), default=None, help="latent space"),
        click.option("--stylemap-res", default=None, help="map sides: 'coarse,medium,fine' (default 2,4,1) or one per layer"),
        click.option("--tile", is_flag=True, help="zplus: one z shared by all layers"),
        click.option("--zplus-mapping", type=click.Choice(["gaussian", "exact"]), default=None,
                     help="zplus: PULSE's Gaussian fit of the mapping, or the exact mapping network "
                          "(default: the model card's choice, else gaussian)"),
        click.option("--loss", "recipe", default=None, help="loss recipe, e.g. '100*L2+0.05*GEOCROSS'"),
        click.option("--preset", default=None, help="reference settings: pulse, image2stylegan, rosinality, nvidia, stylemap"),
        click.option("--steps", type=int, default=None, help="optimisation steps"),
        click.option("--lr", type=float, default=None, help="learning rate"),
        click.option("--schedule", type=click.Choice(["fixed", "linear1cycledrop", "cosine-ramp"]), default=None),
        click.option("--optimizer", type=click.Choice(["adam", "sgd", "adamax"]), default=None),
        click.option("--noise", type=click.Choice(["zero", "fixed", "trainable", "random"]), default=None, help="noise inputs"),
        click.option("--trainable-noise", type=int, default=None, help="with --noise trainable: first k layers (0 = all)"),
        click.option("--eps", type=float, default=None, help="stop an image once its data term reaches this MSE"),
        click.option("--init", type=click.Choice(["auto", "mean", "random", "encoder"]), default=None,
                     help="starting latent (w/wplus/stylemap); auto = the model's encoder when it has one, else w_avg"),
        click.option("--encoder", default=None, type=click.Path(dir_okay=False),
                     help="encoder file for --init encoder / DOMAIN (default: the model card's)"),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--batch", type=int, default=4, show_default=True, help="images optimised together"),
        click.option("--crop", type=click.Choice(["none", "center", "pad"]), default="none", show_default=True,
                     help="what to do with non-square inputs"),
        click.option("--lpips-backbone", default=None, type=click.Path(dir_okay=False),
                     help="torchvision VGG16 ImageNet weights for LPIPS (no download happens)"),
        click.option("--gif", is_flag=True, help="also write NAME.gif of the optimisation"),
        click.option("--device", default="auto", show_default=True, help="auto (cuda > mps > cpu), cpu, cuda, mps"),
        click.option("--quiet", "-q", is_flag=True, help="no progress bar"),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _options(kw: dict):
    """Click's keyword arguments → the engine's JobOptions."""
    from .jobs import JobOptions

    if kw["batch"] < 1:
        raise OptinvError(f"--batch must be ≥ 1, got {kw['batch']}")
    if kw["steps"] is not None and kw["steps"] < 1:
        raise OptinvError(f"--steps must be ≥ 1, got {kw['steps']}")
    return JobOptions(space=kw["space"], recipe=kw["recipe"], steps=kw["steps"], lr=kw["lr"], schedule=kw["schedule"],
                      optimizer=kw["optimizer"], noise=kw["noise"], trainable_noise=kw["trainable_noise"], eps=kw["eps"],
                      seed=kw["seed"], batch=kw["batch"], init=kw["init"], tile=kw["tile"], zplus_mapping=kw["zplus_mapping"],
                      stylemap_res=kw["stylemap_res"], preset=kw["preset"], crop=kw["crop"],
                      lpips_backbone=kw["lpips_backbone"], frame_every=0, progress=not kw["quiet"],
                      encoder=kw["encoder"])


def _write(results, kw: dict) -> None:
    from .outputs import write_item

    out = Path(kw["out"])
    for r in results:
        paths = write_item(r, out, gif=kw["gif"])
        m = r.metrics
        key = "psnr" if "psnr" in m else "fit_mse"
        val = f"{m[key]:.2f} dB" if key == "psnr" else f"{m[key]:.3g}"
        click.echo(f"{r.name}: {key} {val} after {m['steps']} steps ({m['seconds']:.1f} s) → {paths['image']}")
        for note in r.notes:
            click.echo(f"  note: {note}", err=True)


def _prepare(kw: dict):
    from .outputs import ensure_out_dir

    ensure_out_dir(kw["out"])
    opts = _options(kw)
    if kw["gif"]:
        opts.frame_every = max(1, (opts.steps or 100) // 40)
    return opts


def handle_errors(f):
    """One line on stderr and exit 1 for user errors; a traceback only with OPTINV_DEBUG=1."""
    @functools.wraps(f)
    def wrapper(*a, **kw):
        try:
            return f(*a, **kw)
        except OptinvError as e:
            if os.environ.get(DEBUG_ENV):
                raise
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (MemoryError, RuntimeError) as e:
            if os.environ.get(DEBUG_ENV):
                raise
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            click.echo(f"error: {type(e).__name__}: {msg[:300]} (set {DEBUG_ENV}=1 for a traceback)", err=True)
            sys.exit(1)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="optinv")
def main() -> None:
    """Put images into a StyleGAN2 generator: invert, super-resolve (PULSE), paint with colour."""


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@job_options
@handle_errors
def invert(images, **kw):
    """Find the latents whose images match IMAGES (default space: stylemap)."""
    from . import jobs

    opts = _prepare(kw)
    _write(jobs.invert(list(images), model=kw["model"], device=kw["device"], options=opts), kw)


@main.command()
@click.argument("lowres", nargs=-1, required=True, type=click.Path())
@click.option("--scale", type=int, default=None, help="upscaling factor (default: model resolution / input size)")
@click.option("--duplicates", type=int, default=1, show_default=True, help="K different answers from K seeds")
@job_options
@handle_errors
def pulse(lowres, scale, duplicates, **kw):
    """Super-resolve LOWRES images: find faces that downscale to them (PULSE)."""
    from . import jobs

    opts = _prepare(kw)
    _write(jobs.pulse(list(lowres), scale=scale, model=kw["model"], device=kw["device"], options=opts,
                      duplicates=duplicates), kw)


@main.command()
@click.argument("references", nargs=-1, required=True, type=click.Path())
@job_options
@handle_errors
def paint(references, **kw):
    """Generate images that match RGBA colour REFERENCES where alpha > 0."""
    from . import jobs

    opts = _prepare(kw)
    _write(jobs.paint(list(references), model=kw["model"], device=kw["device"], options=opts), kw)


@main.command("batch")
@click.argument("input_dir", type=click.Path(file_okay=False))
@click.option("--job", type=click.Choice(["invert", "pulse", "paint"]), required=True,
              help="what to do with each image")
@click.option("--recursive", "-r", is_flag=True, help="also take images in sub-folders (mirrored under --out)")
@click.option("--scale", type=int, default=None,
              help="pulse: upscaling factor (default: model resolution / input size)")
@click.option("--duplicates", type=int, default=1, show_default=True, help="pulse: K different answers from K seeds")
@job_options
@handle_errors
def batch_command(input_dir, job, recursive, scale, duplicates, **kw):
    """Run JOB on every image in INPUT_DIR; rerun to resume; start with torchrun to share the work."""
    import signal

    from .batch import BatchConfig, run_batch

    opts = _prepare(kw)
    s = run_batch(BatchConfig(job=job, input_dir=Path(input_dir), out_dir=Path(kw["out"]), options=opts,
                              model=kw["model"], device=kw["device"], recursive=recursive, scale=scale,
                              duplicates=duplicates, gif=kw["gif"], progress=not kw["quiet"]))
    if s.rank == 0:
        failed = f"{s.failed + s.nan} failed" + (f" ({s.nan} NaN)" if s.nan else "")
        pending = f", {s.pending} not started" if s.pending else ""
        click.echo(f"{s.ok} done, {s.skipped} skipped, {failed}{pending}; manifest: {s.manifest}")
        if s.signal:
            click.echo(f"stopped by {signal.Signals(s.signal).name} after the batch in flight; "
                       f"run the same command again to resume", err=True)
    sys.exit(s.exit_code)


@main.command()
@click.option("--model", "-m", default=None, help="generator file or shipped model name")
@click.option("--seed", "seeds", type=int, multiple=True, help="seed(s) for z (repeatable)")
@click.option("--truncation", type=float, default=1.0, show_default=True)
@click.option("--latent", "latents", type=click.Path(), multiple=True, help="re-render saved latent file(s)")
@click.option("--out", "-o", default="out", show_default=True, type=click.Path(file_okay=False))
@click.option("--device", default="cpu", show_default=True)
@handle_errors
def generate(model, seeds, truncation, latents, out, device):
    """Render images from seeds or from saved latents (bit-exact re-render)."""
    import torch

    from .checkpoints import load_generator
    from .imageio import atomic_save_image
    from .jobs import resolve_device
    from .latents import generator_for, load_latent, render_latent
    from .outputs import ensure_out_dir, to_pil01

    outdir = ensure_out_dir(out)
    dev = resolve_device(device)
    if not seeds and not latents:
        seeds = (0,)
    for path in latents:
        lat = load_latent(path)
        g = generator_for(lat, model, device=dev, what=str(path))
        img = render_latent(g, lat)[0]
        name = Path(path).name.replace(".latent.pt", "")
        dest = atomic_save_image(to_pil01(img.cpu()), outdir / f"{name}.render.png")
        click.echo(f"{path} → {dest}")
    if seeds:
        g = load_generator(model, device=dev)
        for s in seeds:
            z = torch.randn(1, g.style_dim, generator=torch.Generator().manual_seed(s)).to(dev)
            with torch.no_grad():
                img = g(z, truncation=truncation, truncation_latent=g.w_avg)
            dest = atomic_save_image(to_pil01(((img[0] + 1) / 2).cpu()), outdir / f"seed{s:04d}.png")
            click.echo(f"seed {s} → {dest}")


@main.command()
@click.argument("model", required=False)
@handle_errors
def info(model):
    """Print the model card of MODEL (default: the embedded model)."""
    from .checkpoints import describe, load_generator

    click.echo(describe(load_generator(model)))


@main.command()
@click.argument("src")
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--half", is_flag=True, help="store float16 weights (half the size)")
@handle_errors
def convert(src, dst, half):
    """Convert SRC (optinv, rosinality .pt or NVIDIA .pkl) to optinv's format at DST."""
    from .checkpoints import load_generator, save_generator

    g = load_generator(src)
    path = save_generator(g, dst, half=half)
    click.echo(f"{src} ({g.card.get('source_format')}) → {path}")


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--space", type=click.Choice(["wplus", "stylemap"]), default="wplus", show_default=True)
@click.option("--encoder", default=None, type=click.Path(dir_okay=False), help="encoder file (default: the model card's)")
@click.option("--model", "-m", default=None, help="generator file or shipped model name")
@click.option("--out", "-o", default="out", show_default=True, type=click.Path(file_okay=False))
@click.option("--batch", type=int, default=16, show_default=True)
@click.option("--crop", type=click.Choice(["none", "center", "pad"]), default="none", show_default=True)
@click.option("--device", default="auto", show_default=True)
@handle_errors
def encode(images, space, encoder, model, out, batch, crop, device):
    """Encoder only, no optimisation: the fast path (writes the same outputs as invert)."""
    from . import jobs
    from .outputs import ensure_out_dir

    ensure_out_dir(out)
    opts = jobs.JobOptions(space=space, encoder=encoder, batch=max(1, batch), crop=crop)
    _write(jobs.encode(list(images), model=model, device=device, options=opts), {"out": out, "gif": False})


from .cli_edit import register as _register_edit_commands  # noqa: E402

_register_edit_commands(main, handle_errors)

if __name__ == "__main__":
    main()
