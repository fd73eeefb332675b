"""Editing commands: ``edit`` (along a direction, or several discovered paths at once), ``interpolate``,
``mix`` and ``blend`` (thin over :mod:`optinv.edit.edits`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import click
import torch

from optinv.cli.common import (FINITE, Planned, handle_errors, latent_model_option, locked_out_dir, out_dir_option,
                               overwrite_option, same_model)
from optinv.errors import OptinvError
from optinv.io.fileio import latent_stem, name_part, written_together


def _save(images: torch.Tensor, path: Path, cols: int | None = None) -> Path:
    from optinv.io.image_files import atomic_save_image, make_grid
    from optinv.io.image_files import to_pil

    ims = [to_pil(x.cpu()) for x in images]
    return atomic_save_image(make_grid(ims, cols=cols or len(ims), scale=max(1, 128 // images.shape[-1])), path)


def _write_pair_result(g, ea, eb, result, template: dict, outdir: Path, stem: str) -> Path:
    """Save the combined latent and the picture A | B | result."""
    from optinv.edit import edits as E
    from optinv.io.latents import save_latent

    images = torch.cat([E.render(g, [ea]), E.render(g, [eb]), E.render(g, [result])])
    with written_together():
        save_latent(E.to_latent(result, template), outdir / f"{stem}.latent.pt")
        return _save(images, outdir / f"{stem}.png")


def _open_same_model(specs: list[str], model: str | None) -> tuple[list[dict], object]:
    """Latents that are combined must come from one model: each is checked against the first's."""
    from optinv.io.latents import open_latent

    first, g = open_latent(specs[0], model)
    records = [first] + [open_latent(spec, model)[0] for spec in specs[1:]]
    same_model(records, specs)
    return records, g


def _inputs(*specs: str) -> list[str]:
    return [str(s).split(":")[0] if not Path(str(s)).exists() else str(s) for s in specs if s]


MAX_ROW = 256  # images in an interpolation row: all are rendered together and saved as one picture


@click.command()
@click.argument("latent", type=click.Path())
@click.option("--direction", "-d", default=None, help="shipped name (e.g. smile) or FILE[:NAME]")
@click.option("--alpha", "-a", "alphas", type=FINITE, multiple=True, help="strength(s); default -3 … 3")
@click.option("--edit", "-e", "path_edits", multiple=True,
              help="NAME=AMOUNT along a discovered path, repeatable (e.g. --edit smile=+2 --edit bangs=-1); "
              "curvilinear and linear paths give the same result in any order, warped ones do not")
@click.option("--paths", default=None, help="paths file for --edit (default: the model's shipped one; "
              "or linear / warped / curvilinear)")
@click.option("--layers", default=None, help="layers to edit, e.g. 0-6 (default: all)")
@click.option("--paste-back", is_flag=True,
              help="also write each edit put back into the photo (a latent from invert --align)")
@latent_model_option
@out_dir_option
@overwrite_option
@handle_errors
def edit(latent, direction, alphas, path_edits, paths, layers, paste_back, model, out, overwrite):
    """Move LATENT along a direction (a strip over the alphas and each edited latent), or along
    several discovered paths at once (--edit NAME=AMOUNT …: the edited latent and before | after)."""
    if path_edits:
        if direction or alphas or layers or paste_back:
            raise OptinvError("--edit moves along discovered paths: it does not combine with "
                              "--direction/--alpha/--layers/--paste-back")
        return path_edit(latent, path_edits, paths, model, out, overwrite, latent_stem(latent),
                         _inputs(latent, paths if paths and Path(paths).exists() else None))
    if not direction:
        raise OptinvError("edit needs --direction NAME (with --alpha) or --edit NAME=AMOUNT (discovered paths)")
    _edit_along_direction(latent, direction, alphas, layers, paste_back, model, out, overwrite)


