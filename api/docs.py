"""``GET /openapi.json``, generated from the schemas, and a page rendering it."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from api import schemas

bp = Blueprint("docs", __name__)

_ERROR = {"description": "error", "content": {"application/json": {"schema": "Error"}}}


def _json(schema: str | dict[str, Any], description: str = "ok") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _name_param(name: str = "name") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def build_spec() -> APISpec:
    """The OpenAPI document of every route."""
    spec = APISpec("binder-build", "0.1.0", "3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema("Error", schema=schemas.ErrorSchema)
    spec.components.schema("Build", schema=schemas.BuildSchema)
    spec.components.schema("BuildRequest", schema=schemas.BuildRequestSchema)
    spec.components.schema("Template", schema=schemas.TemplateSchema)
    spec.components.schema("Health", schema=schemas.HealthSchema)
    spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header",
                                               "name": "Authorization"})
    errors = {code: _ERROR for code in ("403", "404", "409", "422", "503")}
    start = {"security": [{"apiKey": []}],
             "requestBody": {"required": True,
                             "content": {"application/json": {"schema": "BuildRequest"}}},
             "responses": {"200": _json("Build"), **errors}}
    spec.path("/builds/repo", operations={"post": start})
    spec.path("/builds/", operations={
        "post": start,
        "get": {"security": [{"apiKey": []}],
                "parameters": [{"in": "query", "schema": schemas.BuildListQuerySchema}],
                "responses": {"200": _json({"type": "array", "items": "Build"}), **errors}}})
    spec.path("/builds/{name}", parameters=[_name_param()], operations={
        "get": {"responses": {"200": _json("Build"), **errors}},
        "delete": {"security": [{"apiKey": []}], "responses": {"200": _json("Build"), **errors}},
    })
    spec.path("/builds/{name}/history", parameters=[_name_param()], operations={
        "get": {"responses": {"200": _json({"type": "array", "items": "Build"}), **errors}}})
    spec.path("/builds/{name}/logs", parameters=[_name_param()], operations={
        "get": {"parameters": [{"name": "follow", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "log text, or SSE when following",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              **errors}}})
    spec.path("/templates/", operations={"get": {
        "security": [{"apiKey": []}],
        "responses": {"200": _json({"type": "array", "items": "Template"}), **errors}}})
    spec.path("/templates/{name}", parameters=[_name_param()], operations={"get": {
        "security": [{"apiKey": []}], "responses": {"200": _json("Template"), **errors}}})
    spec.path("/health/", operations={"get": {"responses": {
        "200": _json({"type": "array", "items": "Health"}),
        "503": _json({"type": "array", "items": "Health"}, "a component is failing")}}})
    return spec


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(build_spec().to_dict())


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>binder-build API</title>
<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}
code{background:#eee;padding:0 .2em}li{margin:.3em 0}</style></head>
<body><h1>binder-build API</h1><p>OpenAPI document: <a href="/openapi.json">/openapi.json</a></p>
<ul id="paths"></ul>
<script>
fetch('/openapi.json').then(r => r.json()).then(spec => {
  const ul = document.getElementById('paths');
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const method of Object.keys(ops).filter(m => m !== 'parameters')) {
      const li = document.createElement('li');
      li.innerHTML = '<code>' + method.toUpperCase() + ' ' + path + '</code>';
      ul.appendChild(li);
    }
  }
});
</script></body></html>"""


@bp.get("/docs")
def docs_page() -> ResponseReturnValue:
    return Response(_PAGE, mimetype="text/html")
