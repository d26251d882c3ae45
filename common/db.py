"""The one door to MongoDB: a lazily created client per process.

pymongo is not fork-safe, so the client is created on first use in the
process that uses it (gunicorn and Celery workers fork after import).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar, cast

import pymongo
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import CollectionInvalid, ConnectionFailure, PyMongoError

from common.clock import utcnow
from common.config import Config, get_config
from common.errors import BadDatabase, NoDatabase
from common.models import BuildRecord, TemplateRecord

log = logging.getLogger(__name__)

DEFAULT_EMBEDDED_URL = "mongodb://127.0.0.1:27017"

#: Every index of every collection, declared once.
INDEXES: dict[str, list[IndexModel]] = {
    "builds": [
        IndexModel([("name", ASCENDING)], unique=True),
        IndexModel([("build_id", ASCENDING)]),
        IndexModel([("image_name", ASCENDING)]),  # cache hits (api/cache_hits.py)
        IndexModel([("start_time", DESCENDING), ("_id", DESCENDING)]),
        IndexModel([("status", ASCENDING), ("start_time", DESCENDING), ("_id", DESCENDING)]),
        # recent builds (metrics), long-ended ones (log retention)
        IndexModel([("status", ASCENDING), ("end_time", DESCENDING)]),
        IndexModel([("repository", ASCENDING), ("start_time", DESCENDING),
                    ("_id", DESCENDING)]),
        # images awaiting a verdict, which the reaper withdraws once their build ended
        # without one (workers/unverified.py)
        IndexModel([("unverified_image", ASCENDING)]),
    ],
    "attempts": [
        IndexModel([("name", ASCENDING), ("start_time", DESCENDING), ("_id", DESCENDING)]),
        IndexModel([("build_id", ASCENDING)], unique=True),
        IndexModel([("status", ASCENDING), ("end_time", DESCENDING)]),  # log retention
    ],
    "workers": [IndexModel([("worker", ASCENDING)], unique=True),
                IndexModel([("node", ASCENDING)])],
    "hosts": [IndexModel([("host", ASCENDING)], unique=True)],
    "templates": [IndexModel([("name", ASCENDING)], unique=True),
                  IndexModel([("time_modified", DESCENDING)])],  # a long listing
    # _id is the name; one name per repository and ref (see common/name_store.py)
    "names": [IndexModel([("key", ASCENDING)], unique=True)],
    "logs": [IndexModel([("build_id", ASCENDING), ("seq", ASCENDING)]),
             IndexModel([("build_id", ASCENDING), ("last", ASCENDING)])],
}
#: Collections the farm writes that need no index of their own: made with the others,
#: never by a first write (see ``prepare_store``).
PLAIN_COLLECTIONS = (
    "metrics",  # the template tally and the totals' snapshot (api/build_totals.py)
    "reaper",  # the reaper's watch of the store (workers/store_watch.py)
)

_lock = threading.Lock()
_client: pymongo.MongoClient[dict[str, Any]] | None = None
_client_key: tuple[int, str] | None = None
#: The client's Database and Collection objects, made once per database and name:
#: pymongo makes a new one (options and all) on every ``client[db]`` and
#: ``database.name``, which an API read otherwise pays for on every request.
_handles: dict[tuple[int, str, str], Any] = {}


def mongo_url(config: Config) -> str:
    return config.mongo_url or DEFAULT_EMBEDDED_URL


def get_client(config: Config | None = None) -> pymongo.MongoClient[dict[str, Any]]:
    """The process's MongoClient (recreated after a fork or URL change)."""
    global _client, _client_key
    config = config or get_config()
    key = (os.getpid(), mongo_url(config))
    with _lock:
        if _client is None or _client_key != key:
            # timeoutMS bounds a whole operation (selection, connection, the
            # answer, a retry): a server that accepts connections but never
            # answers (frozen, hung) costs at most that, not a socket timeout
            # per pooled connection.
            bound = config.mongo_timeout_ms
            _client = pymongo.MongoClient(
                mongo_url(config),
                timeoutMS=bound,
                serverSelectionTimeoutMS=bound,
                connectTimeoutMS=bound,
                tz_aware=True,
                connect=False,
            )
            _client_key = key
            _handles.clear()
        return _client


def _handle(config: Config | None, collection: str = "") -> Any:
    """The farm's database (``collection`` empty) or one of its collections."""
    config = config or get_config()
    client = get_client(config)
    key = (id(client), config.mongo_db, collection)
    handle = _handles.get(key)
    if handle is None:
        database = client[config.mongo_db]
        handle = _handles[key] = database[collection] if collection else database
    return handle


def get_db(config: Config | None = None) -> Database[dict[str, Any]]:
    """The farm's database."""
    return cast(Database[dict[str, Any]], _handle(config))


def builds(config: Config | None = None) -> Collection[BuildRecord]:
    """Current attempts, one per build name."""
    return cast(Collection[BuildRecord], _handle(config, "builds"))


def attempts(config: Config | None = None) -> Collection[BuildRecord]:
    """Archived attempts (history)."""
    return cast(Collection[BuildRecord], _handle(config, "attempts"))


def templates(config: Config | None = None) -> Collection[TemplateRecord]:
    return cast(Collection[TemplateRecord], _handle(config, "templates"))


