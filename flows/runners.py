"""Task-runner selection for the stages that fan out per shard (ingest, dedup).

- ``threads`` (default): Prefect's ``ThreadPoolTaskRunner`` in the flow's process.
- ``dask``: ``prefect_dask.DaskTaskRunner`` on a ``distributed.LocalCluster`` of ``max_workers``
  worker processes, or on an existing scheduler (``address: tcp://host:8786``).

A pipeline starts at most one LocalCluster (:func:`runner_session`) and hands every fan-out
subflow a runner bound to its scheduler address, so the cluster's start-up (a few seconds) is
paid once per pipeline run, not once per stage.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from tokenfoundry.schemas.pipeline import RunnerSection


def runner_spec(kind: str | None = None, max_workers: int | None = None,
                address: str | None = None, base: dict[str, Any] | RunnerSection | None = None
                ) -> RunnerSection:
    """A validated RunnerSection from a spec section plus CLI overrides."""
    data: dict[str, Any] = (base.model_dump() if isinstance(base, RunnerSection)
                            else dict(base or {}))
    if kind is not None:
        if kind != data.get("kind"):
            data.pop("address", None) if kind != "dask" else None
        data["kind"] = kind
    if max_workers is not None:
        data["max_workers"] = max_workers
    if address is not None:
        data["address"] = address
        data["kind"] = "dask"
    return RunnerSection.model_validate(data)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def make_task_runner(runner: RunnerSection | dict[str, Any] | None = None):
    """A fresh Prefect task runner for one flow run (task runners are single-use)."""
    r = runner if isinstance(runner, RunnerSection) else RunnerSection.model_validate(runner or {})
    if r.kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=r.max_workers or max(4, default_workers()))
    from prefect_dask import DaskTaskRunner

    if r.address:
        return DaskTaskRunner(address=r.address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs=local_cluster_kwargs(r),
    )


def local_cluster_kwargs(r: RunnerSection) -> dict[str, Any]:
    return {
        "n_workers": r.max_workers or default_workers(),
        "threads_per_worker": 1,
        "processes": r.processes,
        "dashboard_address": None,
        "scheduler_kwargs": {"dashboard": False},
        "silence_logs": 40,  # logging.ERROR
    }


@contextlib.contextmanager
def runner_session(runner: RunnerSection, stats: dict[str, Any] | None = None
                   ) -> Iterator[RunnerSection]:
    """Start what the runner needs once (a LocalCluster for ``dask`` without an address) and
    yield a RunnerSection that subflows can share (``address`` of that cluster).

    ``stats`` (optional) receives what the cluster did: ``worker_pids`` and ``dask_tasks``
    (tasks the scheduler ran), so callers and tests can see the work really left this process.
    """
    if runner.kind != "dask" or runner.address:
        yield runner
        return
    from distributed import Client, LocalCluster

    with LocalCluster(**local_cluster_kwargs(runner)) as cluster:
        yield runner.model_copy(update={"address": cluster.scheduler_address})
        if stats is not None:
            with Client(cluster) as client:
                stats["worker_pids"] = sorted(client.run(os.getpid).values())
            stats["dask_tasks"] = sum(
                tp.state_counts.get("memory", 0)
                for tp in cluster.scheduler.task_prefixes.values())
            stats["address"] = cluster.scheduler_address


def describe(runner: RunnerSection) -> str:
    if runner.kind == "threads":
        return f"threads ({runner.max_workers or max(4, default_workers())} workers)"
    if runner.address:
        return f"dask ({runner.address})"
    where = "processes" if runner.processes else "threads"
    return f"dask LocalCluster ({runner.max_workers or default_workers()} worker {where})"
