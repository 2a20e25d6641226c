"""pipeline.yaml: validation with key paths, stage specs built from sections, runner selection,
failure classification and retries, machine-source resolution, and the CLI's bad-input path."""

from __future__ import annotations

import errno
import subprocess
import sys
import json
from pathlib import Path

import pytest
import yaml

from tokenfoundry.schemas.errors import BadInputError
from tokenfoundry.schemas.pipeline import (
    PipelineSpec,
    RunnerSection,
    StageFailed,
    load_pipeline,
    validate_pipeline,
)

REPO = Path(__file__).resolve().parents[2]


def base(**over):
    spec = {
        "name": "legal",
        "corpora": [{"corpus": "licences", "sources": ["/usr/share/common-licenses"],
                     "lang": "en"}],
        "train": {"corpora": ["licences"], "vocab_size": 1000},
        "evaluate": {"references": ["gpt2"], "gates": ["roundtrip_errors == 0"]},
        "publish": {"name": "legal-bpe"},
    }
    spec.update(over)
    return spec


def write(tmp_path, data, name="pipe.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


def test_valid_spec_builds_each_stage_spec():
    s = validate_pipeline(base(dedup={"threshold": 0.7, "num_perm": 64}))
    d = s.dedup_spec("licences", snapshot="abc")
    assert (d.corpus, d.snapshot, d.threshold, d.num_perm) == ("licences", "abc", 0.7, 64)
    e = s.evaluate_spec("/ws/tok", "/ws")
    # the candidate comes first; held-out docs of the train corpora with the trainer's fraction
    assert e.tokenizers == ["/ws/tok"]
    assert e.corpora == ["licences"] and e.holdout_fraction == 0.05 and e.workspace == "/ws"
    assert e.gates == ["roundtrip_errors == 0"] and e.references == ["gpt2"]
    assert s.runner == RunnerSection(kind="threads")
    assert s.publish.aliases == ["latest"]


def test_dedup_null_skips_dedup():
    s = validate_pipeline(base(dedup=None))
    assert s.dedup is None and s.dedup_spec("licences") is None


def test_unknown_key_names_file_and_path(tmp_path):
    data = base()
    data["train"]["vocab_sise"] = 10
    p = write(tmp_path, data)
    with pytest.raises(BadInputError) as ei:
        load_pipeline(p)
    msg = str(ei.value)
    assert str(p) in msg and "train.vocab_sise: unknown key" in msg

    data = base()
    data["corpora"][0]["sorces"] = ["x"]
    with pytest.raises(BadInputError, match=r"corpora\.0\.sorces: unknown key"):
        load_pipeline(write(tmp_path, data))
    with pytest.raises(BadInputError, match=r"runner\.nodes: unknown key"):
        validate_pipeline(base(runner={"kind": "dask", "nodes": 3}))
    with pytest.raises(BadInputError, match=r"^pipe\.yaml: colour: unknown key"):
        validate_pipeline(base(colour="red"), "pipe.yaml")


def test_cross_section_rules_name_the_section():
    with pytest.raises(BadInputError, match=r"train\.corpora: 'code' is not a corpus"):
        validate_pipeline(base(train={"corpora": ["code"], "vocab_size": 1000}))
    with pytest.raises(BadInputError, match=r"dedup: .*bands and rows"):
        validate_pipeline(base(dedup={"bands": 4}))
    with pytest.raises(BadInputError, match=r"evaluate.*gate 'bpt >= 4'"):
        validate_pipeline(base(evaluate={"gates": ["bpt >= 4"]}))
    with pytest.raises(BadInputError, match=r"listed twice"):
        validate_pipeline(base(corpora=[{"corpus": "a", "sources": ["/x"]}] * 2,
                               train={"corpora": ["a"], "vocab_size": 1000}))
    with pytest.raises(BadInputError, match=r"address is for kind: dask"):
        validate_pipeline(base(runner={"address": "tcp://h:8786"}))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(BadInputError, match="no such pipeline file"):
        load_pipeline(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(BadInputError, match="not valid YAML"):
        load_pipeline(bad)


def test_runner_override_and_frozen(tmp_path):
    p = write(tmp_path, base())
    s = load_pipeline(p, {"runner": {"kind": "dask", "max_workers": 2}})
    assert s.runner.kind == "dask" and s.runner.max_workers == 2
    with pytest.raises(Exception):
        s.name = "other"  # frozen


def test_examples_validate():
    for p in sorted((REPO / "examples").glob("*.yaml")):
        data = yaml.safe_load(p.read_text())
        if "corpora" not in data:  # e.g. a vocabulary-extension spec
            continue
        assert isinstance(validate_pipeline(data, str(p)), PipelineSpec)


def test_examples_ship_as_package_data():
    from tokenfoundry.flows.quickstart import example_names, example_text

    shipped = sorted(p.stem for p in (REPO / "examples").glob("*.yaml"))
    assert example_names() == shipped and "quickstart" in shipped
    for name in shipped:
        assert example_text(name) == (REPO / "examples" / f"{name}.yaml").read_text()
    with pytest.raises(BadInputError, match="no shipped example"):
        example_text("nope")


def test_machine_sources_resolve_to_real_licence_files():
    from tokenfoundry.flows.quickstart import dist_info_licences, resolve_machine_sources

    lic = dist_info_licences()
    assert lic and all(Path(p).is_file() and ".dist-info" in p for p in lic)
    data = base(corpora=[{"corpus": "licences", "sources": ["${DIST_INFO_LICENCES}"]},
                         {"corpus": "gone", "sources": ["/nonexistent/dir"]}],
                train={"corpora": ["licences", "gone"], "vocab_size": 1000})
    s = resolve_machine_sources(validate_pipeline(data), "x", drop_missing=True)
    assert [c.corpus for c in s.corpora] == ["licences"]
    assert s.corpora[0].sources == lic and s.train.corpora == ["licences"]


def test_stdlib_placeholder_is_the_standard_library_inside_a_venv_too():
    import sys
    import sysconfig

    from tokenfoundry.flows.quickstart import (
        load_pipeline_file,
        resolve_machine_sources,
        site_packages_dirs,
    )

    data = base(corpora=[{"corpus": "stdlib", "sources": ["${STDLIB}/json"]}],
                train={"corpora": ["stdlib"], "vocab_size": 1000})
    s = resolve_machine_sources(validate_pipeline(data), "x")
    json_dir = Path(s.corpora[0].sources[0])
    assert json_dir == Path(sysconfig.get_paths()["stdlib"]) / "json"
    assert (json_dir / "decoder.py").is_file()
    if sys.prefix != sys.base_prefix:  # in a venv the old ${SITE_PACKAGES}/.. is no stdlib
        assert not (Path(site_packages_dirs()[0]).parent / "json" / "decoder.py").is_file()
    code = load_pipeline_file(str(REPO / "examples" / "code.yaml"))
    assert all(Path(p).is_dir() for p in code.corpora[0].sources)


def test_transient_errors_are_classified():
    from tokenfoundry.tasks.retry import is_transient

    assert is_transient(TimeoutError("read timed out"))
    assert is_transient(ConnectionResetError())
    assert is_transient(OSError(errno.EIO, "I/O error"))
    wrapped = RuntimeError("upload failed")
    wrapped.__cause__ = OSError(errno.EAGAIN, "try again")
    assert is_transient(wrapped)
    assert not is_transient(FileNotFoundError(errno.ENOENT, "gone"))
    assert not is_transient(PermissionError(errno.EACCES, "denied"))
    assert not is_transient(ValueError("bad"))
    assert not is_transient(BadInputError("bad spec"))


def test_one_transient_predicate_everywhere():
    """Every storage task retries through the same predicate; no hand-written retry loop."""
    import inspect

    from tokenfoundry.flows import pipeline
    from tokenfoundry.tasks.dedup import prefect_tasks as dedup_tasks
    from tokenfoundry.tasks.retry import retry_transient

    assert pipeline.write_record_task.retry_condition_fn is retry_transient
    for t in (dedup_tasks.exact_task, dedup_tasks.shard_task, dedup_tasks.finish_task):
        assert t.retry_condition_fn is retry_transient
    assert not hasattr(pipeline, "call_with_retries")
    assert "time.sleep" not in inspect.getsource(pipeline)


def test_stage_failures_name_the_stage_and_are_not_retried_here():
    from tokenfoundry.flows.pipeline import classify_failure

    calls = []

    def always_timeout():
        calls.append(1)
        raise TimeoutError("s3 slow")

    with pytest.raises(StageFailed) as ei:
        classify_failure(always_timeout, "dedup", "snapshot abc")
    assert len(calls) == 1  # retries happen on the task that met the error, in Prefect
    assert ei.value.stage == "dedup" and ei.value.input == "snapshot abc"
    assert "TimeoutError: s3 slow" in str(ei.value) and "transient" in str(ei.value)
    with pytest.raises(StageFailed, match=r"stage train failed on corpora a: KeyError"):
        classify_failure(lambda: {}["text"], "train", "corpora a")
    with pytest.raises(BadInputError, match=r"stage ingest \(corpus x\): no such file"):
        classify_failure(lambda: (_ for _ in ()).throw(BadInputError("no such file")),
                         "ingest", "corpus x")
    assert StageFailed.exit_code == 1


def test_stage_keys_follow_the_code_that_runs_the_stage(tmp_path, monkeypatch):
    import shutil

    from tokenfoundry.flows import pipeline

    src = tmp_path / "train"
    shutil.copytree(pipeline._package_root("tasks/train"), src)
    before = pipeline.source_fingerprint([src])
    (src / "core.py").write_text((src / "core.py").read_text() + "\n# a bug fix\n")
    assert pipeline.source_fingerprint([src]) != before
    assert pipeline.code_fingerprint("train") != pipeline.code_fingerprint("evaluate")
    key = pipeline.stage_key("train", {"vocab_size": 600}, {"licences": "s1"})
    monkeypatch.setattr(pipeline, "code_fingerprint", lambda stage: "fixed-train-code")
    assert pipeline.stage_key("train", {"vocab_size": 600}, {"licences": "s1"}) != key


def test_runner_selection():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from tokenfoundry.flows.runners import describe, make_task_runner, runner_spec

    r = make_task_runner({"kind": "threads", "max_workers": 3})
    assert isinstance(r, ThreadPoolTaskRunner) and r._max_workers == 3
    d = make_task_runner(runner_spec("dask", 2))
    assert isinstance(d, DaskTaskRunner) and d.cluster_kwargs["n_workers"] == 2
    assert d.cluster_kwargs["processes"] is True
    a = make_task_runner(runner_spec(address="tcp://127.0.0.1:8786"))
    assert isinstance(a, DaskTaskRunner) and a.address == "tcp://127.0.0.1:8786"
    assert describe(runner_spec("dask", 2)) == "dask LocalCluster (2 worker processes)"


def test_cli_run_bad_spec_exits_2_naming_the_key(tmp_path):
    data = base()
    data["publish"]["alias"] = ["prod"]
    p = write(tmp_path, data)
    r = subprocess.run([sys.executable, "-m", "tokenfoundry.flows.cli", "run", str(p), "--json"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "publish.alias: unknown key" in r.stderr and str(p) in r.stderr
    assert json.loads(r.stdout)["exit_code"] == 2  # --json: one JSON error object
    r = subprocess.run([sys.executable, "-m", "tokenfoundry.flows.cli", "run", str(p), "--runner", "spark"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "--runner 'spark': choose threads or dask" in r.stderr


def test_max_bytes_caps_every_corpus_and_keeps_every_source(tmp_path):
    from tokenfoundry.flows.quickstart import cap_source_bytes

    langs = {}
    for lang in ("de", "fr", "ru"):
        d = tmp_path / lang
        d.mkdir()
        for i in range(5):
            (d / f"{i}.txt").write_text(f"{lang} {i} " * 100)  # ~500-600 bytes each
        langs[lang] = d
    data = base(corpora=[{"corpus": "ui", "sources": [str(p) for p in langs.values()]}],
                train={"corpora": ["ui"], "vocab_size": 1000, "max_bytes": 10**9})
    spec = cap_source_bytes(validate_pipeline(data), 2000, "x.yaml")
    files = spec.corpora[0].sources
    assert {Path(f).parent.name for f in files} == {"de", "fr", "ru"}  # taken in turn
    sizes = [Path(f).stat().st_size for f in files]
    assert sum(sizes) - sizes[-1] < 2000 <= sum(sizes)  # whole files, stops at the cap
    assert spec.train.max_bytes == 2000
    assert spec.dedup == validate_pipeline(data).dedup  # everything else as the spec says
    with pytest.raises(BadInputError, match="--max-bytes"):
        cap_source_bytes(validate_pipeline(data), 0, "x.yaml")


def test_run_finds_a_shipped_example_from_any_directory(tmp_path, monkeypatch):
    from tokenfoundry.flows.quickstart import load_pipeline_file

    monkeypatch.chdir(tmp_path)  # no examples/ here
    for arg in ("examples/legal.yaml", "legal", "legal.yaml"):
        assert load_pipeline_file(arg).name == "legal"
    mine = tmp_path / "legal.yaml"
    mine.write_text((REPO / "examples" / "legal.yaml").read_text().replace(
        "name: legal", "name: my-legal"))
    assert load_pipeline_file("legal.yaml").name == "my-legal"  # a real file wins
