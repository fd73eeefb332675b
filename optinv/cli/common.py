"""What every ``optinv`` command shares: the flag table that turns the engine's parameter names into
flags, one-line errors, the options built from ``JobOptions``, click types for finite numbers and
seeds, ``--overwrite`` and output planning for commands that write one file per result.

Command modules import this one and nothing else of the CLI, so the CLI is three floors deep:
``optinv.cli`` → a command module → ``optinv.cli.common``.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from pathlib import Path

import click

from optinv.engine.options import SEED_MAX
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
        click.option("--model", "-m", default=None, help="generator file or shipped model name (default: embedded synthfaces256)"),
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


def options_from(kw: dict):
    """Click's keyword arguments → the engine's JobOptions (the same names, by construction)."""
    from optinv.engine.options import GIF_FRAMES, JobOptions, cli_fields

    return JobOptions.of(**{f.name: kw[f.name] for f in cli_fields()}, progress=not kw["quiet"],
                         frames=GIF_FRAMES if kw["gif"] else 0)


def prepare_options(kw: dict):
    from optinv.io.outputs import ensure_out_dir

    ensure_out_dir(kw["out"])
    return options_from(kw)


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


ENCODE_FIELDS = ("encoder", "encoder_passes", "batch", "crop", "align", "face", "landmarks", "paste_back")


def encode_options(f):
    """`encode`'s options: the JobOptions fields an encoder pass uses, declared there (not again here)."""
    from optinv.engine.options import cli_fields

    chosen = [_click_option(field) for field in cli_fields() if field.name in ENCODE_FIELDS]
    for o in reversed(chosen):
        f = o(f)
    return f


class FiniteFloat(click.ParamType):
    """A float that is a real number: ``nan``/``inf`` are refused (they silently blacken results)."""

    name = "float"

    def convert(self, value, param, ctx):  # type: ignore[override]
        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(x):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return x


FINITE = FiniteFloat()
SEED = click.IntRange(0, SEED_MAX)

latent_model_option = click.option("--model", "-m", default=None,
                                   help="generator (default: the one the latent names)")
out_dir_option = click.option("--out", "-o", default="out", show_default=True, type=click.Path(file_okay=False))

overwrite_option = click.option(
    "--overwrite", is_flag=True,
    help="redo results whose output files already exist (default: keep them and skip that work)")


class Planned:
    """Names for the results of a command that writes one file per result (generate, edit, mix…):
    planned up front with :func:`optinv.io.outputs.plan_names` (never an input's file, never twice the
    same), and kept when they exist unless ``--overwrite`` (said in one line)."""

    def __init__(self, out: Path, inputs: list[str], overwrite: bool) -> None:
        from optinv.io.outputs import inputs_in

        self.out, self.overwrite = Path(out), overwrite
        self.taken: set[str] = set(inputs_in(self.out, inputs))

    def names(self, stems: list[str], *suffixes: str) -> list[str]:
        """Unless ``--overwrite``, a name some (not all) of whose files exist is not taken: those
        files belong to another run's result (``edit -a 2`` after ``edit -a -1 -a 1`` would replace
        its strip), so this result gets the next free name instead, said in a note."""
        from optinv.io.outputs import plan_names

        reserved = set(self.taken)
        while True:
            names = plan_names(stems, lambda n: [n + x for x in suffixes], reserved=reserved)
            others = [] if self.overwrite else [f for n in names for f in self._partial(n, suffixes)]
            if not others:
                break
            reserved.update(others)
        for stem, name in zip(stems, names):
            if name != stem and any((self.out / (stem + x)).exists() for x in suffixes):
                click.echo(f"note: {self.out / (stem + suffixes[0])} belongs to another result; writing "
                           f"{name}{suffixes[0]} (--overwrite replaces it)", err=True)
        self.taken.update(n + x for n in names for x in suffixes)
        return names

    def _partial(self, name: str, suffixes: tuple[str, ...]) -> list[str]:
        """Files of ``name`` that exist when not all of them do."""
        present = [name + x for x in suffixes if (self.out / (name + x)).exists()]
        return present if 0 < len(present) < len(suffixes) else []

    def keep(self, *files: str) -> bool:
        """True (and said) when every file exists and ``--overwrite`` was not given."""
        from optinv.io.outputs import existing

        if self.overwrite or not existing(self.out, files):
            return False
        click.echo(f"{self.out / files[0]} already exists, kept (--overwrite redoes it)")
        return True


def may_write(dest: str | Path, inputs: list, overwrite: bool) -> bool:
    """A named output file (``convert SRC DST``, ``export -o``, ``directions … -o``): never one of
    ``inputs`` (one-line error); kept, and said, when it exists unless ``--overwrite``."""
    from optinv.io.outputs import refuse_input_target

    refuse_input_target(dest, inputs)
    if Path(dest).is_file() and not overwrite:
        click.echo(f"{dest} already exists, kept (--overwrite replaces it)")
        return False
    return True


def locked_out_dir(out: str | Path) -> Path:
    """The output folder, created and checked, with its lock (:class:`optinv.io.outputs.OutputLock`)
    held until the command ends: every writing command keeps a second run out of the folder."""
    from optinv.io.outputs import OutputLock, ensure_out_dir

    outdir = ensure_out_dir(out)
    ctx = click.get_current_context(silent=True)
    lock = OutputLock(outdir)
    if ctx is not None:
        ctx.with_resource(lock)
    else:
        lock.acquire()  # released when the process ends
    return outdir


def model_for(latent: dict, model: str | None, device: str = "cpu"):
    """The generator a latent names (or ``--model``), loaded on ``device``."""
    from optinv.io.latents import generator_for

    return generator_for(latent, model, device=device)


def same_model(records: list[dict], names: list[str]) -> None:
    """Latents that are combined (or fitted together) must come from one model: each checked against the first."""
    a = records[0]["model"]
    for rec, name in zip(records[1:], names[1:]):
        b = rec["model"]
        if a["id"] != b["id"]:
            raise OptinvError(f"{name} was made with model {b['id']} ({b.get('name')}), {names[0]} with "
                              f"{a['id']} ({a.get('name')}): latents of different models cannot be combined")
