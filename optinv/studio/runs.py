"""The studio's jobs: a request checked and queued, run on the worker thread through
:mod:`optinv.run.runner` (live progress and previews), each result kept in memory for its page."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from optinv.errors import OptinvError
from optinv.io.latents import latent_bytes
from optinv.engine.options import JobOptions, merged_options
from optinv.io.outputs import compare_strip, jsonable
from optinv.engine.spaces import SPACES
from optinv.run import runner
from optinv.studio.queue import Job
from optinv.studio.state import Page, ResultEntry, Upload, png_bytes

from optinv.studio.wire import MAX_RUNS, MAX_STEPS, PREVIEW_SECONDS, data_url, decode_data_url, safe_name


class Runs:
    """Part of :class:`optinv.studio.service.Studio` (uses its ``g``, ``say``, ``page``, ``new_file``…)."""

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
            source: Path | runner.Decoded = runner.decode_bytes(decode_data_url(src.get("canvas"), name), name,
                                                                runner.JobSpec("paint", opts))
        elif src.get("sample"):
            source = self.sample_path("images" if kind == "invert" else "lowres", src["sample"])
        else:
            up = page.get(str(src.get("upload")), Upload)
            if up is None:
                raise OptinvError("choose a sample or upload an image first")
            source = up.path if opts.align or up.decoded is None else up.decoded  # the aligner reads the photo
        steps = merged_options(kind, opts, self.g)["steps"]
        return self.queue.submit(page_id, kind, lambda job: self._work(job, page, kind, source, opts, runs, steps))

    def _work(self, job: Job, page: Page, kind: str, source: "Path | runner.Decoded", opts: JobOptions, runs: int,
              steps: int) -> list[dict[str, Any]]:
        """Runs on the worker thread: the job through the runner, reporting every step."""
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
            items += runner.dispatch(spec, runner.inputs_for([source], spec), self.g)
        return [self.keep(page, item, f"_seed{item.metrics['seed']}" if len(items) > 1 and kind == "paint" else "")
                for item in items]

    def keep(self, page: Page, item: Any, suffix: str = "") -> dict[str, Any]:
        entry = ResultEntry(name=item.name + suffix, job=item.job, image=png_bytes(item.image),
                            compare=png_bytes(compare_strip(item)), latent=latent_bytes(item.latent),
                            record=item.latent, metrics=jsonable(item.metrics), notes=[self.say(n) for n in item.notes])
        key = page.add(entry, "r")
        return {"id": key, "name": entry.name, "job": entry.job, "metrics": entry.metrics, "notes": entry.notes,
                "image": data_url(entry.image), "compare": data_url(entry.compare)}

    def job_view(self, job: Job, preview: bool) -> dict[str, Any]:
        view: dict[str, Any] = {"id": job.id, "state": job.state, "position": self.queue.position(job),
                                "progress": jsonable(job.progress)}
        if preview and job.preview is not None:
            view["preview"] = data_url(job.preview)
        if job.state == "done":
            view["results"] = job.result
        if job.error:
            view["error"] = job.error
        return view
