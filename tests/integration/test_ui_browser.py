"""The Prefect UI, as an operator sees it: headless Chromium (Debian's `chromium`, installed by
the `chromium` fixture when missing) opens the page of the deployment's flow run and the DOM
shows the run's evaluation report artifact; a screenshot is saved beside it."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = [pytest.mark.slow]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def _chromium(exe: str, profile, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_flow_run_page_shows_the_evaluation_report_artifact(deployed_pipeline_run, chromium,
                                                            tmp_path):
    run = deployed_pipeline_run
    url = f"{run.server.url}/runs/flow-run/{run.flow_run_id}?tab=Artifacts"
    # what the UI must show: the artifact as the API has it
    arts = run.server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {
        "any_": [run.flow_run_id]}}})
    report = [a for a in arts if a["key"] == "tiny-evaluation-report"]
    assert len(report) == 1 and report[0]["type"] == "markdown"
    description = report[0]["description"]

    dom = ""
    for budget in (15000, 30000):  # a slow, loaded machine gets a second, longer look
        p = _chromium(chromium, tmp_path / "profile", f"--virtual-time-budget={budget}",
                      "--dump-dom", url)
        dom = p.stdout
        if "tiny-evaluation-report" in dom:
            break
    assert "tiny-evaluation-report" in dom, (
        f"artifact key not in the DOM of {url} ({len(dom)} chars):\n{dom[-3000:]}")
    assert description.split(":")[0] in dom  # "tiny: evaluation report of the candidate..."
    assert "tiny-published" in dom  # the link artifact to the published version

    shot = tmp_path / "flow-run-artifacts.png"
    p = _chromium(chromium, tmp_path / "profile", "--virtual-time-budget=15000",
                  "--window-size=1400,1000", f"--screenshot={shot}", url)
    assert shot.is_file() and shot.stat().st_size > 10_000, p.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {shot}")
