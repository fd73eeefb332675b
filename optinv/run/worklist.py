"""The work list of ``optinv batch``: the input images of a folder, their result names and files
(unique per output folder), whether they are done, and how they are shared out across ranks."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Sequence


from optinv.errors import OptinvError
from optinv.io.names import RESULT_SUFFIXES, duplicate_names, result_files
from optinv.io.outputs import inputs_in, plan_names

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})


# ------------------------------------------------------------------------------ the work list
@dataclass(frozen=True)
class WorkItem:
    """One input file; its outputs go to ``OUT_DIR/<its sub-folder>/<stem>.*``."""

    rel: str      # path relative to INPUT_DIR (posix): the manifest key
    source: Path
    stem: str     # output base name, unique within its folder

    @property
    def subdir(self) -> str:
        parent = PurePosixPath(self.rel).parent
        return "" if str(parent) == "." else str(parent)

    def names(self, duplicates: int) -> list[str]:
        """Output names, in the order the job returns results (pulse: one per duplicate)."""
        return duplicate_names(self.stem, duplicates)

    def outputs(self, duplicates: int) -> list[dict[str, str]]:
        """Output files relative to OUT_DIR: what the manifest records."""
        folder = PurePosixPath(self.subdir)
        return [{kind: (folder / f"{n}{suffix}").as_posix() for kind, suffix in RESULT_SUFFIXES.items()}
                for n in self.names(duplicates)]

    def complete(self, out: Path, duplicates: int) -> bool:
        return all((out / p).is_file() for paths in self.outputs(duplicates) for p in paths.values())


def _is_candidate(p: Path) -> bool:
    """Hidden files are left out: macOS '._x.png' companions are not images."""
    return not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()


def _image_files(root: Path, recursive: bool, exclude: Path | None) -> Iterator[Path]:
    if not recursive:
        yield from (p for p in root.iterdir() if _is_candidate(p))
        return
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        # never descend into OUT_DIR: last run's outputs would become this run's inputs
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and (here / d).resolve() != exclude]
        yield from (here / f for f in filenames if _is_candidate(here / f))


def find_inputs(input_dir: str | os.PathLike, recursive: bool = False, exclude: Path | None = None,
                duplicates: int = 1, gif: bool = False, out_dir: Path | None = None) -> list[WorkItem]:
    """The sorted work list; every rank and every rerun sees the same order. With ``out_dir``, no
    result takes the name of an input that lives there (an input may be a link into it)."""
    root = Path(input_dir)
    if not root.is_dir():
        raise OptinvError(f"{root}: not a folder")
    rels = sorted(p.relative_to(root).as_posix() for p in _image_files(root, recursive, exclude))
    bases = Counter(str(PurePosixPath(r).with_suffix("")).casefold() for r in rels)
    preferred = []
    for rel in rels:
        p = PurePosixPath(rel)
        # a.png and a.jpg side by side would write the same a.png: name both after their suffix
        preferred.append(p.stem if bases[str(p.with_suffix("")).casefold()] == 1 else f"{p.stem}_{p.suffix[1:]}")
    stems = list(preferred)
    folders: dict[str, list[int]] = {}
    for i, rel in enumerate(rels):
        folders.setdefault(str(PurePosixPath(rel).parent), []).append(i)
    sources = [root / r for r in rels]
    for folder, idx in folders.items():  # names are planned per output folder, unique by construction
        reserved = inputs_in(Path(out_dir) / folder, sources) if out_dir is not None else set()
        for i, name in zip(idx, plan_names([preferred[i] for i in idx], lambda n: _files(n, duplicates, gif),
                                           reserved=reserved)):
            stems[i] = name
    return [WorkItem(rel=rel, source=root / rel, stem=stem) for rel, stem in zip(rels, stems)]


def _files(name: str, duplicates: int, gif: bool) -> list[str]:
    """Every file the outputs of one input called ``name`` write (pulse: each duplicate's)."""
    return [f for n in duplicate_names(name, duplicates) for f in result_files(n, gif)]


def shard(items: Sequence[Any], rank: int, world: int) -> list[Any]:
    """Rank r takes every world-th item starting at r: balanced and needs no communication."""
    return list(items[rank::world])


def rounds(todo: Sequence[WorkItem], rank: int, world: int, batch: int) -> Iterator[list[WorkItem]]:
    """This rank's batches, padded with empty ones so every rank runs the same number of rounds
    (each round ends in a collective that all ranks must join)."""
    mine = shard(todo, rank, world)
    n_rounds = math.ceil(math.ceil(len(todo) / world) / batch)
    for r in range(n_rounds):
        yield mine[r * batch: (r + 1) * batch]


