"""One job over a whole folder: resumable, shared out across ``torchrun`` ranks, robust to bad files.

OUT_DIR holds the usual NAME.png / NAME.latent.pt / NAME.compare.png / NAME.json per input
(sub-folders mirrored with ``recursive``), ``.manifest.rank{R}.jsonl`` while a run is going
(one fsynced line per finished item, so a killed rank loses at most its batch in flight) and
``manifest.jsonl`` once rank 0 has merged them: one line per input.

Resume is decided by outputs, not by the manifest: an item whose four files exist is done
(``overwrite`` redoes it). Every file is written to a temporary name and renamed, so "exists"
means "complete". One run at a time writes to OUT_DIR (:class:`optinv.outputs.OutputLock`);
an item that fails for any reason is recorded with its one-line reason and the rest go on.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Sequence

import torch

from . import jobs
from .checkpoints import load_generator
from .errors import OptinvError
from .fileio import atomic_write_text, first_line
from .generator import Generator
from .image_files import load_image
from .options import check_duplicates
from .names import RESULT_SUFFIXES, duplicate_names, result_files
from .outputs import OutputLock, ensure_out_dir, inputs_in, jsonable, plan_names, write_item
from .progress import is_terminal

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
JOBS = ("invert", "pulse", "paint")
MANIFEST = "manifest.jsonl"
RANK_LOG = ".manifest.rank{rank}.jsonl"
RANK_LOG_GLOB = ".manifest.rank*.jsonl"
CLAIMS_OUTPUTS = ("ok", "nan", "skipped-existing")  # statuses whose record says the files exist
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")

Emit = Callable[[dict[str, Any]], None]


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


# ------------------------------------------------------------------------- ranks and devices
@dataclass
class Ranks:
    """Where this process stands among the torchrun workers (a lone process is rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int | None = None
    active: bool = False                       # collectives go through torch.distributed
    owns_group: bool = False                   # we initialised it, so we destroy it
    comm_device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def sum(self, values: list[int]) -> list[int]:
        if not self.active:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.int64, device=self.comm_device)
        dist.all_reduce(t)
        return [int(v) for v in t.tolist()]

    def barrier(self) -> None:
        """An all-reduce rather than dist.barrier(): NCCL's barrier has to guess the device."""
        self.sum([0])

    def share(self, obj: Any) -> Any:
        """Rank 0's object, on every rank."""
        if not self.active:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self.comm_device)
        return box[0]

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.owns_group = self.active = False


def launched_by_torchrun() -> bool:
    return all(k in os.environ for k in TORCHRUN_ENV)


RENDEZVOUS_ENV = "OPTINV_RENDEZVOUS_SECONDS"


def rendezvous_seconds() -> float:
    """How long a rank waits for the others (``$OPTINV_RENDEZVOUS_SECONDS``, default 300)."""
    raw = os.environ.get(RENDEZVOUS_ENV, "300")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise OptinvError(f"{RENDEZVOUS_ENV} must be a number of seconds > 0, got {raw!r}")
    return value


def check_torchrun_env() -> None:
    """RANK, WORLD_SIZE and LOCAL_RANK are integers with 0 ≤ RANK < WORLD_SIZE and 0 ≤ LOCAL_RANK:
    a rank outside the world would wait for a group it can never join."""
    values = {}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        raw = os.environ.get(key, "")
        try:
            values[key] = int(raw)
        except ValueError:
            raise OptinvError(f"{key} must be an integer, got {raw!r} (torchrun sets it)") from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world:
        raise OptinvError(f"RANK {rank} does not lie in 0..WORLD_SIZE-1 (WORLD_SIZE {world}): start the ranks "
                          f"with torchrun")
    if not 0 <= local <= rank:
        raise OptinvError(f"LOCAL_RANK {local} must lie in 0..RANK ({rank})")


