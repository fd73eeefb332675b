"""Photo commands: ``align`` (FFHQ crop + transform) and ``paste`` (a result back into the photo)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from optinv.cli.common import Planned, handle_errors, locked_out_dir, overwrite_option, to_flags
from optinv.errors import OptinvError

LANDMARKS_HELP = "your own dlib 68-point shape predictor (.dat) instead of face-recognition-models'"


def _result_image(result: str, model: str | None):
    """A result as a PIL image: a PNG as it is, a latent file rendered by its model; and its record."""
    from optinv.io.image_files import load_photo

    if result.endswith((".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")):
        return load_photo(result), None
    from optinv.io.latents import open_latent, render_latent
    from optinv.io.image_files import to_pil

    rec, g = open_latent(result, model)
    return to_pil(render_latent(g, rec)[0].clamp(0, 1).cpu()).convert("RGB"), rec


@click.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("--size", type=int, default=None, help="side of the aligned image (default: the model's resolution)")
@click.option("--out", "-o", default="aligned", show_default=True, type=click.Path(file_okay=False))
@click.option("--face", type=int, default=None, help="which face when there are several (1 = the largest)")
@click.option("--landmarks", type=click.Path(dir_okay=False), default=None, help=LANDMARKS_HELP)
@click.option("--model", "-m", default=None, help="generator whose resolution --size defaults to")
@overwrite_option
@handle_errors
def align(photos, size, out, face, landmarks, model, overwrite):
    """Crop PHOTOS like FFHQ: writes OUT/NAME.png and OUT/NAME.align.json (for optinv paste)."""
    from optinv import faces

    if size is None:
        from optinv.io.checkpoints import load_generator

        size = load_generator(model).size
    outdir = locked_out_dir(out)
    plan = Planned(outdir, list(photos), overwrite)
    names = plan.names([Path(p).stem for p in photos], ".png", ".align.json")
    failed = 0
    for photo, name in zip(photos, names):
        if plan.keep(name + ".png", name + ".align.json"):
            continue
        try:
            al = faces.align_photo(photo, size, face=face, landmarks_model=landmarks)
        except faces.FacesUnavailable:
            raise
        except OptinvError as e:
            if len(photos) == 1:
                raise
            click.echo(f"error: {to_flags(str(e))}", err=True)  # one bad photo does not stop the others
            failed += 1
            continue
        png, js = faces.write_aligned(al, outdir, name)
        click.echo(f"{photo} → {png} ({size}×{size}), {js}")
        for note in al.notes:
            click.echo(f"  note: {to_flags(note)}", err=True)
    if failed:
        sys.exit(1)


@click.command()
@click.argument("result", type=click.Path())
@click.option("--into", "photo", default=None, type=click.Path(dir_okay=False),
              help="the photo that was aligned (default: the one a latent from --align names)")
@click.option("--transform", default=None, type=click.Path(dir_okay=False),
              help="NAME.align.json (default: the latent's own, or NAME.align.json beside RESULT or in aligned/)")
@click.option("--feather", type=float, default=0.1, show_default=True, help="blend width, fraction of the crop side")
@click.option("--model", "-m", default=None, help="generator for a latent RESULT (default: the one it names)")
@click.option("--out", "-o", default="out", show_default=True, type=click.Path(file_okay=False))
@overwrite_option
@handle_errors
def paste(result, photo, transform, feather, model, out, overwrite):
    """Warp RESULT (an image or a latent file) back into PHOTO: only the face region changes."""
    from optinv import faces
    from optinv.io.image_files import atomic_save_image, load_photo

    if not 0 <= feather <= 0.5:
        raise OptinvError(f"--feather must lie in [0, 0.5], got {feather}")
    outdir = locked_out_dir(out)
    img, rec = _result_image(result, model)
    t = faces.find_transform(result, transform, rec)
    photo = photo or ((rec or {}).get("alignment") or {}).get("photo_path")
    if not photo:
        raise OptinvError(f"{result}: which photo? pass --into PHOTO")
    pasted = faces.paste_back(img, load_photo(photo), t, feather=feather)
    from optinv.io.fileio import latent_stem

    plan = Planned(outdir, [result, photo], overwrite)
    (name,) = plan.names([latent_stem(result) if rec is not None else Path(result).stem], ".pasted.png")
    if plan.keep(name + ".pasted.png"):
        return
    dest = atomic_save_image(pasted, outdir / f"{name}.pasted.png")
    click.echo(f"{result} → {photo} → {dest}")
