"""Phase fetch: resolve the content, answer from the cache, or fetch it.

The build's provider (``workers/providers/``) turns the recorded spec into
an immutable content id, which is the image tag: the same content is
built once, whichever provider it came from. A cached template is used
only when it is of this same repository and ref (names are one-to-one,
and this checks it for records from before that rule).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from common import build_store, template_store
from common.config import Config
from common.errors import BadRepoSource, BuildFailure
from common.models import BuildRecord, FailureCause, TemplateRecord
from common.name_store import belongs
from workers.git import directory_bytes
from workers.image_identity import image_for
from workers.outages import registry_lost, watching
from workers.phase_runner import PhaseResult, PhaseRun
from workers.phases.build import LAYER_CACHE, layer_cache
from workers.providers import (
    ContentProvider,
    FetchLimits,
    Resolved,
    Spec,
    parse_spec,
    provider_for,
)
from workers.registry import manifest_exists


def recorded_spec(record: BuildRecord, config: Config) -> Spec:
    """The spec the build was requested with, understood again by today's providers."""
    try:
        spec = parse_spec(record.get("spec") or record["repository"], config)
    except BadRepoSource as exc:
        raise BuildFailure(f"This farm no longer builds from {record['repository']}: "
                           f"{exc.message}", suggestions=exc.suggestions) from exc
    if not belongs(record, spec.repository, spec.ref):
        raise BuildFailure("This farm's provider settings changed since the build was "
                           "requested, so its repository reads differently now.",
                           suggestions=["Start the build again."], cause=FailureCause.FARM)
    return spec


def cached_template(phase: PhaseRun, image: str,
                    template: TemplateRecord | None) -> TemplateRecord | None:
    """``template``, the one stored under the build's name, when it is of this
    repository and ref and ``image`` is built and pushed."""
    record = phase.record
    # The store first: a build of new content (no template points at its image)
    # then costs no registry request.
    if template is None or template.get("image_name") != image or \
            not belongs(template, record["repository"], record.get("ref")):
        return None
    try:
        if not manifest_exists(phase.config, image):
            return None
    except requests.RequestException as exc:
        phase.say(f"registry not reachable for the cache check ({exc}); building")
        return None
    return template


def resolve(phase: PhaseRun, spec: Spec, provider: ContentProvider,
            limits: FetchLimits) -> Resolved:
    """What ``spec`` resolves to: the commit the API resolved for this start, when it
    did (asking the host for the ref again would only cost time), else the
    provider's answer now."""
    known = phase.record.get("resolved_commit")
    resolved = provider.resolved_as(spec, known) if known else None
    return resolved or provider.resolve(spec, limits)


def check_disk(phase: PhaseRun) -> None:
    """Refuse the build when this worker is short of disk space."""
    root = phase.config.work_root
    root.mkdir(parents=True, exist_ok=True)
    free_mb = shutil.disk_usage(root).free // (1024 * 1024)
    if free_mb < phase.config.min_free_disk_mb:
        raise BuildFailure(
            f"Worker {phase.config.worker_host} has only {free_mb} MiB of disk free "
            f"(it needs {phase.config.min_free_disk_mb} MiB), so it refused the build.",
            suggestions=["Retry later; operators: free disk space or lower "
                         "BINDER_MIN_FREE_DISK_MB."], cause=FailureCause.RESOURCES)


def image_and_template(phase: PhaseRun, resolved: Resolved) \
        -> tuple[str, TemplateRecord | None, dict[str, Any]]:
    """The image the resolved content makes on today's base image and recipe (a new
    base rebuilds under a new tag), its template when it is already built, and what
    the template read tells the build phase (whose layers it may reuse: one read of
    the store for both). A forced build reuses no template and reads none here."""
    record = phase.record
    with watching(phase.config, phase.guard, registry_lost):  # it asks for the base's digest
        image = image_for(phase.config, record["name"], resolved.content_id)
    if record.get("force"):
        return image, None, {}
    template = template_store.find_template(record["name"])
    return (image, cached_template(phase, image, template),
            {LAYER_CACHE: layer_cache(record, template, image)})


def run(phase: PhaseRun) -> PhaseResult:
    record, config = phase.record, phase.config
    check_disk(phase)
    spec = recorded_spec(record, config)
    provider = provider_for(spec, config)
    limits = FetchLimits.from_config(config, interrupt=phase.guard.raise_if_stopped)
    resolved = resolve(phase, spec, provider, limits)
    phase.say(f"resolved: {resolved.description}")
    if resolved.commit is None:  # an archive: download it only when it is not built
        image, template, for_build = image_and_template(phase, resolved)
        if template is None:
            fetch(phase, provider, resolved, limits)
    else:
        # A shallow fetch of one commit is cheap: it runs while the registry and
        # the store are asked whether the image is built (then the checkout is
        # dropped with the work dir).
        with ThreadPoolExecutor(1, thread_name_prefix="fetch-cache") as pool:
            answer = pool.submit(image_and_template, phase, resolved)
            try:
                fetch(phase, provider, resolved, limits)
            except BuildFailure:
                image, template, for_build = answer.result()
                if template is None:
                    raise
            image, template, for_build = answer.result()
    found: dict[str, Any] = {"provider": resolved.provider, "content_id": resolved.content_id,
                             "commit": resolved.commit, "image_name": image}
    if template is not None:
        return reuse(phase, resolved, template, found)
    return PhaseResult({**found, **for_build, "cached": False})


def reuse(phase: PhaseRun, resolved: Resolved, template: TemplateRecord,
          found: dict[str, Any]) -> PhaseResult:
    """Complete the build as a cache hit of ``template``'s image, naming the build
    that made it (``built_by``) as a hit answered by the API does."""
    image = found["image_name"]
    maker = build_store.earlier_maker(phase.record["name"], image)
    phase.say(f"{image} is already built{f' (build {maker})' if maker else ''}; reusing it")
    template_store.save_template({**template, "commit": resolved.commit,
                                  "content_id": resolved.content_id})
    return PhaseResult({**found, "image_source": image, "cached": True,
                        **({"built_by": maker} if maker else {}),
                        "config": template.get("config")}, complete=True)


def fetch(phase: PhaseRun, provider: ContentProvider, resolved: Resolved,
          limits: FetchLimits) -> None:
    """Put the resolved content into the checkout. Each provider bounds what it
    writes (git before checkout, archives while they unpack), so the size said
    here is for the log."""
    provider.fetch(resolved, phase.checkout, limits, phase.say)
    size = directory_bytes(phase.checkout) / (1024 * 1024)
    phase.say(f"fetched {resolved.content_id} ({size:.1f} MiB)")
