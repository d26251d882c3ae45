"""Templates: what a launcher needs to deploy a built image."""

from marshmallow import Schema, fields


class ServiceSchema(Schema):
    name = fields.String(required=True)
    version = fields.String(allow_none=True)
    params = fields.Dict(allow_none=True)


class TemplateSchema(Schema):
    """A template as the original registry served it, plus ``limits`` and ``hardware``."""

    name = fields.String(required=True)
    image_name = fields.String(data_key="image-name", required=True)
    image_source = fields.String(data_key="image-source",
                                 required=True)
    port = fields.Integer(required=True)
    command = fields.String(allow_none=True)
    services = fields.List(fields.Nested(ServiceSchema))
    limits = fields.Dict(keys=fields.String(), values=fields.Raw())
    hardware = fields.Dict(keys=fields.String(), values=fields.Raw())
    repository = fields.String()
    commit = fields.String()
    config = fields.String(allow_none=True, metadata={"description": "config file built from"})
    time_created = fields.DateTime(data_key="time-created",
                                   required=True)
    time_modified = fields.DateTime(data_key="time-modified",
                                    required=True)
