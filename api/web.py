"""A small web page: recent builds, and any build's log followed live."""

from __future__ import annotations

from flask import Response

from api.blueprint import Blueprint

bp = Blueprint("web", __name__, description="The farm's own web page.")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>binder-build</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{padding:.3rem .5rem;border-bottom:1px solid #ddd;
text-align:left}tr:hover{background:#f5f5f5;cursor:pointer}
.running{color:#b36b00}.completed{color:#1a7f37}.failed{color:#cf222e}.cancelled{color:#666}
pre{background:#111;color:#ddd;padding:1rem;max-height:30rem;overflow:auto;font-size:.8rem}
label{margin-right:1rem}
</style></head>
<body>
<h1>binder-build</h1>
<p><label>API key <input id="key" type="password" size="30"></label>
<a href="/docs">API</a> · <a href="/health/">health</a> · <a href="/metrics">metrics</a></p>
<table><thead><tr><th>name</th><th>status</th><th>phase</th><th>started</th><th>worker</th>
<th>error</th></tr></thead><tbody id="builds"></tbody></table>
<h2 id="title"></h2><pre id="log"></pre>
<script>
const key = document.getElementById('key');
key.value = localStorage.getItem('binder-key') || '';
key.onchange = () => { localStorage.setItem('binder-key', key.value); refresh(); };
let source = null;
function cell(row, text, cls) {
  const td = row.insertCell(); td.textContent = text == null ? '' : text;
  if (cls) td.className = cls;
}
function refresh() {
  fetch('/builds/?limit=50', {headers: {Authorization: key.value}})
    .then(r => r.ok ? r.json() : [])
    .then(builds => {
      const body = document.getElementById('builds'); body.innerHTML = '';
      for (const b of builds) {
        const row = body.insertRow();
        cell(row, b.name); cell(row, b.status, b.status); cell(row, b.phase);
        cell(row, b['start-time']); cell(row, b.worker); cell(row, b.error);
        row.onclick = () => follow(b.name);
      }
    });
}
function follow(name) {
  if (source) source.close();
  document.getElementById('title').textContent = name;
  const log = document.getElementById('log'); log.textContent = '';
  source = new EventSource('/builds/' + encodeURIComponent(name) + '/logs?follow=1');
  source.onmessage = e => { log.textContent += e.data + '\\n'; log.scrollTop = log.scrollHeight; };
  source.addEventListener('end', () => { source.close(); refresh(); });
}
refresh(); setInterval(refresh, 5000);
</script></body></html>"""


@bp.route("/")
@bp.response(200, {"type": "string"}, content_type="text/html", description="an HTML page")
def index() -> Response:
    """The farm's page: builds, their status and live logs."""
    return Response(_PAGE, mimetype="text/html")
