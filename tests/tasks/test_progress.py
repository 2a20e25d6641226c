"""The one Progress renderer: plain lines when piped (with counts and an ETA), a rich bar on a
terminal, a Prefect progress artifact updated at a bounded rate."""

from __future__ import annotations

import io

import pytest

from tokenfoundry.tasks.progress import ArtifactProgress, PlainLines, show_progress, tee


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_plain_lines_every_interval_with_counts_and_eta():
    clock, stream = Clock(), io.StringIO()
    p = PlainLines("ingest", stream=stream, interval=10.0, unit="bytes", clock=clock)
    for i in range(1, 101):  # 100 calls, 1 s apart, 1 MiB each, of 200 MiB
        clock.t += 1.0
        p(i * 1024 * 1024, 200 * 1024 * 1024, f"file-{i}.txt")
    p.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 + 1  # one every 10 s, then the final state
    assert lines[0] == ("ingest: 10.0 MB/200.0 MB (5.0%), elapsed 0:00:10, ETA 0:03:10 - "
                        "file-10.txt")
    assert lines[-1].startswith("ingest: 100.0 MB/200.0 MB (50.0%), elapsed 0:01:40, ETA 0:01:40")


def test_plain_lines_quick_work_prints_nothing_and_unknown_total_has_no_eta():
    clock, stream = Clock(), io.StringIO()
    p = PlainLines("dedup", stream=stream, clock=clock)
    p(1, 3, "exact")
    p.close()
    assert stream.getvalue() == ""
    clock.t += 11
    p(5, None, "reading")
    assert stream.getvalue() == "dedup: 5, elapsed 0:00:11 - reading\n"


def test_show_progress_piped_goes_to_the_consoles_stream():
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False)
    with show_progress("train", console=console, interval=0.0) as p:
        p(3, 4, "sampling")
    assert buf.getvalue().startswith("train: 3/4 (75.0%), elapsed 0:00:00")
    assert "\x1b" not in buf.getvalue()  # no control characters in a log


def test_show_progress_on_a_terminal_draws_a_bar():
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    with show_progress("dedup", console=console) as p:
        p(1, 4, "MinHash signatures")
        p(4, 4, "done")
    assert "dedup" in buf.getvalue() and "\x1b[" in buf.getvalue()


def test_artifact_progress_is_rate_limited_and_always_sends_the_end(monkeypatch):
    import prefect.artifacts as artifacts

    sent: list[tuple[str, float]] = []
    monkeypatch.setattr(artifacts, "create_progress_artifact",
                        lambda pct, key=None, description=None: sent.append(("create", pct))
                        or "artifact-id")
    monkeypatch.setattr(artifacts, "update_progress_artifact",
                        lambda aid, pct: sent.append((aid, pct)))
    clock = Clock()
    a = ArtifactProgress("ingest legal: bytes read", min_step=1.0, min_interval=5.0, clock=clock)
    a(0, None)  # unknown total: nothing to show
    for i in range(1, 10_001):  # 10,000 calls, 0.01 s apart
        clock.t += 0.01
        a(i, 10_000)
    assert sent[0] == ("create", pytest.approx(0.01))
    assert sent[-1] == ("artifact-id", 100.0)
    # 100 s of work, at most one update per 5 s (+ create + the end)
    assert 3 <= len(sent) <= 100 / 5 + 2
    assert [p for _a, p in sent] == sorted(p for _a, p in sent)


def test_tee_forwards_to_every_callback():
    got: list[tuple] = []
    t = tee(lambda d, t, m="": got.append(("a", d, t, m)), lambda d, t, m="": got.append(("b", d)))
    t(2, 5, "x")
    assert got == [("a", 2, 5, "x"), ("b", 2)]


@pytest.mark.prefect
def test_artifact_progress_in_a_real_flow_run(prefect_harness):
    """Inside a flow run the artifact exists with the final percentage, after far fewer API
    calls than progress reports."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    clock = Clock()
    seen: dict[str, int] = {}

    @flow(name="progress-artifact-test")
    def work() -> None:
        a = ArtifactProgress("test: rows done", key="progress-artifact-test", clock=clock)
        for i in range(1, 2001):
            clock.t += 0.05
            a(i, 2000, f"row {i}")
        seen["updates"] = a.updates

    work()
    assert 2 <= seen["updates"] <= 100 / 5 + 2  # 2000 reports over 100 s: one per 5 s, + ends
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["progress-artifact-test"])))
    assert arts and arts[0].type == "progress" and float(arts[0].data) == 100.0
