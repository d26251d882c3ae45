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
from workers.phase_runner import PhaseResult, PhaseRun
from workers.registry import pull_image


def buildpack_by_id(pack_id: str) -> BuildPack:
    return next((pack for pack in BUILDPACKS if pack.id == pack_id), DEFAULT_BUILDPACK)


def previous_image(phase: PhaseRun) -> str | None:
    """The last image built for this name, pulled so its layers can be reused."""
    template = template_store.find_template(phase.record["name"])
    image = template.get("image_name") if template else None
    if not image or image == phase.image:
        return None
    client = docker_client(phase.config, timeout=300)
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        try:
            pull_image(client, phase.config, image)
        except docker.errors.APIError as exc:
            phase.say(f"no layer cache from {image}: {exc.explanation or exc}")
            return None
    return str(image)


def run(phase: PhaseRun) -> PhaseResult | None:
    record, config = phase.record, phase.config
    if record.get("cached"):
        return None
    buildpack = buildpack_by_id(record.get("buildpack") or DEFAULT_BUILDPACK.id)
    config_file = record.get("config")
    config_path = PurePosixPath(config_file) if config_file else None
    # Builds see the index without its credentials (workers/index_proxy.py).
    visible_index = build_index_url(config.pip_index_url, config.pip_proxy)
    inputs = BuildInputs(phase.checkout, config_path,
                         config.replace(pip_index_url=visible_index))
    dockerfile_text = buildpack.render(inputs)
    if not buildpack.owns_context:
        phase.say("generated Dockerfile:")
        for line in dockerfile_text.splitlines():
            phase.say(f"  {line}")
    context_tar = phase.workdir / "context.tar"
    dockerfile = write_context(context_tar, buildpack, inputs, dockerfile_text)
    cache_from = previous_image(phase)
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
        phase.say(f"reusing layers from {cache_from}")
    image_id = run_build(params, phase.workdir, phase.say, phase.guard)
    phase.say(f"built {record['image_name']} ({image_id})")
    return PhaseResult({"image_id": image_id})

