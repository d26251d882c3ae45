"""Verifications that stand for later images (``workers/verification_reuse.py``):
one record per key, written after a verification succeeded."""

from __future__ import annotations

from typing import Any

from common.clock import utcnow
from common.db import get_db, translate_errors


def find_verification(key: str) -> dict[str, Any] | None:
    """The verification recorded under ``key``: ``build`` (its name), ``image``, ``at``."""
    with translate_errors():
        return get_db().verifications.find_one({"_id": key})


def remember_verification(key: str, build: str, image: str) -> None:
    """Record that ``build`` verified ``image`` under ``key`` (the first one stays)."""
    with translate_errors():
        get_db().verifications.update_one(
            {"_id": key}, {"$setOnInsert": {"build": build, "image": image, "at": utcnow()}},
            upsert=True)
