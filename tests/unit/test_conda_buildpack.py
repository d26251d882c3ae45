"""The environment.yml buildpack: parsing, rendering, and its script on this host.

The script tests solve and install from a local channel served on 127.0.0.1
(no Docker); the Docker build itself is in tests/integration/test_conda_env.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from common.config import load_config
from common.errors import BuildFailure
from tests.support.conda_channel import CondaPackage, make_channel, script_package
from tests.support.static_http import serve_directory
from workers.base_image import RECIPE_DIR
from workers.buildpacks import BUILDPACKS, detect
from workers.buildpacks import conda_env as script
from workers.buildpacks.base import BuildInputs
from workers.buildpacks.conda import RATTLER_PYTHON, CondaBuildPack
from workers.config_files import cap_for


def inputs_for(tmp_path: Path, text: str, *, where: str = "environment.yml",
               index_url: str = "") -> BuildInputs:
    checkout = tmp_path / "checkout"
    (checkout / where).parent.mkdir(parents=True, exist_ok=True)
    (checkout / where).write_text(text)
    environ = {"BINDER_PIP_INDEX_URL": index_url} if index_url else {}
    return BuildInputs(checkout=checkout, config_path=PurePosixPath(where),
                       config=load_config(environ=environ))


def run_lines(dockerfile: str) -> list[list[str]]:
    return [json.loads(line.removeprefix("RUN ")) for line in dockerfile.splitlines()
            if line.startswith("RUN ")]


# parse_environment


def test_parse_splits_conda_and_pip_dependencies() -> None:
    spec = script.parse_environment(
        "name: demo\nchannels: [conda-forge, bioconda]\n"
        "dependencies:\n  - numpy=1.26\n  - python >=3.10\n  - pip:\n    - tinypkg==0.1\n")
    assert spec.channels == ("conda-forge", "bioconda")
    assert spec.conda == ("numpy=1.26", "python >=3.10")
    assert spec.pip == ("tinypkg==0.1",)
    assert spec.ignored == ()


def test_parse_reports_ignored_keys_and_accepts_an_empty_file() -> None:
    assert script.parse_environment("variables: {A: 1}\n").ignored == ("variables",)
    assert script.parse_environment("") == script.EnvironmentSpec()


@pytest.mark.parametrize(("text", "message"), [
    ("dependencies: [numpy\n", "environment.yml is not valid YAML (line 2)"),
    ("- numpy\n", "environment.yml must be a mapping"),
    ("dependencies: numpy\n", "`dependencies` must be a list"),
    ("dependencies: [{npm: [x]}]\n", "unknown subsection `npm`"),
    ("dependencies: [{pip: tinypkg}]\n", "`pip` must be a list"),
    ("dependencies: [[numpy]]\n", "must be a text"),
    ("channels: [file:///srv/channel]\n", "is not an http(s) URL"),
    ("channels: ['conda forge']\n", "is not a channel name or URL"),
    ("channels: ['https://[conda-forge/']\n", "is not an http(s) URL"),  # urlsplit refuses it
    ("dependencies: [" + "1" * 5000 + "]\n", "integers must fit in 64 bits"),
])
def test_parse_errors_are_sentences(text: str, message: str) -> None:
    with pytest.raises(script.EnvironmentFileError) as caught:
        script.parse_environment(text)
    assert message in str(caught.value)


def test_channel_names_map_to_the_channel_alias_and_urls_stay() -> None:
    spec = script.parse_environment(
        "channels: [conda-forge, 'http://127.0.0.1:9/ch/', conda-forge/label/dev, nodefaults, "
        "conda-forge]\n")
    assert script.resolve_channels(spec) == [
        "https://conda.anaconda.org/conda-forge", "http://127.0.0.1:9/ch",
        "https://conda.anaconda.org/conda-forge/label/dev"]
    assert script.resolve_channels(script.EnvironmentSpec()) == [
        "https://conda.anaconda.org/conda-forge"]
    assert script.channel_urls("defaults") == list(script.DEFAULT_CHANNELS)


@pytest.mark.parametrize(("entry", "local"), [
    ("tinypkg", False), ("git+https://example.org/x.git", False), ("--index-url https://x", False),
    ("-e .", True), ("-r requirements.txt", True), ("./src/pkg", True), ("file:pkg", True),
    ("~/pkg", True), ("wheels/tinypkg-1.0-py3-none-any.whl", True),
    # a bare name is the repository's file when there is one beside environment.yml
    ("tinypkg-1.0-py3-none-any.whl", True), ("other-1.0-py3-none-any.whl", False),
])
def test_pip_entries_that_need_the_repository_install_after_the_copy(
        tmp_path: Path, entry: str, local: bool) -> None:
    inputs = inputs_for(tmp_path, f"dependencies: [numpy, {{pip: [{entry!r}]}}]\n",
                        where="binder/environment.yml")
    (inputs.checkout / "binder" / "tinypkg-1.0-py3-none-any.whl").write_bytes(b"")
    lines = CondaBuildPack().render(inputs).splitlines()
    install = next(n for n, line in enumerate(lines)
                   if line.startswith("RUN ") and "conda_env.py" in line)
    copy_repo = lines.index("COPY --chown=1000:1000 repo/ /home/jovyan/")
    assert (install > copy_repo) is local


# the buildpack


def test_environment_yml_is_detected_after_requirements_txt(tmp_path: Path) -> None:
    inputs = inputs_for(tmp_path, "dependencies: [numpy]\n", where="binder/environment.yml")
    detection = detect(inputs.checkout, inputs.config)
    assert isinstance(detection.buildpack, CondaBuildPack)
    assert detection.config_path == PurePosixPath("binder/environment.yml")
    assert any(isinstance(p, CondaBuildPack) for p in BUILDPACKS)
    (inputs.checkout / "binder" / "requirements.txt").write_text("tinypkg\n")
    assert detect(inputs.checkout, inputs.config).buildpack.id == "requirements.txt"


def script_run(argv: list[str]) -> list[str]:
    return argv[argv.index(RATTLER_PYTHON):]


def test_render_stages_only_the_environment_file_before_installing(tmp_path: Path) -> None:
    inputs = inputs_for(tmp_path, "dependencies: [numpy, {pip: [tinypkg]}]\n",
                        where="binder/environment.yml", index_url="http://127.0.0.1:8/simple/")
    text = CondaBuildPack().render(inputs)
    lines = text.splitlines()
    assert lines[:2] == [f"FROM {inputs.base_image}", "USER root"]
    assert "COPY --chown=1000:1000 repo/binder/environment.yml /tmp/binder/environment.yml" \
        in lines
    [run] = [line for line in lines if line.startswith("RUN ")]
    assert "--mount=type=cache,id=binder-rattler,target=/var/cache/binder/rattler" in run
    argv = json.loads(run[run.index("["):])
    assert argv[:7] == [RATTLER_PYTHON, "/tmp/binder/conda_env.py",
                        "/tmp/binder/environment.yml", "--max-bytes", "524288",
                        "--prefix", "/srv/env"]
    installer = json.loads(argv[argv.index("--installer") + 1])
    assert installer[:6] == ["uv", "pip", "install", "--no-config", "--python", "{python}"]
    assert installer[-2:] == ["--index-url", "http://127.0.0.1:8/simple/"]
    assert argv[argv.index("--cache-dir") + 1] == "/var/cache/binder/rattler"
    install = lines.index(run)
    copy_repo = lines.index("COPY --chown=1000:1000 repo/ /home/jovyan/")
    assert argv[-2:] == ["--channel", "conda-forge"]
    assert install < copy_repo
    assert lines[-4:-1] == ["USER jovyan", "WORKDIR /home/jovyan", "EXPOSE 8888"]


def test_render_without_pip_index_passes_no_index(tmp_path: Path) -> None:
    text = CondaBuildPack().render(inputs_for(tmp_path, "dependencies: [numpy]\n"))
    assert "--index-url" not in text


def test_the_farms_channels_replace_the_files_and_detect_says_so(tmp_path: Path) -> None:
    inputs = inputs_for(tmp_path, "channels: [https://evil.example/ch, defaults]\n"
                                  "dependencies: [numpy]\n")
    farm = BuildInputs(inputs.checkout, inputs.config_path,
                       inputs.config.replace(conda_channels=("https://conda.example/farm",)))
    assert CondaBuildPack().notices(farm) == [
        "environment.yml names its own package sources (https://evil.example/ch, defaults); "
        "this farm uses its configured sources instead: https://conda.example/farm."]
    run = next(line for line in CondaBuildPack().render(farm).splitlines()
               if line.startswith("RUN ") and "conda_env.py" in line)
    assert json.loads(run[run.index("["):])[-2:] == ["--channel", "https://conda.example/farm"]
    same = inputs_for(tmp_path / "same", "channels: [conda-forge]\ndependencies: [numpy]\n")
    assert CondaBuildPack().notices(same) == []


def test_render_copies_the_repository_first_for_local_pip_references(tmp_path: Path) -> None:
    inputs = inputs_for(tmp_path, "dependencies: [{pip: ['-e .']}]\n",
                        where="binder/environment.yml")
    lines = CondaBuildPack().render(inputs).splitlines()
    run = next(i for i, line in enumerate(lines) if line.startswith("RUN "))
    assert lines[run - 2:run] == ["COPY --chown=1000:1000 repo/ /home/jovyan/",
                                  "WORKDIR /home/jovyan"]
    argv = json.loads(lines[run][lines[run].index("["):])
    assert argv[2:5] == ["binder/environment.yml", "--max-bytes", "524288"]


def test_render_of_an_invalid_file_leaves_the_error_to_the_build(tmp_path: Path) -> None:
    inputs = inputs_for(tmp_path, "dependencies: [\n")
    assert "repo/environment.yml /tmp/binder/environment.yml" in CondaBuildPack().render(inputs)
    with pytest.raises(BuildFailure, match="environment.yml is not valid YAML"):
        CondaBuildPack().check(inputs)


def test_extra_files_ship_the_script_and_the_yaml_loader(tmp_path: Path) -> None:
    import subprocess
    import sys

    from workers import repo_yaml

    files = CondaBuildPack().extra_files(inputs_for(tmp_path, "dependencies: []\n"))
    assert files == {"conda_env.py": Path(script.__file__).read_bytes(),
                     "repo_yaml.py": Path(repo_yaml.__file__).read_bytes()}
    for data in files.values():
        assert b"from common" not in data
    # Shipped alone (the farm's packages not importable), the script reads YAML with the
    # loader beside it, aliases refused.
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name, data in files.items():
        (shipped / name).write_bytes(data)
    probe = ("import sys; sys.modules['workers'] = None; sys.modules['common'] = None; "
             f"sys.path.insert(0, {str(shipped)!r}); import conda_env as c\n"
             "try:\n    c.parse_environment('a: &x [1]\\nb: *x\\n')\n"
             "except c.EnvironmentFileError as e:\n    print(e)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert done.stdout.strip() == ("environment.yml (line 1): YAML anchors (&name) are not "
                                   "accepted; write the value out in full."), done.stderr


def test_render_ships_the_loader_beside_the_script(tmp_path: Path) -> None:
    lines = CondaBuildPack().render(inputs_for(tmp_path, "dependencies: []\n")).splitlines()
    assert ("COPY --chown=1000:1000 .binder-build/conda_env.py .binder-build/repo_yaml.py "
            "/tmp/binder/") in lines


@pytest.mark.parametrize(("text", "entry"), [
    ("dependencies: [{pip: [tinypkg, '--index-url https://evil.example/simple']}]\n", 2),
    ("dependencies: [{pip: ['-i https://evil.example/simple']}]\n", 1),
    ("dependencies: [{pip: ['--extra-index-url=https://evil.example/simple']}]\n", 1),
    ("dependencies: [{pip: ['-f https://evil.example/links']}]\n", 1),
    # pip joins an entry ending with a backslash to the next one, as lines of its file
    ("dependencies: [{pip: [ok, '--extra-ind\\', 'ex-url=https\\', '://evil.example/s']}]\n", 2),
    ("dependencies: [{pip: ['-\\', 'ihttps\\', '://evil.example/simple']}]\n", 1),
])
def test_pip_entries_may_not_name_an_index(tmp_path: Path, text: str, entry: int) -> None:
    with pytest.raises(BuildFailure, match=rf"^environment.yml pip: entry {entry} \(`"):
        CondaBuildPack().check(inputs_for(tmp_path, text))


@pytest.mark.parametrize("dependency", [
    "https://evil.example/noarch/p-1.0-0.tar.bz2",
    "HTTP://evil.example/p-1.0-0.conda",
    "' s3://bucket/p-1.0-0.conda'",
    "'numpy[url=https://evil.example/numpy-1.0-0.conda]'",
    "'numpy[version=1.0, url=https://evil.example/numpy-1.0-0.conda]'",
])
def test_conda_dependencies_may_not_be_package_urls(tmp_path: Path, dependency: str) -> None:
    with pytest.raises(BuildFailure, match=r"downloads a package from a URL; this farm "
                                           r"installs conda packages only from its own channels"):
        CondaBuildPack().check(inputs_for(tmp_path, f"dependencies: [numpy, {dependency}]\n"))


@pytest.mark.parametrize(("written", "url"), [
    ('p[url="https://evil.example/p-1.0-0.conda"]', "https://evil.example/p-1.0-0.conda"),
    ('numpy ==1.0[build="py", url="s3://b/p.conda"]', "s3://b/p.conda"),
    ('numpy[build="[", url="https://x/p.conda"]', "https://x/p.conda"),
    ('numpy[build="a]b"]', None), ('numpy >=1', None), ('numpy[sha256="url=x"]', None),
    ('numpy[build="' + "[" * 300_000 + '"]', None),
    ('numpy[build="' + "[ " * 100_000 + 'url=x"]', None),
])
def test_the_url_a_spec_downloads_from_is_found_in_one_pass(written: str,
                                                            url: str | None) -> None:
    # As rattler writes a spec back; the long ones made a backtracking search take
    # minutes (its time grew with the square of the spec's length).
    assert script.package_url(written) == url


def test_conda_dependencies_by_name_channel_or_local_file_pass(tmp_path: Path) -> None:
    CondaBuildPack().check(inputs_for(
        tmp_path, "dependencies: [numpy >=1, 'conda-forge::scipy', 'python 3.12.*',"
                  " /tmp/local-1.0-0.conda]\n"))


def test_pip_entries_follow_requirement_files_in_the_repository(tmp_path: Path) -> None:
    inputs = inputs_for(tmp_path, "dependencies: [{pip: ['-r more.txt']}]\n",
                        where="binder/environment.yml")
    (inputs.checkout / "binder" / "more.txt").write_text("ok\n--trusted-host evil.example\n")
    with pytest.raises(BuildFailure, match=r"^binder/more.txt line 2 \(`--trusted-host"):
        CondaBuildPack().check(inputs)


def test_an_oversized_environment_file_is_not_parsed(tmp_path: Path) -> None:
    inputs = inputs_for(tmp_path, "# " + "x" * (600 * 1024) + "\n", where="binder/environment.yml")
    with pytest.raises(BuildFailure) as caught:
        CondaBuildPack().check(inputs)
    assert caught.value.message == ("binder/environment.yml is 600 KiB; this farm reads config "
                                    "files of at most 512 KiB.")
    assert caught.value.suggestions == [
        cap_for("environment.yml").advice.format(name="binder/environment.yml")]


def test_parse_errors_never_repeat_a_huge_value() -> None:
    huge = "x" * 100_000
    for text in (f"channels: ['{huge}!']\n", f"channels: [[{huge}]]\n"):
        with pytest.raises(script.EnvironmentFileError) as caught:
            script.parse_environment(text)
        assert len(str(caught.value)) < 400
    spec = script.parse_environment(f"dependencies: ['{huge}[']\n")
    with pytest.raises(script.EnvironmentFileError) as caught:
        script.match_specs(spec.conda)
    assert len(str(caught.value)) < 400



# the script, run on this host against a local channel


IR_KERNEL = "share/jupyter/kernels/ir/kernel.json"


@pytest.fixture(scope="module")
def channel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("channel")
    make_channel(root, [
        script_package("hello-conda", "hello from conda"),
        script_package("needy", "needs more", depends=("missing-thing >=2",)),
        CondaPackage("data-only", files={"share/data-only/data.txt": b"42\n"}),
        script_package("r-base", "R would start"),
        CondaPackage("r-irkernel", files={IR_KERNEL: b'{"argv": ["R"], "language": "R"}'}),
    ])
    with serve_directory(root) as url:
        yield url


#: The installer the script is given here: no index, so nothing is fetched from anywhere.
OFFLINE_INSTALLER = json.dumps(["{python}", "-m", "pip", "install", "--no-index",
                                "--disable-pip-version-check"])


@pytest.fixture(autouse=True)
def make_env_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    """The script runs here, not in the base image: the venv script comes from the recipe."""
    monkeypatch.setattr(script, "MAKE_ENV_VENV", str(RECIPE_DIR / "make-env-venv"))


def run_script(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str],
               *options: str) -> tuple[int, str, str]:
    env_file = tmp_path / "environment.yml"
    env_file.write_text(text)
    code = script.main([str(env_file), "--prefix", str(tmp_path / "env"),
                        "--max-bytes", str(cap_for("environment.yml").max_bytes),
                        "--installer", OFFLINE_INSTALLER, *options])
    out, err = capsys.readouterr()
    return code, out, err


def test_script_solves_and_installs_from_the_channel(
        tmp_path: Path, channel_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_script(
        tmp_path, f"channels: [{channel_url}]\ndependencies: [hello-conda, data-only]\n", capsys)
    assert code == 0, err
    prefix = tmp_path / "env"
    assert (prefix / "bin" / "hello-conda").stat().st_mode & 0o111
    assert (prefix / "share" / "data-only" / "data.txt").read_text() == "42\n"
    assert sorted(p.name.split("-1.0")[0] for p in (prefix / "conda-meta").glob("*.json")) == [
        "data-only", "hello-conda"]
    assert f"solving 2 conda dependencies for linux-64 from: {channel_url}" in out
    assert "  hello-conda 1.0 0" in out
    # No Python among them: the prefix becomes a venv over the system's, whose missing
    # ipykernel the (offline) installer cannot give, which the log says.
    assert "the conda environment has no Python: making" in out
    assert (prefix / "bin" / "python").exists() and (prefix / "pyvenv.cfg").exists()
    assert "WARNING: ipykernel could not be installed" in out


@pytest.mark.parametrize("dependencies", ["[r-base]", "[r-base, r-irkernel]"])
def test_r_packages_bring_the_r_kernel_as_in_repo2docker(
        tmp_path: Path, channel_url: str, capsys: pytest.CaptureFixture[str],
        dependencies: str) -> None:
    """repo2docker adds r-irkernel to an environment that installs R packages; the package
    registers the kernel in the environment's share/jupyter, where notebooks look."""
    code, out, err = run_script(
        tmp_path, f"channels: [{channel_url}]\ndependencies: {dependencies}\n", capsys)
    assert code == 0, err
    assert (tmp_path / "env" / IR_KERNEL).exists()
    assert f"solving 2 conda dependencies for linux-64 from: {channel_url}" in out


