"""Click parameter types and options every command shares: finite numbers, seeds, ``--overwrite``."""

from __future__ import annotations

import math
from pathlib import Path

import click

from optinv.engine.options import SEED_MAX


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
