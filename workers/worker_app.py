"""What ``celery -A workers.worker_app`` loads (worker, beat, Flower).

The entry point of those processes: it reads the settings once (with the
local services' credentials) and makes the Celery app with the farm's tasks.
"""

from __future__ import annotations

from common.config import get_config
from workers.celery_app import create_celery

config = get_config()
app = create_celery(config, with_tasks=True)
