"""Composed buildpacks: detection of every file, the generated Dockerfile's order, and
the sentences for what cannot be built."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from common.config import Config, load_config
from common.errors import BuildFailure
from workers.base_image import RECIPE_DIR
from workers.buildpacks import Detection, check, detect, notices
from workers.buildpacks.compose import apt_packages, default_command
from workers.buildpacks.dockerfile import with_farm_root
from workers.buildpacks.installers import index_environment, index_options
from workers.buildpacks.pipfile import requirements
from workers.buildpacks.r import (
    FARM_REPOS_PRELUDE,
    cran_url,
    declared_repos,
    description_dependencies,
)
from workers.buildpacks.runtime import BASE_PYTHON, Runtime, parse_runtime
from workers.phases.template import launch_command, template_command

CONFIG = load_config(environ={"BINDER_REGISTRY": "registry.test:5000",
                              "BINDER_PIP_INDEX_URL": "http://127.0.0.1:9/simple/",
                              "BINDER_CONDA_CHANNELS": "http://127.0.0.1:8/channel",
                              "BINDER_CRAN_URL": "http://127.0.0.1:7/{date}"})


def checkout_with(tmp_path: Path, files: dict[str, str]) -> Path:
    checkout = tmp_path / "checkout"
    for name, text in files.items():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text(text)
    checkout.mkdir(exist_ok=True)
    return checkout


def detected(tmp_path: Path, files: dict[str, str], config: Config = CONFIG) -> Detection:
    return detect(checkout_with(tmp_path, files), config)


def dockerfile(tmp_path: Path, files: dict[str, str], config: Config = CONFIG) -> list[str]:
    checkout = checkout_with(tmp_path, files)
    detection = detect(checkout, config)
    check(detection, checkout, config)
    return detection.buildpack.render(detection.inputs(checkout, config)).splitlines()


def position(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)


# detection


def test_every_composed_file_applies_in_order(tmp_path: Path) -> None:
    detection = detected(tmp_path, {
        "binder/start": "#!/bin/bash\nexec \"$@\"\n", "binder/postBuild": "true\n",
        "binder/apt.txt": "cowsay\n", "binder/requirements.txt": "numpy\n",
        "binder/runtime.txt": "python-3.11\n"})
    assert detection.buildpack.id == "requirements.txt"
    assert [str(path) for path in detection.applied] == [
        "binder/apt.txt", "binder/runtime.txt", "binder/requirements.txt", "binder/postBuild",
        "binder/start"]
    assert detection.ignored == []


def test_a_repository_dockerfile_leaves_out_everything_else_by_name(tmp_path: Path) -> None:
    detection = detected(tmp_path, {"Dockerfile": "FROM x\n", "apt.txt": "cowsay\n",
                                    "postBuild": "true\n", "setup.py": ""})
    assert detection.buildpack.id == "Dockerfile" and detection.extras == {}
    assert {str(path): reason for path, reason in detection.ignored} == {
        "setup.py": "the environment comes from Dockerfile",
        "apt.txt": "Dockerfile builds the image by itself",
        "postBuild": "Dockerfile builds the image by itself"}


@pytest.mark.parametrize(("files", "chosen"), [
    ({"requirements.txt": "", "environment.yml": "", "Dockerfile": "FROM x\n"},
     ("requirements.txt", "Dockerfile")),
    ({"requirements.txt": "", "environment.yml": ""}, ("requirements.txt", "environment.yml")),
    ({"setup.py": "", "Pipfile": ""}, ("setup.py", "Pipfile")),
    ({"Pipfile": "", "Pipfile.lock": "{}"}, ("Pipfile.lock", "Pipfile.lock")),
    ({"DESCRIPTION": "Package: x\n", "runtime.txt": "r-2024-01-01\n"},
     ("DESCRIPTION", "DESCRIPTION")),
    ({"runtime.txt": "python-3.12\n"}, ("runtime.txt", "runtime.txt")),
    ({"requirements.txt": "", "Project.toml": ""}, ("requirements.txt", "Project.toml")),
])
def test_default_and_repo2docker_precedence(tmp_path: Path, files: dict[str, str],
                                            chosen: tuple[str, str]) -> None:
    assert detected(tmp_path, files).buildpack.id == chosen[0]
    repo2docker = CONFIG.replace(config_order=("repo2docker",))
    assert detected(tmp_path, files, repo2docker).buildpack.id == chosen[1]


def test_a_pyproject_of_tools_settings_only_is_not_a_package(tmp_path: Path) -> None:
    detection = detected(tmp_path, {"pyproject.toml": "[tool.ruff]\nline-length = 1\n"})
    assert detection.buildpack.id == "default"
    assert [(str(p), r) for p, r in detection.ignored] == [
        ("pyproject.toml", "it has neither a [build-system] nor a [project] table")]
    for package in ("[build-system]\nrequires = []\n", "[project]\nname = 'p'\n"):
        assert detected(tmp_path, {"pyproject.toml": package}).buildpack.id == "pyproject.toml"


# Nested deeper than the parsers recurse: within the cap, far from any real file.
TOO_DEEP = {"Pipfile": "[packages]\nx = " + "[" * 5000 + "\n",
            "Pipfile.lock": '{"default": ' + "[" * 5000 + "\n",
            "pyproject.toml": "[build-system]\nrequires = " + "[" * 5000 + "\n"}


@pytest.mark.parametrize("name", ["Pipfile", "Pipfile.lock"])
def test_a_pipfile_nested_too_deep_fails_with_a_sentence(tmp_path: Path, name: str) -> None:
    checkout = checkout_with(tmp_path, {name: TOO_DEEP[name]})
    detection = detect(checkout, CONFIG)
    with pytest.raises(BuildFailure, match=f"^{name} is not valid"):
        check(detection, checkout, CONFIG)
    assert notices(detection, checkout, CONFIG) == []


def test_a_pyproject_nested_too_deep_is_not_a_package(tmp_path: Path) -> None:
    detection = detected(tmp_path, {"pyproject.toml": TOO_DEEP["pyproject.toml"]})
    assert detection.buildpack.id == "default"


PACKAGES = [{"setup.py": "from setuptools import setup\nsetup()\n"},
            {"pyproject.toml": "[build-system]\nrequires = []\n"}]


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("order", ["default", "repo2docker"])
def test_a_python_package_beside_requirements_txt_is_installed_after_them(
        tmp_path: Path, package: dict[str, str], order: str) -> None:
    """As repo2docker does: ``pip install -r requirements.txt``, then ``pip install .``."""
    files = {"requirements.txt": "numpy\n", **package}
    config = CONFIG.replace(config_order=(order,))
    detection = detected(tmp_path, files, config)
    assert detection.buildpack.id == "requirements.txt"
    assert [str(path) for path in detection.applied] == ["requirements.txt", *package]
    assert detection.ignored == []
    lines = dockerfile(tmp_path, files, config)
    requirements = position(lines, "-r /tmp/binder/requirements.txt")
    copy = lines.index("COPY --chown=1000:1000 repo/ /home/jovyan/")
    installed = position(lines, f"installing the package in . ({next(iter(package))})")
    assert requirements < copy < installed
    assert shlex.split(lines[installed])[-1] == "."


def test_a_utf16_requirements_file_naming_a_file_of_the_repository_installs_after_it(
        tmp_path: Path) -> None:
    """PowerShell writes UTF-16; the installers read it by its byte-order mark."""
    checkout = checkout_with(tmp_path, {"pkg-1.0-py3-none-any.whl": ""})
    (checkout / "requirements.txt").write_bytes("pkg-1.0-py3-none-any.whl\r\n".encode("utf-16"))
    detection = detect(checkout, CONFIG)
    lines = detection.buildpack.render(detection.inputs(checkout, CONFIG)).splitlines()
    copy = lines.index("COPY --chown=1000:1000 repo/ /home/jovyan/")
    assert copy < position(lines, "-r requirements.txt")
    assert not any("/tmp/binder/requirements.txt" in line for line in lines)


@pytest.mark.parametrize("package", PACKAGES)
def test_a_python_package_in_a_config_folder_is_not_installed(
        tmp_path: Path, package: dict[str, str]) -> None:
    """repo2docker installs no package when the files are read from binder/."""
    name = next(iter(package))
    detection = detected(tmp_path, {"binder/requirements.txt": "numpy\n",
                                    f"binder/{name}": package[name]})
    assert [str(path) for path in detection.applied] == ["binder/requirements.txt"]
    reason = ("repo2docker installs it only from the root of a repository without a "
              "binder/ or .binder/ folder" if name == "setup.py"
              else "the environment comes from binder/requirements.txt")
    assert [(str(p), r) for p, r in detection.ignored] == [(f"binder/{name}", reason)]


def test_install_r_needs_r_chosen(tmp_path: Path) -> None:
    without = detected(tmp_path, {"install.R": "1\n", "requirements.txt": ""})
    assert "install.R" not in without.extras
    assert [str(p) for p, _ in without.ignored] == ["install.R"]
    with_r = detected(tmp_path, {"runtime.txt": "r-2024-01-01\n"})
    assert "install.R" in with_r.extras


def test_environment_yml_brings_its_own_python(tmp_path: Path) -> None:
    detection = detected(tmp_path, {"environment.yml": "", "runtime.txt": "python-3.12\n"})
    assert "runtime.txt" not in detection.extras
    assert detection.ignored[0][1] == "environment.yml chooses its own Python"


@pytest.mark.parametrize("pipfile", ["Pipfile", "binder/Pipfile"])
def test_a_pipfiles_python_wins_over_runtime_txt(tmp_path: Path, pipfile: str) -> None:
    """repo2docker reads a Pipfile's Python from its [requires] and never from runtime.txt;
    the runtime.txt is then named as ignored."""
    folder = pipfile.removesuffix("Pipfile")
    files = {pipfile: '[packages]\nx = "*"\n[requires]\npython_version = "3.10"\n',
             f"{folder}runtime.txt": "python-3.12\n"}
    detection = detected(tmp_path, files)
    assert "runtime.txt" not in detection.extras
    assert [(str(path), reason) for path, reason in detection.ignored] == [
        (f"{folder}runtime.txt", f"{pipfile} chooses its own Python")]
    lines = dockerfile(tmp_path, files)
    run = lines[position(lines, "conda_env.py\", \"--python\"")]
    argv = json.loads(run[run.index("["):])
    assert argv[argv.index("--python") + 1] == "3.10"
    assert "3.12" not in "\n".join(lines)


def test_a_pipfile_without_a_python_keeps_runtime_txt(tmp_path: Path) -> None:
    detection = detected(tmp_path, {"Pipfile": '[packages]\nx = "*"\n',
                                    "runtime.txt": "python-3.12\n"})
    assert "runtime.txt" in detection.extras and detection.ignored == []


@pytest.mark.parametrize(("name", "what"), [
    ("Project.toml", "a Julia environment"), ("REQUIRE", "a Julia environment (REQUIRE)"),
    ("default.nix", "a Nix environment")])
def test_unsupported_files_fail_with_a_sentence(tmp_path: Path, name: str, what: str) -> None:
    checkout = checkout_with(tmp_path, {name: ""})
    with pytest.raises(BuildFailure) as caught:
        check(detect(checkout, CONFIG), checkout, CONFIG)
    assert caught.value.message.startswith(
        f"{name} asks for {what}, which this farm cannot build; it builds requirements.txt")


@pytest.mark.parametrize("name", ["postBuild", "binder/start"])
def test_scripts_with_windows_line_endings_fail_before_docker(tmp_path: Path, name: str) -> None:
    checkout = checkout_with(tmp_path, {name: "#!/bin/bash\r\necho hi > out.txt\r\n"})
    with pytest.raises(BuildFailure) as caught:
        check(detect(checkout, CONFIG), checkout, CONFIG)
    assert caught.value.message == (
        f"{name} has Windows (CRLF) line endings; Linux runs it only with Unix (LF) ones.")
    assert f"dos2unix {name}" in caught.value.suggestions[0]
    assert "git config core.autocrlf input" in caught.value.suggestions[1]


def test_scripts_with_unix_line_endings_pass(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, {"postBuild": "#!/bin/bash\necho 'a\rb'\n",
                                        "start": "#!/bin/bash\nexec \"$@\"\n"})
    check(detect(checkout, CONFIG), checkout, CONFIG)


# the generated Dockerfile


def test_composed_order_users_expect(tmp_path: Path) -> None:
    lines = dockerfile(tmp_path, {
        "apt.txt": "cowsay\n", "requirements.txt": "numpy\n", "postBuild": "true\n",
        "start": "exec \"$@\"\n"})
    apt = position(lines, "apt-get install")
    assert "cowsay" in lines[apt] and "id=binder-apt-archives" in lines[apt]
    user = lines.index("USER jovyan")
    install = position(lines, "uv pip install")
    copy = lines.index("COPY --chown=1000:1000 repo/ /home/jovyan/")
    post = position(lines, "run-script postBuild")
    entry = position(lines, "ENTRYPOINT")
    assert apt < user < install < copy < post < entry
    assert json.loads(lines[entry].removeprefix("ENTRYPOINT ")) == [
        "tini", "-g", "--", "bash", "/home/jovyan/start"]
    assert lines[-1] == f"CMD {json.dumps(default_command())}"


@pytest.mark.parametrize(("start", "entrypoint"), [
    ("#!/bin/bash\nexec \"$@\"\n", ["/home/jovyan/binder/start"]),
    ("#!/usr/bin/env python3\nimport os, sys\nos.execvp(sys.argv[1], sys.argv[1:])\n",
     ["/home/jovyan/binder/start"]),
    # repo2docker's entrypoint runs it with bash's exec, which runs a script without a
    # shebang with bash (the system's exec would hand it to sh, which has no [[ or source)
    ("[[ -n $HOME ]] && source /dev/null\nexec \"$@\"\n",
     ["bash", "/home/jovyan/binder/start"]),
])
def test_start_runs_as_repo2docker_runs_it(tmp_path: Path, start: str,
                                           entrypoint: list[str]) -> None:
    lines = dockerfile(tmp_path, {"binder/start": start})
    assert json.loads(lines[position(lines, "ENTRYPOINT")].removeprefix("ENTRYPOINT ")) == [
        "tini", "-g", "--", *entrypoint]


@pytest.mark.parametrize("files", [{"postBuild": "true\n"},
                                   {"environment.yml": "dependencies: [python]\n"}])
def test_repo2docker_python_prefixes_name_the_users_environment(
        tmp_path: Path, files: dict[str, str]) -> None:
    """repo2docker always defines NB_PYTHON_PREFIX and KERNEL_PYTHON_PREFIX; postBuild and
    start scripts install with ``${NB_PYTHON_PREFIX}/bin/pip``."""
    lines = dockerfile(tmp_path, files)
    env = lines[position(lines, "NB_PYTHON_PREFIX=")]
    assert env.startswith("ENV ")
    assert {"NB_PYTHON_PREFIX=/srv/env", "KERNEL_PYTHON_PREFIX=/srv/env"} <= set(env.split())


def test_post_build_alone_gets_the_farms_index(tmp_path: Path) -> None:
    lines = dockerfile(tmp_path, {"postBuild": "pip install x\n", "start": "exec \"$@\"\n"})
    post = lines[position(lines, "run-script postBuild")]
    assert shlex.split(post)[1:5] == [
        "PIP_INDEX_URL=http://127.0.0.1:9/simple/", "UV_DEFAULT_INDEX=http://127.0.0.1:9/simple/",
        "PIP_TRUSTED_HOST=127.0.0.1", "bash"]
    # nothing of it stays in the image
    assert not any("127.0.0.1:9" in line for line in lines if not line.startswith("RUN "))


@pytest.mark.parametrize(("url", "environment"), [
    ("", {}),
    ("https://pypi.example/simple/", {"PIP_INDEX_URL": "https://pypi.example/simple/",
                                      "UV_DEFAULT_INDEX": "https://pypi.example/simple/"}),
])
def test_the_index_environment_trusts_only_plain_http(url: str,
                                                      environment: dict[str, str]) -> None:
    assert index_environment(url) == environment


def test_runtime_python_comes_from_the_conda_channels(tmp_path: Path) -> None:
    lines = dockerfile(tmp_path, {"runtime.txt": "python-3.12\n", "requirements.txt": "x\n"})
    run = lines[position(lines, "conda_env.py\", \"--python\"")]
    argv = json.loads(run[run.index("["):])
    assert argv[argv.index("--python") + 1] == "3.12"
    assert argv[argv.index("--channel") + 1] == "http://127.0.0.1:8/channel"
    assert position(lines, "--python\", \"3.12") < position(lines, "uv pip install")
    assert "ipykernel install --sys-prefix" in lines[position(lines, "import ipykernel")]


def test_runtime_python_of_the_base_image_needs_no_conda(tmp_path: Path) -> None:
    lines = dockerfile(tmp_path, {"runtime.txt": "python-3.11\n"})
    assert not any("conda_env.py" in line for line in lines)


def test_r_runtime_installs_r_irkernel_and_the_dated_snapshot(tmp_path: Path) -> None:
    lines = dockerfile(tmp_path, {"runtime.txt": "r-2024-01-01\n", "install.R": "1\n"})
    r = lines[position(lines, "r-base-core")]
    assert "r-cran-irkernel" in r and "IRkernel::installspec" in r
    assert "http://127.0.0.1:7/2024-01-01" in r
    staged = lines.index("COPY --chown=1000:1000 repo/install.R /tmp/binder/install.R")
    assert lines[staged + 1].startswith("RUN cd /home/jovyan && Rscript -e ")
    assert """ }); source("/tmp/binder/install.R")' && touch """ in lines[staged + 1]
    assert r.index("r-base-core") and position(lines, "r-base-core") < lines.index("USER jovyan")


