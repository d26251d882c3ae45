"""Phase fetch: resolve the ref, answer from the cache, or clone the commit."""

from __future__ import annotations

import shutil
from typing import Any

import requests

from common import template_store
from common.addresses import CheckedTarget, check_url
from common.errors import BadRepoSource, BuildFailure
from common.naming import image_name
from workers.git import fetch_commit, resolve_ref
from workers.phase_runner import COMPLETE, PhaseRun
from workers.registry import manifest_exists


def cached_template(context: PhaseRun, image: str) -> dict[str, Any] | None:
    """The stored template when ``image`` is already built and pushed."""
    if context.record.get("force"):
        return None
    try:
        if not manifest_exists(context.config, image):
            return None
    except requests.RequestException as exc:
        context.say(f"registry not reachable for the cache check ({exc}); building")
        return None
    template = template_store.find_template(context.record["name"])
    if template is None or template.get("image_name") != image:
        return None
    return template


def check_disk(context: PhaseRun) -> None:
    """Refuse the build when this worker is short of disk space."""
    root = context.config.work_root
    root.mkdir(parents=True, exist_ok=True)
    free_mb = shutil.disk_usage(root).free // (1024 * 1024)
    if free_mb < context.config.min_free_disk_mb:
        raise BuildFailure(
            f"Worker {context.config.worker_host} has only {free_mb} MiB of disk free "
            f"(it needs {context.config.min_free_disk_mb} MiB), so it refused the build.",
            suggestions=["Retry later; operators: free disk space or lower "
                         "BINDER_MIN_FREE_DISK_MB."])


def checked_target(context: PhaseRun) -> CheckedTarget:
    """The clone URL, its host resolved and checked now (git connects to these addresses)."""
    try:
        return check_url(context.record["clone_url"], context.config.allowed_source_hosts)
    except BadRepoSource as exc:
        raise BuildFailure(exc.message, suggestions=exc.suggestions) from exc


def run(context: PhaseRun) -> dict[str, Any]:
    record, config = context.record, context.config
    check_disk(context)
    target = checked_target(context)
    commit = resolve_ref(target, record.get("ref"), config.clone_timeout)
    context.say(f"resolved {record.get('ref') or 'the default branch'} to {commit}")
    image = image_name(config.registry, config.image_prefix, record["name"], commit)
    template = cached_template(context, image)
    if template is not None:
        context.say(f"{image} is already built; reusing it")
        template_store.save_template({**template, "commit": commit})
        return {COMPLETE: True, "commit": commit, "image_name": image, "image_source": image,
                "cached": True, "config": template.get("config")}
    size = fetch_commit(target, commit, context.checkout, config.clone_timeout,
                        config.max_repo_mb * 1024 * 1024, context.say)
    context.say(f"checked out {commit} ({size / (1024 * 1024):.1f} MiB)")
    return {"commit": commit, "image_name": image, "cached": False}
