"""``optinv export``: a latent in other projects' formats (NVIDIA npz, rosinality pt, a tuned generator)."""

from __future__ import annotations

from pathlib import Path

import click

from optinv.cli.common import handle_errors, may_write, overwrite_option
from optinv.errors import OptinvError

SUFFIX = {"npz": ".projected_w.npz", "rosinality": ".rosinality.pt", "rosinality-generator": ".generator.pt"}


@click.command()
@click.argument("latent", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(list(SUFFIX)), required=True,
              help="npz: NVIDIA projected_w.npz (generate.py --projected-w); rosinality: projector.py's .pt; "
                   "rosinality-generator: the generator of a latent made with --tune, its tuning applied, as a "
                   "rosinality checkpoint ({'g_ema', 'latent_avg'}; the latent's noise in its noise buffers)")
@click.option("--dest", "-o", default=None, type=click.Path(dir_okay=False),
              help="file to write (default: NAME.projected_w.npz / NAME.rosinality.pt / NAME.generator.pt "
                   "beside LATENT)")
@click.option("--model", "-m", default=None, help="generator (default: the one the latent names)")
@overwrite_option
@handle_errors
def export(latent, fmt, dest, model, overwrite):
    """Write LATENT (any latent file optinv reads) in another project's format."""
    from optinv.io.fileio import latent_stem
    from optinv.io.latent_formats import split_key, write_foreign
    from optinv.io.latents import open_latent, render_latent

    rec, g = open_latent(latent, model)
    name = latent_stem(latent)
    dest = Path(dest) if dest else split_key(latent)[0].with_name(name + SUFFIX[fmt])
    if fmt == "rosinality-generator" and not rec.get("tuning"):
        raise OptinvError(f"{latent} carries no pivotal tuning (made without --tune): its generator is the model "
                          f"itself; use --format rosinality for the latent, or invert again with --tune")
    if not may_write(dest, [split_key(latent)[0], g.card.get("source_file", "")], overwrite):
        return
    if fmt == "rosinality-generator":
        from optinv.io.tuned_export import save_tuned_rosinality

        click.echo(f"{latent} → {save_tuned_rosinality(g, rec, dest)} (tuned generator, rosinality layout)")
        return
    image = None
    if fmt == "rosinality":  # the projector stores the rendered image too
        image = render_latent(g, rec)[0]
    notes: list[str] = []
    path = write_foreign(rec, dest, fmt, key=f"{name}.png", image=image, notes=notes)
    click.echo(f"{latent} → {path}")
    for note in notes:
        click.echo(f"  note: {note}", err=True)
