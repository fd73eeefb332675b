"""Safe, atomic file primitives shared by every format optinv writes.

Reads use ``torch.load(weights_only=True)`` (no code from the file runs); writes go to a
temporary name and are renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .errors import OptinvError


def first_line(e: BaseException, limit: int = 160) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:limit] if text else type(e).__name__


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def load_tagged(path: str | os.PathLike, fmt: str, what: str, writer: str,
                error: type[OptinvError] = OptinvError) -> dict[str, Any]:
    """Load a dict written by optinv whose "format" is ``fmt``, or raise one clear ``error``."""
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, or a pickle that asks for code
        raise error(f"{path}: not a readable {what} ({first_line(e)})") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise error(f"{path}: not an optinv {what} ({writer} writes them)")
    return obj
