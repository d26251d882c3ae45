"""Templates: what a launcher needs to deploy a built image."""

import shlex
from typing import Any

from marshmallow import Schema, fields

#: The address a copied ``docker run`` line publishes the image's port on.
LOOPBACK = "127.0.0.1"


def docker_run_command(template: dict[str, Any]) -> str:
    """The ``docker run`` line a template describes: port, limits, GPUs, then the command.

    The port is published on loopback only: the default command serves Jupyter
    without a token, so a copied line must not open it to the whole network.
    """
    port = template.get("port") or 8888
    argv = ["docker", "run", "--rm", "-it", "-p", f"{LOOPBACK}:{port}:{port}"]
    limits = template.get("limits") or {}
    if limits.get("memory"):
        argv += ["--memory", str(limits["memory"])]
    if limits.get("cpu"):
        argv += ["--cpus", f"{float(limits['cpu']):g}"]
    gpus = (template.get("hardware") or {}).get("gpu")
    if gpus:
        argv += ["--gpus", str(gpus)]
    argv.append(str(template.get("image_name") or ""))
    command = template.get("command")  # already one shell-quoted string
    return shlex.join(argv) + (f" {command}" if command else "")


class ServiceSchema(Schema):
    name = fields.String(required=True)
    version = fields.String(allow_none=True)
    params = fields.Dict(allow_none=True)


class LimitsSchema(Schema):
    """What a launcher gives the image's container. ``cpu`` is a number: what
    ``docker run --cpus`` takes, and a quantity Kubernetes reads as well as its
    string form."""

    memory = fields.String(metadata={"description": "a size: 512M, 2G", "example": "2G"})
    cpu = fields.Float(metadata={"description": "a number of CPUs: 0.5, 1.0, 2.0 "
                                                "(templates stored as a string are served "
                                                "as a number)", "example": 1.0})


class TemplateSchema(Schema):
    """A template as the original registry served it, plus ``limits`` and ``hardware``."""

    name = fields.String(required=True)
    image_name = fields.String(data_key="image-name", required=True)
    image_source = fields.String(data_key="image-source",
                                 required=True)
    port = fields.Integer(required=True)
    command = fields.String(allow_none=True)
    services = fields.List(fields.Nested(ServiceSchema))
    limits = fields.Nested(LimitsSchema)
    hardware = fields.Dict(keys=fields.String(), values=fields.Raw())
    provider = fields.String(allow_none=True)
    repository = fields.String()
    ref = fields.String(allow_none=True)
    commit = fields.String(allow_none=True, metadata={"description": "for Git content"})
    content_id = fields.String(data_key="content-id", allow_none=True,
                               metadata={"description": "the image tag"})
    config = fields.String(allow_none=True, metadata={"description": "config file built from"})
    interfaces = fields.List(fields.String(), metadata={
        "description": "user interfaces the image serves (lab: /lab, notebook: /tree); "
                       "empty when the image does not say"})
    time_created = fields.DateTime(data_key="time-created",
                                   required=True)
    time_modified = fields.DateTime(data_key="time-modified",
                                    required=True)
    run_command = fields.Function(docker_run_command, data_key="run-command", dump_only=True,
                                  metadata={"description": "a docker run line for the image, "
                                                           "with the template's port "
                                                           "(published on 127.0.0.1 only), "
                                                           "limits and command"})
