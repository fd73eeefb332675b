"""What the studio does, without the web: jobs through optinv.engine.jobs, uploads read as the CLI reads
them, edits through optinv.edit.edits. :mod:`optinv.studio.app` only turns HTTP into these calls.
"""

from __future__ import annotations

import base64
import io
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from optinv.edit import edits as E
from optinv.engine.bounds import finite_number, truncated_w
from optinv.io.checkpoints import samples_dir
from optinv.edit.directions import shipped_directions
from optinv.errors import InputImageError, OptinvError
from optinv.io.fileio import latent_stem
from optinv.engine.generator import Generator
from optinv.io.image_files import load_image, load_photo
from optinv.io.latent_formats import read_foreign, sniff
from optinv.io.latents import check_model, from_foreign, latent_bytes, load_latent, model_ref, new_record, save_latent
from optinv.engine.operators import downscale_operator
from optinv.engine.options import SEED_MAX, JobOptions, check_seed, merged_options
from optinv.io.outputs import compare_strip, jsonable
from optinv.engine.spaces import SPACES
from optinv.run import runner
from optinv.studio.queue import Job, JobQueue
from optinv.studio.state import LatentEntry, Page, ResultEntry, Upload, png_bytes, remove_file

MAX_UPLOAD_BYTES = 16 * 1024 * 1024
PREVIEW_SECONDS = 0.2        # the live image refreshes at most this often (PNG encoding is not free)
MAX_STEPS = 5000
MAX_RUNS = 8                 # paint alternatives / pulse duplicates
RENDER_THREADS = 1           # torch threads of a slider render (see Studio.render)


def safe_name(name: str) -> str:
    name = Path(name or "upload").name
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "upload"


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _decode_data_url(s: Any, what: str) -> bytes:
    if not isinstance(s, str) or not s.startswith("data:image/png;base64,"):
        raise OptinvError(f"{what}: expected a PNG image")
    raw = base64.b64decode(s.partition(",")[2], validate=False)
    if len(raw) > MAX_UPLOAD_BYTES:
        raise OptinvError(f"{what}: {len(raw) / 2**20:.1f} MB is too large (limit {MAX_UPLOAD_BYTES // 2**20} MB)")
    return raw


