"""The Prefect UI, as an operator sees it: headless Chromium (Debian's `chromium`; the test is
skipped, before any server starts, when it is not installed) opens the page of the deployment's flow run, clicks its
Artifacts tab, and the DOM shows the run's evaluation report artifact; a screenshot is saved.

The browser is driven over the Chrome DevTools protocol (``--remote-debugging-port``, with the
``websockets`` client Prefect already depends on): a cold load of ``?tab=Artifacts`` falls back
to the Logs tab because the UI hides the Artifacts tab until the flow run has loaded, so the test
clicks the tab like a user does.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,1000"]

CLICK_ARTIFACTS_TAB = """(() => {
  const tab = [...document.querySelectorAll('[role=tablist] *')]
    .find(e => e.textContent.trim() === 'Artifacts');
  if (!tab) return false;
  tab.click();
  return true;
})()"""


class Browser:
    """One headless Chromium page over the DevTools protocol."""

    def __init__(self, exe: str, profile: Path):
        from websockets.sync.client import connect

        profile.mkdir(parents=True, exist_ok=True)
        port_file = profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}",
                                      "--remote-debugging-port=0", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError("chromium did not start its DevTools endpoint")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        self._id = 0

    def call(self, method: str, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self._id:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg.get("result", {})

    def eval(self, expr: str):
        res = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return res.get("result", {}).get("value")

    def wait_for(self, expr: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expr)
            if value:
                return value
            time.sleep(0.5)
        return None

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot",
                                                    format="png")["data"]))

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def test_flow_run_page_shows_the_evaluation_report_artifact(chromium, deployed_pipeline_run,
                                                            tmp_path):
    run = deployed_pipeline_run
    url = f"{run.server.url}/runs/flow-run/{run.flow_run_id}"
    # what the UI must show: the artifacts as the API has them
    arts = run.server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {
        "any_": [run.flow_run_id]}}})
    report = [a for a in arts if a["key"] == "tiny-evaluation-report"]
    assert len(report) == 1 and report[0]["type"] == "markdown"

    b = Browser(chromium, tmp_path / "profile")
    try:
        b.call("Page.enable")
        b.call("Page.navigate", url=url)
        # the run page loaded: its name and state are on it
        fr = run.server.get(f"/flow_runs/{run.flow_run_id}")
        assert b.wait_for(f"document.body.innerText.includes({json.dumps(fr['name'])})", 90), \
            b.eval("document.body.innerText")
        assert b.wait_for(CLICK_ARTIFACTS_TAB, 60), "no Artifacts tab on the flow run page"
        found = b.wait_for("document.body.innerText.includes('tiny-evaluation-report')", 60)
        dom = b.eval("document.documentElement.outerHTML") or ""
        text = b.eval("document.body.innerText") or ""
        shot = tmp_path / "flow-run-artifacts.png"
        b.screenshot(shot)
    finally:
        b.close()
    (tmp_path / "flow-run-artifacts.html").write_text(dom, encoding="utf-8")
    assert found, f"evaluation report artifact not on {url}?tab=Artifacts:\n{text[-3000:]}"
    assert "Completed" in text
    assert "tiny-evaluation-report" in dom and report[0]["description"] in text
    assert "tiny-published" in text  # the link artifact to the published version
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
