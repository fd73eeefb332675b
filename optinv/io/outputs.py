"""Write a job's results: NAME.png, NAME.latent.pt, NAME.compare.png, NAME.json [, NAME.gif].

Every file is written to a temporary name and renamed, so an interrupted run leaves either
a complete result or nothing, and never overwrites a finished file with half of one.

The rules every command follows (README "Re-runs and existing outputs"):
- all output names of a run are planned before anything is written (:func:`plan_names`), unique
  by construction, and never the name of one of the run's inputs (such an output is renamed);
- a result whose files all exist is kept and skipped (:func:`existing`); ``overwrite`` redoes it;
- one run at a time writes to a folder (:class:`OutputLock`); the ``.NAME.optinv.tmp`` files a killed
  run left there are removed when the next run takes the folder.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from PIL import Image

from optinv.errors import OptinvError
from optinv.io.fileio import TMP_SUFFIX, atomic_write, atomic_write_text, is_temporary, written_together
from optinv.io.image_files import atomic_save_image, checkerboard_composite, make_grid, to_pil
from optinv.io.latents import save_latent
from optinv.io.names import result_files


def ensure_out_dir(out: str | os.PathLike) -> Path:
    """Create the output folder, or fail clearly before any work is done."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptinvError(f"cannot write to output folder {path}: {e.strerror or e}") from None
    probe_folder(path)
    return path


def probe_folder(folder: Path) -> None:
    """A file can be created in ``folder`` (one clear error otherwise). The probe is a new file of a
    name nobody else uses, created exclusively, so a link planted in the folder is never followed."""
    import secrets

    probe = folder / f".optinv_write_probe.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
        probe.unlink()
    except OSError as e:
        raise OptinvError(f"cannot write to output folder {folder}: {e.strerror or e}") from None


def check_writable_file(dest: str | os.PathLike) -> Path:
    """Before long work that ends in writing ``dest``: its folder exists and takes new files, and
    ``dest`` is not a folder. A run that trains for an hour must not fail only at its last write."""
    dest = Path(dest)
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise OptinvError(f"cannot write {dest}: folder {folder} does not exist")
    if dest.is_dir():
        raise OptinvError(f"cannot write {dest}: it is a folder")
    probe_folder(folder)
    return dest


# ------------------------------------------------------------------------------ planning names


def plan_names(stems: Sequence[str], files_of: Callable[[str], Iterable[str]] = result_files,
               reserved: Iterable[str] = ()) -> list[str]:
    """One output name per stem, such that no two share a file and none writes a ``reserved`` file.

    ``files_of(name)`` lists the file names an output called ``name`` writes; ``reserved`` are
    names that must not be written (the run's inputs that live in the output folder). Names are
    compared case-insensitively (macOS and Windows folders are). A stem keeps its own name when
    it can; shorter stems choose first, so ``y.png`` keeps ``y.compare.png`` and an input called
    ``y.compare.png`` becomes ``y.compare_1``; the rest get the first free ``_1``, ``_2``, …
    suffix, which can never be another input's own name because those were given out first.
    """
    taken = {r.casefold() for r in reserved}
    names: list[str | None] = [None] * len(stems)

    def claim(i: int, name: str) -> bool:
        files = [f.casefold() for f in files_of(name)]
        if len(set(files)) != len(files) or taken.intersection(files):
            return False
        taken.update(files)
        names[i] = name
        return True

    for stem in set(stems):  # a result whose own files coincide could never be named
        files = [f.casefold() for f in files_of(stem)]
        if len(set(files)) != len(files):
            raise OptinvError(f"two outputs of {stem} would be the same file: "
                              f"{next(f for f in files if files.count(f) > 1)}")
    order = sorted(range(len(stems)), key=lambda i: (len(stems[i]), i))
    later = [i for i in order if not claim(i, stems[i])]
    for i in sorted(later):
        k = 1
        while not claim(i, f"{stems[i]}_{k}"):
            k += 1
    return [n for n in names if n is not None]


def inputs_in(folder: Path, inputs: Iterable[str | os.PathLike]) -> set[str]:
    """File names of ``inputs`` that live in ``folder``: names no output may take."""
    here = _real(folder)
    names = set()
    for p in inputs:  # an input that is a link into the folder counts under its target's name too
        for q in (Path(p), _real(Path(p))):
            if _real(q.parent) == here:
                names.add(q.name)
    return names


def _real(p: Path) -> Path:
    try:
        return p.resolve()
    except OSError:
        return p.absolute()


