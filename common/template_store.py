"""Templates in MongoDB: one per build name, upserted by the template phase.

Templates are never deleted, so their number only grows: it is kept in a
tally (``TALLY`` in the ``metrics`` collection) raised by each first save of
a name, instead of counted. The embedded store answers a count, and any read
of more than a few records, by reading the whole collection, during which it
answers nothing else (a second at 100,000 templates: a scrape or a listing
would stall every build's store writes past ``BINDER_MONGO_TIMEOUT_MS``).
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING

from common import db
from common.clock import utcnow
from common.db import translate_errors
from common.errors import DoesNotExist
from common.models import TemplateRecord

#: The ``metrics`` document holding how many templates there are.
TALLY = {"_id": "templates"}


def save_template(template: TemplateRecord) -> None:
    """Upsert ``template`` by name, keeping its first ``time-created``."""
    now = utcnow()
    fields = {key: value for key, value in template.items() if key != "time_created"}
    with translate_errors():
        saved = db.templates().update_one(
            {"name": template["name"]},
            {"$set": {**fields, "time_modified": now}, "$setOnInsert": {"time_created": now}},
            upsert=True)
        if saved.upserted_id is not None:
            # Not upserted: a store whose tally was never started is counted once instead.
            db.get_db().metrics.update_one(TALLY, {"$inc": {"count": 1}})


def count_templates() -> int:
    """How many templates there are: the tally, started on first use by one count
    (a template saved while that count runs may be missed by one)."""
    with translate_errors():
        metrics = db.get_db().metrics
        tally: dict[str, Any] | None = metrics.find_one(TALLY)
        if tally is None:
            counted = db.templates().count_documents({})
            metrics.update_one(TALLY, {"$setOnInsert": {"count": counted}}, upsert=True)
            tally = metrics.find_one(TALLY)
    return int((tally or {}).get("count", 0))


#: The protocol's message for ``doesNotExist``; ours adds which template.
DOES_NOT_EXIST = "The requested resource does not exist"


def get_template(name: str) -> TemplateRecord:
    """The template ``name``; raises ``DoesNotExist`` when there is none."""
    with translate_errors():
        template = db.templates().find_one({"name": name})
    if template is None:
        raise DoesNotExist(f"{DOES_NOT_EXIST}: no template named {name}.",
                           suggestions=["Is the name spelled correctly? List the templates "
                                        "with GET /templates/; a template appears when its "
                                        "build completes."])
    return template


def find_template(name: str) -> TemplateRecord | None:
    with translate_errors():
        return db.templates().find_one({"name": name})


def list_templates(limit: int = 1000) -> list[TemplateRecord]:
    """Templates by name: every one when there are at most ``limit``, else the
    ``limit`` saved most recently.

    The newest are read from the narrowest window of modification times that
    holds ``limit`` of them (``db.newest``), so a long history is not read
    whole for them.
    """
    with translate_errors():
        if count_templates() <= limit:
            return list(db.templates().find().sort("name", ASCENDING).limit(limit))
        newest = db.newest(db.templates(), {}, [("time_modified", DESCENDING)], limit)
    return sorted(newest, key=lambda template: template["name"])
