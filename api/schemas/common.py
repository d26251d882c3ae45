"""Error bodies and the health list, as the Binder protocol shapes them."""

from marshmallow import Schema, fields


class ErrorSchema(Schema):
    # The names it may take are listed in the document by ``api.docs.Api.list_error_types``.
    type = fields.String(required=True,
                         metadata={"description": "the protocol's name for the error"})
    error = fields.String(required=True, metadata={"description": "what went wrong"})
    suggestions = fields.List(fields.String(), required=True)
    name = fields.String(metadata={"description": "alreadyBuilding: the build running"})


class HealthSchema(Schema):
    name = fields.String(required=True)
    timestamp = fields.DateTime(required=True)
    status = fields.String(required=True, metadata={"description": "ok or failing"})
    error = fields.String(allow_none=True, metadata={
        "description": "why it fails; only with a key (it names internal addresses)"})
