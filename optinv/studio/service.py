"""What the studio does, without the web: jobs through optinv.engine.jobs, uploads read as the CLI reads
them, edits through optinv.edit.edits. :mod:`optinv.studio.app` only turns HTTP into these calls.
"""

from __future__ import annotations

import re
import secrets
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable


from optinv.io.checkpoints import samples_dir
from optinv.edit.directions import shipped_directions
from optinv.errors import OptinvError
from optinv.engine.generator import Generator
from optinv.engine.spaces import SPACES
from optinv.studio.queue import JobQueue
from optinv.studio.state import Page

from optinv.studio.wire import MAX_RUNS, MAX_STEPS, MAX_UPLOAD_BYTES, safe_name
from optinv.studio.editing import Editing
from optinv.studio.runs import Runs
from optinv.studio.uploads import Uploads


class Studio(Uploads, Runs, Editing):
    """The server's state: the model, the job queue, each page's uploads, results and latents.

    Its three sections live in their own modules: :mod:`~optinv.studio.uploads`,
    :mod:`~optinv.studio.runs` and :mod:`~optinv.studio.editing`."""

    def __init__(self, g: Generator, wording: Callable[[str], str] = str):
        self.g = g.eval()
        self.wording = wording
        self.queue = JobQueue(self.say)
        self.pages: dict[str, Page] = {}
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="optinv-studio-")
        self.tmp = Path(self._tmp.name)
        self.directions = shipped_directions(g)
        root = samples_dir()
        self.samples = {kind: sorted(p.name for p in (root / kind).glob("*.png")) if (root / kind).is_dir() else []
                        for kind in ("images", "lowres")}
        self.samples_root = root

    # ---------------------------------------------------------------- helpers
    def say(self, e: BaseException | str) -> str:
        """The CLI's one-line wording, with our temporary folders cut out of paths."""
        text = self.wording(str(e)).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return re.sub(re.escape(str(self.tmp)) + r"/[0-9a-f]+/", "", text)

    def page(self, page_id: Any) -> Page:
        if not isinstance(page_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", page_id):
            raise OptinvError("missing or malformed page id (reload the page)")
        with self._lock:
            return self.pages.setdefault(page_id, Page())

    def close(self) -> None:
        """Stop the jobs and delete every upload (called however the server stops)."""
        self.queue.close()
        self._tmp.cleanup()

    def new_file(self, name: str, data: bytes) -> Path:
        folder = self.tmp / secrets.token_hex(8)
        folder.mkdir()
        path = folder / safe_name(name)
        path.write_bytes(data)
        return path

    def sample_path(self, kind: str, name: Any) -> Path:
        if kind not in self.samples or name not in self.samples[kind]:
            raise OptinvError(f"unknown sample {name!r}")
        return self.samples_root / kind / name

    def info(self) -> dict[str, Any]:
        g = self.g
        return {"model": g.card.get("name", "model"), "size": g.size, "n_latent": g.n_latent, "spaces": list(SPACES),
                "recipes": g.card.get("default_recipes", {}), "directions": list(self.directions),
                "samples": self.samples, "max_steps": MAX_STEPS, "max_runs": MAX_RUNS,
                "max_upload_mb": MAX_UPLOAD_BYTES // 2**20}
