"""Templates in MongoDB: one per build name, upserted by the template phase."""

from __future__ import annotations

from pymongo import ASCENDING

from common import db
from common.clock import utcnow
from common.db import translate_errors
from common.errors import DoesNotExist
from common.models import TemplateRecord


def save_template(template: TemplateRecord) -> TemplateRecord:
    """Upsert ``template`` by name, keeping its first ``time-created``."""
    now = utcnow()
    fields = {key: value for key, value in template.items() if key != "time_created"}
    with translate_errors():
        db.templates().update_one(
            {"name": template["name"]},
            {"$set": {**fields, "time_modified": now}, "$setOnInsert": {"time_created": now}},
            upsert=True)
    return get_template(template["name"])


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
    """Templates by name, at most ``limit``."""
    with translate_errors():
        return list(db.templates().find().sort("name", ASCENDING).limit(limit))