def _edit_along_direction(latent: str, direction: str, alphas: tuple[float, ...], layers: str | None,
                          paste_back: bool, model: str | None, out: str, overwrite: bool) -> None:
    """``optinv edit --direction``: one edited latent per alpha, a strip of them, optionally pasted back."""
    from optinv.edit import edits as E
    from optinv.edit.directions import load_direction
    from optinv.io.latents import open_latent, save_latent

    outdir = locked_out_dir(out)
    lat, g = open_latent(latent, model)
    if paste_back:
        from optinv.faces.photo import pastable

        pastable(lat, latent_stem(latent))  # before anything is written
    name, vec = load_direction(direction, g)
    alphas = list({f"{a:+g}": a for a in alphas or (-3.0, -1.5, 0.0, 1.5, 3.0)}.values())  # one file per name
    base = E.from_latent(lat)
    sel = E.parse_layers(layers, g.n_latent)
    plan = Planned(outdir, _inputs(latent, direction), overwrite)
    suffixes = [".png"] + [f"{a:+g}.latent.pt" for a in alphas]
    (stem,) = plan.names([f"{latent_stem(latent)}.{name_part(name)}"], *suffixes)  # a key from a file is not a path
    if plan.keep(*[stem + x for x in suffixes]):
        return
    edited = [E.apply_direction(base, vec, a, sel) for a in alphas]
    images = E.render(g, edited)  # checks every edited latent before anything is written
    with written_together():
        for a, e in zip(alphas, edited):
            rec = E.to_latent(e, lat)
            if lat.get("alignment"):  # the edit still belongs to the photo the original was aligned from
                rec["alignment"] = lat["alignment"]
            save_latent(rec, outdir / f"{stem}{a:+g}.latent.pt")
        strip = _save(images, outdir / f"{stem}.png")
    click.echo(f"{name} at alpha {', '.join(f'{a:g}' for a in alphas)} → {strip}")
    if paste_back:
        from types import SimpleNamespace

        from optinv.faces.photo import write_pasted

        for a, img in zip(alphas, images):
            item = SimpleNamespace(name=f"{stem}{a:+g}", latent=lat, image=img.cpu())
            click.echo(f"  pasted back → {write_pasted(item, outdir)}")


@click.command()
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--steps", "-k", type=int, default=7, show_default=True, help="images in the row (ends included)")
@latent_model_option
@out_dir_option
@overwrite_option
@handle_errors
def interpolate(a, b, steps, model, out, overwrite):
    """A row of images from latent A to latent B (linear in W+ / style maps)."""
    from optinv.edit import edits as E

    if not 2 <= steps <= MAX_ROW:
        raise OptinvError(f"--steps must lie in 2..{MAX_ROW} (images in the row), got {steps}")
    outdir = locked_out_dir(out)
    (la, lb), g = _open_same_model([a, b], model)
    plan = Planned(outdir, _inputs(a, b), overwrite)
    (stem,) = plan.names([f"{latent_stem(a)}_to_{latent_stem(b)}"], ".png")
    if plan.keep(stem + ".png"):
        return
    ts = [i / (steps - 1) for i in range(steps)]
    row = E.interpolate(E.from_latent(la), E.from_latent(lb), ts)
    path = _save(E.render(g, row), outdir / f"{stem}.png")
    click.echo(f"interpolation → {path}")


@click.command()
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--layers", required=True, help="layers taken from B, e.g. 0-3 (coarse) or 6-9 (fine)")
@latent_model_option
@out_dir_option
@overwrite_option
@handle_errors
def mix(a, b, layers, model, out, overwrite):
    """Style mixing: LAYERS from B, the rest from A. Writes A | B | mix."""
    from optinv.edit import edits as E

    outdir = locked_out_dir(out)
    (la, lb), g = _open_same_model([a, b], model)
    plan = Planned(outdir, _inputs(a, b), overwrite)
    (stem,) = plan.names([f"{latent_stem(a)}_mix_{latent_stem(b)}"], ".png", ".latent.pt")
    if plan.keep(stem + ".png", stem + ".latent.pt"):
        return
    ea, eb = E.from_latent(la), E.from_latent(lb)
    m = E.mix(ea, eb, E.parse_layers(layers, g.n_latent))
    path = _write_pair_result(g, ea, eb, m, la, outdir, stem)
    click.echo(f"mix → {path}")


