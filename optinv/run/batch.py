"""One job over a whole folder: resumable, shared out across ``torchrun`` ranks, robust to bad files.

OUT_DIR holds the usual NAME.png / NAME.latent.pt / NAME.compare.png / NAME.json per input
(sub-folders mirrored with ``recursive``), ``.manifest.rank{R}.jsonl`` while a run is going
(one fsynced line per finished item, so a killed rank loses at most its batch in flight) and
``manifest.jsonl`` once rank 0 has merged them: one line per input.

Resume is decided by outputs, not by the manifest: an item whose four files exist is done
(``overwrite`` redoes it). Every file is written to a temporary name and renamed, so "exists"
means "complete". One run at a time writes to OUT_DIR (:class:`optinv.io.outputs.OutputLock`);
an item that fails for any reason is recorded with its one-line reason and the rest go on.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Sequence

import torch

from optinv.engine import jobs
from optinv.io.checkpoints import load_generator
from optinv.errors import OptinvError
from optinv.io.fileio import first_line
from optinv.engine.generator import Generator
from optinv.engine.options import check_duplicates
from optinv.io.outputs import OutputLock, ensure_out_dir

from optinv.engine.progress import is_terminal
from optinv.run import runner
from optinv.run.worklist import IMAGE_SUFFIXES, WorkItem, find_inputs, rounds
from optinv.run.ranks import Ranks, StopFlag, check_torchrun_env, join_ranks, launched_by_torchrun, pick_device
from optinv.run.manifest import MANIFEST, RecordLog, make_record, one_line, write_manifest

JOBS = ("invert", "pulse", "paint")
RANK_LOG = ".manifest.rank{rank}.jsonl"

Emit = Callable[[dict[str, Any]], None]


# ------------------------------------------------------------------------------ configuration
@dataclass
class BatchConfig:
    """What ``optinv batch`` was asked to do."""

    job: str
    input_dir: Path
    out_dir: Path
    options: jobs.JobOptions = field(default_factory=jobs.JobOptions)
    model: Generator | str | os.PathLike | None = None
    device: str | None = "auto"
    recursive: bool = False
    scale: int | None = None            # pulse only
    duplicates: int = 1                 # pulse only
    gif: bool = False
    progress: bool = True
    overwrite: bool = False             # redo items whose outputs exist (default: skip them)
    # how messages and notes name parameters in the manifest and outputs: the engine writes
    # `name`; the CLI passes its flag table (optinv.cli.common.to_flags)
    wording: Callable[[str], str] = field(default=lambda text: text)

    def check(self) -> None:
        """Refuse bad settings before any rank touches a file."""
        if self.job not in JOBS:
            raise OptinvError(f"unknown job {self.job!r} (known: {', '.join(JOBS)})")
        if self.job != "pulse" and (self.scale is not None or self.duplicates != 1):
            raise OptinvError("`scale` and `duplicates` belong to `job` pulse")
        check_duplicates(self.duplicates)
        if self.options.batch < 1:
            raise OptinvError(f"`batch` must be ≥ 1, got {self.options.batch}")
        if not Path(self.input_dir).is_dir():
            raise OptinvError(f"{self.input_dir}: not a folder")
        if Path(self.out_dir).resolve() == Path(self.input_dir).resolve():
            raise OptinvError("`out` must not be the input folder (the outputs would be read as inputs next time)")

    @property
    def outputs_per_item(self) -> int:
        return self.duplicates if self.job == "pulse" else 1


@dataclass
class BatchSummary:
    """Counts over all ranks; ``signal`` is set when a signal stopped the run early."""

    total: int = 0
    ok: int = 0
    nan: int = 0
    failed: int = 0                     # status "error"
    skipped: int = 0                    # finished by an earlier run
    manifest: Path | None = None
    signal: int | None = None
    rank: int = 0
    world: int = 1

    @property
    def pending(self) -> int:
        return self.total - self.skipped - self.ok - self.nan - self.failed

    @property
    def exit_code(self) -> int:
        """128+signal when stopped; 1 for failed items, reported by rank 0 only: a worker that
        exits non-zero makes torchrun tear down rank 0 before it has printed the summary."""
        if self.signal:
            return 128 + self.signal
        return 1 if self.rank == 0 and (self.failed or self.nan) else 0


# ---------------------------------------------------------------------------------- the work
class Worker:
    """Runs batches of one rank with one loaded generator, writing and logging as it goes."""

    def __init__(self, cfg: BatchConfig, g: Generator, device: torch.device, rank: int) -> None:
        self.cfg, self.g, self.device, self.rank = cfg, g, device, rank
        self.spec = runner.JobSpec(cfg.job, cfg.options, scale=cfg.scale, duplicates=cfg.duplicates)
        self.decoded: dict[str, Any] = {}

    def process(self, items: Sequence[WorkItem], emit: Emit) -> None:
        """Unreadable inputs fail alone; a batch the job refuses is retried item by item."""
        try:
            self._process(items, emit)
        finally:
            self.decoded.clear()  # decoded images are kept for this round only

    def _process(self, items: Sequence[WorkItem], emit: Emit) -> None:
        valid = []
        for item in items:
            error = self._unreadable(item)
            if error:
                emit(make_record(item, "error", error=error, rank=self.rank))
            else:
                valid.append(item)
        if not valid:
            return
        done: set[str] = set()

        def emit_done(rec: dict[str, Any]) -> None:
            done.add(rec["input"])
            emit(rec)

        try:
            self._solve(valid, emit_done)
        except Exception as e:  # any failure costs its items only (OSError, overflow, out of memory…)
            if len(valid) == 1:
                emit(make_record(valid[0], "error", error=self.reason(e), rank=self.rank))
                return
            for item in valid:  # alone, each may well succeed (out of memory for a batch of 4…)
                if item.rel in done:
                    continue
                try:
                    self._solve([item], emit_done)
                except Exception as e1:
                    emit(make_record(item, "error", error=self.reason(e1), rank=self.rank))

    def reason(self, e: Exception) -> str:
        """The manifest's one-line reason: the message of an OptinvError, else type and first line."""
        if isinstance(e, OptinvError):
            return self.cfg.wording(one_line(e))
        if _is_out_of_memory(e):
            _free_memory(self.device)
        return f"{type(e).__name__}: {first_line(e)}"

    def _unreadable(self, item: WorkItem) -> str | None:
        """Decode the input once (kept for the job); a bad file fails alone, with its reason."""
        try:
            self.decoded[item.rel] = runner.inputs_for([item.source], self.spec)[0]
        except Exception as e:
            return self.reason(e)
        return None

    def _solve(self, items: list[WorkItem], emit: Emit) -> None:
        results = runner.dispatch(self.spec, [self.decoded.get(i.rel, str(i.source)) for i in items], self.g,
                                  str(self.device))
        k = self.spec.per_input
        if len(results) != k * len(items):
            raise OptinvError(f"the {self.cfg.job} job returned {len(results)} results for {len(items)} inputs")
        for n, item in enumerate(items):
            emit(self._write(item, results[n * k: (n + 1) * k]))

    def _write(self, item: WorkItem, results: list[jobs.ItemResult]) -> dict[str, Any]:
        folder = self.cfg.out_dir / item.subdir
        folder.mkdir(parents=True, exist_ok=True)
        outputs, metrics, notes = [], [], []
        for r, name, rel_paths in zip(results, item.names(self.cfg.outputs_per_item),
                                      item.outputs(self.cfg.outputs_per_item)):
            r.name = name  # the job names results after the file stem; ours are unique per folder
            (written,) = runner.write([r], folder, self.cfg.gif, self.cfg.wording)
            if "gif" in written:
                rel_paths = {**rel_paths, "gif": (PurePosixPath(item.subdir) / Path(written["gif"]).name).as_posix()}
            outputs.append(rel_paths)
            metrics.append(r.metrics)
            notes.extend(n for n in r.notes if n not in notes)
        status = "nan" if any(m.get("status") == "nan" for m in metrics) else "ok"
        return make_record(item, status, outputs=outputs, metrics=metrics, notes=notes, rank=self.rank)


