"""Phase build: render the Dockerfile and build it on this host's engine."""

from __future__ import annotations

from pathlib import PurePosixPath

from common import template_store
from common.name_store import belongs
from workers.build_cgroup import LimitNotSet, limit_build_memory
from workers.buildpacks import BUILDPACKS, DEFAULT_BUILDPACK, BuildInputs, BuildPack
from workers.docker_context import write_context
from workers.image_build import BuildRequest, run_build
from workers.index_proxy import build_index_url
from workers.phase_runner import PhaseResult, PhaseRun


def buildpack_by_id(pack_id: str) -> BuildPack:
    return next((pack for pack in BUILDPACKS if pack.id == pack_id), DEFAULT_BUILDPACK)


def previous_image(phase: PhaseRun) -> str | None:
    """The last image built for this name: its inline cache metadata lets BuildKit
    reuse its layers, pulling only those it needs, on any host.

    Only an image of this same repository and ref: another repository's
    layers must never end up in this one's image.
    """
    record = phase.record
    template = template_store.find_template(record["name"])
    if not belongs(template, record["repository"], record.get("ref")):
        return None
    image = template.get("image_name") if template else None
    if not image or image == phase.image:
        return None
    return str(image)


def memory_limit(phase: PhaseRun) -> None:
    """Put the engine's build containers under the build memory limit (see build_cgroup)."""
    if not phase.config.limit_build_cgroup:
        return
    try:
        cgroup = limit_build_memory(phase.config)
    except LimitNotSet as exc:
        phase.say(f"warning: the build memory limit is not enforced: {exc}")
        return
    phase.say(f"build memory limit {phase.config.build_memory} (cgroup {cgroup})")


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
    request = BuildRequest(
        context=context_tar, dockerfile=dockerfile, tag=phase.image,
        network=config.build_network,
        labels={"org.binder-build.name": record["name"],
                "org.binder-build.provider": record.get("provider") or "",
                "org.binder-build.repository": record["repository"],
                "org.binder-build.ref": record.get("ref") or "",
                "org.binder-build.content-id": phase.content_id,
                "org.binder-build.commit": record.get("commit") or ""})
    cache_from = previous_image(phase)
    if cache_from:
        request.cache_from.append(cache_from)
        phase.say(f"reusing layers from {cache_from}")
    memory_limit(phase)
    image_id = run_build(request, config, phase.workdir, phase.say, phase.guard)
    phase.say(f"built {phase.image} ({image_id})")
    return PhaseResult({"image_id": image_id})
