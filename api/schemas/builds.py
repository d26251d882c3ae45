"""Build requests and build records on the wire."""

from marshmallow import RAISE, Schema, fields, validate

from common.models import Phase, Status


class BuildRequestSchema(Schema):
    """Body of ``POST /builds/repo`` and ``POST /builds/``."""

    class Meta:
        unknown = RAISE

    repository = fields.String(required=True, validate=validate.Length(min=1, max=2048),
                               metadata={"example": "https://github.com/OWNER/REPO"})
    force = fields.Boolean(load_default=False)


class PhaseTimesSchema(Schema):
    start = fields.DateTime(allow_none=True)
    end = fields.DateTime(allow_none=True)
    worker = fields.String(allow_none=True)


class BuildSchema(Schema):
    """A build record as ``GET /builds/<name>`` shows it."""

    name = fields.String(required=True)
    display_name = fields.String(data_key="display-name", attribute="display-name")
    repository = fields.String()
    repo = fields.Function(lambda record: record.get("repository"),
                           metadata={"description": "same as repository (protocol alias)"})
    status = fields.String(validate=validate.OneOf([s.value for s in Status]))
    phase = fields.String(validate=validate.OneOf([p.value for p in Phase]))
    start_time = fields.DateTime(data_key="start-time", attribute="start-time")
    end_time = fields.DateTime(data_key="end-time", attribute="end-time", allow_none=True)
    error = fields.String(allow_none=True)
    build_id = fields.String(data_key="build-id")
    attempt = fields.Integer(metadata={"description": "how many times the build was started"})
    attempts = fields.Function(lambda record: record.get("attempt"),
                               metadata={"description": "same as attempt"})
    commit = fields.String(allow_none=True)
    ref = fields.String(allow_none=True)
    image_name = fields.String(data_key="image-name", attribute="image-name", allow_none=True)
    image_source = fields.String(data_key="image-source", attribute="image-source",
                                 allow_none=True)
    config = fields.String(allow_none=True, metadata={"description": "config file built from"})
    worker = fields.String(allow_none=True)
    workers = fields.List(fields.String())
    cached = fields.Boolean()
    cancel_requested = fields.Boolean(data_key="cancel-requested")
    phases = fields.Dict(keys=fields.String(), values=fields.Nested(PhaseTimesSchema))


class BuildStartedSchema(BuildSchema):
    """The answer to a start: the protocol asks for ``name`` at least."""


class BuildListQuerySchema(Schema):
    """Query of ``GET /builds/``: filters and pagination."""

    class Meta:
        unknown = RAISE

    status = fields.String(validate=validate.OneOf([s.value for s in Status]))
    repository = fields.String(validate=validate.Length(max=2048))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000_000))
