"""A real Prefect server + process worker, shared by the integration tests (start-up paid once).

``prefect_server`` starts ``prefect server start`` on a free 127.0.0.1 port with its own
PREFECT_HOME (analytics and the scheduler service off, so the prefect.yaml cron schedules do not
create runs during the test), creates the ``tokenfoundry-process`` work pool, runs
``prefect --no-prompt deploy --all`` from the repository root and starts a worker on the pool.
``deployed_pipeline_run`` triggers the quickstart-pipeline deployment on a tiny spec written to a
temp dir and waits until the flow run is Completed. Everything is shut down by PID (SIGINT,
then SIGKILL after a timeout).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tf_fixtures.pipeline import tiny_spec

REPO = Path(__file__).resolve().parents[2]
POOL = "tokenfoundry-process"
DEPLOYMENT = "tokenfoundry-pipeline/quickstart-pipeline"
PREFECT = [sys.executable, "-m", "prefect"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGINT the process group, then SIGKILL if it is still there after ``timeout``."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    env: dict[str, str]
    home: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"{self.url}/api"

    def cli(self, *args: str, timeout: float = 120, cwd: Path = REPO) -> str:
        p = subprocess.run([*PREFECT, *args], env=self.env, cwd=cwd, capture_output=True,
                           text=True, timeout=timeout)
        if p.returncode != 0:
            raise AssertionError(f"prefect {' '.join(args)} exited {p.returncode}:\n"
                                 f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p.stdout + p.stderr

    def get(self, path: str) -> dict:
        import httpx

        r = httpx.get(f"{self.api}{path}", timeout=10)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict) -> list | dict:
        import httpx

        r = httpx.post(f"{self.api}{path}", json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    def tail(self, name: str, n: int = 4000) -> str:
        p = self.logs.get(name)
        return p.read_text(errors="replace")[-n:] if p and p.exists() else ""


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    import httpx

    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_API_URL": f"{url}/api",
        "PREFECT_UI_API_URL": f"{url}/api",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_CLI_PROMPT": "false",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    })
    srv = Server(url=url, env=env, home=home)
    srv.logs = {"server": home / "server.log", "worker": home / "worker.log"}
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    proc = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=server_env, cwd=home, stdout=srv.logs["server"].open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True)
    srv.procs.append(proc)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"prefect server exited {proc.returncode}:\n"
                                     f"{srv.tail('server')}")
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"prefect server not healthy after 120 s:\n"
                                     f"{srv.tail('server')}")
            time.sleep(0.5)
        srv.cli("work-pool", "create", POOL, "--type", "process")
        out = srv.cli("--no-prompt", "deploy", "--all", timeout=240)
        srv.deploy_output = out  # type: ignore[attr-defined]
        worker = subprocess.Popen(
            [*PREFECT, "worker", "start", "--pool", POOL, "--limit", "2"],
            env=env, cwd=home, stdout=srv.logs["worker"].open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        srv.procs.append(worker)
        yield srv
    finally:
        for p in reversed(srv.procs):
            stop(p)


def tiny_pipeline(tmp: Path) -> Path:
    """A small real pipeline: licence texts + two gettext languages, a 600-token BPE."""
    locs = [d for d in ("/usr/share/locale/de/LC_MESSAGES", "/usr/share/locale/fr/LC_MESSAGES")
            if os.path.isdir(d)]
    # a handful of catalogs keep it small
    files = sorted(str(p) for d in locs for p in Path(d).glob("*.mo"))[:12]
    spec = tiny_spec(files)
    p = tmp / "tiny.yaml"
    p.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return p


@dataclass
class DeployedRun:
    server: Server
    flow_run_id: str
    workspace: Path
    spec_path: Path
    state: dict
    seconds: float


@pytest.fixture(scope="session")
def deployed_pipeline_run(prefect_server, tmp_path_factory):
    """Trigger the quickstart-pipeline deployment on the tiny spec; wait for Completed."""
    if not Path("/usr/share/common-licenses").is_dir():
        pytest.skip("needs /usr/share/common-licenses (Debian base-files)")
    srv = prefect_server
    tmp = tmp_path_factory.mktemp("deployed-run")
    spec_path = tiny_pipeline(tmp)
    ws = tmp / "ws"
    t0 = time.monotonic()
    out = srv.cli("deployment", "run", DEPLOYMENT, "--param", f"spec={spec_path}",
                  "--param", f"workspace={ws}")
    m = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
    assert m, f"no flow run id in:\n{out}"
    run_id = m.group(1)
    deadline = time.monotonic() + 200
    state: dict = {}
    while time.monotonic() < deadline:
        state = srv.get(f"/flow_runs/{run_id}")["state"] or {}
        if state.get("type") in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        time.sleep(1.0)
    if state.get("type") != "COMPLETED":
        raise AssertionError(
            f"flow run {run_id} ended {state.get('type')}: {state.get('message')}\n"
            f"--- worker log ---\n{srv.tail('worker', 6000)}")
    return DeployedRun(srv, run_id, ws, spec_path, state, time.monotonic() - t0)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, if installed. Tests never install system packages: without it the
    browser test is skipped with the command that installs it."""
    exe = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium")
                                       else None)
    if not exe:
        pytest.skip("chromium is not installed (install it with `apt-get install chromium` to "
                    "run the browser test)")
    return exe