def test_script_solves_from_the_farms_channels_not_the_files(
        tmp_path: Path, channel_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # the file's channel is a closed loopback port: used, the solve would fail
    code, out, err = run_script(tmp_path, "channels: ['http://127.0.0.1:9/nothing']\n"
                                          "dependencies: [hello-conda]\n", capsys,
                                "--channel", channel_url)
    assert code == 0, err + out
    assert f"using this farm's channels: {channel_url}" in out
    assert f"solving 1 conda dependencies for linux-64 from: {channel_url}" in out


@pytest.mark.parametrize(("dependencies", "message"), [
    ("[nope]", "conda could not solve the environment: nothing provides nope. Check"),
    ("['hello-conda >=3']", "nothing provides hello-conda >=3"),
    ("[needy]", "needy 1.0 would require missing-thing >=2, for which no candidates"),
    ("['hello-conda >>=1']", "'hello-conda >>=1' is not a valid conda package spec"),
])
def test_script_errors_end_with_one_sentence(
        tmp_path: Path, channel_url: str, capsys: pytest.CaptureFixture[str],
        dependencies: str, message: str) -> None:
    code, out, _ = run_script(
        tmp_path, f"channels: [{channel_url}]\ndependencies: {dependencies}\n", capsys)
    assert code == 1
    last = out.strip().splitlines()[-1]
    assert last.startswith("BINDER-ERROR: ") and message in last


def test_script_reports_an_unreachable_channel(
        tmp_path: Path, channel_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_script(
        tmp_path, f"channels: [{channel_url}/missing]\ndependencies: [hello-conda]\n", capsys)
    assert code == 1
    assert "404" in err  # the details
    assert out.strip().splitlines()[-1].startswith(
        "BINDER-ERROR: conda could not read the channels of environment.yml")


def test_script_reports_invalid_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_script(tmp_path, "dependencies: [hello-conda\n", capsys)
    assert code == 1
    assert out.startswith("BINDER-ERROR: environment.yml is not valid YAML")


def test_script_reads_the_file_only_within_the_cap_it_is_given(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_script(tmp_path, "# " + "x" * 2048 + "\n", capsys, "--max-bytes", "1024")
    assert code == 1
    assert out == ("BINDER-ERROR: environment.yml is 2 KiB; this farm reads config files of at "
                   "most 1 KiB.\n")
    with pytest.raises(SystemExit):  # a file and no cap: refused before anything runs
        script.main([str(tmp_path / "environment.yml"), "--prefix", str(tmp_path / "env")])


def test_existing_python_is_used_not_a_venv(tmp_path: Path) -> None:
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text("#!/bin/sh\n")
    assert script.ensure_python(tmp_path) == python
    assert not (tmp_path / "pyvenv.cfg").exists()


def test_an_environment_without_python_becomes_the_base_images_kind_of_venv(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same script as the base image's /srv/env, so that Jupyter runs the venv's
    Python and loads the server extensions installed into it."""
    commands: list[list[str]] = []
    monkeypatch.setattr(script, "_run", lambda command, failure: commands.append(command))
    assert script.ensure_python(tmp_path) == tmp_path / "bin" / "python"
    assert commands == [[str(RECIPE_DIR / "make-env-venv"), str(tmp_path)]]


def test_a_base_image_without_the_venv_script_gets_a_plain_venv(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's own base image (BINDER_BASE_IMAGE) may not have the script."""
    commands: list[list[str]] = []
    monkeypatch.setattr(script, "_run", lambda command, failure: commands.append(command))
    monkeypatch.setattr(script, "MAKE_ENV_VENV", str(tmp_path / "missing"))
    script.ensure_python(tmp_path)
    assert commands == [["/usr/bin/python3", "-m", "venv", "--system-site-packages",
                         str(tmp_path)]]
