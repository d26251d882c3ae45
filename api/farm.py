"""The farm's state for people: worker hosts with their builds, and queue lengths."""

from __future__ import annotations

from typing import Any

from flask import current_app

from api.auth import require_read
from api.blueprint import Blueprint
from api.farm_state import queue_lengths, worker_hosts
from api.schemas.farm import HostSchema, QueueSchema

bp = Blueprint("farm", __name__, description="What the workers do and how much is waiting.")


@bp.route("/workers/", strict_slashes=False)
@require_read
@bp.response(200, HostSchema(many=True))
def workers() -> list[dict[str, Any]]:
    """Worker hosts, their worker processes and the builds each runs now."""
    return worker_hosts(current_app.config["BINDER"])


@bp.route("/queue/", strict_slashes=False)
@require_read
@bp.response(200, QueueSchema)
def queue() -> dict[str, Any]:
    """Builds waiting and running, and the messages waiting in each queue."""
    config = current_app.config["BINDER"]
    hosts = [host["host"] for host in worker_hosts(config)]
    return queue_lengths(config, hosts)
