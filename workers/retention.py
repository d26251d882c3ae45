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

Each kind of pass records how far it got (``retention`` collection), so a
pass reads what changed since the last one, not the farm's whole history.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import requests
from celery import Task, shared_task
from pymongo import DeleteMany, UpdateMany

from common import db
from common.clock import CLOCK_SLACK, utcnow
from common.config import Config
from common.db import get_db, translate_errors
from common.errors import NoDatabase
from common.models import FINAL_STATUSES, Status
from workers.celery_app import task_config
from workers.registry import delete_tag, manifest_digest, split_image

log = logging.getLogger(__name__)

#: Builds whose logs one request deletes (and whose records it marks).
BATCH = 500

#: Where each pass records how far it got: one document per kind (``images``, ``logs``).
MARKS = "retention"


def _mark(config: Config, kind: str) -> dict[str, Any] | None:
    with translate_errors():
        mark: dict[str, Any] | None = get_db(config)[MARKS].find_one({"_id": kind})
    return mark


def _set_mark(config: Config, kind: str, **fields: Any) -> None:
    with translate_errors():
        get_db(config)[MARKS].update_one({"_id": kind}, {"$set": fields}, upsert=True)


def _records(config: Config, query: dict[str, Any], fields: dict[str, int]) -> list[Any]:
    """Matching records, current and archived."""
    with translate_errors():
        return [*db.attempts(config).find(query, fields), *db.builds(config).find(query, fields)]


def _ended_since(config: Config, statuses: Iterable[Status], ended: dict[str, Any],
                 fields: dict[str, int]) -> list[Any]:
    """Records of ``statuses`` whose end time matches ``ended``: one query per status,
    on the status and end time alone, which the (status, end_time) index answers (the
    embedded store scans every record ever made for an ``$in`` or an ``$exists``)."""
    return [record for status in statuses
            for record in _records(config, {"status": status.value, "end_time": ended}, fields)]


IMAGE_FIELDS = {"name": 1, "image_name": 1, "end_time": 1, "status": 1, "image_pruned": 1}


def images_to_prune(records: Iterable[dict[str, Any]], templates: dict[str, str | None],
                    keep_images: int, registry: str) -> tuple[list[tuple[str, str]], set[str]]:
    """Of the images of ``records`` (every record of some names), those in ``registry``
    past each name's newest ``keep_images`` that nothing still needs, each with its
    name; and the images kept (those not yet pruned, in any registry)."""
    newest: dict[str, dict[str, dt.datetime]] = defaultdict(dict)  # name -> image -> end
    needed: set[str] = {image for image in templates.values() if image}
    present: set[str] = set()
    for record in records:
        image, name = record.get("image_name"), record["name"]
        if not image:
            continue
        if record.get("status") == Status.RUNNING.value:
            needed.add(image)
        if record.get("image_pruned"):
            continue
        present.add(image)
        if record.get("status") == Status.COMPLETED.value and record.get("end_time"):
            ended = record["end_time"]
            newest[name][image] = max(ended, newest[name].get(image, ended))
    prune: list[tuple[str, str]] = []
    for name, images in newest.items():
        by_age = sorted(images, key=images.__getitem__, reverse=True)
        needed.update(by_age[:keep_images])
        prune.extend((name, image) for image in by_age[keep_images:])
    prune = [(name, image) for name, image in prune
             if image not in needed and split_image(image)[0] == registry]
    return prune, present - {image for _, image in prune}


def _images_of(config: Config, names: Iterable[str] | None) \
        -> tuple[list[Any], dict[str, str | None]]:
    """The records with an image, and the templates, of ``names`` (every name: None)."""
    if names is None:
        with translate_errors():
            templates = {t["name"]: t.get("image_name") for t in db.templates(config).find(
                {}, {"name": 1, "image_name": 1})}
        return _records(config, {"image_name": {"$ne": None}}, IMAGE_FIELDS), templates
    records, templates = [], {}
    with translate_errors():
        for name in names:  # by name, on its index: the store scans for an $in
            records += _records(config, {"name": name}, IMAGE_FIELDS)
            template = db.templates(config).find_one({"name": name}, {"image_name": 1})
            templates[name] = (template or {}).get("image_name")
    return records, templates


