"""The contracts: pydantic config models, Arrow table schemas, manifests and error types.

Nothing here does I/O or imports Prefect; every other layer imports from here.
"""
