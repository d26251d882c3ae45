"""Worker hosts and queues on the wire (the farm's page reads them)."""

from marshmallow import Schema, fields, validate

HOST_STATES = ["up", "stopped", "draining", "lost"]


class WorkerSchema(Schema):
    name = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(HOST_STATES))
    last_seen = fields.DateTime(data_key="last-seen", allow_none=True)
    builds = fields.List(fields.String(), metadata={"description": "builds it runs now"})


class HostSchema(Schema):
    """A Docker host and its worker processes."""

    host = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(HOST_STATES),
                          metadata={"description": "lost: said up, not seen for "
                                                   "BINDER_HEARTBEAT_STALE seconds"})
    last_seen = fields.DateTime(data_key="last-seen", allow_none=True)
    workers = fields.List(fields.Nested(WorkerSchema))


class DockerHostSchema(Schema):
    """A Docker host as its worker advertises it, and whether operators drained it."""

    host = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(HOST_STATES),
                          metadata={"description": "draining: takes no new builds; lost: "
                                                   "not seen for BINDER_HEARTBEAT_STALE s"})
    draining = fields.Boolean(required=True)
    docker_host = fields.String(data_key="docker-host", allow_none=True)
    engine_version = fields.String(data_key="engine-version", allow_none=True)
    free_disk_mb = fields.Integer(data_key="free-disk-mb", allow_none=True)
    min_free_disk_mb = fields.Integer(data_key="min-free-disk-mb", allow_none=True)
    concurrency = fields.Integer(allow_none=True, metadata={"description": "builds at once"})
    running = fields.List(fields.String(), metadata={"description": "builds it runs now"})
    last_seen = fields.DateTime(data_key="last-seen", allow_none=True)


class QueueLengthSchema(Schema):
    name = fields.String(required=True)
    messages = fields.Integer(allow_none=True,
                              metadata={"description": "null when the broker did not answer"})


class QueueSchema(Schema):
    """How much is waiting: builds no worker has taken yet, and each queue's messages."""

    waiting = fields.Integer(required=True, metadata={"description": "running builds still "
                                                                      "queued"})
    running = fields.Integer(required=True, metadata={"description": "builds a worker runs"})
    queues = fields.List(fields.Nested(QueueLengthSchema))
