"""One worker thread, a queue of jobs, one job per page: what keeps the engine off request threads.

Jobs run one at a time (the engine already uses every core); each page has at most one job
queued or running, so a new Run from the same page replaces its old job. Cancelling sets a
flag that the job's progress callback checks every step, so a cancelled job stops within one
optimisation step and the worker moves on.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from optinv.errors import OptinvError
from optinv.io.fileio import first_line


class Cancelled(Exception):
    """Raised inside a job (from its progress callback) once the job was cancelled."""


@dataclass
class Job:
    """One submitted job and what the page is shown of it."""

    id: str
    page: str
    kind: str
    work: Callable[["Job"], Any]
    state: str = "queued"               # queued | running | done | error | cancelled
    progress: dict[str, Any] = field(default_factory=dict)
    preview: bytes | None = None        # the current image (PNG), refreshed every few steps
    result: Any = None
    error: str | None = None
    version: int = 0                    # bumped on every change the page should see
    submitted: float = field(default_factory=time.perf_counter)
    first_progress: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "error", "cancelled")

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Stop here if the job was cancelled (called from the engine's callbacks)."""
        if self._cancel.is_set():
            raise Cancelled()

    def report(self, preview: bytes | None = None, **progress: Any) -> None:
        """New progress (and optionally a new current image) for the page."""
        if self.first_progress is None:
            self.first_progress = time.perf_counter()
        self.progress = {**self.progress, **progress}
        if preview is not None:
            self.preview = preview
        self.version += 1


class JobQueue:
    """FIFO of jobs run by one daemon worker thread."""

    def __init__(self, describe_error: Callable[[BaseException], str] = str):
        self._pending: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._cond = threading.Condition()
        self._describe = describe_error
        self._stop = False
        self._worker = threading.Thread(target=self._loop, name="optinv-studio-worker", daemon=True)
        self._worker.start()

    def submit(self, page: str, kind: str, work: Callable[[Job], Any]) -> Job:
        """Queue ``work(job)``; the page's earlier job, if still unfinished, is cancelled."""
        with self._cond:
            for old in self._jobs.values():
                if old.page == page and not old.finished:
                    self._cancel_locked(old)
            job = Job(id=f"j{secrets.token_urlsafe(16)}", page=page, kind=kind, work=work)  # unguessable
            self._jobs[job.id] = job
            self._pending.append(job)
            self._touch_pending()
            self._cond.notify_all()
            return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """1 for the next job to run, 2 after it …; 0 once running or finished."""
        with self._cond:
            for i, j in enumerate(self._pending):
                if j is job:
                    return i + 1
            return 0

    def cancel(self, job_id: str) -> bool:
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or job.finished:
                return False
            self._cancel_locked(job)
            return True

    def close(self) -> None:
        with self._cond:
            self._stop = True
            for job in list(self._pending) + [j for j in self._jobs.values() if j.state == "running"]:
                self._cancel_locked(job)
            self._cond.notify_all()

    # ------------------------------------------------------------------ internals
    def _cancel_locked(self, job: Job) -> None:
        job._cancel.set()
        if job in self._pending:  # never started: finished at once
            self._pending.remove(job)
            job.state = "cancelled"
            job.version += 1
            self._touch_pending()

    def _touch_pending(self) -> None:
        for j in self._pending:  # queue positions changed: every waiting page is told
            j.version += 1

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job = self._pending.popleft()
                job.state = "running"
                job.version += 1
                self._touch_pending()
            self._run(job)
            self._forget_old()

    def _run(self, job: Job) -> None:
        try:
            job.check()
            result = job.work(job)
            job.check()
            job.result, job.state = result, "done"
        except Cancelled:
            job.state = "cancelled"
        except OptinvError as e:
            job.error, job.state = self._describe(e), "error"
        except Exception as e:  # a bug or a resource problem: one line for the page, not a dead worker
            job.error, job.state = f"{type(e).__name__}: {first_line(e, None) if str(e).strip() else ''}", "error"
        job.version += 1

    def _forget_old(self, keep: int = 200) -> None:
        with self._cond:
            done = [k for k, j in self._jobs.items() if j.finished]
            for k in done[:-keep] if len(done) > keep else []:
                del self._jobs[k]
