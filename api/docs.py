"""``GET /openapi.json``, generated from the schemas, and a page rendering it."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from api import schemas

bp = Blueprint("docs", __name__)

KEY: list[dict[str, list[str]]] = [{"apiKey": []}]
_ERRORS = {
    "403": "unauthorized: the API key is missing or wrong",
    "404": "noBuildInfo or doesNotExist: no such build or template",
    "409": "alreadyBuilding: a build of that name is running",
    "422": "malformedRequest (body), badRepoSource (repository) or badQuery (query)",
    "503": "noDatabase or badDatabase: MongoDB is unavailable or failed",
}


def _json(schema: str | dict[str, Any], description: str = "ok") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _json("Error", _ERRORS[code]) for code in codes}


#: Answered by gunicorn before the app sees the request: a request line
#: (path and query) over its limit of 4094 bytes.
_URI_TOO_LONG = {"414": {"description": "the URL is longer than the server accepts",
                         "content": {"text/html": {"schema": {"type": "string"}}}}}


_LINK = {"description": 'on a full page, <URL of the next page>; rel="next"',
         "schema": {"type": "string"}}


def _list(item: str) -> dict[str, Any]:
    return {"type": "array", "items": item}


# Build and template names are what ``common.naming`` makes: safe for image names.
_NAME = {"name": "name", "in": "path", "required": True,
         "schema": {"type": "string", "minLength": 1, "maxLength": 128,
                    "pattern": r"^[a-z0-9][a-z0-9._-]*$"}}


def _start(summary: str) -> dict[str, Any]:
    return {"summary": summary, "security": KEY,
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": "BuildRequest"}}},
            "responses": {"200": _json("Build", "the build, started"),
                          **_errors("403", "409", "422", "503")}}


def build_spec() -> APISpec:
    """The OpenAPI document of every route."""
    spec = APISpec("binder-build", "0.1.0", "3.0.3", plugins=[MarshmallowPlugin()],
                   info={"description": "The Binder protocol (binder-protocol 1.2) plus logs, "
                                        "history and cancel. Errors are "
                                        "{type, error, suggestions}."})
    for name, schema in (("Error", schemas.ErrorSchema), ("Build", schemas.BuildSchema),
                         ("BuildRequest", schemas.BuildRequestSchema),
                         ("Template", schemas.TemplateSchema), ("Health", schemas.HealthSchema),
                         ("LogEvent", schemas.LogEventSchema)):
        spec.components.schema(name, schema=schema)
    spec.components.security_scheme("apiKey", {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "The farm's API key: raw, 'Bearer KEY' or 'token KEY'."})
    spec.path("/builds/repo", operations={"post": _start("Start a build")})
    spec.path("/builds/", operations={
        "post": _start("Start a build (the protocol's path)"),
        "get": {"summary": "Builds, newest first, one page", "security": KEY,
                "parameters": [{"in": "query", "schema": schemas.BuildListQuerySchema}],
                "responses": {"200": {**_json(_list("Build"), "one page of builds"),
                                      "headers": {"Link": _LINK}},
                              **_errors("403", "422", "503"), **_URI_TOO_LONG}}})
    spec.path("/builds/{name}", parameters=[_NAME], operations={
        "get": {"summary": "One build", "responses": {"200": _json("Build"),
                                                      **_errors("404", "503"), **_URI_TOO_LONG}},
        "delete": {"summary": "Cancel a build", "security": KEY,
                   "responses": {"200": _json("Build", "the build, cancelled or cancelling"),
                                 **_errors("403", "404", "503"), **_URI_TOO_LONG}},
    })
    spec.path("/builds/{name}/history", parameters=[_NAME], operations={
        "get": {"summary": "Every attempt of a build, newest first",
                "responses": {"200": _json(_list("Build")), **_errors("404", "503"),
                              **_URI_TOO_LONG}}})
    spec.path("/builds/{name}/logs", parameters=[_NAME], operations={
        "get": {"summary": "A build's log",
                "parameters": [{"in": "query", "schema": schemas.LogQuerySchema},
                               {"name": "Last-Event-ID", "in": "header", "required": False,
                                "description": "resume a follow after this line",
                                "schema": {"type": "string", "pattern": "^[0-9]{1,15}$"}}],
                "responses": {"200": {"description": "the log as text; Server-Sent Events "
                                                     "(one per line, id = line number) "
                                                     "when following",
                                      "content": {"text/plain": {"schema": {"type": "string"}},
                                                  "text/event-stream": {
                                                      "schema": "LogEvent"}}},
                              **_errors("404", "422", "503"), **_URI_TOO_LONG}}})
    spec.path("/templates/", operations={"get": {
        "summary": "Every template", "security": KEY,
        "responses": {"200": _json(_list("Template")), **_errors("403", "503")}}})
    spec.path("/templates/{name}", parameters=[_NAME], operations={"get": {
        "summary": "One template", "security": KEY,
        "responses": {"200": _json("Template"), **_errors("403", "404", "503"),
                      **_URI_TOO_LONG}}})
    spec.path("/health/", operations={"get": {"summary": "Health of each component",
                                              "responses": {
        "200": _json(_list("Health"), "every component is ok"),
        "503": _json(_list("Health"), "a component is failing")}}})
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
    for (const [method, op] of Object.entries(ops).filter(([m]) => m !== 'parameters')) {
      const li = document.createElement('li');
      const code = document.createElement('code');
      code.textContent = method.toUpperCase() + ' ' + path;
      li.appendChild(code);
      li.appendChild(document.createTextNode(' ' + (op.summary || '')
        + (op.security ? ' (API key)' : '')));
      ul.appendChild(li);
    }
  }
});
</script></body></html>"""


@bp.get("/docs")
def docs_page() -> ResponseReturnValue:
    return Response(_PAGE, mimetype="text/html")
