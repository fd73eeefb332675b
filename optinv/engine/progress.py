"""Progress of long jobs, readable wherever it goes: a bar on a terminal, plain lines in a log.

tqdm redraws its bar with ``\\r`` a few times a second; written to a file (a redirected log,
CI, ``batch`` under torchrun) that is hundreds of fragments on one "line". Without a terminal
this writes one ordinary line every ``every`` seconds instead: step, the loss terms, speed and
time left. Every job takes its bar from :func:`progress`, so the rule lives here.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Mapping, TextIO

EVERY_ENV = "OPTINV_PROGRESS_EVERY"  # seconds between log lines (default 10)
DEFAULT_EVERY = 10.0


def _clock() -> float:
    return time.monotonic()


def _hms(seconds: float) -> str:
    s = int(round(max(0.0, seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _every() -> float:
    try:
        value = float(os.environ.get(EVERY_ENV, DEFAULT_EVERY))
    except ValueError:
        return DEFAULT_EVERY
    return value if value > 0 else DEFAULT_EVERY


class LineProgress:
    """tqdm's ``update``/``set_postfix``/``close`` written as one plain line every ``every`` seconds.

    A run shorter than ``every`` writes nothing; a longer one also writes a closing line, so a
    log shows how long it took. ``clock`` is injectable (tests).
    """

    def __init__(self, total: int | None, desc: str = "", unit: str = "step", initial: int = 0,
                 stream: TextIO | None = None, every: float | None = None, clock: Callable[[], float] | None = None):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.first = initial
        self.stream = stream if stream is not None else sys.stderr
        self.every = every if every is not None else _every()
        self.clock = clock or _clock
        self.t0 = self.last = self.clock()
        self.postfix: dict[str, Any] = {}
        self.lines = 0
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.every:
            self._write(now)
            self.last = now

    def set_postfix(self, ordered: Mapping[str, Any] | None = None, refresh: bool = True, **kw: Any) -> None:
        self.postfix = {**(ordered or {}), **kw}

    def line(self, now: float, done: bool = False) -> str:
        """``desc: 120/300 step (40%) loss 0.012 | 3.10 step/s, 0:00:58 left`` (or ``… in 0:01:37`` when done)."""
        elapsed = max(now - self.t0, 1e-9)
        rate = (self.n - self.first) / elapsed
        head = f"{self.desc}: " if self.desc else ""
        count = f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        terms = "".join(f" {k} {v}" for k, v in self.postfix.items())
        speed = f"{rate:.3g} {self.unit}/s" if rate >= 1 or rate == 0 else f"{1 / rate:.3g} s/{self.unit}"
        if done:
            when = f"in {_hms(elapsed)}"
        elif self.total and rate > 0:
            when = f"{_hms((self.total - self.n) / rate)} left"
        else:
            when = f"{_hms(elapsed)} so far"
        return f"{head}{count}{terms} | {speed}, {when}"

    def _write(self, now: float, done: bool = False) -> None:
        self.stream.write(self.line(now, done) + "\n")
        self.stream.flush()
        self.lines += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.lines:
            self._write(self.clock(), done=True)


class _Off:
    """A bar that shows nothing (progress disabled, or not rank 0)."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, ordered: Mapping[str, Any] | None = None, refresh: bool = True, **kw: Any) -> None:
        pass

    def close(self) -> None:
        pass


def is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def progress(total: int | None, desc: str = "", unit: str = "step", initial: int = 0, enabled: bool = True,
             leave: bool = False, stream: TextIO | None = None) -> Any:
    """A progress display with tqdm's interface: a bar on a terminal, a line every few seconds elsewhere."""
    if not enabled:
        return _Off()
    stream = stream if stream is not None else sys.stderr
    if is_terminal(stream):
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc or None, unit=unit, dynamic_ncols=True, leave=leave,
                    file=stream)
    return LineProgress(total, desc, unit, initial, stream)


__all__ = ["progress", "LineProgress", "is_terminal", "EVERY_ENV"]