def pick_device(name: str | None, local_rank: int | None) -> torch.device:
    """The job's device; under torchrun each rank takes GPU number LOCAL_RANK."""
    dev = jobs.resolve_device(name)
    if dev.type != "cuda" or local_rank is None:
        return dev
    if local_rank >= torch.cuda.device_count():
        raise OptinvError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s): "
                          f"start at most that many processes per node")
    dev = torch.device("cuda", local_rank)
    torch.cuda.set_device(dev)
    return dev


def _rendezvous(backend: str, seconds: float, flag: "StopFlag | None") -> None:
    """``init_process_group`` on a helper thread while this one watches for SIGINT/SIGTERM: the
    C++ wait for the other ranks would otherwise hold the signals until it gives up."""
    import datetime

    import torch.distributed as dist

    failed: list[BaseException] = []

    def run() -> None:
        try:
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=seconds))
        except BaseException as e:  # noqa: BLE001  (handed to the waiting thread)
            failed.append(e)

    waiter = threading.Thread(target=run, name="optinv-rendezvous", daemon=True)
    waiter.start()
    while waiter.is_alive():
        waiter.join(0.1)
        if flag is not None and flag.signum is not None:
            raise OptinvError(f"stopped by {signal.Signals(flag.signum).name} while waiting for the other ranks")
    if failed:
        e = failed[0]
        if isinstance(e, (RuntimeError, ValueError)):  # torch's DistStoreError is a RuntimeError
            raise OptinvError(f"the other ranks did not join within {seconds:g} s (WORLD_SIZE "
                              f"{os.environ['WORLD_SIZE']}, MASTER_ADDR {os.environ['MASTER_ADDR']}): start every "
                              f"rank with torchrun, or set {RENDEZVOUS_ENV} ({first_line(e, 120)})") from None
        raise e


def join_ranks(device: torch.device, flag: "StopFlag | None" = None) -> Ranks:
    """Join the torchrun process group (NCCL for CUDA, gloo otherwise), or stay alone; a signal
    while waiting for the other ranks stops the run in one line."""
    if not launched_by_torchrun():
        return Ranks()
    import torch.distributed as dist

    check_torchrun_env()
    owns = False
    if not dist.is_initialized():
        _rendezvous("nccl" if device.type == "cuda" else "gloo", rendezvous_seconds(), flag)
        owns = True
    comm = device if dist.get_backend() == "nccl" else torch.device("cpu")
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ["LOCAL_RANK"]),
                 active=True, owns_group=owns, comm_device=comm)


