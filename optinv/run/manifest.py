"""The records of ``optinv batch``: one fsynced line per finished item in each rank's log, and
``manifest.jsonl`` merged from them (rebuilt from the files on disk for items a log misses)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator, Sequence


from optinv.io.fileio import atomic_write_text, first_line
from optinv.io.outputs import jsonable
from optinv.run.worklist import WorkItem

MANIFEST = "manifest.jsonl"
RANK_LOG_GLOB = ".manifest.rank*.jsonl"
CLAIMS_OUTPUTS = ("ok", "nan", "skipped-existing")  # statuses whose record says the files exist


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