def prune_images(config: Config) -> list[str]:
    """Delete old images from the registry; returns those deleted.

    A name's images can only fall out of its newest ``keep_images`` when one of
    its builds completes, so after a whole pass (the first, or the first after
    ``BINDER_KEEP_IMAGES`` changed) a pass looks only at the names with a build
    completed since the last one that finished, and its work follows the
    farm's recent builds, not its history. An image a deleted template no
    longer pins goes at its name's next completed build.
    """
    if config.keep_images <= 0:
        return []
    started = utcnow()
    mark = _mark(config, "images")
    names: set[str] | None = None
    if mark and mark.get("keep") == config.keep_images:
        names = {record["name"] for record in _ended_since(
            config, [Status.COMPLETED], {"$gte": mark["through"] - CLOCK_SLACK}, {"name": 1})}
    records, templates = _images_of(config, names)
    prune, kept = images_to_prune(records, templates, config.keep_images, config.registry)
    repositories = {split_image(image)[1] for _, image in prune}
    try:
        keep_digests = {digest for image in kept if split_image(image)[1] in repositories
                        and (digest := manifest_digest(config, image, timeout=10))}
    except requests.RequestException as exc:
        # Without every kept tag's digest, a deletion could take a manifest one shares.
        log.warning("registry did not say which images to keep (%s); images are pruned at "
                    "a later pass", exc)
        return []
    deleted = []
    for name, image in prune:
        try:
            gone = delete_tag(config, image, keep_digests)
        except requests.HTTPError as exc:
            log.warning("registry refused to delete %s: %s", image, exc)
            gone = False
        except requests.RequestException as exc:
            log.warning("registry unreachable while deleting %s: %s", image, exc)
            break
        if gone:
            deleted.append(image)
            with translate_errors():
                # By name too: archived attempts are indexed by name, not by image.
                for collection in (db.builds(config), db.attempts(config)):
                    collection.update_many({"name": name, "image_name": image},
                                           {"$set": {"image_pruned": utcnow()}})
    if len(deleted) == len(prune):  # else the next pass looks at these names again
        _set_mark(config, "images", through=started, keep=config.keep_images)
    return deleted


def prune_logs(config: Config) -> int:
    """Delete the stored logs of builds that ended before the cutoff; returns how many
    builds lost their log.

    A pass looks only at builds that ended since the cutoff of the last pass (the
    first pass, at every build that ended before its cutoff): the others lost their
    log then. Each build's log and records are reached through the build id's index.
    """
    if config.log_retention_days <= 0:
        return 0
    cutoff = utcnow() - dt.timedelta(days=config.log_retention_days)
    mark = _mark(config, "logs")
    ended: dict[str, Any] = {"$lt": cutoff}
    if mark:
        ended["$gte"] = mark["through"] - CLOCK_SLACK
    build_ids = {record["build_id"] for record in _ended_since(
        config, FINAL_STATUSES, ended, {"build_id": 1, "log_pruned": 1})
        if "log_pruned" not in record}
    ordered = sorted(build_ids)
    with translate_errors():
        for start in range(0, len(ordered), BATCH):
            batch = ordered[start:start + BATCH]
            get_db(config).logs.bulk_write([DeleteMany({"build_id": b}) for b in batch])
            pruned = {"$set": {"log_pruned": utcnow()}}
            for collection in (db.builds(config), db.attempts(config)):
                collection.bulk_write([UpdateMany({"build_id": b}, pruned) for b in batch])
    _set_mark(config, "logs", through=max(cutoff, mark["through"]) if mark else cutoff)
    return len(build_ids)


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
