"""``RUN --mount=type=ssh`` and ``type=secret``: what only ``docker build``'s client
can give. The farm gives neither: a required one is refused at detect, an optional
one is named in the detect log."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import BuildFailure
from tests.unit.test_rendering import inputs_for
from workers.buildpacks.dockerfile import DockerfileBuildPack


@pytest.mark.parametrize(("mount", "refusal"), [
    ("--mount=type=secret,id=token,required=true",
     "The Dockerfile's RUN --mount on line 2 requires the secret token, which this farm "
     "cannot pass: builds get no secrets."),
    ("--mount=type=ssh,required",
     "The Dockerfile's RUN --mount on line 2 requires an SSH agent, which this farm cannot "
     "pass: builds get no SSH agent."),
    ("--mount=type=secret,target=/run/secrets/api,required=True",
     "The Dockerfile's RUN --mount on line 2 requires the secret api, which this farm "
     "cannot pass: builds get no secrets."),
])
def test_a_required_secret_or_agent_is_refused(tmp_path: Path, mount: str,
                                               refusal: str) -> None:
    inputs = inputs_for(tmp_path, "Dockerfile", f"FROM debian:12\nRUN {mount} true\n")
    with pytest.raises(BuildFailure) as refused:
        DockerfileBuildPack().check(inputs)
    assert refused.value.message == refusal
    assert refused.value.suggestions == [
        "Leave required=true out (the step then runs without it), or have the step "
        "download over https what it needs; never commit a credential."]


def test_an_optional_one_is_named_in_the_log(tmp_path: Path) -> None:
    inputs = inputs_for(tmp_path, "Dockerfile", "FROM debian:12\n"
                        "RUN --mount=type=ssh git clone git@example.org:o/r\n"
                        "RUN --mount=type=secret,id=npmrc,required=false true\n"
                        "RUN --mount=type=cache,target=/c true\n")
    pack = DockerfileBuildPack()
    pack.check(inputs)
    assert pack.notices(inputs) == [
        "Dockerfile line 2: the RUN --mount=type=ssh step runs without an SSH agent "
        "(this farm passes builds none).",
        "Dockerfile line 3: the RUN --mount=type=secret step runs without the secret npmrc "
        "(this farm passes builds none)."]