Document = TypeVar("Document", bound=Mapping[str, Any])


def update_and_read(collection: Collection[Document], selector: Mapping[str, Any],
                    update: Mapping[str, Any], key: Mapping[str, Any]) -> Document | None:
    """Apply ``update`` to the document ``selector`` matches and return it, found
    again by ``key``; ``None`` when ``selector`` matched nothing.

    What ``find_one_and_update`` does, in two steps: the embedded store answers
    a ``findAndModify`` by reading the whole collection (a second or more at
    100,000 builds, whatever the filter), an update and a find through an
    index. The update is the atomic step, its filter the condition the caller
    asks for; the document read is as that update left it, or as a write after
    it did (a caller that must know which checks it).
    """
    if not collection.update_one(selector, update).matched_count:
        return None
    return collection.find_one(key)


#: How far back a listing looks, narrowest first, before it asks for every record. The
#: embedded store reads every record a query matches before it sorts, skips and limits
#: (7 s for one page of 100,000 builds, past the store's bound); a window costs what
#: its records do.
LIST_WINDOWS = [dt.timedelta(hours=8 ** power) for power in range(6)]  # 1 hour to 3.7 years


def newest(collection: Collection[Document], selector: Mapping[str, Any],
           order: list[tuple[str, int]], wanted: int) -> list[Document]:
    """The first ``wanted`` documents ``selector`` matches in ``order``, whose first key
    is a time, newest first: read from the narrowest window of that time that holds
    as many (every document outside it is older), else from all."""
    field, now = order[0][0], utcnow()
    for window in LIST_WINDOWS:
        found = list(collection.find({**selector, field: {"$gte": now - window}})
                     .sort(order).limit(wanted))
        if len(found) >= wanted:
            return found
    return list(collection.find(selector).sort(order).limit(wanted))


_indexed: set[tuple[int, str, str]] = set()


def ensure_indexes(config: Config | None = None) -> None:
    """Create every index in ``INDEXES`` once per process and database.

    Called before the first write that relies on them (the unique build
    name serialises racing starts), so a database that was down at start-up
    is indexed as soon as it is back.
    """
    config = config or get_config()
    key = (os.getpid(), mongo_url(config), config.mongo_db)
    if key in _indexed:
        return
    with translate_errors():
        create_indexes(get_db(config))
    _indexed.add(key)


def create_indexes(database: Database[dict[str, Any]]) -> None:
    """Create the collections of ``database`` with every index in ``INDEXES``."""
    for collection, indexes in INDEXES.items():
        database[collection].create_indexes(indexes)


def create_collections(database: Database[dict[str, Any]]) -> None:
    """Create every collection of ``database`` with its indexes (``create_indexes``) and
    the ``PLAIN_COLLECTIONS``: what whoever starts the farm does first, once
    (``prepare_store``). Not for each process: several creating collections at once is
    what can hang the embedded store."""
    create_indexes(database)
    missing = set(PLAIN_COLLECTIONS) - set(database.list_collection_names())
    for collection in sorted(missing):
        with contextlib.suppress(CollectionInvalid):  # made meanwhile by another process
            database.create_collection(collection)


#: How long preparing a fresh store may take: its first collections are made on disk.
PREPARE_TIMEOUT_S = 60.0


def prepare_store(config: Config) -> None:
    """Create the farm's collections and indexes before its processes start.

    A fresh embedded store can hang for good when several processes create
    collections at once (each ``create_collection`` waits inside the storage
    engine while holding the store's lock), so whoever starts the farm makes
    them first, one at a time. Raises ``NoDatabase`` or ``BadDatabase``.
    """
    with translate_errors(), pymongo.timeout(PREPARE_TIMEOUT_S):
        create_collections(get_db(config))


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """pymongo failures inside become ``NoDatabase`` (unreachable, or no answer
    within ``BINDER_MONGO_TIMEOUT_MS``) or ``BadDatabase`` (it answered with an error).

    A ``BadDatabase`` says only that: what MongoDB answered names the farm's
    collections, indexes and users, so it goes to this process's log, never to a
    client in an API answer.
    """
    try:
        yield
    except PyMongoError as exc:
        if isinstance(exc, ConnectionFailure) or exc.timeout:
            # A store that is down, hung or only slow looks the same from here: no
            # answer within the bound. Say which bound, so a slow one is not read as down.
            what = ("did not answer within BINDER_MONGO_TIMEOUT_MS" if exc.timeout
                    else "cannot be reached")
            raise NoDatabase(
                f"The build database (MongoDB) {what}.",
                suggestions=["Retry in a few seconds; operators: check MONGO_URL, and "
                             "whether MongoDB is overloaded."],
            ) from exc
        details = getattr(exc, "details", None) or {}
        reason = details.get("errmsg") if isinstance(details, dict) else None
        log.error("the build database answered with an error: %s", reason or exc)
        raise BadDatabase("The build database (MongoDB) answered with an error.",
                          suggestions=["Retry; operators: the log of the process that "
                                       "answered says what MongoDB said."]) from exc


def ping(config: Config | None = None) -> None:
    """Raise ``NoDatabase`` unless MongoDB answers."""
    with translate_errors():
        get_client(config).admin.command("ping")
