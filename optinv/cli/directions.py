"""``optinv directions``: one group, all of its commands here — ``fit`` (from labelled latents),
``sefa`` (closed form from the generator's weights) and ``discover`` (paths learned without labels)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import torch

from optinv.cli.common import (handle_errors, latent_model_option, may_write, model_for, overwrite_option,
                               same_model)
from optinv.errors import OptinvError



@click.group()
def directions():
    """Fit and list edit directions."""

@directions.command("fit")
@click.argument("listing", type=click.Path(exists=False))
@click.option("--label", required=True, help="the JSON key holding the label (0/1 → logistic, else ridge)")
@click.option("--out", "-o", "dest", required=True, type=click.Path(dir_okay=False), help="directions file to write")
@latent_model_option
@overwrite_option
@handle_errors
def directions_fit(listing, label, dest, model, overwrite):
    """Fit a direction from LISTING: JSON lines with a latent path ("latent") and the label."""
    from optinv.edit.directions import save_directions
    from optinv.edit.edits import fit_direction
    from optinv.io.latents import load_latent
    from optinv.io.outputs import check_writable_file

    path = Path(listing)
    latents, labels, first = read_listing(path, label)
    if not may_write(dest, [path, *latents], overwrite):
        return
    check_writable_file(dest)
    records = [load_latent(p) for p in latents]
    same_model(records, [str(p) for p in latents])
    g = model_for(records[0], model)
    vec = fit_direction(torch.stack([r["wplus"] for r in records]), torch.tensor(labels, dtype=torch.float64))
    save_directions({label: {"vector": vec, "method": "fit", "label": label, "samples": len(labels)}}, g, dest)
    click.echo(f"{label}: direction from {len(labels)} latents → {dest}")


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


def read_listing(path: Path, label: str) -> tuple[list[Path], list[float], Path]:
    """A listing's latent paths (relative to the listing) and numeric labels, or one clear error
    that names the line: every line is a JSON object with a latent path and a finite number."""
    import math

    if not path.is_file():
        raise OptinvError(f"{path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise OptinvError(f"{path}: not a readable listing ({e})") from None
    latents: list[Path] = []
    labels: list[float] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        where = f"{path}:{i + 1}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise OptinvError(f"{where}: not valid JSON") from None
        if not isinstance(rec, dict):
            raise OptinvError(f"{where}: each line must be a JSON object with keys 'latent' and {label!r}")
        outputs = rec.get("outputs")
        lat_path = rec.get("latent") or (outputs.get("latent") if isinstance(outputs, dict) else None)
        if not isinstance(lat_path, str) or label not in rec:
            raise OptinvError(f"{where}: needs keys 'latent' (a path) and {label!r}")
        value = rec[label]
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise OptinvError(f"{where}: label {label!r} is {value!r}, not a finite number")
        latents.append(Path(lat_path) if Path(lat_path).is_absolute() else path.parent / lat_path)
        labels.append(float(value))
    if not latents:
        raise OptinvError(f"{path}: no latents listed")
    if len(set(labels)) < 2:
        raise OptinvError(f"{path}: every label {label!r} is {labels[0]:g}; a direction needs at least two "
                          f"different values (both classes)")
    return latents, labels, path


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
    from optinv.io.image_files import to_pil

    alphas = [-3.0, -1.5, 0.0, 1.5, 3.0]
    base = g.w_avg.detach().cpu()
    rows = []
    for entry in table.values():
        ws = torch.stack([base + a * entry["vector"] for a in alphas])[:, None].expand(-1, g.n_latent, -1)
        with torch.no_grad():
            rows.append(((g.synthesis(ws.to(g.w_avg.device)) + 1) / 2).clamp(0, 1).cpu())
    ims = [to_pil(x) for x in torch.cat(rows)]
    if not ims:
        raise OptinvError("no directions to preview")
    return atomic_save_image(make_grid(ims, cols=len(alphas), scale=max(1, 96 // g.size)), path)


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
