"""Jupyter runs from the repository's environment, as on mybinder.org.

Server extensions a repository installs with pip (nbgitpuller,
jupyter-server-proxy) load in the started server: their config under the
environment's ``etc/jupyter`` is read, and ``${NB_PYTHON_PREFIX}/bin/jupyter``
(with ``--sys-prefix``) works in postBuild; ``ipython`` in a terminal imports what
the repository installed.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.conftest import Served, unique
from tests.support.farm import ApiClient
from tests.support.git_server import GitServer
from tests.support.images import run_in_image
from tests.support.pypi_index import make_index, make_wheel

BUILD_TIMEOUT = 900
IMAGE_TIMEOUT = 600
EXTENSION = "binder_server_probe"
MARKER = "/tmp/server-probe-loaded"
#: A server extension that leaves a marker when the server loads it.
EXTENSION_SOURCE = f"""
from pathlib import Path


def _jupyter_server_extension_points():
    return [{{"module": "{EXTENSION}"}}]


def _load_jupyter_server_extension(server_app):
    Path("{MARKER}").write_text("loaded\\n")
"""


@pytest.fixture(scope="module")
def extension_index(package_index: Served) -> Served:
    # Enabled as real extensions enable themselves: a config file installed into the
    # environment's etc/jupyter (Jupyter Server enables only extensions it finds there).
    enable = json.dumps({"ServerApp": {"jpserver_extensions": {EXTENSION: True}}})
    wheel = make_wheel("binder-server-probe", "1.0", {
        f"{EXTENSION}/__init__.py": EXTENSION_SOURCE,
        f"{EXTENSION}-1.0.data/data/etc/jupyter/jupyter_server_config.d/{EXTENSION}.json": enable,
    })
    make_index(package_index.root, [wheel])
    return package_index


def test_a_server_extension_the_repository_installs_loads(
        api: ApiClient, git_server: GitServer, repo_url: str, extension_index: Served) -> None:
    repo = unique("server-extension")
    git_server.make_repo(f"github/lee/{repo}", {
        "requirements.txt": "binder-server-probe==1.0\n",
        "postBuild": "#!/bin/bash\nset -e\n${NB_PYTHON_PREFIX}/bin/jupyter server extension "
                     f"enable --sys-prefix {EXTENSION}\n",
    })
    record = api.start_and_wait(f"{repo_url}/lee/{repo}", BUILD_TIMEOUT)
    assert record["status"] == "completed", (record, api.logs(record["name"])[-6000:])
    command = api.template(record["name"])["command"]
    assert command.startswith("jupyter lab ")
    # The template's command in the background; at most 300 s for the marker.
    output = run_in_image(
        record["image-name"],
        f"{command} >/tmp/server.log 2>&1 & for i in $(seq 300); do "
        f"[ -f {MARKER} ] && break; sleep 1; done; cat {MARKER} || tail -20 /tmp/server.log; "
        "command -v jupyter; jupyter server extension list 2>&1; "
        f"ipython --quick -c 'import {EXTENSION}, sys; print(\"ipython in\", sys.prefix)' 2>&1",
        timeout=IMAGE_TIMEOUT)
    assert output.startswith("loaded\n"), output
    assert "ipython in /srv/env" in output, output  # a terminal's ipython sees it too
    assert "\n/srv/env/bin/jupyter\n" in output, output
    listed = re.sub(r"\x1b\[[0-9;]*m", "", output)  # without its colours
    assert f"Config dir: /srv/env/etc/jupyter\n    {EXTENSION} enabled\n" in listed, output
