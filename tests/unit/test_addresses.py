"""``common/addresses.py``: the address rule, checked with a stubbed resolver.

Nothing here connects anywhere: every name resolves through ``fake_dns``.
"""

from __future__ import annotations

import socket

import pytest

from common.addresses import (
    ForbiddenAddress,
    UnknownHost,
    check_url,
    host_is_allowed,
    is_public_address,
    resolve_host,
)
from common.errors import BadRepoSource

DNS = {
    "public.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "metadata.example": ["169.254.169.254"],
    "rebind.example": ["93.184.216.34", "10.0.0.5"],
    "git.internal": ["10.1.2.3"],
    "v6loop.example": ["::1"],
}


def fake_dns(host: str, port: int) -> list[str]:
    if host in DNS:
        return DNS[host]
    try:  # literal addresses resolve to themselves, in the forms getaddrinfo accepts
        return [socket.inet_ntoa(socket.inet_aton(host))]
    except OSError:
        pass
    if ":" in host:
        return [host]
    raise UnknownHost(f"The host {host} cannot be resolved.")


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "192.0.2.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "fec0::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::1", "2002:a9fe:a9fe::1",
    "64:ff9b::a9fe:a9fe", "64:ff9b::808:808", "2001::1", "2001:db8::1", "not-an-address",
])
def test_non_global_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111",
                                     "2002:5db8:d822::1"])
def test_global_addresses_are_public(address: str) -> None:
    assert is_public_address(address)


def test_public_https_host_passes_with_its_checked_addresses() -> None:
    target = check_url("https://public.example/o/r", (), resolve=fake_dns)
    assert target.addresses == tuple(DNS["public.example"])
    assert (target.host, target.port, target.allowed_host) == ("public.example", 443, False)
    assert target.curl_resolve() == ("public.example:443:93.184.216.34,"
                                     "[2606:2800:220:1:248:1893:25c8:1946]")


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/o/r", "https://127.1/o/r", "https://2130706433/o/r",
    "https://0x7f000001/o/r", "https://017700000001/o/r", "https://[::1]/o/r",
    "https://[::ffff:127.0.0.1]/o/r", "https://169.254.169.254/latest/meta-data",
    "https://metadata.example/x", "https://git.internal/o/r", "https://v6loop.example/o/r",
    "https://[fe80::1]/o/r", "https://10.0.0.1:8443/o/r",
    # one private address among public ones is enough: git may pick any
    "https://rebind.example/o/r",
])
def test_private_loopback_and_link_local_targets_are_refused(url: str) -> None:
    with pytest.raises(ForbiddenAddress) as caught:
        check_url(url, (), resolve=fake_dns)
    assert "loopback, private or link-local" in caught.value.message
    assert "BINDER_ALLOWED_SOURCE_HOSTS" in caught.value.suggestions[0]


def test_an_allowed_host_may_be_private_and_use_plain_http() -> None:
    target = check_url("http://git.internal/o/r", ["git.internal"], resolve=fake_dns)
    assert target.allowed_host and target.port == 80 and target.addresses == ("10.1.2.3",)
    assert check_url("https://127.0.0.1:8080/x", ["127.0.0.1:8080"], resolve=fake_dns)


def test_an_allowed_host_port_allows_that_port_only() -> None:
    with pytest.raises(ForbiddenAddress):
        check_url("https://127.0.0.1:9999/x", ["127.0.0.1:8080"], resolve=fake_dns)
    with pytest.raises(ForbiddenAddress, match="Plain http is not accepted for 127.0.0.1"):
        check_url("http://127.0.0.1:9999/x", ["127.0.0.1:8080"], resolve=fake_dns)


def test_plain_http_only_for_the_allowed_hosts_themselves() -> None:
    with pytest.raises(ForbiddenAddress, match="Plain http"):
        check_url("http://public.example/o/r", ["git.internal"], resolve=fake_dns)


@pytest.mark.parametrize("url", ["ftp://public.example/x", "https:///x", "file:///etc/passwd",
                                 "https://user:pw@public.example/x", "https://public.example:x/"])
def test_urls_without_a_usable_host_are_refused(url: str) -> None:
    with pytest.raises(BadRepoSource):
        check_url(url, (), resolve=fake_dns)


# Names that a resolver may answer with a public address, but that curl (under git)
# reads as another name (decoding the escape, converting to xn--), which it then
# looks up itself: the pinned, checked addresses would not be the ones connected to.
@pytest.mark.parametrize("host", ["%6cocalhost.example", "public%2eexample", "ñ.example",
                                  "ｐublic.example", "public.example%00", "[fe80::1%25eth0]",
                                  "public.example\\.x"])
def test_hosts_not_spelled_plainly_are_refused_before_resolving(host: str) -> None:
    asked: list[str] = []

    def answers_public(name: str, port: int) -> list[str]:
        asked.append(name)
        return ["93.184.216.34"]

    for resolve in (answers_public, None):
        with pytest.raises(BadRepoSource, match="ASCII letters, digits"):
            check_url(f"https://{host}/o/r", (), resolve=resolve)
    assert asked == []


@pytest.mark.parametrize("url", ["https://public.example./o/r", "https://Public.Example/o/r",
                                 "https://xn--ida.example/o/r", "https://_git.public.example/"])
def test_plain_host_names_pass(url: str) -> None:
    assert check_url(url, (), resolve=lambda host, port: ["93.184.216.34"]).addresses


def test_unknown_host_is_its_own_error() -> None:
    with pytest.raises(UnknownHost, match="cannot be resolved"):
        check_url("https://nowhere.invalid/x", (), resolve=fake_dns)


def test_the_real_resolver_reads_literals_without_a_network() -> None:
    assert resolve_host("127.0.0.1", 443) == ["127.0.0.1"]
    assert resolve_host("2130706433", 443) == ["127.0.0.1"]


@pytest.mark.parametrize(("entry", "host", "port", "allowed"), [
    ("git.example", "GIT.example", 443, True),
    ("git.example:8443", "git.example", 8443, True),
    ("git.example:8443", "git.example", 443, False),
    ("[::1]:8080", "::1", 8080, True),
    ("other.example", "git.example", 443, False),
])
def test_allowed_host_entries(entry: str, host: str, port: int, allowed: bool) -> None:
    assert host_is_allowed(host, port, [entry]) is allowed
