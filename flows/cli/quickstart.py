"""``tokenfoundry quickstart``: the whole pipeline on real text that a fresh machine has.

ingest (Debian's licence texts, installed wheels' licences, gettext catalogs in four languages)
-> dedup -> train (a multilingual BPE) -> evaluate beside reference tokenizers -> gate ->
publish to the workspace's registry. The spec is ``examples/quickstart.yaml``, shipped as package
data (``flows.quickstart``), and runs exactly as shipped.
"""

from __future__ import annotations

import os
import sys

from tokenfoundry.flows.cli.app import WorkspaceOpt, app, cli_errors, err, out


@app.command("quickstart")
@cli_errors
def quickstart_command(workspace: WorkspaceOpt = "./workspace") -> None:
    """Run the example pipeline end to end on embedded defaults and real text the install
    brings: ingest -> dedup -> train -> evaluate -> gate -> publish (a few minutes).

    Example: tokenfoundry quickstart --workspace /tmp/tf
    """
    from tokenfoundry.flows.cli.run import prepare_prefect_env, print_summary, run_with_progress
    from tokenfoundry.flows.quickstart import quickstart_spec

    prepare_prefect_env()  # before Prefect is first imported (it reads settings at import)
    spec = quickstart_spec(warn=lambda m: err.print(f"[yellow]{m}[/]"))
    n_src = sum(len(c.sources) for c in spec.corpora)
    err.print(f"[bold]tokenfoundry quickstart[/]: {len(spec.corpora)} corpora from {n_src} "
              f"sources -> workspace {os.path.abspath(workspace)}")
    result = run_with_progress(spec, workspace, None, show=True)
    print_summary(result)
    pub = result.get("published") or {}
    ref = pub.get("ref", "")
    ws = workspace
    reg = pub.get("registry") or os.path.join(ws, "registry")
    exe = os.path.basename(sys.argv[0]) or "tokenfoundry"
    exe = "tokenfoundry" if exe.endswith(".py") or exe == "-c" else exe
    out.print("\n[bold]next:[/]")
    for line in (
        f"tokenfoundry registry --registry {reg} show {ref}",
        f"tokenfoundry registry --registry {reg} pull {ref} --to ./quickstart-tokenizer",
        f"tokenfoundry evaluate --tokenizer ./quickstart-tokenizer --text README.md "
        "--reference o200k,gpt2",
        f"tokenfoundry run examples/quickstart.yaml --workspace {ws}   # re-run: every stage "
        "reused, nothing new published",
        "prefect server start   # then see README 'Running on a Prefect server'",
    ):
        out.print(f"  {line}", highlight=False, soft_wrap=True)
