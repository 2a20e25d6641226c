"""Gates: pass/fail rules on the candidate's metrics that decide whether it may be published.

A gate is ``METRIC OP NUMBER`` or ``METRIC[KEY] OP NUMBER`` (``nsl[o200k] <= 0.9``,
``premium[de] <= 1.3``), parsed strictly by :func:`tokenfoundry.schemas.evaluate.parse_gate`.
A gate whose metric was not measured (no parallel text for ``parity``, a language missing from
it) fails with that reason rather than passing silently.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from tokenfoundry.schemas.errors import BadInputError, GateFailed
from tokenfoundry.schemas.evaluate import GATE_KEYED, GateResult, parse_gate

#: Counts a gate reports "of N": metric -> (the TokenizerMetrics field with N, what is counted).
COUNT_DENOMINATORS = {"roundtrip_errors": ("roundtrip_checked_docs", "documents"),
                      "unreachable_tokens": ("vocab_size", "tokens"),
                      "never_produced_tokens": ("vocab_size", "tokens"),
                      "partial_utf8_tokens": ("vocab_size", "tokens")}

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "==": operator.eq, "!=": operator.ne}


def parse_gates(gates: list[str]) -> list:
    """Parse every gate; BadInputError (exit 2) naming the first bad expression."""
    parsed = []
    for g in gates:
        try:
            parsed.append(parse_gate(g))
        except ValueError as e:
            raise BadInputError(str(e)) from None
    return parsed


def check_gates(metrics: dict[str, Any], gates: list[str]) -> list[GateResult]:
    """Judge ``gates`` on one tokenizer's metrics (a TokenizerMetrics dump or any dict). Each
    result carries op, threshold, value and, for counts, the denominator."""
    results = []
    for gate in parse_gates(gates):
        field, unit = COUNT_DENOMINATORS.get(gate.metric, (None, None))
        of = {"denominator": metrics.get(field), "unit": unit} if metrics.get(field) is not None \
            else {}
        if gate.key is not None:
            table = metrics.get(GATE_KEYED[gate.metric]) or {}
            value = table.get(gate.key)
            missing = (f"{gate.label} was not measured (have: {sorted(table) or 'none'})"
                       if value is None else "")
        else:
            value = metrics.get(gate.metric)
            missing = f"{gate.metric} was not measured" if value is None else ""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            results.append(GateResult(expr=gate.expr, metric=gate.metric, key=gate.key, op=gate.op,
                                      threshold=gate.threshold, value=None, passed=False,
                                      reason=missing or f"{gate.label} is not a number", **of))
            continue
        passed = bool(_OPS[gate.op](float(value), gate.threshold))
        results.append(GateResult(
            expr=gate.expr, metric=gate.metric, key=gate.key, op=gate.op, threshold=gate.threshold,
            value=float(value), passed=passed, **of,
            reason="" if passed else f"{gate.label} = {float(value):.6g}"
            + (f" of {of['denominator']} {unit}" if of else "")
            + f", needs {gate.op} {gate.threshold:g}"))
    return results


def raise_for_gates(results: list[GateResult], candidate: str | None = None) -> None:
    """GateFailed (exit 1) listing every failing gate's metric, value and threshold."""
    failed = [r for r in results if not r.passed]
    if failed:
        who = f" for {candidate}" if candidate else ""
        lines = "; ".join(r.reason or r.expr for r in failed)
        raise GateFailed(f"{len(failed)} of {len(results)} gate(s) failed{who}: {lines}")