@click.command()
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--mask", default="vertical", show_default=True,
              help="'vertical' (top from A, bottom from B, smooth ramp) or a grayscale PNG (white = B)")
@click.option("--layers", default=None, help="layers to blend (default: all)")
@latent_model_option
@out_dir_option
@overwrite_option
@handle_errors
def blend(a, b, mask, layers, model, out, overwrite):
    """Blend two codes' style maps with a mask (W+ codes act as 1×1 maps). Writes A | B | blend."""
    from optinv.edit import edits as E
    from optinv.io.image_files import load_image

    outdir = locked_out_dir(out)
    (la, lb), g = _open_same_model([a, b], model)
    if mask == "vertical":
        m = E.vertical_mask(g.size)
    else:
        m = load_image(mask, size=g.size, hint="a mask must be square (or use --mask vertical)").mean(0)
    plan = Planned(outdir, _inputs(a, b, None if mask == "vertical" else mask), overwrite)
    (stem,) = plan.names([f"{latent_stem(a)}_blend_{latent_stem(b)}"], ".png", ".latent.pt")
    if plan.keep(stem + ".png", stem + ".latent.pt"):
        return
    ea, eb = E.from_latent(la), E.from_latent(lb)
    out_e = E.blend_maps(ea, eb, m, E.parse_layers(layers, g.n_latent), feature_sizes=g.layer_sizes())
    path = _write_pair_result(g, ea, eb, out_e, la, outdir, stem)
    click.echo(f"blend → {path}")


def path_edit(latent: str, edits: Sequence[str], paths: str | None, model: str | None, out: str,
              overwrite: bool, stem: str, inputs: list[str]) -> None:
    """Apply several named paths to one latent; write the edited latent and original | edited.
    ``stem``: the latent's name; ``inputs``: files that must not be overwritten (the edit command's)."""
    from optinv.edit import edits as E
    from optinv.edit.discover.apply import edit_record, order_note
    from optinv.edit.discover.pathsfile import parse_edits, paths_for
    from optinv.io.fileio import name_part, written_together
    from optinv.io.image_files import atomic_save_image, make_grid
    from optinv.io.latents import open_latent, save_latent
    from optinv.io.image_files import to_pil

    parsed = parse_edits(edits)
    outdir = locked_out_dir(out)
    rec, g = open_latent(latent, model)
    ps = paths_for(g, paths)
    for name, _ in parsed:
        ps.index(name)  # an unknown name fails before anything is written
    note = order_note(ps, parsed)
    if note:
        click.echo(f"note: {note}", err=True)
    plan = Planned(outdir, inputs, overwrite)
    tag = "_".join(f"{name_part(n)}{t:+g}" for n, t in parsed)
    (stem,) = plan.names([f"{stem}.{tag}"], ".png", ".latent.pt")
    if plan.keep(stem + ".png", stem + ".latent.pt"):
        return
    edited = edit_record(rec, ps, parsed)
    if rec.get("alignment"):  # the edit still belongs to the photo the original was aligned from
        edited["alignment"] = rec["alignment"]
    ims = [to_pil(x.cpu()) for x in E.render(g, [E.from_latent(rec), E.from_latent(edited)])]
    with written_together():
        save_latent(edited, outdir / f"{stem}.latent.pt")
        pic = atomic_save_image(make_grid(ims, cols=2, scale=max(1, 128 // g.size)), outdir / f"{stem}.png")
    click.echo(f"{', '.join(f'{n} {t:+g}' for n, t in parsed)} ({ps.method} paths) → {pic}")
