"""Safe, atomic file primitives shared by every format optinv writes.

Reads use ``torch.load(weights_only=True)`` (no code from the file runs); writes go to a
temporary name beside the target (``.NAME.optinv.tmp``, which the next run cleans up)
and are renamed into place, so a crash never leaves half a file under the real name.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from optinv.errors import OptinvError


def first_line(e: BaseException, limit: int | None = 160) -> str:
    """The first line of an exception's message (cut to ``limit`` characters), or its type's name."""
    text = str(e).strip()
    return (text.splitlines()[0][:limit] if limit else text.splitlines()[0]) if text else type(e).__name__


_GLOBAL = re.compile(r"GLOBAL\s+([\w.]+)")


def load_error(e: BaseException, limit: int | None = 200, path: str | os.PathLike | None = None) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one whole sentence.

    torch's own message is several paragraphs (and suggests ``weights_only=False``, which would
    run the file's code); when the file asks for a Python object we name it and say it was refused.
    """
    if path is not None and truncated_zip(path):
        return "damaged or truncated: its zip directory is missing; copy or write it again"
    m = _GLOBAL.search(str(e))
    if m:
        return (f"the file asks to run {m.group(1)} when loaded; refused (optinv never runs code "
                f"stored in a file)")
    text = str(e)
    if "Weights only load failed" in text:
        reasons = [ln.strip() for ln in text.splitlines()[1:] if ln.strip() and "weights_only" not in ln
                   and not ln.startswith("Check the documentation")]
        return f"refused by the safe loader: {reasons[0] if reasons else 'it holds more than tensors'}"
    return first_line(e, limit)


def truncated_zip(path: str | os.PathLike) -> bool:
    """A torch file (a zip) cut short: torch would say only "Invalid argument"."""
    import zipfile

    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return head == b"PK" and not zipfile.is_zipfile(path)


def name_part(raw: object, default: str = "x") -> str:
    """Text from a file or a user (a model card's name, a direction's key) as part of a file name,
    never a path: separators and anything outside ``[A-Za-z0-9._+-]`` become ``_``, leading dots
    go, and the length is capped."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", str(raw or "")).lstrip(".")[:100]
    return name or default


def latent_stem(path: str | os.PathLike) -> str:
    """NAME of NAME.latent.pt (or of another project's NAME.npz / NAME.pt[:IMAGE]): the name a
    command gives the files it writes from a latent file."""
    name = Path(str(path)).name
    if name.endswith(".latent.pt"):
        return name[: -len(".latent.pt")]
    name = name.split(":")[0] if not Path(str(path)).exists() else name
    return Path(name).stem


TMP_SUFFIX = ".optinv.tmp"  # only files named like this are ever removed as a dead run's leftovers


def temporary_path(path: str | os.PathLike) -> Path:
    """Where ``path`` is written before it is renamed into place (``.NAME.optinv.tmp``: a name no
    user file has by accident, so cleaning up after a killed run never touches ``.notes.tmp``)."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_SUFFIX}")


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like one of optinv's temporary files."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TMP_SUFFIX) and len(name) > len(TMP_SUFFIX) + 1


_together = threading.local()


@contextlib.contextmanager
def written_together() -> Iterator[None]:
    """Every :func:`atomic_write` inside the block is renamed into place only when the whole block
    succeeded: the files of one result (image, latent, comparison, record) are replaced together
    or not at all, so a failed ``--overwrite`` never leaves a new image beside an old latent.
    Nested blocks join the outermost one."""
    if getattr(_together, "files", None) is not None:
        yield
        return
    _together.files = pending = []
    try:
        yield
        _together.files = None
        for k, (tmp, path) in enumerate(pending):
            try:
                os.replace(tmp, path)
            except OSError as e:
                for later, _ in pending[k:]:
                    later.unlink(missing_ok=True)
                raise OptinvError(f"cannot write {path}: {e.strerror or first_line(e)}") from None
    except BaseException:
        for tmp, _ in pending:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        raise
    finally:
        _together.files = None


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any], fsync: bool = False) -> Path:
    """Call ``write(tmp)`` and rename ``tmp`` to ``path``; on failure the temporary file is removed.
    Inside :func:`written_together` the rename waits for the end of the block.

    >>> atomic_write("a.txt", lambda tmp: tmp.write_text("hello"))  # doctest: +SKIP
    """
    path = Path(path)
    tmp = temporary_path(path)
    pending = getattr(_together, "files", None)
    try:
        tmp.unlink(missing_ok=True)  # a link planted under this name must not be written through
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        if pending is not None:
            pending.append((tmp, path))
            return path
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(e, OSError):  # full disk, read-only folder, a folder where the file goes…
            raise OptinvError(f"cannot write {path}: {e.strerror or first_line(e)}") from None
        raise
    return path


def atomic_write_text(text: str, path: str | os.PathLike, fsync: bool = False) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), fsync=fsync)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


CACHE_ENV = "OPTINV_CACHE"


def cache_dir() -> Path:
    """Where optinv keeps what it computes once per model: ``$OPTINV_CACHE``, else
    ``$XDG_CACHE_HOME/optinv``, else ``~/.cache/optinv``. Deleting it only costs recomputation."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "optinv"


def load_tagged(path: str | os.PathLike, fmt: str, what: str, writer: str,
                error: type[OptinvError] = OptinvError) -> dict[str, Any]:
    """Load a dict written by optinv whose "format" is ``fmt``, or raise one clear ``error``."""
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, or a pickle that asks for code
        raise error(f"{path}: not a readable {what} ({load_error(e, path=path)})") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise error(f"{path}: not an optinv {what} ({writer} writes them)")
    return obj
