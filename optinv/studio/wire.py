"""What the studio's modules share: limits, safe file names and PNG data URLs."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from optinv.errors import OptinvError

MAX_UPLOAD_BYTES = 16 * 1024 * 1024
PREVIEW_SECONDS = 0.2        # the live image refreshes at most this often (PNG encoding is not free)
MAX_STEPS = 5000
MAX_RUNS = 8                 # paint alternatives / pulse duplicates
RENDER_THREADS = 1           # torch threads of a slider render (see Studio.render)


def safe_name(name: str) -> str:
    name = Path(name or "upload").name
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "upload"


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def decode_data_url(s: Any, what: str) -> bytes:
    if not isinstance(s, str) or not s.startswith("data:image/png;base64,"):
        raise OptinvError(f"{what}: expected a PNG image")
    raw = base64.b64decode(s.partition(",")[2], validate=False)
    if len(raw) > MAX_UPLOAD_BYTES:
        raise OptinvError(f"{what}: {len(raw) / 2**20:.1f} MB is too large (limit {MAX_UPLOAD_BYTES // 2**20} MB)")
    return raw
