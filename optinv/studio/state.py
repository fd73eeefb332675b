"""What the studio keeps per page: uploads, results and latents, by id, in memory.

A page is one open tab (its id is made by the page). Entries are capped per page, oldest
first out, so a long session does not grow without bound; uploads live in a temporary folder
that disappears with the server.
"""

from __future__ import annotations

import io
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from optinv.io.latents import LatentRecord
from optinv.io.image_files import to_pil

MAX_ENTRIES = 64
MAX_UPLOADS = 8    # files kept per page (each up to 16 MB); the oldest is deleted first


def remove_file(path: Path) -> None:
    """Delete an upload and the folder made for it (uploads live one per folder)."""
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass


def png_bytes(im: Image.Image | torch.Tensor) -> bytes:
    """A PIL image, or an image tensor [3|4, H, W] in [0, 1], as PNG bytes."""
    if isinstance(im, torch.Tensor):
        im = to_pil(im.detach().float().cpu().clamp(0, 1))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Upload:
    name: str          # the file's own name (what messages show)
    path: Path         # where it was saved (what the engine reads)
    purpose: str       # invert | pulse | paint | latent
    decoded: Any = None  # the image as read at upload (an engine.inputs.Decoded): the job converts it, not the file


@dataclass
class ResultEntry:
    name: str
    job: str
    image: bytes
    compare: bytes
    latent: bytes
    record: LatentRecord
    metrics: dict[str, Any]
    notes: list[str]


@dataclass
class LatentEntry:
    name: str
    record: LatentRecord


@dataclass
class Page:
    entries: "OrderedDict[str, Any]" = field(default_factory=OrderedDict)

    def add(self, entry: Any, prefix: str) -> str:
        """Keep ``entry``; past the caps the oldest entries go, and an upload's file with it."""
        key = f"{prefix}{secrets.token_hex(6)}"
        self.entries[key] = entry
        uploads = [k for k, e in self.entries.items() if isinstance(e, Upload)]
        for k in uploads[: max(0, len(uploads) - MAX_UPLOADS)]:
            self._drop(k)
        while len(self.entries) > MAX_ENTRIES:
            self._drop(next(iter(self.entries)))
        return key

    def _drop(self, key: str) -> None:
        entry = self.entries.pop(key)
        if isinstance(entry, Upload):
            remove_file(entry.path)

    def get(self, key: str, kind: type) -> Any:
        entry = self.entries.get(key)
        return entry if isinstance(entry, kind) else None
