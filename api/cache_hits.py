"""Cache hits answered by the API: a start of content already built completes at once.

A start without ``force`` resolves its ref here, the whole lookup bounded
by ``BINDER_CACHE_RESOLVE_TIMEOUT`` (the provider's own resolve, so the
same address checks as the fetch phase), and names the image the fetch phase
would name (``workers.image_identity.image_for``). When a completed build
of this repository and ref made that image, its template points at it and
the registry holds it, the start is stored ``completed`` with ``cached:
true`` and no task is sent. Any doubt (a slow or failing resolve, a
registry or store that does not answer) leaves the decision to the build's
fetch phase, which says what is wrong.

A start that is no hit hands the commit its ref resolved to on to the build
(``resolved_commit``): its fetch phase fetches that commit, with its address
checked again, instead of asking the repository's host for the ref twice.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from common import build_store, log_store, template_store
from common.clock import utcnow
from common.config import Config
from common.errors import BuildFailure
from common.lazy_pool import LazyPool
from common.models import BuildRecord, Phase, Status
from common.name_store import belongs
from workers.image_identity import base_digest, image_for
from workers.providers import FetchLimits, parse_spec, provider_for
from workers.registry import manifest_exists

log = logging.getLogger(__name__)

#: What a completed build tells about its image, copied to the start it answers.
IMAGE_FACTS = ("config", "config_files", "buildpack", "binder_yml")


@dataclass(frozen=True)
class CacheHit:
    """A start answered from a completed build: the fields of its record and its log."""

    fields: dict[str, Any]
    log_lines: list[str]


@dataclass(frozen=True)
class Lookup:
    """What the lookup of a start found: a hit, or the commit its ref resolved to."""

    hit: CacheHit | None = None
    #: the commit a Git ref resolved to, for a start that is no hit (else ``None``)
    resolved_commit: str | None = None


#: How long a process trusts that an image it found in the registry is there.
PUSHED_SECONDS = 10.0
PUSHED_MAX = 10_000
_pushed: dict[str, float] = {}
_pushed_lock = threading.Lock()
_clock = time.monotonic

#: Lookups in flight per API process; a start finding none free gets no cache answer.
LOOKUP_THREADS = 4

_lookups = LazyPool(LOOKUP_THREADS, "cache-lookup")
#: Threads asking the registry for the base image's digest, one per lookup.
_base_asks = LazyPool(LOOKUP_THREADS, "cache-base")


def find_hit(config: Config, name: str, fields: dict[str, Any]) -> CacheHit | None:
    """The answer to the start of ``name`` when its content is already built, else ``None``."""
    return look_up(config, name, fields).hit


def look_up(config: Config, name: str, fields: dict[str, Any]) -> Lookup:
    """The start of ``name``'s cache answer, or the commit its ref resolved to, or neither.

    The whole lookup (name resolution included, which no timeout of the
    resolve covers) gets ``BINDER_CACHE_RESOLVE_TIMEOUT``; past it, the
    start goes on to the build and the lookup ends on its own.
    """
    if fields.get("force") or config.cache_resolve_timeout <= 0:
        return Lookup()
    lookup = _lookups.submit(_find_hit, config, name, fields)
    try:
        return lookup.result(timeout=config.cache_resolve_timeout)
    except FutureTimeout:
        log.info("no cache answer for %s within %s s", name, config.cache_resolve_timeout)
        return Lookup()
    except Exception as exc:  # noqa: BLE001 -- any doubt means: the build decides
        log.info("no cache answer for %s: %s", name, exc)
        return Lookup()


def _find_hit(config: Config, name: str, fields: dict[str, Any]) -> Lookup:
    # A hit's record spans the lookup: it ends before the record is written.
    started = utcnow()
    spec = parse_spec(fields["spec"], config)
    limits = FetchLimits.from_config(config, timeout=config.cache_resolve_timeout)
    # The registry (for the base image's digest) and the repository's host (for
    # the ref) are asked at once: the image's name needs both answers.
    base = _base_asks.submit(base_digest, config)
    resolved = provider_for(spec, config).resolve(spec, limits)
    # Only a Git commit is handed on: it names the content and is fetched as it is.
    miss = Lookup(resolved_commit=resolved.commit
                  if resolved.commit and resolved.commit == resolved.content_id
                  and resolved.provider == spec.provider else None)
    try:
        image = image_for(config, name, resolved.content_id, base.result())
    except BuildFailure as exc:  # the registry did not say; the fetch asks it again
        log.info("no cache answer for %s: %s", name, exc)
        return miss
    built = build_store.completed_with_image(image)
    if built is None or not belongs(built, spec.repository, spec.ref):
        return miss
    template = template_store.find_template(name)
    if template is None or template.get("image_name") != image or \
            not belongs(template, spec.repository, spec.ref):
        return miss
    if not in_registry(config, image):
        return miss
    maker = build_store.image_maker(built)
    record: dict[str, Any] = {
        "status": Status.COMPLETED.value, "phase": Phase.FINISHED.value,
        "start_time": started, "end_time": utcnow(),
        "provider": resolved.provider, "content_id": resolved.content_id,
        "commit": resolved.commit, "image_name": image, "image_source": image,
        "cached": True, "built_by": maker,
        **{key: built[key] for key in IMAGE_FACTS if key in built},  # type: ignore[literal-required]
    }
    return Lookup(CacheHit(record, [f"resolved: {resolved.description}",
                                    f"{image} is already built (build {maker}); reusing it"]))


def in_registry(config: Config, image: str) -> bool:
    """Whether the registry holds ``image``; a yes is trusted for ``PUSHED_SECONDS``.

    Each registry request costs an authentication (a password hash) on the
    registry's side; a burst of starts of one repository (a class launching
    it) asks once. Retention never deletes an image a template points at.
    """
    now = _clock()
    with _pushed_lock:
        seen = _pushed.get(image)
    if seen is not None and now - seen < PUSHED_SECONDS:
        return True
    if not manifest_exists(config, image):
        return False
    with _pushed_lock:
        if len(_pushed) >= PUSHED_MAX:
            _pushed.clear()
        _pushed[image] = now
    return True


def answer(name: str, fields: dict[str, Any], hit: CacheHit) -> BuildRecord:
    """Store the start of ``name`` (its request ``fields``) as the completed cache hit
    ``hit``: its log first, so a reader that sees it completed reads the whole log.
    ``AlreadyBuilding`` while a build of ``name`` runs, as any start."""
    build_id = build_store.new_build_id()
    log_store.store_lines(build_id, hit.log_lines)
    return build_store.create_build(name, {**fields, **hit.fields}, build_id=build_id)