class Studio:
    """The server's state: the model, the job queue, each page's uploads, results and latents."""

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

    # ---------------------------------------------------------------- uploads
    def check_upload(self, page: Page, purpose: str, name: str, data: bytes, align: bool = False) -> dict[str, Any]:
        """Read an upload exactly as the CLI reads the same file (same messages); keep it for the page.

        ``align``: a photograph of any size and shape for invert/pulse, to be face-aligned by the job.
        """
        if len(data) > MAX_UPLOAD_BYTES:
            raise InputImageError(f"{safe_name(name)}: {len(data) / 2**20:.1f} MB is too large "
                                  f"(limit {MAX_UPLOAD_BYTES // 2**20} MB)")
        path = self.new_file(name, data)
        try:
            return self._read_upload(page, purpose, path, align)
        except BaseException:
            remove_file(path)  # a refused upload is not kept
            raise

    def _read_upload(self, page: Page, purpose: str, path: Path, align: bool) -> dict[str, Any]:
        notes: list[str] = []
        if purpose == "latent":
            rec = self.read_latent(path)
            remove_file(path)  # the record is kept in memory
            key = page.add(LatentEntry(name=latent_stem(path.name), record=rec), "l")
            image = E.render(self.g, [E.from_latent(rec)])[0]
            return {"id": key, "name": latent_stem(path.name), "preview": _data_url(png_bytes(image)), "notes": notes}
        if align and purpose in ("invert", "pulse"):
            photo = load_photo(path, notes=notes)
            photo.thumbnail((4 * self.g.size, 4 * self.g.size))
            key = page.add(Upload(name=path.stem, path=path, purpose=purpose), "u")
            return {"id": key, "name": path.stem, "preview": _data_url(png_bytes(photo)),
                    "notes": [self.say(n) for n in notes]}
        if purpose == "pulse":
            t = load_image(path, notes=notes)
            downscale_operator(self.g.size, t.shape[-1], "the low-res input")
        elif purpose in ("invert", "paint"):
            t = load_image(path, size=self.g.size, notes=notes)
        else:
            raise OptinvError(f"unknown upload purpose {purpose!r}")
        key = page.add(Upload(name=path.stem, path=path, purpose=purpose), "u")
        return {"id": key, "name": path.stem, "preview": _data_url(png_bytes(t)),
                "notes": [self.say(n) for n in notes]}

    def read_latent(self, path: Path) -> Any:
        """An optinv latent file for this model, or an NVIDIA / rosinality one (bound to this model)."""
        if path.suffix.lower() != ".npz" and sniff(path) == "optinv":
            rec = load_latent(path)
            check_model(rec, self.g, what=path.name)
            return rec
        return from_foreign(read_foreign(str(path), self.g), self.g)

    # ---------------------------------------------------------------- jobs
    def job_options(self, kind: str, o: dict[str, Any]) -> JobOptions:
        def num(key: str, cast: type, default: Any = None) -> Any:
            v = o.get(key)
            if v in (None, ""):
                return default
            try:
                return cast(v)
            except (TypeError, ValueError, OverflowError):
                raise OptinvError(f"`{key}` must be a number, got {v!r}") from None

        steps = num("steps", int)
        if steps is not None and steps > MAX_STEPS:
            raise OptinvError(f"`steps` is at most {MAX_STEPS} here, got {steps}")
        space = o.get("space") or None
        if space is not None and space not in SPACES:
            raise OptinvError(f"unknown `space` {space!r} (known: {', '.join(SPACES)})")
        return JobOptions.of(space=space, steps=steps, recipe=(o.get("recipe") or "").strip() or None,
                             seed=num("seed", int, 0), progress=False, align=bool(o.get("align")) and kind != "paint")

    def submit(self, body: dict[str, Any]) -> Job:
        page_id = body.get("page")
        page = self.page(page_id)
        kind = body.get("job")
        if kind not in ("paint", "invert", "pulse"):
            raise OptinvError(f"unknown job {kind!r}")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise OptinvError("`options` must be an object")
        opts = self.job_options(kind, options)
        runs = body.get("runs") or 1
        if not isinstance(runs, int) or isinstance(runs, bool):
            raise OptinvError(f"alternatives must lie in 1..{MAX_RUNS}, got {runs!r}")
        if not 1 <= runs <= MAX_RUNS:
            raise OptinvError(f"alternatives must lie in 1..{MAX_RUNS}, got {runs}")
        src = body.get("source") or {}
        if not isinstance(src, dict):
            raise OptinvError("`source` must be an object (a sample, an upload or a canvas)")
        if kind == "paint":
            name = safe_name(str(src.get("name") or "canvas")).removesuffix(".png") + ".png"
            path = self.new_file(name, _decode_data_url(src.get("canvas"), name))
        elif src.get("sample"):
            path = self.sample_path("images" if kind == "invert" else "lowres", src["sample"])
        else:
            up = page.get(str(src.get("upload")), Upload)
            if up is None:
                raise OptinvError("choose a sample or upload an image first")
            path = up.path
        steps = merged_options(kind, opts, self.g)["steps"]
        return self.queue.submit(page_id, kind, lambda job: self._work(job, page, kind, path, opts, runs, steps))

    def _work(self, job: Job, page: Page, kind: str, path: Path, opts: JobOptions, runs: int,
              steps: int) -> list[dict[str, Any]]:
        """Runs on the worker thread: the job through optinv.engine.jobs, reporting every step."""
        last = [0.0]

        def callback(step: int, record: dict, parts: dict) -> None:
            job.check()
            job.report(step=step, steps=steps, run=run + 1, runs=runs if kind == "paint" else 1,
                       terms={k: v for k, v in record.items() if k != "step"})

        def preview(step: int, images: torch.Tensor) -> None:
            now = time.perf_counter()
            if step == 0 or now - last[0] >= PREVIEW_SECONDS:
                last[0] = now
                job.report(preview=png_bytes(images[0]))

        items = []
        for run in range(runs if kind == "paint" else 1):
            o = JobOptions.of(opts, seed=opts.seed + run, callback=callback, preview=preview)
            spec = runner.JobSpec(kind, o, duplicates=runs if kind == "pulse" else 1)
            items += runner.dispatch(spec, runner.inputs_for([path], spec), self.g)
        return [self.keep(page, item, f"_seed{item.metrics['seed']}" if len(items) > 1 and kind == "paint" else "")
                for item in items]

    def keep(self, page: Page, item: Any, suffix: str = "") -> dict[str, Any]:
        entry = ResultEntry(name=item.name + suffix, job=item.job, image=png_bytes(item.image),
                            compare=png_bytes(compare_strip(item)), latent=latent_bytes(item.latent),
                            record=item.latent, metrics=jsonable(item.metrics), notes=[self.say(n) for n in item.notes])
        key = page.add(entry, "r")
        return {"id": key, "name": entry.name, "job": entry.job, "metrics": entry.metrics, "notes": entry.notes,
                "image": _data_url(entry.image), "compare": _data_url(entry.compare)}

    def job_view(self, job: Job, preview: bool) -> dict[str, Any]:
        view: dict[str, Any] = {"id": job.id, "state": job.state, "position": self.queue.position(job),
                                "progress": jsonable(job.progress)}
        if preview and job.preview is not None:
            view["preview"] = _data_url(job.preview)
        if job.state == "done":
            view["results"] = job.result
        if job.error:
            view["error"] = job.error
        return view

    # ---------------------------------------------------------------- edit
    def record(self, page: Page, key: Any) -> tuple[str, Any]:
        entry = page.get(str(key), ResultEntry) or page.get(str(key), LatentEntry)
        if entry is None:
            raise OptinvError("choose a latent first (a result of this page, a file or a seed)")
        return entry.name, entry.record

    def seed_latent(self, page: Page, seed: Any, truncation: Any = 0.7) -> dict[str, Any]:
        g = self.g
        if not isinstance(seed, (int, str)) or isinstance(seed, bool) or not str(seed).strip().isdigit():
            raise OptinvError(f"`seed` must be an integer between 0 and {SEED_MAX}, got {seed!r}")
        seed, psi = int(seed), finite_number(truncation, "`truncation`")
        check_seed(seed)
        z = torch.randn(1, g.style_dim, generator=torch.Generator().manual_seed(seed)).to(g.w_avg.device)
        w = truncated_w(g, z, psi)[0]
        wplus = w.reshape(1, -1).expand(g.n_latent, -1).clone().cpu()
        rec = new_record("wplus", {"wplus": wplus[None].clone()}, [n.detach().cpu().clone() for n in g.noise_list()],
                         model_ref(g), wplus, settings={"seed": seed, "truncation": psi})
        key = page.add(LatentEntry(name=f"seed{seed}", record=rec), "l")
        image = E.render(g, [E.from_latent(rec)])[0]
        return {"id": key, "name": f"seed{seed}", "preview": _data_url(png_bytes(image))}

    def compose(self, body: dict[str, Any]) -> tuple[str, Any, E.Editable]:
        """The edited latent a render/save request describes: directions on A, then interpolate/mix/blend with B."""
        page = self.page(body.get("page"))
        name, rec = self.record(page, body.get("a"))
        e = E.from_latent(rec)
        alphas = body.get("alphas") or {}
        if not isinstance(alphas, dict):
            raise OptinvError("`alphas` must be an object of direction names and amounts")
        for d, alpha in alphas.items():
            if d not in self.directions:
                raise OptinvError(f"unknown direction {d!r} (known: {', '.join(self.directions)})")
            alpha = finite_number(alpha, f"the amount of {d!r}")
            if alpha:
                e = E.apply_direction(e, self.directions[d], alpha)
        mode = body.get("mode") or "none"
        if mode != "none":
            bname, brec = self.record(page, body.get("b"))
            b = E.from_latent(brec)
            layers = E.parse_layers(body.get("layers") or None, self.g.n_latent)
            if mode == "interpolate":
                e = E.interpolate(e, b, [min(1.0, max(0.0, finite_number(body.get("t", 0.5), "`t`")))])[0]
            elif mode == "mix":
                e = E.mix(e, b, layers)
            elif mode == "blend":
                e = E.blend_maps(e, b, self.mask(body.get("mask")), layers, feature_sizes=self.g.layer_sizes())
            else:
                raise OptinvError(f"unknown edit mode {mode!r}")
            name = f"{name}_{mode}_{bname}"
        return name, rec, e

    def mask(self, data: Any) -> torch.Tensor:
        """The painted blend mask: its alpha, 0 → A, 1 → B (an unpainted mask is all A)."""
        if not data:
            return torch.zeros(self.g.size, self.g.size)
        try:
            with Image.open(io.BytesIO(_decode_data_url(data, "mask"))) as src:
                if src.format != "PNG" or src.width * src.height > (4 * self.g.size) ** 2:
                    raise OptinvError(f"mask: expected a PNG of at most {4 * self.g.size}² pixels")
                im = src.convert("RGBA")
        except (OSError, ValueError, Image.DecompressionBombError):
            raise OptinvError("mask: not a readable PNG image") from None
        return torch.from_numpy(np.asarray(im, dtype=np.float32)[..., 3].copy()) / 255.0

    def render(self, body: dict[str, Any]) -> tuple[bytes, dict[str, float]]:
        """One slider frame as PNG, and its cost: wall and CPU milliseconds of this thread.

        One intra-op thread (a per-thread setting, so jobs keep theirs): a 64² frame is too
        small to share, and spinning threads cost more than they give on a busy machine.
        """
        torch.set_num_threads(RENDER_THREADS)
        t0, c0 = time.perf_counter(), time.thread_time()
        _, _, e = self.compose(body)
        png = png_bytes(E.render(self.g, [e])[0])
        return png, {"wall": (time.perf_counter() - t0) * 1000, "cpu": (time.thread_time() - c0) * 1000}

    def save_edit(self, body: dict[str, Any]) -> tuple[str, bytes]:
        name, rec, e = self.compose(body)
        E.check_editable(self.g, e)
        path = self.new_file(f"{name}.latent.pt", b"")
        save_latent(E.to_latent(e, rec), path)
        return path.name, path.read_bytes()


