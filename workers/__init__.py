"""Celery workers: one module per build phase, plus content providers and buildpacks."""
