"""What ``celery -A workers.worker_app`` loads (worker, beat, Flower).

The entry point of those processes: it reads the settings once and makes
the Celery app with the farm's tasks.
"""

from __future__ import annotations

from common.config import load_config, set_config
from workers.celery_app import create_celery

config = load_config()
set_config(config)
app = create_celery(config, with_tasks=True)
