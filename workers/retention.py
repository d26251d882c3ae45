"""Retention (Celery beat): old images leave the registry, old logs leave MongoDB.

* Images: per build name, the registry keeps the images of its newest
  ``BINDER_KEEP_IMAGES`` completed builds (by end time), plus the image its
  template points to and any image a running build of the name will push.
  Older images are deleted from the registry by manifest digest (the
  registry needs ``storage.delete.enabled``); their records get
  ``image_pruned`` and a later start of that content builds it again (the
  cache checks the registry). Deleting a manifest frees no disk by itself:
  the registry's garbage collection does (README, Retention).
* Logs: the stored log of a build that ended more than
  ``BINDER_LOG_RETENTION_DAYS`` days ago is deleted; its record gets
  ``log_pruned``. Build records themselves are kept (history, metrics).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from typing import Any

import requests
from celery import Task, shared_task

from common import db
from common.clock import utcnow
from common.config import Config, registry_url
from common.db import get_db, translate_errors
from common.errors import NoDatabase
from common.models import FINAL_STATUSES, Status
from workers.celery_app import task_config
from workers.registry import MANIFEST_TYPES, auth_config, manifest_digest, split_image

log = logging.getLogger(__name__)

#: Log documents deleted per query.
BATCH = 500


def _records(config: Config, query: dict[str, Any], fields: dict[str, int]) -> list[Any]:
    """Matching records, current and archived."""
    with translate_errors():
        return [*db.attempts(config).find(query, fields), *db.builds(config).find(query, fields)]


def images_to_prune(config: Config) -> list[str]:
    """Images past each name's newest ``keep_images`` that nothing still needs."""
    if config.keep_images <= 0:
        return []
    fields = {"name": 1, "image_name": 1, "end_time": 1, "status": 1, "image_pruned": 1}
    records = _records(config, {"image_name": {"$ne": None}}, fields)
    with translate_errors():
        templates = {t["name"]: t.get("image_name") for t in db.templates(config).find(
            {}, {"name": 1, "image_name": 1})}
    newest: dict[str, dict[str, dt.datetime]] = defaultdict(dict)  # name -> image -> end
    needed: set[str] = {image for image in templates.values() if image}
    for record in records:
        image, name = record["image_name"], record["name"]
        if record.get("status") == Status.RUNNING.value:
            needed.add(image)
        elif record.get("status") == Status.COMPLETED.value and record.get("end_time") \
                and not record.get("image_pruned"):
            ended = record["end_time"]
            newest[name][image] = max(ended, newest[name].get(image, ended))
    prune = []
    for images in newest.values():
        by_age = sorted(images, key=images.__getitem__, reverse=True)
        needed.update(by_age[:config.keep_images])
        prune.extend(by_age[config.keep_images:])
    return [image for image in prune if image not in needed
            and split_image(image)[0] == config.registry]


def delete_image(config: Config, image: str, keep_digests: set[str]) -> bool:
    """Delete ``image``'s manifest from the registry; True when it is gone."""
    digest = manifest_digest(config, image, timeout=10)
    if digest is None:
        return True  # already gone
    if digest in keep_digests:
        return False  # a kept tag shares it: deleting would take that one too
    registry, repository, _ = split_image(image)
    auth = auth_config(config)
    response = requests.delete(
        f"{registry_url(registry, config.registry_insecure)}/v2/{repository}/manifests/{digest}",
        headers={"Accept": MANIFEST_TYPES}, timeout=30,
        auth=(auth["username"], auth["password"]) if auth else None)
    if response.status_code in (202, 404):
        return True
    log.warning("registry refused to delete %s: HTTP %s %s", image, response.status_code,
                response.text[:200])
    return False


def prune_images(config: Config) -> list[str]:
    """Delete old images from the registry; returns those deleted."""
    prune = images_to_prune(config)
    if not prune:
        return []
    kept = {record["image_name"] for record in _records(
        config, {"image_name": {"$ne": None}, "image_pruned": {"$exists": False}},
        {"image_name": 1})} - set(prune)
    repositories = {split_image(image)[1] for image in prune}
    keep_digests = {digest for image in kept if split_image(image)[1] in repositories
                    and (digest := manifest_digest(config, image, timeout=10))}
    deleted = []
    for image in prune:
        try:
            gone = delete_image(config, image, keep_digests)
        except requests.RequestException as exc:
            log.warning("registry unreachable while deleting %s: %s", image, exc)
            break
        if gone:
            deleted.append(image)
            with translate_errors():
                for collection in (db.builds(config), db.attempts(config)):
                    collection.update_many({"image_name": image},
                                           {"$set": {"image_pruned": utcnow()}})
    return deleted


def prune_logs(config: Config) -> int:
    """Delete the stored logs of builds that ended before the cutoff; returns how many
    builds lost their log."""
    if config.log_retention_days <= 0:
        return 0
    cutoff = utcnow() - dt.timedelta(days=config.log_retention_days)
    # One query per status, on the status and end time alone: the (status, end_time)
    # index answers that. The embedded store scans every record ever made for an $in
    # or an $exists beside it (11-17 s at 20,000 builds, holding the store meanwhile),
    # so whether the log is still there is decided here.
    build_ids = [record["build_id"] for status in FINAL_STATUSES
                 for record in _records(config, {"status": status.value,
                                                 "end_time": {"$lt": cutoff}},
                                        {"build_id": 1, "log_pruned": 1})
                 if "log_pruned" not in record]
    with translate_errors():
        for start in range(0, len(build_ids), BATCH):
            batch = build_ids[start:start + BATCH]
            get_db(config).logs.delete_many({"build_id": {"$in": batch}})
            for collection in (db.builds(config), db.attempts(config)):
                collection.update_many({"build_id": {"$in": batch}},
                                       {"$set": {"log_pruned": utcnow()}})
    return len(set(build_ids))


@shared_task(bind=True, name="binder.retention", ignore_result=True)
def retention(self: Task) -> dict[str, int]:
    """One retention pass (beat runs it every ``BINDER_RETENTION_INTERVAL``)."""
    config = task_config(self)
    try:
        images = prune_images(config)
        logs = prune_logs(config)
    except NoDatabase:
        log.warning("retention: database unreachable; will try again")
        return {"images": 0, "logs": 0}
    if images or logs:
        log.info("retention: deleted %s images from the registry, the logs of %s builds",
                 len(images), logs)
    return {"images": len(images), "logs": logs}
