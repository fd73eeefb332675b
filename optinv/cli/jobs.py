"""The job commands: ``invert``, ``pulse``, ``paint``, ``encode``, ``batch``, ``train-encoder`` and
``evaluate``. Each parses its options and hands the work to :mod:`optinv.run.runner` (or the
module that owns it); what it prints is the only thing decided here."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from optinv.cli.common import (encode_options, handle_errors, job_options, overwrite_option, prepare_options,
                               to_flags)
from optinv.errors import OptinvError


def _say(results, written, kw: dict, said: set[str]) -> int:
    """Say what each written result is; returns how many diverged.

    A note is said once per run (the LPIPS fallback concerns every image); the NAME.json of
    each result keeps all of its own notes.
    """
    from optinv.engine.results import diverged

    out = Path(kw["out"])
    bad = 0
    for r, paths in zip(results, written):
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


def _run_job(spec, sources: list[str], kw: dict) -> None:
    """Run ``spec`` over ``sources`` through :mod:`optinv.run.runner`, saying what happens.

    Output names are planned for the whole run before anything is written (unique, never an
    input's file); results whose files all exist are kept and skipped unless ``--overwrite``;
    every input is decoded once and a bad file is refused before any work; every batch of images
    is written as soon as it is done (Ctrl-C keeps what is finished); one run at a time writes to
    ``--out``. A diverged result is written and exits 1.
    """
    from optinv.engine.device import get_model, resolve_device
    from optinv.io.outputs import OutputLock
    from optinv.run import runner

    out = Path(kw["out"])
    extra = [".pasted.png"] if kw.get("paste_back") else []
    with OutputLock(out):
        todo = []
        for p in runner.plan(sources, out, spec, kw["gif"], extra):
            if p.renamed:
                click.echo(f"  note: {p.source}: results named {p.name} (the name {Path(p.source).stem} is taken by "
                           f"an input or another result of this run)", err=True)
            if not kw.get("overwrite") and runner.already_written(p, out, spec, kw["gif"], extra):
                click.echo(f"{p.name}: results already in {out}, kept (--overwrite redoes them)")
            else:
                todo.append(p)
        if not todo:
            return
        inputs = runner.inputs_for([p.source for p in todo], spec)  # decoded once: a bad file fails before any work
        g = get_model(kw["model"], resolve_device(kw["device"]))
        said: set[str] = set()
        bad = 0
        for chunk in runner.batches(list(zip(inputs, todo)), spec.options.batch):
            results = runner.dispatch(spec, [i for i, _ in chunk], g, kw["device"], names=[p.name for _, p in chunk])
            bad += _say(results, runner.write(results, out, kw["gif"], to_flags), kw, said)
    if bad:
        raise OptinvError(f"{bad} result(s) diverged (the loss became NaN or infinite); their best finite "
                          f"results were written: try a smaller `lr`")


def _spec(job: str, opts, **kw):
    from optinv.run.runner import JobSpec

    return JobSpec(job, opts, **kw)


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@job_options
@handle_errors
def invert(images, **kw):
    """Find the latents whose images match IMAGES (default space: stylemap)."""
    _run_job(_spec("invert", prepare_options(kw)), list(images), kw)


@click.command()
@click.argument("lowres", nargs=-1, required=True, type=click.Path())
@click.option("--scale", type=int, default=None, help="upscaling factor (default: model resolution / input size)")
@click.option("--duplicates", type=int, default=1, show_default=True, help="K different answers from K seeds")
@job_options
@handle_errors
def pulse(lowres, scale, duplicates, **kw):
    """Super-resolve LOWRES images: find faces that downscale to them (PULSE)."""
    _run_job(_spec("pulse", prepare_options(kw), scale=scale, duplicates=duplicates), list(lowres), kw)


@click.command()
@click.argument("references", nargs=-1, required=True, type=click.Path())
@job_options
@handle_errors
def paint(references, **kw):
    """Generate images that match RGBA colour REFERENCES where alpha > 0."""
    _run_job(_spec("paint", prepare_options(kw)), list(references), kw)


@click.command("train-encoder", add_help_option=False,
              context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
@handle_errors
def train_encoder(ctx):
    """Train a W+ or StyleMap encoder for a generator (resumable; --help lists its options)."""
    from optinv.run.encoder_training import main as train_main

    train_main(list(ctx.args))


@click.command("batch")
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

    opts = prepare_options(kw)
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


@click.command()
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
    _run_job(_spec("encode", opts), list(images), {"out": out, "gif": False, "paste_back": fields["paste_back"],
                                                  "model": model, "device": device, "overwrite": overwrite})


@click.command()
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
