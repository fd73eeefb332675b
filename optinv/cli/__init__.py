"""The ``optinv`` command: a thin layer that parses options, calls the engine, writes outputs."""

from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path

import click

from optinv.cli.types import FINITE, SEED, Planned, may_write, overwrite_option
from optinv.errors import OptinvError

DEBUG_ENV = "OPTINV_DEBUG"


# Engine parameter → CLI flag, the one table: the engine names its parameters in `backquotes`
# in its messages and notes; the CLI shows the flags a user types. Every JobOptions field is
# added from its declaration (optinv.engine.options); the rest are listed here.
FLAGS: dict[str, str] = {"model": "--model", "device": "--device", "out": "--out", "scale": "--scale",
                         "duplicates": "--duplicates", "job": "--job", "recursive": "--recursive",
                         "size": "--size", "transform": "--transform",
                         "k": "--k"}
_PARAM = re.compile(r"`([a-z_]+)`")


def _flag(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


@functools.cache
def flag_table() -> dict[str, str]:
    from optinv.engine.options import cli_fields

    return {**{f.name: _flag(f) for f in cli_fields()}, **FLAGS}


def to_flags(text: str) -> str:
    """Rewrite the engine's `parameter` names as CLI flags (unknown names lose their quotes)."""
    table = flag_table()
    return _PARAM.sub(lambda m: table.get(m.group(1), m.group(1)), text)


def _click_option(f):
    """One click option from a JobOptions field (type, default, choices and help declared there)."""
    meta = f.metadata
    kw: dict = {"default": f.default, "help": to_flags(meta["help"]) or None}
    if meta["type"] is bool:
        kw["is_flag"] = True
    elif meta["choices"]:
        kw["type"] = click.Choice(list(meta["choices"]))
    elif meta["path"]:
        kw["type"] = click.Path(dir_okay=False)
    elif meta["type"] is float:
        kw["type"] = FINITE
    elif f.name == "seed":
        kw["type"] = SEED
    elif meta["type"] is not None:
        kw["type"] = meta["type"]
    if meta["show_default"]:
        kw["show_default"] = True
    return click.option(_flag(f), f.name, **kw)


def job_options(f):
    """Options shared by invert, pulse, paint and batch: the JobOptions fields plus where and how to run."""
    from optinv.engine.options import cli_fields

    opts = [
        click.option("--model", "-m", default=None, help="generator file or shipped model name (default: embedded synthfaces64)"),
        click.option("--out", "-o", default="out", show_default=True, type=click.Path(file_okay=False), help="output folder"),
        *[_click_option(field) for field in cli_fields()],
        click.option("--gif", is_flag=True, help="also write NAME.gif of the optimisation"),
        click.option("--device", default="auto", show_default=True, help="auto (cuda > mps > cpu), cpu, cuda, mps"),
        click.option("--quiet", "-q", is_flag=True, help="no progress bar"),
        overwrite_option,
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _options(kw: dict):
    """Click's keyword arguments → the engine's JobOptions (the same names, by construction)."""
    from optinv.engine.options import GIF_FRAMES, JobOptions, cli_fields

    return JobOptions.of(**{f.name: kw[f.name] for f in cli_fields()}, progress=not kw["quiet"],
                         frames=GIF_FRAMES if kw["gif"] else 0)


def _write(results, kw: dict, said: set[str] | None = None) -> int:
    """Write each result at once and say what it is; returns how many diverged.

    A note is said once per run (the LPIPS fallback concerns every image); the NAME.json of
    each result keeps all of its own notes.
    """
    from optinv.io.outputs import write_item
    from optinv.engine.results import diverged

    said = said if said is not None else set()
    out = Path(kw["out"])
    bad = 0
    for r in results:
        r.notes = [to_flags(n) for n in r.notes]
        paths = write_item(r, out, gif=kw["gif"])
        m = r.metrics
        key = "psnr" if "psnr" in m else "fit_mse"
        val = f"{m[key]:.2f} dB" if key == "psnr" else f"{m[key]:.3g}"
        state = " DIVERGED," if diverged(r) else ""
        bad += diverged(r)
        click.echo(f"{r.name}:{state} {key} {val} after {m['steps']} steps ({m['seconds']:.1f} s) → {paths['image']}")
        if m.get("identity_distance") is not None:
            click.echo(f"  face identity distance to the input {m['identity_distance']:.3f} (dlib: < 0.6 = same person)")
        if kw.get("paste_back"):
            from optinv.faces.photo import write_pasted

            click.echo(f"  pasted back → {write_pasted(r, out)}")
        for note in r.notes:
            if note not in said:
                said.add(note)
                click.echo(f"  note: {note}", err=True)
    return bad


def _run_job(job: str, sources: list[str], kw: dict, opts, **job_kw) -> None:
    """Run ``job`` over ``sources`` the way every command writes results.

    Output names are planned for the whole run before anything is written (unique, never an
    input's file); results whose files all exist are kept and skipped unless ``--overwrite``;
    every batch of images is written as soon as it is done (Ctrl-C keeps what is finished);
    one run at a time writes to ``--out``. A diverged result is written and exits 1.
    """
    from optinv.engine import jobs
    from optinv.engine.device import get_model, resolve_device
    from optinv.io.image_files import load_image
    from optinv.io.names import duplicate_names, result_files
    from optinv.engine.options import check_duplicates
    from optinv.io.outputs import OutputLock, existing, inputs_in, plan_names

    out = Path(kw["out"])
    dup = job_kw.get("duplicates", 1) if job == "pulse" else 1
    check_duplicates(dup)  # before any name is planned
    extra = [".pasted.png"] if kw.get("paste_back") else []

    def result_names(name: str) -> list[str]:
        return duplicate_names(name, dup)

    def files(name: str) -> list[str]:
        return [f for n in result_names(name) for f in result_files(n, kw["gif"]) + [n + x for x in extra]]

    run = {"invert": jobs.invert, "pulse": jobs.pulse, "paint": jobs.paint, "encode": jobs.encode}[job]
    with OutputLock(out):
        stems = [Path(src).stem for src in sources]
        names = plan_names(stems, files, reserved=inputs_in(out, sources))
        todo = []
        for src, stem, name in zip(sources, stems, names):
            if name != stem:
                click.echo(f"  note: {src}: results named {name} (the name {stem} is taken by an input or another "
                           f"result of this run)", err=True)
            if not kw.get("overwrite") and existing(out, files(name)):
                click.echo(f"{name}: results already in {out}, kept (--overwrite redoes them)")
            else:
                todo.append((src, name))
        if not todo:
            return
        if not getattr(opts, "align", False):  # a bad file is refused before any work, not after hours
            for src, _ in todo:
                load_image(src, keep_alpha=job == "paint", crop=opts.crop)
        g = get_model(kw["model"], resolve_device(kw["device"]))
        said: set[str] = set()
        bad = 0
        step = max(1, opts.batch)
        for first in range(0, len(todo), step):
            chunk = todo[first:first + step]
            results = run([src for src, _ in chunk], model=g, device=kw["device"], options=opts, **job_kw)
            for (_, name), k in zip(chunk, range(0, len(results), dup)):
                for r, rname in zip(results[k:k + dup], result_names(name)):
                    r.name = rname
            bad += _write(results, kw, said)
    if bad:
        raise OptinvError(f"{bad} result(s) diverged (the loss became NaN or infinite); their best finite "
                          f"results were written: try a smaller `lr`")


def _prepare(kw: dict):
    from optinv.io.outputs import ensure_out_dir

    ensure_out_dir(kw["out"])
    return _options(kw)


def handle_errors(f):
    """One line on stderr and exit 1 for user errors; a traceback only with OPTINV_DEBUG=1."""
    @functools.wraps(f)
    def wrapper(*a, **kw):
        try:
            return f(*a, **kw)
        except OptinvError as e:
            if os.environ.get(DEBUG_ENV):
                raise
            click.echo(f"error: {to_flags(str(e))}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except OSError as e:  # a write or read the engine did not wrap: still one line
            if os.environ.get(DEBUG_ENV):
                raise
            where = f" {e.filename}" if getattr(e, "filename", None) else ""
            click.echo(f"error: cannot use{where}: {e.strerror or e}", err=True)
            sys.exit(1)
        except (MemoryError, RuntimeError, ValueError, OverflowError) as e:
            if os.environ.get(DEBUG_ENV):
                raise
            from optinv.io.fileio import first_line

            click.echo(f"error: {type(e).__name__}: {first_line(e, 300)} (set {DEBUG_ENV}=1 for a traceback)", err=True)
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
    _run_job("invert", list(images), kw, _prepare(kw))


@main.command()
@click.argument("lowres", nargs=-1, required=True, type=click.Path())
@click.option("--scale", type=int, default=None, help="upscaling factor (default: model resolution / input size)")
@click.option("--duplicates", type=int, default=1, show_default=True, help="K different answers from K seeds")
@job_options
@handle_errors
def pulse(lowres, scale, duplicates, **kw):
    """Super-resolve LOWRES images: find faces that downscale to them (PULSE)."""
    _run_job("pulse", list(lowres), kw, _prepare(kw), scale=scale, duplicates=duplicates)


@main.command()
@click.argument("references", nargs=-1, required=True, type=click.Path())
@job_options
@handle_errors
def paint(references, **kw):
    """Generate images that match RGBA colour REFERENCES where alpha > 0."""
    _run_job("paint", list(references), kw, _prepare(kw))


@main.command("train-encoder", add_help_option=False,
              context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
@handle_errors
def train_encoder(ctx):
    """Train a W+ or StyleMap encoder for a generator (resumable; --help lists its options)."""
    from optinv.run.encoder_training import main as train_main

    train_main(list(ctx.args))


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

    from optinv.run.batch import BatchConfig, run_batch

    opts = _prepare(kw)
    if opts.paste_back:
        raise OptinvError("batch does not paste back: with --align each latent keeps its alignment, "
                          "and optinv paste RESULT --into PHOTO puts a result back")
    s = run_batch(BatchConfig(job=job, input_dir=Path(input_dir), out_dir=Path(kw["out"]), options=opts,
                              model=kw["model"], device=kw["device"], recursive=recursive, scale=scale,
                              duplicates=duplicates, gif=kw["gif"], progress=not kw["quiet"], wording=to_flags,
                              overwrite=kw["overwrite"]))
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
    from optinv.io.outputs import OutputLock, ensure_out_dir, to_pil01
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
            dest = atomic_save_image(to_pil01(img.cpu()), outdir / f"{name}.render.png")
            click.echo(f"{path} → {dest}")
        todo = [(s, n) for s, n in zip(seeds, seed_names) if not plan.keep(n + ".png")]
        if todo:
            g = load_generator(model, device=dev)
        for s, name in todo:
            z = torch.randn(1, g.style_dim, generator=torch.Generator().manual_seed(s)).to(dev)
            w = truncated_w(g, z, truncation)
            with torch.no_grad():
                img = g.synthesis(w[:, None, :].expand(-1, g.n_latent, -1))
            dest = atomic_save_image(to_pil01(to_unit(img[0]).cpu()), outdir / f"{name}.png")
            click.echo(f"seed {s} → {dest}")


@main.command()
@click.argument("model", required=False)
@click.option("--model", "-m", "model_option", default=None, help="the same as MODEL, spelled as the other commands do")
@handle_errors
def info(model, model_option):
    """Print the model card of MODEL (default: the embedded model)."""
    from optinv.io.checkpoints import describe, load_generator

    if model and model_option and model != model_option:
        raise click.UsageError(f"two models given ({model} and {model_option}): name one")
    click.echo(describe(load_generator(model or model_option)))


@main.command()
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


ENCODE_FIELDS = ("encoder", "encoder_passes", "batch", "crop", "align", "face", "landmarks", "paste_back")


def encode_options(f):
    """`encode`'s options: the JobOptions fields an encoder pass uses, declared there (not again here)."""
    from optinv.engine.options import cli_fields

    chosen = [_click_option(field) for field in cli_fields() if field.name in ENCODE_FIELDS]
    for o in reversed(chosen):
        f = o(f)
    return f


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--space", type=click.Choice(["wplus", "stylemap"]), default="wplus", show_default=True)
@click.option("--model", "-m", default=None, help="generator file or shipped model name")
@click.option("--out", "-o", default="out", show_default=True, type=click.Path(file_okay=False))
@encode_options
@click.option("--device", default="auto", show_default=True)
@overwrite_option
@handle_errors
def encode(images, space, model, out, device, overwrite, **fields):
    """Encoder only, no optimisation: the fast path (writes the same outputs as invert)."""
    from optinv.engine import jobs
    from optinv.io.outputs import ensure_out_dir

    ensure_out_dir(out)
    opts = jobs.JobOptions.of(space=space, **fields)
    _run_job("encode", list(images), {"out": out, "gif": False, "paste_back": fields["paste_back"], "model": model,
                                      "device": device, "overwrite": overwrite}, opts)


@main.command()
@click.argument("pred_dir", type=click.Path(file_okay=False))
@click.argument("truth_dir", type=click.Path(file_okay=False))
@click.option("--scale", type=click.IntRange(min=1), default=None,
              help="also the downscale consistency: PSNR of both images' ×K bicubic downscales")
@click.option("--lpips-backbone", type=click.Path(dir_okay=False), default=None,
              help="torchvision VGG16 ImageNet weights for LPIPS (no download happens)")
@click.option("--no-faces", is_flag=True, help="skip the dlib identity distance and face detection")
@click.option("--out", "-o", default="evaluation", show_default=True, type=click.Path(file_okay=False),
              help="folder for evaluation.md, evaluation.csv and NAME.json per image")
@handle_errors
def evaluate(pred_dir, truth_dir, scale, lpips_backbone, no_faces, out):
    """Score the images in PRED_DIR against TRUTH_DIR (paired by file name): PSNR, SSIM, MS-SSIM,
    LPIPS, identity distance, faces found, and with --scale the downscale consistency."""
    from optinv.run.evaluate import evaluate as run_evaluation
    from optinv.run.evaluate import markdown, write_report

    for d in (pred_dir, truth_dir):
        if Path(out).resolve() == Path(d).resolve():
            raise OptinvError(f"--out {out} is an input folder: its NAME.json files would be overwritten")
    ev = run_evaluation(pred_dir, truth_dir, scale=scale, lpips_backbone=lpips_backbone, faces=not no_faces)
    ev.missing = {c: to_flags(why) for c, why in ev.missing.items()}
    paths = write_report(ev, out, pred_dir, truth_dir)
    click.echo(markdown(ev), nl=False)
    click.echo(f"{len(ev.rows)} pairs → {paths['markdown']}, {paths['csv']}")


from optinv.cli.edit import register as _register_edit_commands  # noqa: E402

_register_edit_commands(main, handle_errors)

from optinv.cli.faces import register as _register_face_commands  # noqa: E402
from optinv.cli.formats import register as _register_format_commands  # noqa: E402

_register_face_commands(main, handle_errors, to_flags)
_register_format_commands(main, handle_errors)  # after the edit commands: adds `directions sefa`

from optinv.cli.discover import register as _register_discover_command  # noqa: E402

_register_discover_command(main, handle_errors)  # adds `directions discover`

from optinv.studio.command import register as _register_studio_command  # noqa: E402

_register_studio_command(main, handle_errors, to_flags)
