"""One journey for a job over files: plan names → check inputs (decoded once) → dispatch → write.

The ``invert`` / ``pulse`` / ``paint`` / ``encode`` commands, ``optinv batch`` and the studio all run
their jobs through this module, so the naming rules (:mod:`optinv.io.names`), the check that
refuses a bad file before any work, the call into :mod:`optinv.engine.jobs` and the writing of a
result's files (:func:`optinv.io.outputs.write_item`) have one home each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from optinv.engine import jobs
from optinv.engine.generator import Generator
from optinv.engine.inputs import Decoded, Source
from optinv.engine.options import JobOptions, check_duplicates
from optinv.engine.results import ItemResult
from optinv.io.image_files import image_to_tensor, read_image, read_image_bytes
from optinv.io.names import duplicate_names, result_files
from optinv.io.outputs import existing, inputs_in, plan_names, write_item

JOBS = ("invert", "pulse", "paint", "encode")


@dataclass(frozen=True)
class JobSpec:
    """What to run on every input: the job, its options, and pulse's ``scale`` and ``duplicates``."""

    job: str
    options: JobOptions
    scale: int | None = None
    duplicates: int = 1

    def __post_init__(self) -> None:
        if self.job not in JOBS:
            raise ValueError(f"unknown job {self.job!r} (known: {', '.join(JOBS)})")
        check_duplicates(self.duplicates)

    @property
    def per_input(self) -> int:
        """Results per input: pulse's duplicates, else one."""
        return self.duplicates if self.job == "pulse" else 1

    def result_names(self, name: str) -> list[str]:
        return duplicate_names(name, self.per_input)

    def files(self, name: str, gif: bool = False, extra: Sequence[str] = ()) -> list[str]:
        """Every file the results of the input called ``name`` write (checked for existence, reserved)."""
        return [f for n in self.result_names(name) for f in result_files(n, gif) + [n + x for x in extra]]


@dataclass
class Planned:
    """One input and the name its results take (``renamed``: it was not the input's stem)."""

    source: str
    name: str
    renamed: bool


def plan(sources: Sequence[str | os.PathLike], out: Path, spec: JobSpec, gif: bool = False,
         extra: Sequence[str] = ()) -> list[Planned]:
    """Unique result names for a whole run before anything is written: never an input's file, never
    two inputs' results in the same files (``a/x.png`` and ``b/x.png`` → ``x`` and ``x_2``)."""
    stems = [Path(s).stem for s in sources]
    names = plan_names(stems, lambda n: spec.files(n, gif, extra), reserved=inputs_in(out, sources))
    return [Planned(str(s), n, n != st) for s, st, n in zip(sources, stems, names)]


def already_written(p: Planned, out: Path, spec: JobSpec, gif: bool = False, extra: Sequence[str] = ()) -> bool:
    """Every file of this input's results exists (a rerun keeps them unless told to redo them)."""
    return existing(out, spec.files(p.name, gif, extra))


def decode(source: str | os.PathLike, spec: JobSpec) -> Decoded:
    """Read an input file once and check it as its job will use it (a bad file fails here, in one
    line, before any work); the job converts the decoded image without reading the file again."""
    notes: list[str] = []
    return _checked(Decoded(Path(source), read_image(source, notes), notes), spec)


def decode_bytes(data: bytes, name: str, spec: JobSpec) -> Decoded:
    """:func:`decode` for an image held in memory (the studio's painted canvas): no file is written."""
    notes: list[str] = []
    return _checked(Decoded(Path(name), read_image_bytes(data, name, notes), notes), spec)


def _checked(d: Decoded, spec: JobSpec) -> Decoded:
    """``d``, once its job's conversion accepts it (alpha for paint, square or ``crop``)."""
    image_to_tensor(d.image, d.path, keep_alpha=spec.job == "paint", crop=spec.options.crop, notes=[])
    return d


def inputs_for(sources: Sequence[str | os.PathLike | Decoded], spec: JobSpec) -> list[Source]:
    """The job's inputs: decoded files (already decoded ones pass through), or with ``align`` the
    photo files (the aligner reads them)."""
    if spec.options.align:
        return [s if isinstance(s, Decoded) else str(s) for s in sources]
    return [s if isinstance(s, Decoded) else decode(s, spec) for s in sources]


def dispatch(spec: JobSpec, inputs: Sequence[Source], g: Generator, device: str | None = "auto",
             names: Sequence[str] | None = None) -> list[ItemResult]:
    """Run the job on ``inputs``; ``names`` (one per input) rename the results as planned."""
    kw = {"model": g, "device": device, "options": spec.options}
    if spec.job == "pulse":
        results = jobs.pulse(inputs, scale=spec.scale, duplicates=spec.duplicates, **kw)
    else:
        results = {"invert": jobs.invert, "paint": jobs.paint, "encode": jobs.encode}[spec.job](inputs, **kw)
    if names is not None:
        k = spec.per_input
        for i, name in enumerate(names):
            for r, rname in zip(results[i * k:(i + 1) * k], spec.result_names(name)):
                r.name = rname
    return results


def write(results: Iterable[ItemResult], out: Path, gif: bool = False,
          wording: Callable[[str], str] = str) -> list[dict[str, str]]:
    """Write each result's files (image, latent, comparison strip, JSON [, GIF]); ``wording`` rewrites
    the engine's `parameter` names in its notes (the CLI's flags)."""
    written = []
    for r in results:
        r.notes = [wording(n) for n in r.notes]
        written.append(write_item(r, out, gif=gif))
    return written


def batches(items: Sequence, size: int) -> Iterable[Sequence]:
    """``items`` in runs of ``size`` (each run is written as soon as it is done)."""
    step = max(1, size)
    for first in range(0, len(items), step):
        yield items[first:first + step]