def is_input(path: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> bool:
    """Whether writing ``path`` would replace one of ``inputs`` (same file, however spelled)."""
    target = Path(path)
    for p in inputs:
        p = Path(p)
        if _real(p) == _real(target):
            return True
        try:
            if target.exists() and p.exists() and os.path.samefile(p, target):
                return True
        except OSError:
            pass
    return False


def refuse_input_target(path: str | os.PathLike, inputs: Iterable[str | os.PathLike], what: str = "output") -> None:
    """A named output (``convert SRC DST``, ``directions fit -o``) must not be one of the inputs."""
    if is_input(path, inputs):
        raise OptinvError(f"the {what} {path} is an input of this command: refusing to write over it "
                          f"(choose another name)")


def existing(folder: Path, files: Iterable[str]) -> bool:
    """The one rule for existing outputs: a result whose files *all* exist is done (kept, skipped).

    An incomplete set is what a killed run leaves; it is written again.
    """
    return all((folder / f).is_file() for f in files)


# ------------------------------------------------------------------------------ one writer per folder
LOCK_NAME = ".optinv.lock"


class OutputLock:
    """An exclusive lock on an output folder for one run (``flock`` on ``.optinv.lock``).

    A second run on the same folder stops with one line instead of racing the first (both
    doing all the work and deleting each other's temporary files). The lock dies with the
    process, so a killed run never leaves the folder locked. Taking it also removes the
    ``.NAME.optinv.tmp`` files a killed run left behind (nobody else can be writing them now).
    """

    def __init__(self, folder: str | os.PathLike, recursive: bool = False) -> None:
        self.folder, self.recursive = Path(folder), recursive
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        path = self.folder / LOCK_NAME
        try:  # never through a link planted under the lock's name
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as e:
            if path.is_symlink():
                raise OptinvError(f"{path} is a symbolic link, not optinv's lock file: remove it") from None
            raise OptinvError(f"cannot write to output folder {self.folder}: {e.strerror or e}") from None
        try:
            import fcntl
        except ImportError:  # no flock (Windows): runs are not kept apart
            self._fd = fd
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise OptinvError(f"another optinv run ({holder}) is writing to {self.folder}: wait for it "
                              f"to finish or choose another `out`") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, since {time.strftime('%H:%M:%S')}".encode())
        self._fd = fd
        clean_stale_tmp(self.folder, self.recursive)
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (removing it would race)
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def clean_stale_tmp(out: Path, recursive: bool = False) -> int:
    """Temporary files of a killed run (``.NAME.optinv.tmp``, :func:`optinv.io.fileio.temporary_path`):
    never a result, always garbage. Any other file, ``.notes.tmp`` included, is the user's."""
    if not out.is_dir():
        return 0
    pattern = f".*{TMP_SUFFIX}"
    found = out.rglob(pattern) if recursive else out.glob(pattern)
    n = 0
    for p in list(found):
        if is_temporary(p) and (p.is_symlink() or p.is_file()):
            p.unlink(missing_ok=True)
            n += 1
    return n


def _upscale_to(im: Image.Image, size: int) -> Image.Image:
    return im if im.size == (size, size) else im.resize((size, size), Image.NEAREST)


def compare_strip(item: Any) -> Image.Image:
    """input | result | result as the observation sees it (all shown at model resolution)."""
    r = item.image.shape[-1]
    target = to_pil(item.target)
    shown_input = checkerboard_composite(target) if target.mode == "RGBA" else target
    panels = [_upscale_to(shown_input, r), to_pil(item.image), _upscale_to(to_pil(item.observed), r)]
    scale = max(1, 256 // r)
    return make_grid(panels, cols=3, scale=scale)


def jsonable(v: Any) -> Any:
    """Plain JSON values: tensors become lists, NaN becomes null and ±inf a string (strict JSON has neither)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.tolist()
    return v


def save_gif(frames: list[torch.Tensor], final: torch.Tensor, path: Path, ms: int = 80) -> None:
    ims = [to_pil(f.clamp(0, 1)) for f in frames] + [to_pil(final)]
    r = ims[-1].size[0]
    ims = [_upscale_to(im, max(r, 128)) for im in ims]
    atomic_write(path, lambda tmp: ims[0].save(tmp, format="GIF", save_all=True, append_images=ims[1:],
                                               duration=ms, loop=0))


def write_item(item: Any, out: Path, gif: bool = False) -> dict[str, str]:
    """Write every output of one result; returns {kind: path}."""
    paths = {"image": out / f"{item.name}.png", "latent": out / f"{item.name}.latent.pt",
             "compare": out / f"{item.name}.compare.png", "json": out / f"{item.name}.json"}
    with written_together():  # a result's files are replaced together or not at all
        atomic_save_image(to_pil(item.image), paths["image"])
        save_latent(item.latent, paths["latent"])
        atomic_save_image(compare_strip(item), paths["compare"])
        if gif and item.frames:
            paths["gif"] = out / f"{item.name}.gif"
            save_gif(item.frames, item.image, paths["gif"])
        record = {"name": item.name, "job": item.job, "metrics": item.metrics, "notes": item.notes,
                  "model": item.latent["model"], "settings": item.latent["settings"],
                  "outputs": {k: str(p.name) for k, p in paths.items() if k != "json"}}
        atomic_write_text(json.dumps(jsonable(record), indent=2) + "\n", paths["json"])
    return {k: str(p) for k, p in paths.items()}