# ------------------------------------------------------------------------------------ signals
class StopFlag:
    """SIGINT/SIGTERM only set a flag: a batch cannot be stopped midway without losing it, so
    the run stops after the batch in flight. A second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python only delivers signals to the main thread
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = self.signum or signum

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


# ------------------------------------------------------------------------------------ records
def make_record(item: WorkItem, status: str, *, error: str | None = None, outputs: Sequence[dict] = (),
                metrics: Sequence[dict] = (), notes: Sequence[str] = (), rank: int = 0) -> dict[str, Any]:
    """One manifest line; ``time`` decides which record wins when runs are merged."""
    return {"input": item.rel, "status": status, "error": error, "outputs": list(outputs),
            "metrics": list(metrics), "notes": list(notes), "rank": rank, "time": time.time()}


def one_line(e: BaseException) -> str:
    return first_line(e, limit=None)


class RecordLog:
    """This rank's append-only log: a line is on disk (fsynced) before the next item starts."""

    def __init__(self, path: Path) -> None:
        torn = path.exists() and path.stat().st_size > 0 and not _ends_with_newline(path)
        self._f = open(path, "a", encoding="utf-8")
        if torn:  # a line cut short by a kill must not swallow the next one
            self._f.write("\n")

    def append(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(jsonable(record)) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Records of one manifest or log; a line torn by a kill is skipped, not fatal."""
    if not path.is_file():
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("input"), str) and "status" in rec:
                yield rec


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
    # `name`; the CLI passes its flag table (optinv.cli.to_flags)
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

    def process(self, items: Sequence[WorkItem], emit: Emit) -> None:
        """Unreadable inputs fail alone; a batch the job refuses is retried item by item."""
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
        try:
            load_image(item.source, keep_alpha=self.cfg.job == "paint", crop=self.cfg.options.crop)
        except Exception as e:
            return self.reason(e)
        return None

    def _solve(self, items: list[WorkItem], emit: Emit) -> None:
        results = self._call_job([str(i.source) for i in items])
        k = self.cfg.outputs_per_item
        if len(results) != k * len(items):
            raise OptinvError(f"the {self.cfg.job} job returned {len(results)} results for {len(items)} inputs")
        for n, item in enumerate(items):
            emit(self._write(item, results[n * k: (n + 1) * k]))

    def _call_job(self, paths: list[str]) -> list[jobs.ItemResult]:
        c = self.cfg
        kw = {"model": self.g, "device": str(self.device), "options": c.options}
        if c.job == "pulse":
            return jobs.pulse(paths, scale=c.scale, duplicates=c.duplicates, **kw)
        if c.job == "paint":
            return jobs.paint(paths, **kw)
        return jobs.invert(paths, **kw)

    def _write(self, item: WorkItem, results: list[jobs.ItemResult]) -> dict[str, Any]:
        folder = self.cfg.out_dir / item.subdir
        folder.mkdir(parents=True, exist_ok=True)
        outputs, metrics, notes = [], [], []
        for r, name, rel_paths in zip(results, item.names(self.cfg.outputs_per_item),
                                      item.outputs(self.cfg.outputs_per_item)):
            r.name = name  # the job names results after the file stem; ours are unique per folder
            r.notes = [self.cfg.wording(n) for n in r.notes]
            written = write_item(r, folder, gif=self.cfg.gif)
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


# -------------------------------------------------------------------------------- the manifest
def newest_records(out: Path) -> dict[str, dict[str, Any]]:
    """The newest record per input over the last manifest and every rank's log."""
    newest: dict[str, dict[str, Any]] = {}
    for path in (out / MANIFEST, *sorted(out.glob(RANK_LOG_GLOB))):
        for rec in read_records(path):
            if rec["status"] == "pending":
                continue
            old = newest.get(rec["input"])
            if old is None or float(rec.get("time") or 0) >= float(old.get("time") or 0):
                newest[rec["input"]] = rec
    return newest


def rebuilt_record(item: WorkItem, out: Path, per_item: int) -> dict[str, Any]:
    """For finished outputs whose log line was lost (killed between the write and the log)."""
    metrics, notes = [], []
    for paths in item.outputs(per_item):
        try:
            saved = json.loads((out / paths["json"]).read_text())
        except (OSError, ValueError):
            saved = {}
        metrics.append(saved.get("metrics", {}))
        notes.extend(saved.get("notes", []))
    rec = make_record(item, "skipped-existing", outputs=item.outputs(per_item), metrics=metrics, notes=notes)
    rec["rank"] = None
    rec["time"] = (out / item.outputs(per_item)[0]["json"]).stat().st_mtime  # when it was made, not now
    return rec


def final_record(item: WorkItem, rec: dict[str, Any] | None, out: Path, per_item: int) -> dict[str, Any]:
    """A record may only claim outputs that exist; an item neither done nor failed is pending."""
    if item.complete(out, per_item):
        return rec if rec is not None and rec["status"] in CLAIMS_OUTPUTS else rebuilt_record(item, out, per_item)
    if rec is not None and rec["status"] == "error":
        return rec
    return {**make_record(item, "pending"), "rank": None}


def write_manifest(out: Path, items: Sequence[WorkItem], per_item: int) -> Path:
    """Merge every log into manifest.jsonl (atomically), then drop the logs."""
    newest = newest_records(out)
    lines = [json.dumps(jsonable(final_record(it, newest.get(it.rel), out, per_item))) + "\n" for it in items]
    path = atomic_write_text("".join(lines), out / MANIFEST, fsync=True)
    for log in out.glob(RANK_LOG_GLOB):
        log.unlink(missing_ok=True)
    return path


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
    from .progress import progress

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
