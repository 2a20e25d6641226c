"""Pipeline overhead: the quickstart pipeline as a Prefect flow vs the bare library calls it wraps.

In one run, on the same data (examples/quickstart.yaml, machine sources resolved):

1. baseline: the stage cores called directly, in order, in a fresh workspace -
   ``tasks.ingest.core.ingest`` per corpus, ``tasks.dedup.core.dedup`` per corpus,
   ``tasks.train.core.train``, ``tasks.evaluate.core.evaluate``, ``tasks.publish.core
   .publish_candidate``; their times summed;
2. ours: ``flows.pipeline.pipeline_flow`` (subflows, tasks, stage records, artifacts) in another
   fresh workspace, under Prefect's ephemeral API (its one-off start-up is reported separately);
3. ours again on the finished workspace (every stage reused);
4. Dask vs threads: ``ingest_dedup_flow`` with a 2-process LocalCluster vs the thread pool.

Target: ours <= 1.15 x baseline. Run: ``python benchmarks/pipeline.py [--small] [--no-dask]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _env() -> None:
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="tf-bench-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _spec(small: bool):
    from tokenfoundry.flows.quickstart import quickstart_spec

    spec = quickstart_spec()
    if small:  # licences + one language: a quick look at the same code paths
        data = spec.model_dump(mode="json")
        for c in data["corpora"]:
            if c["corpus"] == "gettext":
                c["sources"] = c["sources"][:1]
        from tokenfoundry.schemas.pipeline import validate_pipeline

        spec = validate_pipeline(data, "quickstart (small)")
    return spec


def baseline(spec, root: Path, args_workers: int = 1) -> dict[str, float]:
    """The cores, called directly with their defaults (as the direct CLI path calls them; dedup
    ``workers=1`` like ``tokenfoundry dedup``), each timed."""
    from tokenfoundry.storage.workspace import Workspace
    from tokenfoundry.tasks.dedup.core import dedup
    from tokenfoundry.tasks.evaluate.core import evaluate
    from tokenfoundry.tasks.ingest.core import ingest
    from tokenfoundry.tasks.publish.core import publish_candidate
    from tokenfoundry.tasks.train.core import train

    ws = Workspace(root)
    t: dict[str, float] = {}
    snaps = {}
    for c in spec.corpora:
        t0 = time.perf_counter()
        r = ingest(ws, c)
        t[f"ingest {c.corpus}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        d = dedup(ws, spec.dedup_spec(c.corpus, snapshot=r.snapshot_id),
                  workers=args_workers)
        t[f"dedup {c.corpus}"] = time.perf_counter() - t0
        snaps[c.corpus] = d.snapshot_id
    out = root / "train"
    t0 = time.perf_counter()
    train(ws, spec.train, str(out))
    t["train"] = time.perf_counter() - t0
    espec = spec.evaluate_spec(f"{spec.publish.name}={out}", ws.uri, snaps)
    espec = espec.model_copy(update={"gates": []})
    t0 = time.perf_counter()
    ev = evaluate(espec, str(root / "evaluate"))
    t["evaluate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    publish_candidate(ws.registry_uri, str(out), spec.publish.name,
                      metrics=ev.tokenizers[ev.candidate].model_dump(mode="json"),
                      aliases=list(spec.publish.aliases), evaluation_dir=str(root / "evaluate"))
    t["publish"] = time.perf_counter() - t0
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="licences + one gettext catalog only")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask vs threads figure")
    ap.add_argument("--keep", action="store_true", help="keep the temporary workspaces")
    ap.add_argument("--dedup-workers", type=int, default=1,
                    help="processes of the baseline's dedup core (default 1, its default)")
    args = ap.parse_args()
    _env()
    spec = _spec(args.small)
    tmp = Path(tempfile.mkdtemp(prefix="tf-bench-pipeline-"))
    n_src = sum(len(c.sources) for c in spec.corpora)
    print(f"quickstart pipeline: {len(spec.corpora)} corpora, {n_src} sources; tmp {tmp}",
          flush=True)

    t0 = time.perf_counter()
    base = baseline(spec, tmp / "bare", args.dedup_workers)
    bare = time.perf_counter() - t0
    print(f"baseline (bare cores): {bare:.1f} s  " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                            base.items()), flush=True)

    from prefect.testing.utilities import prefect_test_harness

    t0 = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=180):
        startup = time.perf_counter() - t0
        from tokenfoundry.flows.pipeline import ingest_dedup_flow, pipeline_flow

        data = spec.model_dump(mode="json")
        t0 = time.perf_counter()
        r = pipeline_flow(spec=data, workspace=str(tmp / "flow"))
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        r2 = pipeline_flow(spec=data, workspace=str(tmp / "flow"))
        again = time.perf_counter() - t0
        print(f"ours (pipeline_flow): {ours:.1f} s  " + ", ".join(
            f"{s['stage']} {s['seconds']:.1f}" for s in r["stages"]), flush=True)
        dask_fig = None
        if not args.no_dask:
            t0 = time.perf_counter()
            th = ingest_dedup_flow(spec=data, workspace=str(tmp / "threads"),
                                   runner={"kind": "threads", "max_workers": 2})
            t_threads = time.perf_counter() - t0
            t0 = time.perf_counter()
            dk = ingest_dedup_flow(spec=data, workspace=str(tmp / "dask"),
                                   runner={"kind": "dask", "max_workers": 2})
            t_dask = time.perf_counter() - t0
            same = th["snapshots"] == dk["snapshots"]
            dask_fig = {"threads_s": round(t_threads, 2), "dask_s": round(t_dask, 2),
                        "dask_over_threads": round(t_dask / t_threads, 3),
                        "same_snapshot_ids": same}
    overhead = ours / bare - 1
    result = {
        "baseline_bare_cores_s": round(bare, 2), "ours_pipeline_flow_s": round(ours, 2),
        "overhead": round(overhead, 4), "target_overhead": 0.15, "pass": overhead <= 0.15,
        "rerun_s": round(again, 2), "rerun_fraction": round(again / ours, 4),
        "rerun_all_reused": all(s["reused"] for s in r2["stages"]),
        "prefect_ephemeral_startup_s": round(startup, 2),
        "published": r["published"]["ref"], "rerun_published": r2["published"]["ref"],
        "dask_vs_threads_ingest_dedup": dask_fig,
    }
    print(f"overhead: ours {ours:.1f} s vs baseline {bare:.1f} s = {100 * overhead:+.1f}% "
          f"(target <= +15%); re-run {again:.1f} s = {100 * again / ours:.1f}% of the first; "
          f"Prefect ephemeral start-up {startup:.1f} s (once per process)")
    if dask_fig:
        print(f"ingest+dedup: dask (2-process LocalCluster) {dask_fig['dask_s']:.1f} s vs "
              f"threads {dask_fig['threads_s']:.1f} s = {dask_fig['dask_over_threads']:.2f}x; "
              f"same snapshot ids: {dask_fig['same_snapshot_ids']}")
    print(json.dumps(result))
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
