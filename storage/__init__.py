"""All I/O: workspace layout, atomic Parquet snapshots, the DuckDB catalog, the artifact registry.

Imports only ``tokenfoundry.schemas`` (never Prefect), so every storage operation is usable and
testable without an orchestrator.
"""
