"""Units of work grouped by stage. Each is plain Python at its core (importable without
Prefect) with a thin Prefect ``@task`` wrapper in the stage's ``prefect_tasks`` module."""
