"""BinderHub's answers on the wire: /versions, /health, /api/repoproviders."""

from marshmallow import Schema, fields


class VersionsSchema(Schema):
    """``GET /versions``: the builder's version information."""

    builder_info = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    binderhub = fields.String(required=True, metadata={"description": "this farm's version"})


class ServiceCheckSchema(Schema):
    service = fields.String(required=True)
    ok = fields.Boolean(required=True)


class BinderHubHealthSchema(Schema):
    """``GET /health``: public, service names only (no addresses, no reasons)."""

    ok = fields.Boolean(required=True)
    checks = fields.List(fields.Nested(ServiceCheckSchema), required=True)


class RepoProviderSchema(Schema):
    """One prefix's ``display_config``, as BinderHub's launch forms read it."""

    display_name = fields.String(attribute="displayName", data_key="displayName",
                                 required=True)
    id = fields.String(required=True)
    spec = fields.Dict(required=True, metadata={"description": "validateRegex"})
    repo = fields.Dict(required=True, metadata={"description": "label, placeholder, urlEncode"})
    ref = fields.Dict(required=True, metadata={"description": "enabled, default"})
    detect = fields.Dict(metadata={"description": "regex recognising a pasted URL"})
