"""Commands for other projects' files: ``export`` (NVIDIA npz, rosinality pt, a tuned generator) and
``directions sefa``."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from optinv.cli.types import may_write, overwrite_option
from optinv.errors import OptinvError

SUFFIX = {"npz": ".projected_w.npz", "rosinality": ".rosinality.pt", "rosinality-generator": ".generator.pt"}


def register(main: click.Group, handle_errors) -> None:
    """Attach ``export`` and ``directions sefa`` (the ``directions`` group must exist already)."""
    directions = main.commands.get("directions")
    if not isinstance(directions, click.Group):
        raise RuntimeError("register the directions group before cli_formats")
    _register_export(main, handle_errors)
    _register_sefa(directions, handle_errors)


def _register_export(main: click.Group, handle_errors) -> None:
    @main.command()
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



def _register_sefa(directions: click.Group, handle_errors) -> None:
    @directions.command("sefa")
    @click.option("--k", "k", type=int, default=10, show_default=True, help="how many directions")
    @click.option("--layers", default=None, help="latent layers whose modulations count, e.g. 0-3 (default: all)")
    @click.option("--out", "-o", "dest", default=None, type=click.Path(dir_okay=False),
                  help="directions file (default: MODEL.sefa.pt here); .npz writes GANSpace's format")
    @click.option("--preview", default=None, type=click.Path(dir_okay=False),
                  help="also write a PNG: one row per direction, −3σ … +3σ from the average face")
    @click.option("--model", "-m", default=None, help="generator (default: the embedded model)")
    @overwrite_option
    @handle_errors
    def directions_sefa(k, layers, dest, preview, model, overwrite):
        """Unsupervised directions in closed form from the generator's modulation weights (SeFa)."""
        from optinv.io.checkpoints import card_name, load_generator
        from optinv.edit.direction_formats import write_ganspace
        from optinv.edit.directions import save_directions
        from optinv.edit.edits import parse_layers
        from optinv.io.outputs import check_writable_file

        g = load_generator(model)
        dest = Path(dest or f"{card_name(g)}.sefa.pt")
        inputs = [p for p in (g.card.get("source_file", ""), model) if p]
        preview = _preview_target(preview, dest, inputs, overwrite)
        if not may_write(dest, inputs, overwrite):
            return
        check_writable_file(dest)
        if preview is not None:
            check_writable_file(preview)
        table, std = _sefa_table(g, k, parse_layers(layers, g.n_latent) if layers else None)
        if dest.suffix == ".npz":
            vecs = torch.stack([v["vector"] / v["stdev"] for v in table.values()])
            write_ganspace(vecs, std, g.w_avg, dest)
        else:
            save_directions(table, g, dest)
        for name, v in table.items():
            extra = f", cos {v['cosine']:.2f} with {v['label']}" if "label" in v else ""
            click.echo(f"{name}: eigenvalue {v['eigenvalue']:.2f}, σ {v['stdev']:.3f}{extra}")
        click.echo(f"{len(table)} directions → {dest}")
        if preview:
            click.echo(f"preview → {_preview(g, table, preview)}")


def _preview_target(preview: str | None, dest: Path, inputs: list, overwrite: bool) -> Path | None:
    """Where ``--preview`` goes, checked before any work: a PNG, never the directions file or an
    input, and an existing file is kept unless ``--overwrite`` (None: no preview to write)."""
    from optinv.io.outputs import is_input

    if not preview:
        return None
    path = Path(preview)
    if path.suffix.lower() != ".png":
        raise OptinvError(f"--preview {preview} must be a .png file")
    if is_input(path, [dest]):
        raise OptinvError(f"--preview {preview} is the directions file (-o): choose another name")
    return path if may_write(path, inputs, overwrite) else None


def _sefa_table(g, k: int, sel) -> tuple[dict, torch.Tensor]:
    """SeFa directions scaled so that alpha 1 is one standard deviation of w along each."""
    from optinv.edit.direction_formats import sefa_directions
    from optinv.edit.directions import shipped_directions_path

    named = None
    shipped = shipped_directions_path(g)
    if shipped.exists():  # name each direction after the labelled one it is closest to
        named = {n: d["vector"] for n, d in torch.load(shipped, weights_only=True)["directions"].items()}
    table = sefa_directions(g, k, sel, named=named)
    std = _stdev_along(g, torch.stack([v["vector"] for v in table.values()]))
    for entry, s in zip(table.values(), std):
        entry["stdev"] = float(s)
        entry["vector"] = entry["vector"] * s
    return table, std


def _stdev_along(g, vecs: torch.Tensor, n: int = 2000) -> torch.Tensor:
    """Standard deviation of w = mapping(z) projected on each unit direction (fixed seed)."""
    z = torch.randn(n, g.style_dim, generator=torch.Generator().manual_seed(0)).to(g.w_avg.device)
    with torch.no_grad():
        w = g.mapping(z).cpu()
    unit = vecs / vecs.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (w @ unit.T).std(0)


def _preview(g, table: dict, path: Path) -> Path:
    from optinv.io.image_files import atomic_save_image, make_grid
    from optinv.io.outputs import to_pil01

    alphas = [-3.0, -1.5, 0.0, 1.5, 3.0]
    base = g.w_avg.detach().cpu()
    rows = []
    for entry in table.values():
        ws = torch.stack([base + a * entry["vector"] for a in alphas])[:, None].expand(-1, g.n_latent, -1)
        with torch.no_grad():
            rows.append(((g.synthesis(ws.to(g.w_avg.device)) + 1) / 2).clamp(0, 1).cpu())
    ims = [to_pil01(x) for x in torch.cat(rows)]
    if not ims:
        raise OptinvError("no directions to preview")
    return atomic_save_image(make_grid(ims, cols=len(alphas), scale=max(1, 96 // g.size)), path)
