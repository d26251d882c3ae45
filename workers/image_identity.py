"""Which image a build makes: the commit, built by the farm's recipe on its base image.

The tag is ``<commit>-<12 hex>``; the hex digest covers the base image's
registry digest and ``RECIPE_VERSION``. A new base image or a new recipe
therefore builds a new image under a new tag, and a template keeps pointing
at the image it was made for; the same commit on the same base and recipe
is the same image, which a completed build makes a cache hit.

The base image's digest is asked of the farm's registry (a HEAD request)
and kept for ``BASE_DIGEST_SECONDS``, so the API can name the image of a
start request without work per request. A base image outside the farm's
registry is known by its reference only: pin it by digest to rebuild when
it changes.
"""

from __future__ import annotations

import hashlib
import threading
import time

import requests

from common.config import Config
from common.errors import BuildFailure
from common.models import FailureCause
from common.naming import image_name
from workers.registry import manifest_digest, split_image

#: Bump when generated Dockerfiles change so that existing images must be rebuilt.
RECIPE_VERSION = "4"
#: How long a process trusts the base image digest it last asked for.
BASE_DIGEST_SECONDS = 5.0

_digests: dict[tuple[str, str], tuple[float, str]] = {}
_lock = threading.Lock()


def base_digest(config: Config) -> str:
    """The base image's registry digest (or its reference, outside the farm's registry)."""
    base = str(config.base_image_name)
    if "@" in base or split_image(base)[0] != config.registry:
        return base
    key = (config.registry, base)
    now = time.monotonic()
    with _lock:
        cached = _digests.get(key)
    if cached is not None and now - cached[0] < BASE_DIGEST_SECONDS:
        return cached[1]
    try:
        digest = manifest_digest(config, base)
    except requests.RequestException as exc:
        raise BuildFailure(f"The registry did not answer for the base image {base}: {exc}",
                           suggestions=["Retry; operators: check BINDER_REGISTRY."],
                           cause=FailureCause.FARM) from exc
    if digest is None:
        raise BuildFailure(f"The base image {base} is not in the registry.",
                           suggestions=["Operators: run `binder-build base-image`."],
                           cause=FailureCause.FARM)
    with _lock:
        _digests[key] = (now, digest)
    return digest


def image_tag(commit: str, base: str) -> str:
    """``<commit>-<12 hex of the base image digest and the recipe version>``."""
    digest = hashlib.sha256(f"{base}\n{RECIPE_VERSION}".encode()).hexdigest()[:12]
    return f"{commit}-{digest}"


def image_for(config: Config, name: str, commit: str, base: str | None = None) -> str:
    """The full image address build ``name`` makes of ``commit`` today (on the base
    image of digest ``base``, when the caller already asked for it)."""
    return image_name(config.registry, config.image_prefix, name,
                      image_tag(commit, base or base_digest(config)))
