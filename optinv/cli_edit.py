"""Editing commands: edit, interpolate, mix, blend, directions fit (thin over optinv.edit)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from .errors import OptinvError


def _model_for(latent: dict, model: str | None, device: str = "cpu"):
    from .latents import generator_for

    return generator_for(latent, model, device=device)


def _save(images: torch.Tensor, path: Path, cols: int | None = None) -> Path:
    from .imageio import atomic_save_image, make_grid
    from .outputs import to_pil01

    ims = [to_pil01(x.cpu()) for x in images]
    return atomic_save_image(make_grid(ims, cols=cols or len(ims), scale=max(1, 128 // images.shape[-1])), path)


def _write_pair_result(g, ea, eb, result, template: dict, outdir: Path, stem: str) -> Path:
    """Save the combined latent and the picture A | B | result."""
    from . import edit as E
    from .latents import save_latent

    save_latent(E.to_latent(result, template), outdir / f"{stem}.latent.pt")
    return _save(torch.cat([E.render(g, [ea]), E.render(g, [eb]), E.render(g, [result])]), outdir / f"{stem}.png")


def _stem(path: str) -> str:
    """NAME of NAME.latent.pt (or of another project's NAME.npz / NAME.pt[:IMAGE])."""
    name = Path(str(path)).name
    if name.endswith(".latent.pt"):
        return name[: -len(".latent.pt")]
    name = name.split(":")[0] if not Path(str(path)).exists() else name
    return Path(name).stem


common_model = click.option("--model", "-m", default=None, help="generator (default: the one the latent names)")
common_out = click.option("--out", "-o", default="out", show_default=True, type=click.Path(file_okay=False))


def register(main: click.Group, handle_errors) -> None:
    """Attach the editing commands to the ``optinv`` group."""

    @main.command()
    @click.argument("latent", type=click.Path())
    @click.option("--direction", "-d", required=True, help="shipped name (e.g. smile) or FILE[:NAME]")
    @click.option("--alpha", "-a", "alphas", type=float, multiple=True, help="strength(s); default -3 … 3")
    @click.option("--layers", default=None, help="layers to edit, e.g. 0-6 (default: all)")
    @click.option("--paste-back", is_flag=True,
                  help="also write each edit put back into the photo (a latent from invert --align)")
    @common_model
    @common_out
    @handle_errors
    def edit(latent, direction, alphas, layers, paste_back, model, out):
        """Move LATENT along a direction; writes a strip over the alphas and each edited latent."""
        from . import edit as E
        from .directions import load_direction
        from .latents import open_latent, save_latent
        from .outputs import ensure_out_dir

        outdir = ensure_out_dir(out)
        lat, g = open_latent(latent, model)
        name, vec = load_direction(direction, g)
        alphas = alphas or (-3.0, -1.5, 0.0, 1.5, 3.0)
        base = E.from_latent(lat)
        sel = E.parse_layers(layers, g.n_latent)
        edited = [E.apply_direction(base, vec, a, sel) for a in alphas]
        stem = _stem(latent)
        for a, e in zip(alphas, edited):
            rec = E.to_latent(e, lat)
            if lat.get("alignment"):  # the edit still belongs to the photo the original was aligned from
                rec["alignment"] = lat["alignment"]
            save_latent(rec, outdir / f"{stem}.{name}{a:+g}.latent.pt")
        images = E.render(g, edited)
        strip = _save(images, outdir / f"{stem}.{name}.png")
        click.echo(f"{name} at alpha {', '.join(f'{a:g}' for a in alphas)} → {strip}")
        if paste_back:
            from types import SimpleNamespace

            from .photo import write_pasted

            for a, img in zip(alphas, images):
                item = SimpleNamespace(name=f"{stem}.{name}{a:+g}", latent=lat, image=img.cpu())
                click.echo(f"  pasted back → {write_pasted(item, outdir)}")

    @main.command()
    @click.argument("a", type=click.Path())
    @click.argument("b", type=click.Path())
    @click.option("--steps", "-k", type=int, default=7, show_default=True, help="images in the row (ends included)")
    @common_model
    @common_out
    @handle_errors
    def interpolate(a, b, steps, model, out):
        """A row of images from latent A to latent B (linear in W+ / style maps)."""
        from . import edit as E
        from .latents import open_latent
        from .outputs import ensure_out_dir

        if steps < 2:
            raise OptinvError(f"--steps must be ≥ 2, got {steps}")
        outdir = ensure_out_dir(out)
        (la, g), (lb, _) = open_latent(a, model), open_latent(b, model)
        ts = [i / (steps - 1) for i in range(steps)]
        row = E.interpolate(E.from_latent(la), E.from_latent(lb), ts)
        path = _save(E.render(g, row), outdir / f"{_stem(a)}_to_{_stem(b)}.png")
        click.echo(f"interpolation → {path}")

    @main.command()
    @click.argument("a", type=click.Path())
    @click.argument("b", type=click.Path())
    @click.option("--layers", required=True, help="layers taken from B, e.g. 0-3 (coarse) or 6-9 (fine)")
    @common_model
    @common_out
    @handle_errors
    def mix(a, b, layers, model, out):
        """Style mixing: LAYERS from B, the rest from A. Writes A | B | mix."""
        from . import edit as E
        from .latents import open_latent
        from .outputs import ensure_out_dir

        outdir = ensure_out_dir(out)
        (la, g), (lb, _) = open_latent(a, model), open_latent(b, model)
        ea, eb = E.from_latent(la), E.from_latent(lb)
        m = E.mix(ea, eb, E.parse_layers(layers, g.n_latent))
        path = _write_pair_result(g, ea, eb, m, la, outdir, f"{_stem(a)}_mix_{_stem(b)}")
        click.echo(f"mix → {path}")

    @main.command()
    @click.argument("a", type=click.Path())
    @click.argument("b", type=click.Path())
    @click.option("--mask", default="vertical", show_default=True,
                  help="'vertical' (top from A, bottom from B, smooth ramp) or a grayscale PNG (white = B)")
    @click.option("--layers", default=None, help="layers to blend (default: all)")
    @common_model
    @common_out
    @handle_errors
    def blend(a, b, mask, layers, model, out):
        """Blend two codes' style maps with a mask (W+ codes act as 1×1 maps). Writes A | B | blend."""
        from . import edit as E
        from .imageio import load_image
        from .latents import open_latent
        from .outputs import ensure_out_dir

        outdir = ensure_out_dir(out)
        (la, g), (lb, _) = open_latent(a, model), open_latent(b, model)
        if mask == "vertical":
            m = E.vertical_mask(g.size)
        else:
            m = (load_image(mask, size=g.size).mean(0) + 1) / 2
        ea, eb = E.from_latent(la), E.from_latent(lb)
        out_e = E.blend_maps(ea, eb, m, E.parse_layers(layers, g.n_latent), feature_sizes=g.layer_sizes())
        path = _write_pair_result(g, ea, eb, out_e, la, outdir, f"{_stem(a)}_blend_{_stem(b)}")
        click.echo(f"blend → {path}")

    @main.group()
    def directions():
        """Fit and list edit directions."""

    @directions.command("fit")
    @click.argument("listing", type=click.Path(exists=False))
    @click.option("--label", required=True, help="the JSON key holding the label (0/1 → logistic, else ridge)")
    @click.option("--out", "-o", "dest", required=True, type=click.Path(dir_okay=False), help="directions file to write")
    @common_model
    @handle_errors
    def directions_fit(listing, label, dest, model):
        """Fit a direction from LISTING: JSON lines with a latent path ("latent") and the label."""
        from .directions import save_directions
        from .edit import fit_direction
        from .latents import load_latent

        path = Path(listing)
        if not path.exists():
            raise OptinvError(f"{path}: no such file")
        latents, labels, first = [], [], None
        for i, line in enumerate(path.read_text().splitlines()):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise OptinvError(f"{path}:{i + 1}: not valid JSON") from None
            lat_path = rec.get("latent") or rec.get("outputs", {}).get("latent")
            if lat_path is None or label not in rec:
                raise OptinvError(f"{path}:{i + 1}: needs keys 'latent' and {label!r}")
            lat = load_latent((path.parent / lat_path) if not Path(lat_path).is_absolute() else lat_path)
            first = first or lat
            latents.append(lat["wplus"])
            labels.append(float(rec[label]))
        if first is None:
            raise OptinvError(f"{path}: no latents listed")
        g = _model_for(first, model)
        vec = fit_direction(torch.stack(latents), torch.tensor(labels))
        save_directions({label: {"vector": vec, "method": "fit", "label": label, "samples": len(labels)}}, g, dest)
        click.echo(f"{label}: direction from {len(labels)} latents → {dest}")