def test_install_r_runs_again_from_repo_dir_when_it_needs_the_repository(
        tmp_path: Path) -> None:
    """As repo2docker: install.R runs before the repository is copied (a code-only change
    reuses it), and, when that fails (it sources or installs a file of the repository),
    again from REPO_DIR once the repository is there."""
    lines = dockerfile(tmp_path, {"binder/runtime.txt": "r-2024-01-01\n",
                                  "binder/install.R": 'source("R/deps.R")\n'})
    first = lines[lines.index(
        "COPY --chown=1000:1000 repo/binder/install.R /tmp/binder/install.R") + 1]
    copy = lines.index("COPY --chown=1000:1000 repo/ /home/jovyan/")
    again = position(lines, 'source("binder/install.R")')
    done = "/tmp/binder/install.R.done"
    assert first.startswith("RUN cd /home/jovyan && Rscript -e ")
    assert first.rsplit(" && ", 1)[1].startswith(f"touch {done} || echo ")
    assert lines.index(first) < copy < again
    assert lines[copy + 1] == "WORKDIR /home/jovyan"
    assert lines[again].startswith(f"RUN if [ -e {done} ]; then rm {done}; else Rscript -e ")
    assert lines[again].endswith("; fi")


@pytest.mark.timeout(10)
def test_a_megabyte_of_unclosed_repos_vectors_is_read_in_linear_time() -> None:
    # each unclosed `c(` used to be read to the end of the file: over a minute of a worker
    assert declared_repos("repos=c( " * (1024 * 1024 // 9)) == ["c("]


def test_install_r_repos_are_named_and_replaced_by_the_farm_repository(tmp_path: Path) -> None:
    install_r = ('install.packages("a", repos = "https://cran.example/")\n'
                 "options(repos=c(CRAN='https://mirror.example/cran', other = \"https://x.example\"))\n"
                 'install.packages("local.tar.gz", repos = NULL, type = "source")\n'
                 "install.packages('b', repo = r)\n"
                 "if (x == 1) install.packages('c')\n")
    assert declared_repos(install_r) == ["https://cran.example/", "https://mirror.example/cran",
                                         "https://x.example", "r"]
    files = {"runtime.txt": "r-2024-01-01\n", "install.R": install_r}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert notices(detect(tmp_path, CONFIG), tmp_path, CONFIG) == [
        "install.R names its own package sources (https://cran.example/, "
        "https://mirror.example/cran, https://x.example, r); this farm uses its configured "
        "sources instead: http://127.0.0.1:7/2024-01-01."]
    run = next(line for line in dockerfile(tmp_path, files) if "install.R" in line
               and line.startswith("RUN"))
    assert FARM_REPOS_PRELUDE in run


def test_install_r_without_repos_and_without_r_says_nothing(tmp_path: Path) -> None:
    for files in ({"runtime.txt": "r-2024-01-01\n", "install.R": 'install.packages("a")\n'},
                  {"requirements.txt": "", "install.R": 'install.packages("a", repos="u")\n'}):
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        assert notices(detect(tmp_path, CONFIG), tmp_path, CONFIG) == []
        for name in files:
            (tmp_path / name).unlink()


def test_description_installs_its_dependencies_then_the_package(tmp_path: Path) -> None:
    lines = dockerfile(tmp_path, {"DESCRIPTION": "Package: demo\nImports: dplyr (>= 1.0),\n"
                                                 "    ggplot2, utils\nDepends: R (>= 4.0)\n"})
    deps = lines[position(lines, "Rscript -e")]
    assert '"dplyr", "ggplot2"' in deps and '"utils"' not in deps
    assert "http://127.0.0.1:7/latest" in lines[position(lines, "r-base-core")]
    assert position(lines, "Rscript -e") < position(lines, "repo/ /home") < position(
        lines, "R CMD INSTALL .")


@pytest.mark.parametrize("order", ["default", "repo2docker"])
def test_an_r_package_and_requirements_txt_beside_it_are_both_installed(
        tmp_path: Path, order: str) -> None:
    """repo2docker's R buildpack is its Python one with R: it installs requirements.txt,
    a Python package at the root and the R package of DESCRIPTION together."""
    files = {"DESCRIPTION": "Package: demo\nImports: dplyr\n", "requirements.txt": "numpy\n",
             "setup.py": "", "install.R": "1\n"}
    config = CONFIG.replace(config_order=(order,))
    detection = detected(tmp_path, files, config)
    first = "requirements.txt" if order == "default" else "DESCRIPTION"
    assert detection.buildpack.id == first
    assert sorted(str(path) for path in detection.applied) == sorted(files)
    assert detection.ignored == []
    lines = dockerfile(tmp_path, files, config)
    copy = lines.index("COPY --chown=1000:1000 repo/ /home/jovyan/")
    assert position(lines, "r-base-core") < lines.index("USER jovyan")
    assert position(lines, '"dplyr"') < copy
    assert position(lines, "-r /tmp/binder/requirements.txt") < copy
    assert position(lines, 'source("/tmp/binder/install.R")') < copy
    assert copy < position(lines, "R CMD INSTALL .")
    assert copy < position(lines, "installing the package in . (setup.py)")


@pytest.mark.parametrize("order", ["default", "repo2docker"])
def test_an_r_package_and_a_python_package_are_both_installed(tmp_path: Path,
                                                              order: str) -> None:
    files = {"DESCRIPTION": "Package: demo\n", "setup.py": ""}
    detection = detected(tmp_path, files, CONFIG.replace(config_order=(order,)))
    assert sorted(str(path) for path in detection.applied) == sorted(files)
    assert detection.ignored == []


def test_requirements_txt_beside_an_r_package_is_checked_as_any(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, {
        "DESCRIPTION": "Package: demo\n",
        "requirements.txt": "--extra-index-url https://evil.example/simple\n"})
    config = CONFIG.replace(config_order=("repo2docker",))
    with pytest.raises(BuildFailure, match="^requirements.txt line 1"):
        check(detect(checkout, config), checkout, config)


def test_files_pulled_in_beside_an_r_package_are_named(tmp_path: Path) -> None:
    """A requirements.txt installed beside DESCRIPTION reads its -r files as it would alone:
    the build copies them even where .dockerignore leaves them out."""
    checkout = checkout_with(tmp_path, {"DESCRIPTION": "Package: demo\n",
                                        "requirements.txt": "-r requirements-base.txt\n",
                                        "requirements-base.txt": "numpy\n"})
    config = CONFIG.replace(config_order=("repo2docker",))
    detection = detect(checkout, config)
    assert detection.buildpack.id == "DESCRIPTION"
    assert "requirements-base.txt" in [str(path) for path in detection.buildpack.pulled_in(
        detection.inputs(checkout, config))]


def test_appendix_and_repo_dir(tmp_path: Path) -> None:
    config = CONFIG.replace(appendix="USER root\\nRUN echo operator-layer\\nUSER jovyan",
                            repo_dir="/srv/repo")
    lines = dockerfile(tmp_path, {}, config)
    assert lines[lines.index("# BINDER_APPENDIX") + 1:][:3] == [
        "USER root", "RUN echo operator-layer", "USER jovyan"]
    assert "ENV REPO_DIR=/srv/repo" in lines
    assert "COPY --chown=1000:1000 repo/ /srv/repo/" in lines
    assert "RUN install -d -o 1000 -g 1000 /srv/repo" in lines


def test_pip_is_a_setting_away_and_named_in_the_log(tmp_path: Path) -> None:
    lines = dockerfile(tmp_path, {"requirements.txt": "numpy\n"},
                       CONFIG.replace(python_installer="pip"))
    run = lines[position(lines, "pip install")]
    assert "installing requirements.txt with pip" in run
    assert "/srv/env/bin/python -m pip install --isolated" in run
    assert "id=binder-pip,target=/var/cache/binder/pip,uid=1000" in run


@pytest.mark.parametrize(("files", "named"), [
    ({"requirements.txt": "numpy --global-option=--no-ext\n"}, "--global-option"),
    ({"requirements.txt": "--pre\nnumpy\n"}, "--pre"),
    # in a file pulled in, and an abbreviation pip reads as --config-settings
    ({"requirements.txt": "-r more.txt\n", "more.txt": "numpy --config-set x=y\n"},
     "--config-set"),
])
def test_a_file_with_options_only_pip_reads_installs_with_pip(
        tmp_path: Path, files: dict[str, str], named: str) -> None:
    lines = dockerfile(tmp_path, files)
    run = lines[position(lines, "pip install")]
    assert f"installing requirements.txt (uv does not read {named} as pip does) with pip" in run
    assert "/srv/env/bin/python -m pip install --isolated" in run


@pytest.mark.parametrize("text", [
    "numpy==2.0 --hash=sha256:00\n", "--only-binary :all:\nnumpy\n", "--prefer-binary\nnumpy\n",
    "-e .\n", "--no-binary=numpy\nnumpy\n"])
def test_a_file_uv_reads_as_pip_does_installs_with_uv(tmp_path: Path, text: str) -> None:
    lines = dockerfile(tmp_path, {"requirements.txt": text, "setup.py": ""})
    assert "installing requirements.txt with uv pip" in lines[position(lines, "pip install")]


def test_index_options_for_each_installer() -> None:
    assert index_options("uv", "") == []
    assert index_options("uv", "http://127.0.0.1:9/simple/") == [
        "--index-url", "http://127.0.0.1:9/simple/"]
    assert index_options("pip", "http://127.0.0.1:9/simple/") == [
        "--index-url", "http://127.0.0.1:9/simple/", "--trusted-host", "127.0.0.1"]
    assert index_options("pip", "https://pypi.example/simple/") == [
        "--index-url", "https://pypi.example/simple/"]


def test_the_recipe_and_generated_images_share_one_command() -> None:
    recipe = (RECIPE_DIR / "Dockerfile").read_text()
    assert f"CMD {json.dumps(default_command())}" in recipe.splitlines()


@pytest.mark.parametrize(("image_cmd", "port", "command"), [
    (default_command(), 8888, default_command()),
    (default_command(), 9000, default_command(9000)),
    ([], 8888, default_command()),
    (["/bin/bash"], 8888, default_command()),
    (["voila", "app.ipynb"], 8888, ["voila", "app.ipynb"]),
])
def test_template_command(image_cmd: list[str], port: int, command: list[str]) -> None:
    assert template_command(image_cmd, port) == " ".join(command)


def test_verification_runs_the_template_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from workers.phases import push

    ran: list[tuple[int, str | None]] = []
    facts = {"cmd": default_command(), "interfaces": [], "reuse_shape": None}
    monkeypatch.setattr(push, "verify_image", lambda config, image, port, command, *rest:
                        ran.append((port, command)))
    for binder_yml, expected in (({}, (8888, shlex.join(default_command(8888)))),
                                 ({"port": 9000}, (9000, shlex.join(default_command(9000)))),
                                 ({"command": "voila"}, (8888, "voila"))):
        record = {"build_id": "b", "binder_yml": binder_yml, "image_facts": facts}
        push.verify(SimpleNamespace(record=record, config=CONFIG, image="i", say=print,
                                    guard=None, checkout=Path("/nonexistent")))  # type: ignore[arg-type]
        assert ran.pop() == expected
        assert launch_command(record, CONFIG, default_command()) == expected[1]  # type: ignore[arg-type]


# the files' own sentences


@pytest.mark.parametrize(("text", "runtime"), [
    ("python-3.12\n", Runtime("python", "3.12")),
    ("python-3.10.4", Runtime("python", "3.10")),
    # a major version alone, as repo2docker reads it: its default Python 3, or 2.7
    ("python-3\n", Runtime("python", BASE_PYTHON)),
    ("python-2", Runtime("python", "2.7")),
    ("# pinned\nr-2024-01-01\n", Runtime("r", "4.2", "2024-01-01")),
    ("r-4.2-2023-06-30", Runtime("r", "4.2", "2023-06-30")),
    # repo2docker reads name-version-YYYY-MM-DD for any runtime; a Python's date is unused
    ("python-3.10-2024-01-01", Runtime("python", "3.10")),
    ("python-3-2024-01-01", Runtime("python", BASE_PYTHON)),
    ("python-2024-01-01", Runtime("python", BASE_PYTHON)),
])
def test_runtime_txt(text: str, runtime: Runtime) -> None:
    assert parse_runtime(text) == runtime


@pytest.mark.parametrize(("text", "message"), [
    ("r-4.3-2024-01-01", "asks for R 4.3, but this farm provides R 4.2 only"),
    ("r-4.2", "asks for R without a date"),
    ("r-2024-13-01", "2024-13-01 is not a date"),
    ("julia-1.9", "says `julia-1.9`, which this farm cannot build"),
    ("python-4", "says `python-4`, which this farm cannot build"),
    ("python-3.10-2024-13-01", "2024-13-01 is not a date"),
    ("python-3.10-2024-01", "which this farm cannot build"),
    ("python-", "which this farm cannot build"),
    ("python-32024-01-01", "which this farm cannot build"),
    ("python-3.10-", "which this farm cannot build"),
    ("python-3.12\npython-3.11", "must hold one line"),
    # more digits than Python turns into an integer
    ("python-3." + "1" * 5000, "says `python-3.1111"),
    ("python-" + "1" * 5000 + ".1", "which this farm cannot build"),
])
def test_runtime_txt_errors(text: str, message: str) -> None:
    with pytest.raises(BuildFailure, match=message):
        parse_runtime(text)


def test_apt_txt_names_are_checked() -> None:
    assert apt_packages("# c\ncowsay fortune-mod\nlibfoo1=1.2-3\n") == [
        "cowsay", "fortune-mod", "libfoo1=1.2-3"]
    with pytest.raises(BuildFailure, match="apt.txt line 2: `-oAPT::x` is not a Debian"):
        apt_packages("cowsay\n-oAPT::x\n")
    with pytest.raises(BuildFailure, match="is not a Debian package name"):
        apt_packages("$(curl evil)\n")


def test_pipfile_lock_pins_with_hashes_and_pipfile_specifiers() -> None:
    digest = "sha256:" + "a" * 64
    lock = json.dumps({"_meta": {"requires": {"python_version": "3.12"}},
                       "default": {"numpy": {"version": "==1.26.0", "hashes": [digest],
                                             "markers": "python_version >= '3.9'"}},
                       "develop": {"local": {"path": ".", "editable": True}}})
    lines, needs_repo, python = requirements(lock, "Pipfile.lock")
    assert lines == [f"numpy==1.26.0; python_version >= '3.9' --hash={digest}", "-e ."]
    assert needs_repo and python == "3.12"
    lines, needs_repo, python = requirements(
        '[packages]\nrequests = "*"\npandas = {version = ">=2", extras = ["excel"]}\n'
        '[dev-packages]\npytest = "==8.0"\n', "Pipfile")
    assert lines == ["requests", "pandas[excel]>=2", "pytest==8.0"]
    assert not needs_repo and python is None
    with pytest.raises(BuildFailure, match="is not a version specifier"):
        requirements('[packages]\nx = "; rm -rf /"\n', "Pipfile")
    with pytest.raises(BuildFailure, match="points outside the repository"):
        requirements('[packages]\nx = {path = "../elsewhere"}\n', "Pipfile")


def test_a_pipfile_path_is_read_from_the_pipfiles_folder() -> None:
    """pipenv reads a path from the Pipfile's folder (repo2docker runs it in binder/);
    the farm installs from REPO_DIR, so the path is joined to that folder."""
    lines, needs_repo, _ = requirements('[packages]\ndemo = {path = "..", editable = true}\n',
                                        "binder/Pipfile")
    assert lines == ["-e ."] and needs_repo
    lines, _, _ = requirements('[packages]\ndemo = {path = "src"}\n', "binder/Pipfile")
    assert lines == ["./binder/src"]
    lines, _, _ = requirements('[packages]\ndemo = {path = "./src"}\n', "Pipfile")
    assert lines == ["./src"]
    with pytest.raises(BuildFailure, match="points outside the repository"):
        requirements('[packages]\nx = {path = "../.."}\n', "binder/Pipfile")


def test_pipfile_sources_are_replaced_by_the_farm_index_and_said(tmp_path: Path) -> None:
    checkout = checkout_with(tmp_path, {"Pipfile": '[[source]]\nurl = "https://evil.example/simple"'
                                                   '\nname = "evil"\n[packages]\nx = "*"\n'})
    detection = detect(checkout, CONFIG)
    [note] = detection.buildpack.notices(detection.inputs(checkout, CONFIG))
    assert note.startswith("Pipfile names its own package sources (https://evil.example/simple)")
    assert note.endswith("http://127.0.0.1:9/simple/.")
    lines = detection.buildpack.render(detection.inputs(checkout, CONFIG))
    assert "evil.example" not in lines


def test_description_dependencies_and_cran_url() -> None:
    assert description_dependencies("Package: x\nDepends: R (>= 4), methods\n") == []
    with pytest.raises(BuildFailure, match="is not an R package name"):
        description_dependencies("Imports: ok, bad;name\n")
    assert cran_url(CONFIG, "2024-01-01") == "http://127.0.0.1:7/2024-01-01"
    assert cran_url(CONFIG, None) == "http://127.0.0.1:7/latest"


@pytest.mark.parametrize(("written", "expected"), [
    ("FROM binder-root\n", "FROM {root}\n"),
    ("from binder-root:latest AS base\nFROM base\n", "from {root} AS base\nFROM base\n"),
    ("FROM --platform=linux/amd64 binder-root\n", "FROM --platform=linux/amd64 {root}\n"),
    ("FROM binder-root:2024\n", "FROM binder-root:2024\n"),
    ("FROM binder-rootfs\n", "FROM binder-rootfs\n"),
    ("FROM debian AS binder-root\nFROM binder-root\n",
     "FROM debian AS binder-root\nFROM binder-root\n"),
    ("RUN echo FROM binder-root\n", "RUN echo FROM binder-root\n"),
    ("  \tFROM binder-root\n", "  \tFROM {root}\n"),
])
def test_short_binder_root_names_the_farm_root(written: str, expected: str) -> None:
    root = CONFIG.root_image_name
    assert with_farm_root(written, root) == expected.format(root=root)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("written", "expected"), [
    ("FROM binder-root\n", "FROM {root}\n"),
    ("FROM debian AS binder-root\n", "FROM debian AS binder-root\n"),
])
def test_a_megabyte_of_blank_lines_is_rendered_in_linear_time(written: str,
                                                              expected: str) -> None:
    # a blank-line-spanning \s* at each line start read all the blank lines after it again
    blanks = "\n" * (1024 * 1024 - 64)
    root = CONFIG.root_image_name
    assert with_farm_root(blanks + written, root) == blanks + expected.format(root=root)


def test_dockerfile_from_binder_root_is_rendered_checked_and_logged(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM binder-root\nARG NB_USER\nUSER ${NB_USER}\n")
    strict = CONFIG.replace(allowed_base_images=("registry.test:5000/binder-base",))
    detection = detect(tmp_path, CONFIG)
    root = CONFIG.root_image_name
    assert detection.buildpack.render(detection.inputs(tmp_path, CONFIG)).startswith(
        f"FROM {root}\n")
    assert notices(detection, tmp_path, CONFIG) == [
        f"Dockerfile: FROM binder-root is this farm's Debian root, {root}"]
    with pytest.raises(BuildFailure, match=f"would pull {root}, which this farm does not"):
        check(detection, tmp_path, strict)
    check(detection, tmp_path, strict.replace(
        allowed_base_images=("registry.test:5000/binder-root",)))


def test_pipfile_notice_names_the_farm_index_without_its_credentials(tmp_path: Path) -> None:
    config = CONFIG.replace(pip_index_url="https://farm:s3cret@index.example/simple/")
    checkout = checkout_with(tmp_path, {"Pipfile": '[[source]]\nurl = "https://evil.example/simple"'
                                                   '\nname = "evil"\n[packages]\nx = "*"\n'})
    detection = detect(checkout, config)
    [note] = notices(detection, checkout, config)
    assert "s3cret" not in note and "farm:" not in note
    assert note.endswith("https://index.example/simple/.")


@pytest.mark.parametrize("entry", [
    '{path = "--index-url=https://evil.example/simple"}',
    '{path = "--extra-index-url=https://evil.example/simple", editable = true}',
    '{path = "-ihttps://evil.example/simple"}',
    '{path = "./pkg --extra-index-url https://evil.example/simple"}',
    '{path = "git+https://evil.example/pkg"}',
    '{version = ">=1", markers = "python_version >= \'3\'\\n--index-url https://evil.example/"}',
    '{version = ">=1", markers = "os_name == \'posix\' --extra-index-url https://evil.example/"}',
    '{version = ">=1", markers = "python_version >= \'3\'\\u2028-ihttps://evil.example/s"}',
    '{version = ">=1", markers = "python_version >= \'3\' \\\\"}',
    '{git = "https://example.org/x.git", ref = "main\\n--index-url=https://evil.example/"}',
    '{file = "https://example.org/x.whl\\r--index-url=https://evil.example/"}',
])
def test_pipfile_values_cannot_become_pip_options_or_lines(entry: str) -> None:
    with pytest.raises(BuildFailure):
        lines, _, _ = requirements(f"[packages]\nx = {entry}\n", "Pipfile")
        # not refused: show what pip would have read
        pytest.fail(f"generated {lines!r}")


@pytest.mark.parametrize(("lock", "message"), [
    ({"_meta": 5, "default": {}}, "`_meta` must be a table"),
    ({"default": {"x": {"version": "==1", "hashes": 5}}}, "the hashes of x must be a list"),
])
def test_a_pipfile_lock_of_the_wrong_shape_fails_with_a_sentence(
        tmp_path: Path, lock: dict[str, object], message: str) -> None:
    checkout = checkout_with(tmp_path, {"Pipfile.lock": json.dumps(lock)})
    detection = detect(checkout, CONFIG)
    with pytest.raises(BuildFailure, match=f"^Pipfile.lock: {message}"):
        check(detection, checkout, CONFIG)
    assert notices(detection, checkout, CONFIG) == []


def test_pipfile_lock_values_cannot_become_pip_options() -> None:
    lock = json.dumps({"default": {"x": {"path": "--index-url=https://evil.example/simple"}}})
    with pytest.raises(BuildFailure):
        requirements(lock, "Pipfile.lock")


@pytest.mark.parametrize(("text", "source", "line"), [
    ('[packages]\nx = {git = "https://example.org/x.git", ref = "main"}\n', "Pipfile",
     "x @ git+https://example.org/x.git@main"),
    ('[packages]\nx = {file = "https://files.example/x-1.0-py3-none-any.whl"}\n', "Pipfile",
     "x @ https://files.example/x-1.0-py3-none-any.whl"),
    ('[packages]\nx = {git = "ssh://git@example.org/x.git"}\n', "Pipfile",
     "x @ git+ssh://git@example.org/x.git"),
    (json.dumps({"default": {"x": {"git": "https://example.org/x.git", "ref": "a" * 40}}}),
     "Pipfile.lock", f"x @ git+https://example.org/x.git@{'a' * 40}"),
])
def test_pipfile_download_urls_are_refused_as_requirements_txt_ones_are(
        text: str, source: str, line: str) -> None:
    with pytest.raises(BuildFailure) as caught:
        requirements(text, source)
    assert caught.value.message == (f"{source} package x (`{line}`) installs a package from a "
                                    "URL; this farm installs packages only from its own index.")
    assert "commit its wheel" in caught.value.suggestions[0]


def test_a_pipfile_file_url_names_a_path_in_the_image_as_in_requirements_txt() -> None:
    lines, _, _ = requirements('[packages]\nx = {file = "file:///home/jovyan/x.whl"}\n',
                               "Pipfile")
    assert lines == ["x @ file:///home/jovyan/x.whl"]
    with pytest.raises(BuildFailure, match="must be a URL"):
        requirements('[packages]\nx = {file = "./wheels/x.whl"}\n', "Pipfile")


@pytest.mark.parametrize(("requires", "python"), [
    ('python_full_version = "3.10.4"', "3.10"),
    # pipenv writes both; repo2docker reads the full version first
    ('python_version = "3.9"\npython_full_version = "3.10.4"', "3.10"),
    ('python_version = "3.12"', "3.12"),
    # a major version alone stands for that major's default, as in runtime.txt
    ('python_version = "3"', BASE_PYTHON),
    ('python_version = "2"', "2.7"),
    # not a version: repo2docker builds with its default Python, and so does the farm
    ('python_version = "*"', None),
])
def test_pipfile_python_is_read_as_repo2docker_reads_it(requires: str, python: str | None) -> None:
    pipfile = f'[packages]\nrequests = "*"\n[requires]\n{requires}\n'
    assert requirements(pipfile, "Pipfile")[2] == python
    lock = json.dumps({"_meta": {"requires": dict(
        line.replace('"', "").split(" = ") for line in requires.splitlines())}})
    assert requirements(lock, "Pipfile.lock")[2] == python


def test_pipfile_marker_keys_become_markers() -> None:
    """pipenv (so repo2docker) reads an entry's PEP 508 marker keys as its markers: a
    Windows-only package is not installed on Linux."""
    lines, _, _ = requirements(
        '[packages]\npywin32 = {version = "*", sys_platform = "== \'win32\'"}\n'
        'x = {version = ">=1", markers = "python_version >= \'3\' or os_name == \'posix\'", '
        'platform_machine = "!= \'arm64\'"}\n', "Pipfile")
    assert lines == ["pywin32; sys_platform == 'win32'",
                     "x>=1; (python_version >= '3' or os_name == 'posix') and "
                     "(platform_machine != 'arm64')"]
    with pytest.raises(BuildFailure, match="names a package index"):
        requirements('[packages]\nx = {version = "*", os_name = "== \'nt\' --index-url '
                     'https://evil.example/simple"}\n', "Pipfile")


@pytest.mark.parametrize("folder", ["", "binder/"])
def test_a_lock_without_a_python_takes_the_pipfiles(tmp_path: Path, folder: str) -> None:
    """repo2docker reads the Python of Pipfile.lock's _meta.requires, then the Pipfile's."""
    lock = json.dumps({"_meta": {"requires": {}}, "default": {}, "develop": {}})
    files = {f"{folder}Pipfile.lock": lock,
             f"{folder}Pipfile": '[packages]\n[requires]\npython_version = "3.10"\n'}
    lines = dockerfile(tmp_path, files)
    run = lines[position(lines, "conda_env.py\", \"--python\"")]
    argv = json.loads(run[run.index("["):])
    assert argv[argv.index("--python") + 1] == "3.10"
