"""A progress callback that cores accept, so the CLI (rich) and flows (Prefect progress
artifacts) can both show progress on long work without the core knowing either."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, done: float, total: float | None, message: str = "") -> None: ...


def no_progress(done: float, total: float | None, message: str = "") -> None:
    """The default: report nothing."""
