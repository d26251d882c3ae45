"""One name, one repository and ref, for ever: the ``names`` collection.

A build name addresses a build record, a template and an image repository
in the registry, so two repositories must never share one (a second
repository would take over the first's template and layer cache). Each
``(repository, ref)`` pair, normalised by its content provider, gets its
name once, in one document ``{_id: name, key, repository, ref, provider}``;
both ``_id`` and ``key`` are unique, so racing requests cannot give one
name to two pairs, nor two names to one pair.

Which name: the provider's preferred name (``owner-repo[-ref]`` for
GitHub, the provider or host plus the path for other sources) when it is
free; otherwise that name plus a short hash of the pair (longer hashes if
even that is taken). A name already used by a build or template from
before this collection existed counts as taken unless that record is of
the same pair.

Readers that act for a start request (the cache check, the layer cache,
the running-build slot) confirm with ``belongs`` that what they read under
a name is of the same pair.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pymongo.errors import DuplicateKeyError

from common.clock import utcnow
from common.db import ensure_indexes, get_db, translate_errors
from common.errors import BadDatabase
from common.naming import identity, suffixed_name

#: Hash lengths tried, in order, after the preferred name.
SUFFIX_LENGTHS = (8, 16, 40)


def belongs(document: Mapping[str, Any] | None, repository: str, ref: str | None) -> bool:
    """Whether a build record or template is of ``repository`` at ``ref``."""
    return (document is not None and document.get("repository") == repository
            and (document.get("ref") or None) == (ref or None))


def candidates(preferred: str, key: str) -> Iterator[str]:
    yield preferred
    for length in SUFFIX_LENGTHS:
        yield suffixed_name(preferred, key, length)


def claim_name(preferred: str, repository: str, ref: str | None, provider: str) -> str:
    """The name of ``repository`` at ``ref``: the one it has, else a free one, now its own."""
    ensure_indexes()
    key = identity(repository, ref)
    with translate_errors():
        names = get_db().names
        existing = names.find_one({"key": key})
        if existing is not None:
            return str(existing["_id"])
        for name in candidates(preferred, key):
            if _used_by_an_older_record(name, repository, ref):
                continue
            try:
                names.insert_one({"_id": name, "key": key, "repository": repository,
                                  "ref": ref, "provider": provider, "created": utcnow()})
                return name
            except DuplicateKeyError:
                existing = names.find_one({"key": key})
                if existing is not None:  # a racing request named this same pair
                    return str(existing["_id"])
    raise BadDatabase(f"No free build name for {repository}: every candidate is taken.",
                      suggestions=["Tell the operators; this should never happen."])


def _used_by_an_older_record(name: str, repository: str, ref: str | None) -> bool:
    db = get_db()
    for collection in (db.builds, db.templates):
        document = collection.find_one({"name": name}, {"repository": 1, "ref": 1})
        if document is not None and not belongs(document, repository, ref):
            return True
    return False


def owner_of(name: str) -> dict[str, Any] | None:
    """The ``names`` document of ``name``: its repository, ref and provider."""
    with translate_errors():
        return get_db().names.find_one({"_id": name})
