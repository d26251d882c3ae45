"""Celery workers: one module per build phase, plus sources and buildpacks."""
