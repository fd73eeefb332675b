"""``optinv directions discover`` and multi-path edits (``optinv edit LATENT --edit smile=+2``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import click

from optinv.cli.types import locked_out_dir, overwrite_option
from optinv.errors import OptinvError


def _predictor(g, spec: str | None):
    from optinv.edit.discover.attributes import load_predictor, shipped_predictor_path

    if spec == "none":
        return None
    path = Path(spec) if spec else shipped_predictor_path(g)
    if not path.exists():
        if spec:
            raise OptinvError(f"{path}: no such attribute predictor")
        return None
    return load_predictor(path)


def describe_paths(ps) -> list[str]:
    """One line per path: its name and the attributes it moves (signed change per unit shift)."""
    lines = []
    for name in ps.names:
        eff = ps.effects.get(name, {})
        top = sorted(eff.items(), key=lambda kv: -abs(kv[1]))[:4]
        lines.append(f"  {name}: " + (", ".join(f"{a} {v:+.3f}" for a, v in top) if top else "(unnamed)"))
    return lines


def path_edit(latent: str, edits: Sequence[str], paths: str | None, model: str | None, out: str,
              overwrite: bool, stem: str, inputs: list[str]) -> None:
    """Apply several named paths to one latent; write the edited latent and original | edited.
    ``stem``: the latent's name; ``inputs``: files that must not be overwritten (the edit command's)."""
    from optinv.edit import edits as E
    from optinv.cli.types import Planned
    from optinv.edit.discover.apply import edit_record, order_note
    from optinv.edit.discover.pathsfile import parse_edits, paths_for
    from optinv.io.fileio import name_part, written_together
    from optinv.io.image_files import atomic_save_image, make_grid
    from optinv.io.latents import open_latent, save_latent
    from optinv.io.outputs import to_pil01

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
    ims = [to_pil01(x.cpu()) for x in E.render(g, [E.from_latent(rec), E.from_latent(edited)])]
    with written_together():
        save_latent(edited, outdir / f"{stem}.latent.pt")
        pic = atomic_save_image(make_grid(ims, cols=2, scale=max(1, 128 // g.size)), outdir / f"{stem}.png")
    click.echo(f"{', '.join(f'{n} {t:+g}' for n, t in parsed)} ({ps.method} paths) → {pic}")


def _finished(dest: Path, checkpoint: Path, steps: int) -> bool:
    """The paths file exists and its run has nothing left to do (no checkpoint, or one at ≥ steps)."""
    if not dest.is_file():
        return False
    if not checkpoint.is_file():
        return True
    import torch

    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True).get("step", 0)) >= steps
    except Exception:
        return False


def register(main: click.Group, handle_errors) -> None:
    """Attach ``directions discover`` (the ``directions`` group must exist already)."""
    directions = main.commands.get("directions")
    if not isinstance(directions, click.Group):
        raise RuntimeError("register the directions group before cli_discover")

    @directions.command("discover")
    @click.option("--method", type=click.Choice(["linear", "warped", "curvilinear"]), default="curvilinear",
                  show_default=True, help="straight directions, RBF vector fields, or a normalizing flow's coordinates")
    @click.option("--k", "k", type=int, default=8, show_default=True, help="how many paths")
    @click.option("--space", type=click.Choice(["z", "w"]), default="w", show_default=True,
                  help="w edits inverted latents; z only random samples")
    @click.option("--steps", type=int, default=1000, show_default=True, help="training steps (in all, with resumes)")
    @click.option("--batch", type=int, default=8, show_default=True)
    @click.option("--max-minutes", type=float, default=None, help="stop after this long (resume later)")
    @click.option("--alpha", type=float, default=0.1, show_default=True, help="curvilinear: weight of (log|det|)²")
    @click.option("--speed", type=float, default=1.0, show_default=True,
                  help="curvilinear: weight of (log path speed)², keeping a shift of t about t latent units")
    @click.option("--lr-paths", type=float, default=None,
                  help="learning rate of the paths (default 1e-3; also changes a resumed run's: a slower second stage)")
    @click.option("--start-from", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="curvilinear: start at this linear run's checkpoint (its directions and reconstructor)")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--checkpoint", default=None, type=click.Path(dir_okay=False),
                  help="resumable state (default: OUT.ckpt); an existing one is continued")
    @click.option("--predictor", default=None, help="attribute predictor that names the paths "
                  "(default: the model's shipped one; 'none' → path0, path1 …)")
    @click.option("--out", "-o", "dest", default=None, type=click.Path(dir_okay=False),
                  help="paths file to write (default: MODEL.METHOD.paths.pt here)")
    @click.option("--model", "-m", default=None, help="generator (default: the embedded one)")
    @overwrite_option
    @handle_errors
    def directions_discover(method, k, space, steps, batch, max_minutes, alpha, speed, lr_paths, start_from, seed,
                            checkpoint, predictor, dest, model, overwrite):
        """Learn K edit paths without labels (a reconstructor must tell them apart), name them, save them."""
        from optinv.io.checkpoints import card_name, load_generator
        from optinv.edit.discover.run import discover_paths
        from optinv.edit.discover.train import DiscoverSettings
        from optinv.io.outputs import check_writable_file

        g = load_generator(model)
        dest = Path(dest or f"{card_name(g)}.{method}.paths.pt")
        checkpoint = Path(checkpoint or f"{dest}.ckpt")
        if not overwrite and _finished(dest, checkpoint, steps):
            click.echo(f"{dest} already exists and its run is done, kept (--overwrite rewrites it; "
                       "a larger --steps trains further)")
            return
        settings = DiscoverSettings(method=method, k=k, steps=steps, batch=batch, alpha=alpha, speed=speed,
                                    start_from=str(start_from or ""), seed=seed)
        settings.check()
        if max_minutes is not None and not (math.isfinite(max_minutes) and max_minutes > 0):
            raise OptinvError(f"--max-minutes must be a finite number > 0, got {max_minutes}")
        if lr_paths is not None and not (math.isfinite(lr_paths) and lr_paths > 0):
            raise OptinvError(f"--lr-paths must be a finite number > 0, got {lr_paths}")
        if k > g.style_dim:
            raise OptinvError(f"--k must be ≤ {g.style_dim} (the latent's dimension), got {k}")
        check_writable_file(dest)  # before training, not after it
        check_writable_file(checkpoint)
        path, ps = discover_paths(g, settings, space, dest, checkpoint, _predictor(g, predictor),
                                  max_seconds=max_minutes * 60 if max_minutes else None, lr_paths=lr_paths)
        click.echo(f"{ps.method} paths after {ps.card['steps']} steps (reconstructor accuracy "
                   f"{ps.card['last_accuracy']:.2f}) → {path}")
        for line in describe_paths(ps):
            click.echo(line)
        if not ps.commutes:
            click.echo("note: warped paths do not commute: with several edits the order matters")
