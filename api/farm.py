"""The farm's state for people: worker hosts with their builds, and queue lengths."""

from __future__ import annotations

from typing import Any

from flask import current_app

from api.auth import require_admin, require_read
from api.blueprint import Blueprint
from api.farm_state import docker_host, docker_hosts, queue_lengths, worker_hosts
from api.schemas.farm import DockerHostSchema, HostSchema, QueueSchema
from common import host_store
from common.host_events import announce

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


@bp.route("/hosts/", strict_slashes=False)
@require_read
@bp.response(200, DockerHostSchema(many=True))
def hosts() -> list[dict[str, Any]]:
    """Docker hosts: what each one's worker advertises, and whether it is drained."""
    return docker_hosts(current_app.config["BINDER"])


@bp.route("/hosts/<host>/drain", methods=["POST"])
@require_admin
@bp.response(200, DockerHostSchema, description="the host, draining")
@bp.alt_response(404, response="NOT_FOUND")
def drain(host: str) -> dict[str, Any]:
    """Take a host out of service: it takes no new builds and finishes those it runs
    (``running`` lists them); it stays drained across restarts until undrained."""
    record = host_store.set_draining(host, True)
    announce(current_app.config["BINDER"], host)  # it stops taking builds now, not at a beat
    return docker_host(current_app.config["BINDER"], record)


@bp.route("/hosts/<host>/undrain", methods=["POST"])
@require_admin
@bp.response(200, DockerHostSchema, description="the host, taking builds again")
@bp.alt_response(404, response="NOT_FOUND")
def undrain(host: str) -> dict[str, Any]:
    """Put a drained host back into service."""
    record = host_store.set_draining(host, False)
    announce(current_app.config["BINDER"], host)
    return docker_host(current_app.config["BINDER"], record)
