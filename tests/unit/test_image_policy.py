"""``workers/image_policy.py``: image names as Docker resolves them, and the allowed list."""

from __future__ import annotations

import pytest

from common.addresses import UnknownHost
from common.errors import BuildFailure
from workers.image_policy import (
    FarmImages,
    InvalidReference,
    check_dockerfile,
    parse_reference,
)

BASE = "127.0.0.1:5000/binder-base"


@pytest.mark.parametrize(("text", "normalised"), [
    ("debian", "docker.io/library/debian:latest"),
    ("debian:12", "docker.io/library/debian:12"),
    ("docker.io/library/debian:12", "docker.io/library/debian:12"),
    ("index.docker.io/library/debian", "docker.io/library/debian:latest"),
    ("jupyter/base-notebook", "docker.io/jupyter/base-notebook:latest"),
    ("127.0.0.1:5000/binder-base:latest", "127.0.0.1:5000/binder-base:latest"),
    ("localhost/x", "localhost/x:latest"),
    ("Registry.example/a/b__c-d.e:v1.0_x", "Registry.example/a/b__c-d.e:v1.0_x"),
    ("debian@sha256:" + "a" * 64, "docker.io/library/debian@sha256:" + "a" * 64),
])
def test_references_normalise_as_docker_does(text: str, normalised: str) -> None:
    assert str(parse_reference(text)) == normalised


@pytest.mark.parametrize("text", ["Debian", "a" * 64, "debian:", "debian:-x", "-x", "a//b",
                                  "reg.example:port/x", "a_b.example/x", "x@sha256:12",
                                  "x y", "$IMG", ""])
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(text)


@pytest.mark.parametrize("dockerfile", [
    f"FROM {BASE}\n",
    f"FROM {BASE}:v2 AS build\nFROM build\nCOPY --from=build /a /b\n",
    f"ARG B={BASE}\nFROM $B\n",
    "FROM debian:12\n",
    "FROM docker.io/library/debian:12\n",
    "FROM scratch\n",
])
def test_allowed_images_pass(dockerfile: str) -> None:
    check_dockerfile(dockerfile, [BASE, "debian:12"])


@pytest.mark.parametrize(("dockerfile", "shown"), [
    ("FROM debian:11\n", "FROM on line 1 would pull docker.io/library/debian:11"),
    ("FROM debian:12@sha256:" + "b" * 64 + "\n", "FROM on line 1 would pull"),
    (f"FROM {BASE}\nFR\\\nOM evil\n", "FROM on line 2 would pull docker.io/library/evil:latest"),
    (f"\ufeff# escape=`\nFROM {BASE}\nRUN x \\\nFROM evil\n", "FROM on line 4"),
    ("ARG IMG=evil\nFROM ${IMG}\n", "would pull docker.io/library/evil:latest"),
    (f"FROM {BASE}\nCOPY --from=evil:1 / /\n", "COPY --from on line 2 would pull"),
    (f"FROM {BASE}\nRUN --mount=from=evil,target=/x true\n", "RUN --mount from= on line 2"),
    (f"# syntax=evil/frontend\nFROM {BASE}\n", "# syntax on line 1 would pull"),
    (f"FROM {BASE} AS b\nONBUILD COPY --from=evil / /\nFROM b\n", "ONBUILD COPY --from"),
])
def test_images_outside_the_list_are_refused_naming_line_and_list(dockerfile: str,
                                                                  shown: str) -> None:
    with pytest.raises(BuildFailure) as caught:
        check_dockerfile(dockerfile, [BASE, "debian:12"])
    assert shown in caught.value.message
    assert caught.value.message.endswith(f"allowed images: {BASE}, debian:12.")


def test_a_stage_named_in_another_case_is_not_an_image_to_pull() -> None:
    uses = check_dockerfile("FROM debian:12 AS b\nRUN true\nFROM B\n", ["debian:12"])
    assert [use.image for use in uses] == ["debian:12"]


def test_an_empty_list_allows_any_image_but_not_an_unbuildable_file() -> None:
    assert [u.image for u in check_dockerfile("FROM anything:1\n", [])] == ["anything:1"]
    with pytest.raises(BuildFailure, match="no FROM line"):
        check_dockerfile("RUN true\n", [])
    with pytest.raises(BuildFailure, match=r"names 'UPPER', which is not an image name"):
        check_dockerfile("FROM UPPER\n", [])


def test_a_bad_allowed_entry_is_an_operator_error() -> None:
    with pytest.raises(BuildFailure, match="BINDER_ALLOWED_BASE_IMAGES holds 'Not Valid'"):
        check_dockerfile("FROM x\n", ["Not Valid"])


FARM = FarmImages("127.0.0.1:5000", ("127.0.0.1:5000/binder-base:jupyterlab4",
                                       "127.0.0.1:5000/binder-root:latest"))

#: Registry names and what they resolve to; nothing is looked up for real.
DNS = {"registry.example": ["93.184.216.34"], "sneaky.example": ["127.0.0.1"],
       "mixed.example": ["93.184.216.34", "10.1.2.3"], "metadata.example": ["169.254.169.254"],
       "v6.example": ["2606:4700::1111", "fd00::5"]}
