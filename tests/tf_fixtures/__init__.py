"""Shared test helpers (real text, small tokenizers, registry builders), one module per stage.

Importable from any test as ``from tf_fixtures import ingest`` (pytest puts ``tests/`` on
``sys.path``: ``pythonpath`` in pyproject.toml).
"""
