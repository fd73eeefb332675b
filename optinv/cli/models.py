"""Model commands: ``generate`` (seeds or saved latents → images), ``info`` (the model card) and
``convert`` (NVIDIA / rosinality checkpoints → optinv's format)."""

from __future__ import annotations

import click

from optinv.cli.common import FINITE, SEED, Planned, handle_errors, may_write, overwrite_option


@click.command()
@click.option("--model", "-m", default=None, help="generator file or shipped model name")
@click.option("--seed", "seeds", type=SEED, multiple=True, help="seed(s) for z (repeatable)")
@click.option("--truncation", type=FINITE, default=1.0, show_default=True)
@click.option("--latent", "latents", type=click.Path(), multiple=True, help="re-render saved latent file(s)")
@click.option("--out", "-o", default="out", show_default=True, type=click.Path(file_okay=False))
@click.option("--device", default="cpu", show_default=True)
@overwrite_option
@handle_errors
def generate(model, seeds, truncation, latents, out, device, overwrite):
    """Render images from seeds or from saved latents (bit-exact re-render)."""
    import torch

    from optinv.engine.bounds import check_styles, truncated_w
    from optinv.io.checkpoints import load_generator
    from optinv.io.image_files import atomic_save_image
    from optinv.engine.jobs import resolve_device
    from optinv.io.fileio import latent_stem
    from optinv.io.latents import open_latent, render_latent
    from optinv.io.image_files import to_pil
    from optinv.io.outputs import OutputLock, ensure_out_dir
    from optinv.io.ranges import to_unit

    outdir = ensure_out_dir(out)
    dev = resolve_device(device)
    if not seeds and not latents:
        seeds = (0,)
    seeds = list(dict.fromkeys(seeds))
    with OutputLock(outdir):
        plan = Planned(outdir, [str(p).split(":")[0] for p in latents], overwrite)
        render_names = plan.names([latent_stem(p) for p in latents], ".render.png")
        seed_names = plan.names([f"seed{s:04d}" for s in seeds], ".png")
        for path, name in zip(latents, render_names):  # optinv, NVIDIA projected_w.npz or rosinality files
            if plan.keep(name + ".render.png"):
                continue
            lat, g = open_latent(path, model, device=dev, what=str(path))
            check_styles(g, lat["wplus"], str(path))  # a crafted file of 1e30 values renders flat
            img = render_latent(g, lat)[0]
            dest = atomic_save_image(to_pil(img.cpu()), outdir / f"{name}.render.png")
            click.echo(f"{path} → {dest}")
        todo = [(s, n) for s, n in zip(seeds, seed_names) if not plan.keep(n + ".png")]
        if todo:
            g = load_generator(model, device=dev)
        for s, name in todo:
            z = torch.randn(1, g.style_dim, generator=torch.Generator().manual_seed(s)).to(dev)
            w = truncated_w(g, z, truncation)
            with torch.no_grad():
                img = g.synthesis(w[:, None, :].expand(-1, g.n_latent, -1))
            dest = atomic_save_image(to_pil(to_unit(img[0]).cpu()), outdir / f"{name}.png")
            click.echo(f"seed {s} → {dest}")


@click.command()
@click.argument("model", required=False)
@click.option("--model", "-m", "model_option", default=None, help="the same as MODEL, spelled as the other commands do")
@handle_errors
def info(model, model_option):
    """Print the model card of MODEL (default: the embedded model)."""
    from optinv.io.checkpoints import describe, load_generator

    if model and model_option and model != model_option:
        raise click.UsageError(f"two models given ({model} and {model_option}): name one")
    click.echo(describe(load_generator(model or model_option)))


@click.command()
@click.argument("src")
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--half", is_flag=True, help="store float16 weights (half the size)")
@overwrite_option
@handle_errors
def convert(src, dst, half, overwrite):
    """Convert SRC (optinv, rosinality .pt or NVIDIA .pkl) to optinv's format at DST."""
    from optinv.io.checkpoints import load_generator, resolve_model_path, save_generator
    if not may_write(dst, [resolve_model_path(src)], overwrite):
        return
    g = load_generator(src)
    path = save_generator(g, dst, half=half)
    click.echo(f"{src} ({g.card.get('source_format')}) → {path}")
