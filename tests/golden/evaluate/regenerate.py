"""Regenerate the golden evaluation files: ``python tests/golden/evaluate/regenerate.py``.

Each ``<case>.json`` holds every tokenizer's metrics (timings left out) for one case of
``tf_fixtures.evaluate.golden_cases()``; ``tokenizers/`` and ``data/`` hold the fixed inputs.
The first version was written by the evaluator before its plain rewrite (issue 14); the test
tests/tasks/test_evaluate_golden.py recomputes them and lists every deliberate difference.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: tf_fixtures

from tf_fixtures import evaluate as FX  # noqa: E402


def main(cases: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases or FX.golden_cases():
            m = FX.golden_metrics(case, Path(tmp))
            (FX.GOLDEN / f"{case}.json").write_text(
                json.dumps(m, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                encoding="utf-8")
            print(f"{case}: {len(m)} tokenizers")


if __name__ == "__main__":
    main(sys.argv[1:])
