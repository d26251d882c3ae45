"""marshmallow schemas: the only definition of the API's wire format."""

from api.schemas.builds import (
    BuildListQuerySchema,
    BuildRequestSchema,
    BuildSchema,
    BuildStartedSchema,
    LogEventSchema,
    LogQuerySchema,
)
from api.schemas.common import ErrorSchema, HealthSchema
from api.schemas.templates import TemplateSchema

__all__ = [
    "BuildListQuerySchema", "BuildRequestSchema", "BuildSchema", "BuildStartedSchema",
    "ErrorSchema", "HealthSchema", "LogEventSchema", "LogQuerySchema", "TemplateSchema",
]