def _is_out_of_memory(e: BaseException) -> bool:
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "out of memory" in str(e)


def _free_memory(device: torch.device) -> None:
    """After running out of memory, give the cached blocks back before the next item."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------- the run
def _plan(cfg: BatchConfig, ranks: Ranks, lock: OutputLock) -> tuple[list[WorkItem], list[int]]:
    """Rank 0 takes the output folder (which removes a killed run's temporary files), lists the
    inputs and sees what is done; the others get its answer, so every rank agrees on the list
    even on a file system that is slow to show new files. A second run on the same folder
    stops here with one line."""
    def make() -> tuple[list[WorkItem], list[int]]:
        lock.acquire()
        items = find_inputs(cfg.input_dir, cfg.recursive, exclude=cfg.out_dir.resolve(),
                            duplicates=cfg.outputs_per_item, gif=cfg.gif, out_dir=cfg.out_dir)
        if not items:
            raise OptinvError(f"no images ({', '.join(sorted(s[1:] for s in IMAGE_SUFFIXES))}) in {cfg.input_dir}"
                              + ("" if cfg.recursive else " (add `recursive` for sub-folders)"))
        if cfg.overwrite:
            return items, []
        return items, [i for i, it in enumerate(items) if it.complete(cfg.out_dir, cfg.outputs_per_item)]

    if not ranks.active:
        return make()
    answer: tuple[str, Any] = ("pending", None)
    if ranks.rank == 0:
        try:
            answer = ("ok", make())
        except OptinvError as e:
            answer = ("error", str(e))
    answer = ranks.share(answer)
    if answer[0] == "error":
        raise OptinvError(answer[1])
    return answer[1]


def _load_model(cfg: BatchConfig, device: torch.device) -> Generator:
    """Once per rank: loading is slow for real models and the weights never change."""
    if isinstance(cfg.model, Generator):
        return cfg.model.to(device)
    return load_generator(cfg.model, device=device)


def _progress(cfg: BatchConfig, ranks: Ranks, total: int, initial: int) -> Any:
    """Rank 0 only, counting finished items of all ranks."""
    from optinv.engine.progress import progress

    return progress(total, desc="batch", unit="img", initial=initial, enabled=cfg.progress and ranks.rank == 0,
                    leave=True)


def run_batch(cfg: BatchConfig) -> BatchSummary:
    """Run ``cfg.job`` on every image of ``cfg.input_dir`` not yet done in ``cfg.out_dir``."""
    cfg = replace(cfg, input_dir=Path(cfg.input_dir), out_dir=Path(cfg.out_dir),
                  options=replace(cfg.options, progress=False))  # one bar per run on a terminal, not per batch
    cfg.check()
    flag = StopFlag()
    flag.install()
    ranks = Ranks()
    try:
        if launched_by_torchrun():
            check_torchrun_env()
        local_rank = int(os.environ["LOCAL_RANK"]) if launched_by_torchrun() else None
        device = pick_device(cfg.device, local_rank)
        g = _load_model(cfg, device)
        ensure_out_dir(cfg.out_dir)
        ranks = join_ranks(device, flag)
        if cfg.progress and ranks.rank == 0 and not is_terminal(sys.stderr):  # in a log, also each batch's steps:
            cfg = replace(cfg, options=replace(cfg.options, progress=True))  # a 1024² image takes an hour
        return _run(cfg, ranks, Worker(cfg, g, device, ranks.rank), flag)
    finally:
        ranks.close()
        flag.restore()


def _run(cfg: BatchConfig, ranks: Ranks, worker: Worker, flag: StopFlag) -> BatchSummary:
    lock = OutputLock(cfg.out_dir, recursive=cfg.recursive)
    try:
        return _run_locked(cfg, ranks, worker, flag, lock)
    finally:
        lock.release()


def _run_locked(cfg: BatchConfig, ranks: Ranks, worker: Worker, flag: StopFlag, lock: OutputLock) -> BatchSummary:
    items, done = _plan(cfg, ranks, lock)
    done_set = set(done)
    todo = [it for i, it in enumerate(items) if i not in done_set]
    s = BatchSummary(total=len(items), skipped=len(done), rank=ranks.rank, world=ranks.world)
    log = RecordLog(cfg.out_dir / RANK_LOG.format(rank=ranks.rank))
    bar = _progress(cfg, ranks, len(items), len(done))
    try:
        for batch in rounds(todo, ranks.rank, ranks.world, cfg.options.batch):
            counts: Counter[str] = Counter()

            def emit(rec: dict[str, Any]) -> None:
                log.append(rec)
                counts[rec["status"]] += 1

            worker.process(batch, emit)
            ok, nan, failed, n_int, n_term = ranks.sum([counts["ok"], counts["nan"], counts["error"],
                                                        int(flag.signum == signal.SIGINT),
                                                        int(flag.signum == signal.SIGTERM)])
            s.ok, s.nan, s.failed = s.ok + ok, s.nan + nan, s.failed + failed
            bar.update(ok + nan + failed)
            if s.failed or s.nan:
                bar.set_postfix(failed=s.failed + s.nan)
            if n_int or n_term:
                s.signal = flag.signum or (signal.SIGINT if n_int else signal.SIGTERM)
                break
    finally:
        bar.close()
        log.close()
    ranks.barrier()  # every log is complete before rank 0 reads them
    if ranks.rank == 0:
        s.manifest = write_manifest(cfg.out_dir, items, cfg.outputs_per_item)
    ranks.barrier()  # nobody exits (and makes torchrun stop the group) while rank 0 writes
    s.manifest = cfg.out_dir / MANIFEST
    s.signal = s.signal or flag.signum
    return s


__all__ = ["BatchConfig", "BatchSummary", "WorkItem", "find_inputs", "run_batch", "write_manifest", "IMAGE_SUFFIXES"]
