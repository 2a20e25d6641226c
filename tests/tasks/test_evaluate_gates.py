"""Gate parsing (strict) and judging."""

from __future__ import annotations

import pytest

from tokenfoundry.schemas.config import validate_spec
from tokenfoundry.schemas.errors import BadInputError, GateFailed
from tokenfoundry.schemas.evaluate import EvaluateSpec, parse_gate
from tokenfoundry.tasks.evaluate.gates import check_gates, raise_for_gates


@pytest.mark.parametrize("expr,metric,key,op,thr", [
    ("bytes_per_token >= 4.0", "bytes_per_token", None, ">=", 4.0),
    ("roundtrip_errors == 0", "roundtrip_errors", None, "==", 0.0),
    ("nsl[o200k] <= 0.9", "nsl", "o200k", "<=", 0.9),
    ("  parity<1.5 ", "parity", None, "<", 1.5),
    ("premium[pt_BR] <= 1.3", "premium", "pt_BR", "<=", 1.3),
    ("unk_rate != 1e-3", "unk_rate", None, "!=", 0.001),
])
def test_parse_good_gates(expr, metric, key, op, thr):
    g = parse_gate(expr)
    assert (g.metric, g.key, g.op, g.threshold) == (metric, key, op, thr)


@pytest.mark.parametrize("expr,match", [
    ("bytes_per_token => 4", "not of the form"),
    ("bytes_per_token >= four", "not of the form"),
    ("bytes_per_tokens >= 4", "unknown metric 'bytes_per_tokens'"),
    ("nsl[gpt5] <= 1", "unknown NSL reference 'gpt5'"),
    ("fertility[en] <= 2", "takes no \\[key\\]"),
    ("premium <= 2", "needs a \\[key\\]"),
    ("bytes_per_token >= 4; rm -rf /", "not of the form"),
])
def test_parse_bad_gates_name_the_expression(expr, match):
    with pytest.raises(ValueError, match=match):
        parse_gate(expr)
    with pytest.raises(BadInputError, match="gates"):
        validate_spec(EvaluateSpec, {"tokenizers": ["gpt2"], "texts": ["x"], "gates": [expr]},
                      "pipeline.yaml: evaluate")


METRICS = {"bytes_per_token": 4.25, "roundtrip_errors": 0, "parity": 1.8,
           "nsl_by_reference": {"o200k": 0.88}, "premium": {"de": 1.31, "en": 1.0}}


def test_check_gates_pass_and_fail_with_value_and_threshold():
    res = check_gates(METRICS, ["bytes_per_token >= 4.0", "roundtrip_errors == 0",
                                "nsl[o200k] <= 0.9", "parity <= 1.5", "premium[de] <= 1.3",
                                "premium[ja] <= 2", "fertility <= 2"])
    assert [r.passed for r in res] == [True, True, True, False, False, False, False]
    assert res[3].value == 1.8 and res[3].threshold == 1.5
    assert res[4].reason == "premium[de] = 1.31, needs <= 1.3"
    assert "not measured" in res[5].reason and "not measured" in res[6].reason
    with pytest.raises(GateFailed) as ei:
        raise_for_gates(res, "legal")
    msg = str(ei.value)
    assert "4 of 7 gate(s) failed for legal" in msg and "parity = 1.8, needs <= 1.5" in msg
    assert ei.value.exit_code == 1


def test_count_gates_carry_their_denominator_and_read_as_a_sentence():
    """"roundtrip_errors 4000 of 4000 documents, needs == 0": op, threshold, value and, for
    counts, what they are out of - in the result, its reason and the report/artifact line."""
    from tokenfoundry.tasks.evaluate.report import gate_lines

    m = {"roundtrip_errors": 4000, "roundtrip_checked_docs": 4000, "unreachable_tokens": 12,
         "vocab_size": 32000, "bytes_per_token": 4.25}
    rt, un, bpt = check_gates(m, ["roundtrip_errors == 0", "unreachable_tokens <= 100",
                                  "bytes_per_token >= 4"])
    assert (rt.op, rt.threshold, rt.value, rt.denominator, rt.unit) == ("==", 0.0, 4000.0, 4000,
                                                                        "documents")
    assert rt.reason == "roundtrip_errors = 4000 of 4000 documents, needs == 0"
    assert rt.text() == "roundtrip_errors 4000 of 4000 documents, needs == 0 (FAIL)"
    assert un.passed and un.text() == "unreachable_tokens 12 of 32000 tokens, needs <= 100 (pass)"
    assert bpt.denominator is None and bpt.text() == "bytes_per_token 4.25, needs >= 4 (pass)"
    lines = gate_lines([g.model_dump(mode="json") for g in (rt, un)])
    assert lines[0] == ("- FAIL `roundtrip_errors == 0`: roundtrip_errors 4000 of 4000 "
                        "documents, needs == 0 (FAIL)")


def test_all_pass_raises_nothing():
    raise_for_gates(check_gates(METRICS, ["bytes_per_token > 4", "premium[en] == 1"]))


def test_summary_tables_print_keyed_gates_verbatim(monkeypatch):
    """"nsl[o200k] <= 0.9" must not be eaten as rich markup in the run summary."""
    import io

    from rich.console import Console

    import tokenfoundry.flows.cli.run as run_mod

    buf = io.StringIO()
    monkeypatch.setattr(run_mod, "out", Console(file=buf, width=120, color_system=None))
    run_mod.print_summary({"stages": [], "gates": [
        {"expr": "nsl[o200k] <= 0.9", "value": 0.58, "passed": True},
        {"expr": "premium[de] <= 1.3", "value": 1.4, "passed": False}]})
    text = buf.getvalue()
    assert "nsl[o200k] <= 0.9" in text and "premium[de] <= 1.3" in text