looked_up: list[tuple[str, int]] = []


def fake_dns(host: str, port: int) -> list[str]:
    looked_up.append((host, port))
    if host not in DNS:
        raise UnknownHost(f"The host {host} cannot be resolved.")
    return DNS[host]


@pytest.mark.parametrize(("dockerfile", "registry"), [
    ("FROM 127.0.0.1:6379/x\n", "127.0.0.1:6379"),
    ("FROM localhost:27017/x:1\n", "localhost:27017"),
    ("FROM LOCALHOST/x\n", "LOCALHOST"),
    ("FROM api.localhost:8082/x\n", "api.localhost:8082"),
    ("FROM [::1]:2375/x\n", "[::1]:2375"),
    ("FROM 127.1:5000/x\n", "127.1:5000"),
    ("FROM 0x7f000001:80/x\n", "0x7f000001:80"),
    ("FROM 10.0.0.5/x\n", "10.0.0.5"),
    ("FROM 169.254.169.254/latest\n", "169.254.169.254"),
    ("FROM [fe80::1]:80/x\n", "[fe80::1]:80"),
    ("FROM debian\nCOPY --from=192.168.1.1:80/x / /\n", "192.168.1.1:80"),
    ("# syntax=127.0.0.1:6000/frontend\nFROM debian\n", "127.0.0.1:6000"),
])
def test_images_on_loopback_or_private_registries_are_refused(dockerfile: str,
                                                              registry: str) -> None:
    """The engine would connect there itself (plain http for loopback), from the host's
    network, whatever network builds run on."""
    with pytest.raises(BuildFailure) as caught:
        check_dockerfile(dockerfile, [], farm=FARM)
    assert f"from {registry}, a loopback, private or link-local registry" in \
        caught.value.message


@pytest.mark.parametrize("image", ["127.0.0.1:5000/binder-private-repo:1a2b",
                                   "127.0.0.1:5000/other/binder-base"])
def test_only_the_farms_own_base_images_come_from_its_registry(image: str) -> None:
    """The engine pulls with the registry's login, and the images built from other (maybe
    private) repositories are there."""
    with pytest.raises(BuildFailure, match="from this farm's registry, which holds the "
                                           "images of other repositories"):
        check_dockerfile(f"FROM {image}\n", [], farm=FARM)
    check_dockerfile(f"FROM {image}\n", [image], farm=FARM)  # an operator's choice


def test_the_farms_own_images_and_allowed_images_are_pulled_from_anywhere() -> None:
    check_dockerfile("FROM 127.0.0.1:5000/binder-root\n", [], farm=FARM)
    check_dockerfile("FROM 127.0.0.1:5000/binder-base:other-tag\n", [], farm=FARM)
    check_dockerfile("FROM registry.example/x\nFROM 8.8.8.8/y\n", [], farm=FARM,
                     resolve=fake_dns)
    check_dockerfile("FROM 10.0.0.5/x:1\n", ["10.0.0.5/x"], farm=FARM)
    with pytest.raises(BuildFailure, match="private"):
        check_dockerfile("FROM localhost:5000/x\n", [], farm=FARM)


@pytest.mark.parametrize(("dockerfile", "registry", "image"), [
    ("FROM sneaky.example/x\n", "sneaky.example", "sneaky.example/x"),
    ("FROM mixed.example:5000/x:1\n", "mixed.example:5000", "mixed.example:5000/x"),
    ("FROM debian\nCOPY --from=metadata.example/latest / /\n", "metadata.example",
     "metadata.example/latest"),
    ("FROM V6.Example/x\n", "V6.Example", "V6.Example/x"),
])
def test_images_on_registries_whose_names_resolve_inward_are_refused(
        dockerfile: str, registry: str, image: str) -> None:
    """A name is as good as an address: the engine would look it up and connect there,
    from the host's network."""
    with pytest.raises(BuildFailure) as caught:
        check_dockerfile(dockerfile, [], farm=FARM, resolve=fake_dns)
    assert f"from {registry}, a loopback, private or link-local registry" in \
        caught.value.message
    check_dockerfile(dockerfile, [image, "debian"], farm=FARM,
                     resolve=fake_dns)  # an operator's choice


def test_a_registry_name_that_does_not_resolve_is_refused_with_a_sentence() -> None:
    with pytest.raises(BuildFailure, match="from nowhere.example, a registry whose name does "
                                           "not resolve"):
        check_dockerfile("FROM nowhere.example/x\n", [], farm=FARM, resolve=fake_dns)


def test_docker_hub_and_the_farms_own_images_are_not_looked_up() -> None:
    looked_up.clear()
    check_dockerfile("FROM debian:12\nFROM docker.io/library/python\n"
                     "FROM 127.0.0.1:5000/binder-root\nFROM registry.example:8443/x\n", [],
                     farm=FARM, resolve=fake_dns)
    assert looked_up == [("registry.example", 8443)]
