"""``requirements.txt``: a venv over the base image's Python, pip-installed."""

from __future__ import annotations

import re

from workers.buildpacks.base import CONFIG_STAGING, ENV_PREFIX, HOME, BuildInputs, BuildPack
from workers.package_index import check_requirements_file

# Lines that refer to other files of the repository (``-r other.txt``,
# ``-e .``, local paths) need the whole repository before pip runs.
_LOCAL_REFERENCE = re.compile(r"^\s*(-r|--requirement|-c|--constraint|-e|--editable|\.|/|file:)")
_FIND_LINKS = re.compile(r"^\s*(-f|--find-links)[\s=]+(\S+)")


def needs_repository(line: str) -> bool:
    """True when a requirements line refers to files of the repository."""
    text = line.split(" #", 1)[0].strip()
    if not text or text.startswith("#"):
        return False
    if _LOCAL_REFERENCE.match(text):
        return True
    find_links = _FIND_LINKS.match(text)
    if find_links:
        return "://" not in find_links.group(2)
    first = text.split()[0]
    return "/" in first and "://" not in first  # a relative path such as wheels/x.whl


class RequirementsBuildPack(BuildPack):
    id = "requirements.txt"
    config_file = "requirements.txt"

    def check(self, inputs: BuildInputs) -> None:
        """The file (and those it pulls in with -r/-c) may not name a package index."""
        assert inputs.config_path is not None
        check_requirements_file(inputs.checkout, str(inputs.config_path))

    def render(self, inputs: BuildInputs) -> str:
        assert inputs.config_path is not None
        text = (inputs.checkout / inputs.config_path).read_text(errors="replace")
        needs_repo = any(needs_repository(line) for line in text.splitlines())
        pip = f"{ENV_PREFIX}/bin/pip install --no-cache-dir --disable-pip-version-check " \
              f"{self.pip_options(inputs)}".rstrip()
        lines = self.preamble(inputs) + [
            f"ENV PATH={ENV_PREFIX}/bin:$PATH VIRTUAL_ENV={ENV_PREFIX}",
            f"RUN python3 -m venv --system-site-packages {ENV_PREFIX} && "
            + self.register_kernel(f"{ENV_PREFIX}/bin/python"),
        ]
        if needs_repo:
            lines += [f"COPY --chown=1000:1000 repo/ {HOME}/", f"WORKDIR {HOME}",
                      f"RUN {pip} -r {inputs.config_path}"]
        else:
            lines += [self.stage_config(inputs, "requirements.txt"),
                      f"RUN {pip} -r {CONFIG_STAGING}/requirements.txt"]
        return "\n".join(lines + self.finish()) + "\n"
