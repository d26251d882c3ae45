"""Phase build: render the Dockerfile and build it on this host's engine.

Detection runs again on the checkout (it is deterministic), so the build
renders exactly what the detect phase logged.
"""

from __future__ import annotations

from typing import Final

from common import template_store
from common.models import BuildRecord, TemplateRecord
from common.name_store import belongs
from workers import built_image
from workers.build_cgroup import LimitNotSet, limit_builds
from workers.buildpacks import detect
from workers.buildpacks.dockerfile import DockerfileBuildPack
from workers.docker_context import write_context
from workers.image_build import BUILT_LABEL, BuildRequest, run_build
from workers.index_proxy import build_index_url
from workers.outages import engine_lost, watching
from workers.phase_runner import PhaseResult, PhaseRun

#: The record's field naming the image whose layers the build may reuse
#: (``layer_cache``), as the fetch phase found it in the template it read for its cache
#: check; absent when it read none (a forced build), and then read here.
LAYER_CACHE: Final = "cache_from"


def layer_cache(record: BuildRecord, template: TemplateRecord | None, image: str) -> str | None:
    """The image ``template`` names when a build of ``record`` making ``image`` may reuse
    its layers: its inline cache metadata lets BuildKit reuse them, pulling only those
    it needs, on any host.

    Only an image of this same repository and ref: another repository's
    layers must never end up in this one's image.
    """
    if not belongs(template, record["repository"], record.get("ref")):
        return None
    cached = template.get("image_name") if template else None
    if not cached or cached == image:
        return None
    return str(cached)


def previous_image(phase: PhaseRun) -> str | None:
    """The last image built for this name, when the build may reuse its layers."""
    record = phase.record
    if LAYER_CACHE in record:
        return record[LAYER_CACHE]
    return layer_cache(record, template_store.find_template(record["name"]), phase.image)


def build_limits(phase: PhaseRun) -> None:
    """Put the engine's build containers under the build limits (see build_cgroup)."""
    config = phase.config
    if not config.limit_build_cgroup:
        return
    try:
        cgroup = limit_builds(config)
    except LimitNotSet as exc:
        phase.say(f"warning: the build memory and process limits are not enforced: {exc}")
        return
    processes = f"{config.build_pids} processes" if config.build_pids else "no process limit"
    phase.say(f"build memory limit {config.build_memory}, {processes} (cgroup {cgroup})")


def run(phase: PhaseRun) -> PhaseResult | None:
    record, config = phase.record, phase.config
    if record.get("cached"):
        return None
    detection = detect(phase.checkout, config)
    buildpack = detection.buildpack
    # Builds see the index without its credentials (workers/index_proxy.py).
    visible_index = build_index_url(config.pip_index_url, config.pip_proxy)
    inputs = detection.inputs(phase.checkout, config.replace(pip_index_url=visible_index))
    dockerfile_text = buildpack.render(inputs)
    if not buildpack.owns_context:
        phase.say("generated Dockerfile:")
        for line in dockerfile_text.splitlines():
            phase.say(f"  {line}")
    context_tar = phase.workdir / "context.tar"
    dockerfile = write_context(context_tar, buildpack, inputs, dockerfile_text, phase.say)
    request = BuildRequest(
        context=context_tar, dockerfile=dockerfile, tag=phase.image,
        network=config.build_network,
        labels={BUILT_LABEL: record["name"],
                "org.binder-build.provider": record.get("provider") or "",
                "org.binder-build.repository": record["repository"],
                "org.binder-build.ref": record.get("ref") or "",
                "org.binder-build.content-id": phase.content_id,
                "org.binder-build.commit": record.get("commit") or ""},
        # Binder's conventions reach a repository's own Dockerfile as build arguments.
        build_args=DockerfileBuildPack.build_args(config) if buildpack.owns_context else {})
    cache_from = previous_image(phase)
    if cache_from:
        request.cache_from.append(cache_from)
        phase.say(f"reusing layers from {cache_from}")
    build_limits(phase)
    with watching(config, phase.guard, engine_lost):
        image_id = run_build(request, config, phase.workdir, phase.say, phase.guard)
    phase.say(f"built {phase.image} ({image_id})")
    # Before anything leaves the host: an image whose CMD or interfaces label no
    # template holds fails here, not after its push (verification may be off).
    facts = built_image.read_facts(config, phase.guard, image_id, buildpack.id)
    return PhaseResult({"image_id": image_id, built_image.FIELD: facts})
