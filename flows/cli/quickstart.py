"""``tokenfoundry quickstart``: the whole pipeline on real text that a fresh machine has.

ingest (Debian's licence texts, installed wheels' licences, gettext catalogs in four languages)
-> dedup -> train (a multilingual BPE) -> evaluate beside reference tokenizers -> gate ->
publish to the workspace's registry. The spec is ``examples/quickstart.yaml`` (an identical copy
is embedded below for non-editable installs; a test keeps the two equal).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from tokenfoundry.flows.cli.app import WorkspaceOpt, app, cli_errors, err, out

QUICKSTART_FILE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"

def quickstart_spec() -> Any:
    """The quickstart PipelineSpec, machine sources resolved."""
    import yaml

    from tokenfoundry.schemas.pipeline import validate_pipeline

    if QUICKSTART_FILE.is_file():
        text, where = QUICKSTART_FILE.read_text(encoding="utf-8"), str(QUICKSTART_FILE)
    else:
        text, where = QUICKSTART_YAML, "quickstart (embedded)"
    from tokenfoundry.flows.pipeline import resolve_machine_sources

    spec = validate_pipeline(yaml.safe_load(text), where)
    return resolve_machine_sources(spec, where, drop_missing=True,
                                   warn=lambda m: err.print(f"[yellow]{m}[/]"))


@app.command("quickstart")
@cli_errors
def quickstart_command(workspace: WorkspaceOpt = "./workspace") -> None:
    """Run the example pipeline end to end on embedded defaults and real text the install
    brings: ingest -> dedup -> train -> evaluate -> gate -> publish (a few minutes).

    Example: tokenfoundry quickstart --workspace /tmp/tf
    """
    from tokenfoundry.flows.cli.run import prepare_prefect_env, print_summary, run_with_progress

    prepare_prefect_env()  # before Prefect is first imported (it reads settings at import)
    spec = quickstart_spec()
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


#: A verbatim copy of examples/quickstart.yaml (tests/flows/test_pipeline_cli.py checks).
QUICKSTART_YAML = """\
# The pipeline `tokenfoundry quickstart` runs: real text that every Debian/Ubuntu machine and a
# pip install bring, a small multilingual BPE tokenizer, evaluated beside reference tokenizers,
# published to the workspace's registry when it passes its gates.
#
# Machine-dependent sources are resolved at run time (by `tokenfoundry quickstart` and
# `tokenfoundry run`):
#   ${DIST_INFO_LICENCES}  the licence files of every installed wheel (site-packages/*.dist-info)
#   ${SITE_PACKAGES}       the site-packages directory of this Python
# `tokenfoundry quickstart` also drops sources this machine does not have (e.g. a locale).
name: quickstart
corpora:
  - corpus: licences            # legal English: Debian's licence texts + wheels' licences
    sources:
      - /usr/share/common-licenses
      - ${DIST_INFO_LICENCES}
    format: txt                 # licence files: LICENSE, COPYING, LICENSE.APACHE, ... are text
    lang: en
    min_chars: 200
  - corpus: gettext             # UI messages in four languages and three scripts
    sources:
      - /usr/share/locale/de/LC_MESSAGES
      - /usr/share/locale/fr/LC_MESSAGES
      - /usr/share/locale/es/LC_MESSAGES
      - /usr/share/locale/ru/LC_MESSAGES
    min_chars: 8
dedup:
  threshold: 0.8
train:
  corpora: [licences, gettext]
  model: bpe
  vocab_size: 8192
  mix_by: corpus
  mix_alpha: 0.5
  holdout_fraction: 0.05
  max_bytes: 12000000
evaluate:
  references: [o200k, cl100k, gpt2]
  max_docs: 4000
  gates:
    - roundtrip_errors == 0
    - bytes_per_token >= 2.5
publish:
  name: quickstart-bpe
  aliases: [latest]
runner:
  kind: threads
"""
