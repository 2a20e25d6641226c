"""Prefect flows (one per stage plus the end-to-end pipeline) and the CLI that starts them."""
