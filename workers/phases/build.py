"""Phase build: render the Dockerfile and build it on this host's engine."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import docker.errors

from common import template_store
from common.sizes import parse_size
from workers.buildpacks import BUILDPACKS, DEFAULT_BUILDPACK, BuildInputs, BuildPack
from workers.docker_context import write_context
from workers.docker_engine import API_TIMEOUT, docker_client
from workers.image_build import run_build
from workers.index_proxy import build_index_url
from workers.phase_runner import PhaseRun
from workers.registry import auth_config


def buildpack_by_id(pack_id: str) -> BuildPack:
    return next((pack for pack in BUILDPACKS if pack.id == pack_id), DEFAULT_BUILDPACK)


def previous_image(context: PhaseRun) -> str | None:
    """The last image built for this name, pulled so its layers can be reused."""
    template = template_store.find_template(context.record["name"])
    image = template.get("image_name") if template else None
    if not image or image == context.record["image_name"]:
        return None
    client = docker_client(context.config, timeout=300)
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        try:
            repository, _, tag = image.rpartition(":")
            client.images.pull(repository, tag=tag, auth_config=auth_config(context.config))
        except docker.errors.APIError as exc:
            context.say(f"no layer cache from {image}: {exc.explanation or exc}")
            return None
    return str(image)


def run(context: PhaseRun) -> dict[str, Any]:
    record, config = context.record, context.config
    if record.get("cached"):
        return {}
    buildpack = buildpack_by_id(record.get("buildpack") or DEFAULT_BUILDPACK.id)
    config_path = PurePosixPath(record["config"]) if record.get("config") else None
    # Builds see the index without its credentials (workers/index_proxy.py).
    visible_index = build_index_url(config.pip_index_url, config.pip_proxy)
    inputs = BuildInputs(context.checkout, config_path,
                         config.replace(pip_index_url=visible_index))
    dockerfile_text = buildpack.render(inputs)
    if not buildpack.owns_context:
        context.say("generated Dockerfile:")
        for line in dockerfile_text.splitlines():
            context.say(f"  {line}")
    context_tar = context.workdir / "context.tar"
    dockerfile = write_context(context_tar, buildpack, inputs, dockerfile_text)
    cache_from = previous_image(context)
    params: dict[str, Any] = {
        "docker_host": config.docker_host, "timeout": API_TIMEOUT, "context": str(context_tar),
        "dockerfile": dockerfile, "tag": record["image_name"], "network_mode": config.build_network,
        "container_limits": {"memory": parse_size(config.build_memory)},
        "labels": {"org.binder-build.name": record["name"],
                   "org.binder-build.commit": record["commit"],
                   "org.binder-build.repository": record["repository"]},
    }
    if cache_from:
        params["cache_from"] = [cache_from]
        context.say(f"reusing layers from {cache_from}")
    image_id = run_build(params, context.workdir, context.say, context.guard)
    context.say(f"built {record['image_name']} ({image_id})")
    return {"image_id": image_id}

