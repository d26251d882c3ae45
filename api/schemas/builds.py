"""Build requests and build records on the wire."""

from marshmallow import RAISE, Schema, fields, validate

from api.schemas.query_fields import QueryInteger
from common.models import FailureCause, Phase, Status

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_OFFSET = 10_000_000
MAX_LINE = 2**53


class BuildRequestSchema(Schema):
    """Body of ``POST /builds/repo`` and ``POST /builds/``."""

    class Meta:
        unknown = RAISE

    repository = fields.String(required=True, validate=validate.Length(min=1, max=2048),
                               metadata={"example": "https://github.com/OWNER/REPO"})
    ref = fields.String(load_default=None, validate=validate.Length(min=1, max=200), metadata={
        "description": "a branch, tag or commit of the repository, for a URL that names "
                       "none: the same as the provider's own spelling (GitHub's /tree/REF, "
                       "GitLab's /-/tree/REF, REPO@REF for any other Git URL)"})
    force = fields.Boolean(load_default=False)


class PhaseTimesSchema(Schema):
    start = fields.DateTime(allow_none=True)
    end = fields.DateTime(allow_none=True)
    worker = fields.String(allow_none=True)


class BuildSchema(Schema):
    """A build record as ``GET /builds/<name>`` shows it.

    Required are the fields the protocol's clients read (``name``,
    ``start-time``, ``status``, ``phase``, ``repository``); the rest is ours.
    """

    name = fields.String(required=True)
    display_name = fields.String(data_key="display-name", required=True,
                                 metadata={"description": "owner/repo[/tree/ref], "
                                                          "doi:..., zenodo/records/N, ..."})
    repository = fields.String(required=True, metadata={
        "description": "the repository, normalised, without the ref (see ref)"})
    repo = fields.String(attribute="repository", dump_only=True,
                         metadata={"description": "same as repository (protocol alias)"})
    provider = fields.String(allow_none=True, metadata={
        "description": "content provider: github, gitlab, gist, git, zenodo, figshare, "
                       "dataverse (doi until a DOI is resolved)"})
    spec = fields.String(allow_none=True, metadata={
        "description": "the repository as requested, in its canonical form"})
    content_id = fields.String(data_key="content-id", allow_none=True, metadata={
        "description": "the resolved content: a commit SHA, or a digest of an archive "
                       "record's version; the image tag"})
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in Status]))
    phase = fields.String(required=True, validate=validate.OneOf([p.value for p in Phase]))
    start_time = fields.DateTime(data_key="start-time", required=True)
    end_time = fields.DateTime(data_key="end-time", allow_none=True)
    error = fields.String(allow_none=True)
    cause = fields.String(validate=validate.OneOf([c.value for c in FailureCause]), metadata={
        "description": "a failed build's cause, for operators: repository (its content, "
                       "config or source), resources (out of memory or disk), timeout, "
                       "verification (the image did not serve), farm (not the "
                       "repository's fault: lost builds, worker deaths, the registry); "
                       "absent on other builds and on failures recorded before causes "
                       "were kept"})
    suggestions = fields.List(fields.String(), dump_default=[], metadata={
        "description": "what to do about error (a failed build's suggestions); empty "
                       "when there is no error or nothing to suggest"})
    build_id = fields.String(data_key="build-id")
    attempt = fields.Integer(metadata={"description": "how many times the build was started"})
    attempts = fields.Integer(attribute="attempt", dump_only=True,
                              metadata={"description": "same as attempt"})
    commit = fields.String(allow_none=True, metadata={"description": "for Git content"})
    ref = fields.String(allow_none=True)
    image_name = fields.String(data_key="image-name", allow_none=True, metadata={
        "description": "the image the build pushed to the registry (a cached build's: the "
                       "one it reused); while it runs, from its fetch on, the one it will "
                       "push; null for a build that ended before it pushed (see "
                       "planned-image) or whose image failed verification (see "
                       "rejected-image)"})
    planned_image = fields.String(data_key="planned-image", metadata={
        "description": "a build that failed or was cancelled before it pushed: the image "
                       "it would have pushed (its image-name is then null); not this "
                       "build's image: the registry may hold none under that name, or "
                       "another build's"})
    image_source = fields.String(data_key="image-source",
                                 allow_none=True)
    rejected_image = fields.String(data_key="rejected-image", metadata={
        "description": "a failed build's: the image it pushed and verification rejected "
                       "(its image-name is then null); removed from the registry unless a "
                       "completed build names it, whose image its tag then names again"})
    config = fields.String(allow_none=True, metadata={"description": "config file built from"})
    worker = fields.String(allow_none=True)
    workers = fields.List(fields.String())
    cached = fields.Boolean()
    built_by = fields.String(data_key="built-by", metadata={
        "description": "a cache hit's: the build-id of the build that made its image "
                       "(the same through any number of hits)"})
    cancel_requested = fields.Boolean(data_key="cancel-requested")
    phases = fields.Dict(keys=fields.String(), values=fields.Nested(PhaseTimesSchema))
    image_pruned = fields.DateTime(data_key="image-pruned", metadata={
        "description": "when retention deleted the image from the registry (BINDER_KEEP_IMAGES); "
                       "absent while it is kept"})
    log_pruned = fields.DateTime(data_key="log-pruned", metadata={
        "description": "when retention deleted the stored log (BINDER_LOG_RETENTION_DAYS); "
                       "absent while it is kept"})


