"""Progress on long work: one callback type for the cores, one renderer for each place it shows.

Cores (ingest, dedup, train, evaluate, publish) accept ``progress(done, total, message="")``
(:class:`Progress`) and never print. Who calls a core picks where the progress goes:

- :func:`show_progress` - a terminal: a rich bar with counts, rate and ETA (stderr); a pipe or
  a CI log: one plain line every ``interval`` seconds (default 10) on stderr, so a log gets a
  heartbeat with counts and an ETA and no control characters.
- :class:`ArtifactProgress` - inside a Prefect flow or task: a progress artifact, updated only
  when the percentage moved by ``min_step`` and ``min_interval`` seconds have passed (each
  update is an API call), and always at the end.
- :func:`tee` - both at once.

``total`` may be None (unknown yet); ``done`` may be fractional (stages of a step).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    def __call__(self, done: float, total: float | None, message: str = "") -> None: ...


def no_progress(done: float, total: float | None, message: str = "") -> None:
    """The default: report nothing."""


def tee(*callbacks: Progress) -> Progress:
    """One callback that forwards to several (e.g. the terminal and a Prefect artifact)."""

    def progress(done: float, total: float | None, message: str = "") -> None:
        for cb in callbacks:
            cb(done, total, message)

    return progress


def format_amount(n: float, unit: str = "") -> str:
    """``1234567`` -> ``1,234,567``; with ``unit="bytes"``: ``1.2 MB``."""
    if unit == "bytes":
        for u in ("B", "KB", "MB", "GB", "TB"):
            if abs(n) < 1024 or u == "TB":
                return f"{n:.0f} {u}" if u == "B" else f"{n:.1f} {u}"
            n /= 1024
    text = f"{n:,.0f}" if float(n).is_integer() or n >= 100 else f"{n:,.1f}"
    return f"{text} {unit}".rstrip() if unit else text


def format_seconds(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class PlainLines:
    """One line per ``interval`` seconds: ``label: done/total (pct) elapsed ETA - message``.

    The first line comes after ``interval`` seconds (quick work prints nothing); when at least
    one line was printed, :meth:`close` prints the final state. Thread-safe (ingest reports from
    several threads). ``clock`` is injectable for tests.
    """

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 10.0,
                 unit: str = "", clock: Callable[[], float] = time.monotonic):
        self.label, self.stream, self.interval, self.unit = label, stream, interval, unit
        self.clock = clock
        self.start = self.last = clock()
        self.state: tuple[float, float | None, str] = (0.0, None, "")
        self.lines = 0
        self._lock = threading.Lock()

    def __call__(self, done: float, total: float | None, message: str = "") -> None:
        with self._lock:
            self.state = (done, total, message or self.state[2])
            now = self.clock()
            if now - self.last >= self.interval:
                self.last = now
                self._write(now)

    def line(self, now: float | None = None) -> str:
        done, total, message = self.state
        now = self.clock() if now is None else now
        elapsed = now - self.start
        parts = [f"{self.label}: {format_amount(done, self.unit)}"]
        if total:
            parts[0] += f"/{format_amount(total, self.unit)} ({100.0 * done / total:.1f}%)"
        parts.append(f"elapsed {format_seconds(elapsed)}")
        if total and 0 < done < total and elapsed > 0:
            parts.append(f"ETA {format_seconds((total - done) * elapsed / done)}")
        text = ", ".join(parts)
        return f"{text} - {message}" if message else text

    def _write(self, now: float) -> None:
        stream = self.stream or sys.stderr
        stream.write(self.line(now) + "\n")
        stream.flush()
        self.lines += 1

    def close(self) -> None:
        with self._lock:
            if self.lines:
                self._write(self.clock())


@contextlib.contextmanager
def show_progress(label: str, console: Any = None, unit: str = "", interval: float = 10.0,
                  enabled: bool = True) -> Iterator[Progress]:
    """A Progress callback for a command-line run (see the module docstring).

    ``console``: a rich Console on stderr (its ``is_terminal`` picks the bar or plain lines);
    default: a new one on stderr. ``enabled=False`` (e.g. ``--json`` runs that want a silent
    stderr) yields :func:`no_progress`.
    """
    if not enabled:
        yield no_progress
        return
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    if not console.is_terminal:
        lines = PlainLines(label, stream=console.file, interval=interval, unit=unit)
        try:
            yield lines
        finally:
            lines.close()
        return
    from rich.progress import (
        BarColumn,
        Progress as RichProgress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with RichProgress(TextColumn(f"[bold]{label}[/]"), BarColumn(), TaskProgressColumn(),
                      TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                      TextColumn("ETA"), TimeRemainingColumn(),
                      TextColumn("{task.fields[msg]}"), console=console,
                      transient=True) as bar:
        tid = bar.add_task(label, total=None, counts="", msg="")

        def progress(done: float, total: float | None, message: str = "") -> None:
            counts = format_amount(done, unit) + (f"/{format_amount(total, unit)}" if total
                                                  else "")
            bar.update(tid, completed=done, total=total, counts=counts,
                       msg=message[:60] if message else bar.tasks[0].fields["msg"])

        yield progress


class ArtifactProgress:
    """A Prefect progress artifact fed by a Progress callback, at a sane rate.

    Created on the first call (inside the running flow/task); updated when the percentage
    moved by at least ``min_step`` points and ``min_interval`` seconds passed, and when the work
    is done - a few dozen API calls for any length of work, not one per batch.
    """

    def __init__(self, description: str, key: str | None = None, min_step: float = 1.0,
                 min_interval: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.description, self.key = description, key
        self.min_step, self.min_interval, self.clock = min_step, min_interval, clock
        self.artifact_id: Any = None
        self.sent: float | None = None
        self.sent_at = 0.0
        self.updates = 0
        self._lock = threading.Lock()

    def __call__(self, done: float, total: float | None, message: str = "") -> None:
        if not total:
            return
        pct = max(0.0, min(100.0, 100.0 * done / total))
        with self._lock:
            now = self.clock()
            final = pct >= 100.0 and self.sent != 100.0
            if self.sent is not None and not final and (
                    pct - self.sent < self.min_step or now - self.sent_at < self.min_interval):
                return
            self._send(pct)
            self.sent, self.sent_at = pct, now

    def _send(self, pct: float) -> None:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(pct, key=self.key,
                                                        description=self.description)
        else:
            update_progress_artifact(self.artifact_id, pct)
        self.updates += 1
