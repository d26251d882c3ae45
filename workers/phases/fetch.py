"""Phase fetch: resolve the ref, answer from the cache, or clone the commit."""

from __future__ import annotations

import shutil

import requests

from common import template_store
from common.addresses import CheckedTarget, check_url
from common.errors import BadRepoSource, BuildFailure
from common.models import TemplateRecord
from workers.git import fetch_commit, resolve_ref
from workers.image_identity import image_for
from workers.phase_runner import PhaseResult, PhaseRun
from workers.registry import manifest_exists


def cached_template(phase: PhaseRun, image: str) -> TemplateRecord | None:
    """The stored template when ``image`` is already built and pushed."""
    if phase.record.get("force"):
        return None
    try:
        if not manifest_exists(phase.config, image):
            return None
    except requests.RequestException as exc:
        phase.say(f"registry not reachable for the cache check ({exc}); building")
        return None
    template = template_store.find_template(phase.record["name"])
    if template is None or template.get("image_name") != image:
        return None
    return template


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
                         "BINDER_MIN_FREE_DISK_MB."])


def checked_target(phase: PhaseRun) -> CheckedTarget:
    """The clone URL, its host resolved and checked now (git connects to these addresses)."""
    try:
        return check_url(phase.record["clone_url"], phase.config.allowed_source_hosts)
    except BadRepoSource as exc:
        raise BuildFailure(exc.message, suggestions=exc.suggestions) from exc


def run(phase: PhaseRun) -> PhaseResult:
    record, config = phase.record, phase.config
    check_disk(phase)
    target = checked_target(phase)
    commit = resolve_ref(target, record.get("ref"), config.clone_timeout)
    phase.say(f"resolved {record.get('ref') or 'the default branch'} to {commit}")
    # The commit on today's base image and recipe: a new base rebuilds under a new tag.
    image = image_for(config, record["name"], commit)
    template = cached_template(phase, image)
    if template is not None:
        phase.say(f"{image} is already built; reusing it")
        template_store.save_template({**template, "commit": commit})
        return PhaseResult({"commit": commit, "image_name": image, "image_source": image,
                            "cached": True, "config": template.get("config")}, complete=True)
    size = fetch_commit(target, commit, phase.checkout, config.clone_timeout,
                        config.max_repo_mb * 1024 * 1024, phase.say)
    phase.say(f"checked out {commit} ({size / (1024 * 1024):.1f} MiB)")
    return PhaseResult({"commit": commit, "image_name": image, "cached": False})