class BuildListQuerySchema(Schema):
    """Query of ``GET /builds/``: filters and pagination, newest first."""

    class Meta:
        unknown = RAISE

    status = fields.String(validate=validate.OneOf([s.value for s in Status]),
                           metadata={"description": "only builds with this status"})
    repository = fields.String(validate=validate.Length(min=1, max=2048),
                               metadata={"description": "only builds of this repository URL"})
    limit = QueryInteger(load_default=DEFAULT_PAGE,
                           validate=validate.Range(min=1, max=MAX_PAGE),
                           metadata={"description": "page size"})
    offset = QueryInteger(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET),
                            metadata={"description": "builds to skip"})


class LogQuerySchema(Schema):
    """Query of ``GET /builds/<name>/logs``."""

    class Meta:
        unknown = RAISE

    follow = fields.Boolean(load_default=False,
                            metadata={"description": "stream Server-Sent Events until the "
                                                     "build ends"})
    build_id = fields.String(data_key="build-id", validate=validate.Length(min=1, max=64),
                             metadata={"description": "an earlier attempt (see history)"})
    after = QueryInteger(validate=validate.Range(min=0, max=MAX_LINE),
                           metadata={"description": "only lines after this line number "
                                                    "(Last-Event-ID wins when following)"})


class LogHeadersSchema(Schema):
    """Headers of ``GET /builds/<name>/logs``; checked only when following."""

    last_event_id = fields.String(
        data_key="Last-Event-ID",
        metadata={"description": f"resume a follow after this line (at most {MAX_LINE}, "
                                 "as after)",
                  "pattern": "^[0-9]{1,16}$"})


class LogEventSchema(Schema):
    """One Server-Sent Event of a followed log: a line (``message``), or the end."""

    event = fields.String(required=True, validate=validate.OneOf(["message", "end", "error"]),
                          metadata={"description": "message: a log line; end: the build "
                                                   "ended (data: its status); error: the "
                                                   "log could not be read"})
    data = fields.String(required=True,
                         metadata={"description": "the line as a terminal shows it: of a "
                                                  "line that redraws itself with carriage "
                                                  "returns, its last redraw (the text form "
                                                  "keeps every byte)"})
    id = fields.String(validate=validate.Regexp(r"^[0-9]+$"),
                       metadata={"description": "the line number; resume after it with "
                                                "Last-Event-ID"})
    retry = fields.Integer(metadata={"description": "reconnect delay in milliseconds"})
