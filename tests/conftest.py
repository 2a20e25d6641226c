"""Test set-up shared by every test.

Prefect is isolated from the user's ~/.prefect: PREFECT_HOME is a temporary directory; the rest
of the set-up (analytics off, a generous ephemeral start-up timeout, quiet console logs) is the
CLI's own, ``flows.prefect_setup.prepare_prefect_env``, applied here before Prefect is imported.
Flow tests use the session-wide ``prefect_harness`` fixture (embedded SQLite, no server), which
is entered once, so its start-up cost is paid once per session.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_PREFECT_HOME = tempfile.mkdtemp(prefix="tokenfoundry-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_PROFILES_PATH", None)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # whatever the calling shell says

from tokenfoundry.flows.prefect_setup import prepare_prefect_env  # noqa: E402 - before Prefect

prepare_prefect_env()

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def prefect_harness():
    """Prefect's test harness (ephemeral API on a temporary SQLite database), once per session."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    # Flow-run heartbeats feed a worker's crash detection; the harness has no worker. Their
    # thread sleeps in 1 s steps and is joined when a flow run ends, adding a random 0-1 s to
    # every (sub)flow run - noise that made the pipeline's rerun-time test flaky on CI.
    # (The harness installs its own settings context, so ours goes inside it.)
    with prefect_test_harness(server_startup_timeout=120), \
            temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture
def workspace(tmp_path):
    """A fresh local workspace."""
    from tokenfoundry.storage.workspace import Workspace

    return Workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def licence_dir() -> Path:
    """Real legal text that every Debian machine has."""
    p = Path("/usr/share/common-licenses")
    if not p.is_dir():
        pytest.skip("needs /usr/share/common-licenses (Debian base-files)")
    return p
