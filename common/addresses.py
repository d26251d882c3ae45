"""Which network addresses the farm may fetch from on a repository's behalf.

A repository URL (or a redirect, or a provider API URL) names a host; the
farm must never be steered by it into its own network: loopback, private,
link-local, shared, multicast or otherwise non-global addresses, in any
spelling (``127.1``, ``2130706433``, ``[::ffff:127.0.0.1]``, a name that
resolves there). The rule, checked on the *resolved* addresses:

* ``https`` to a host whose every address is global is allowed;
* a host named in ``BINDER_ALLOWED_SOURCE_HOSTS`` (``host`` or
  ``host:port``) is allowed whatever its addresses, and only such hosts
  may be reached over plain ``http``;
* everything else is refused with a sentence, before any connection.

A host must be spelled plainly: ASCII letters, digits, ``-``, ``_`` and
dots, or an IP address. curl (under git) reads a percent-escaped name
(``%61.example``) or a non-ASCII one (IDN) as another name than the one
resolved and pinned here, and would look that one up by itself.

:func:`check_url` returns a :class:`CheckedTarget` holding the addresses it
checked; whoever connects must connect to those (``curl_resolve`` pins them
for git and curl), so a second DNS answer cannot point elsewhere.
:func:`leads_inward` applies the same test to a host alone (the registry a
Dockerfile pulls from, ``workers/image_policy.py``).

Tests stub the resolver (the ``resolve`` argument): nothing here connects.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from common.errors import BadRepoSource

#: host, port -> the addresses the host name resolves to (text form)
Resolver = Callable[[str, int], list[str]]

DEFAULT_PORTS = {"https": 443, "http": 80}

#: A host name as every client reads it byte for byte (an IPv4 address in any spelling is one).
_PLAIN_NAME = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*\.?")


class ForbiddenAddress(BadRepoSource):
    """The URL leads to an address this farm does not fetch from."""


class UnknownHost(BadRepoSource):
    """The URL's host name does not resolve (now)."""


@dataclass(frozen=True)
class CheckedTarget:
    """A URL that passed the address check, with the addresses it was checked on."""

    url: str
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int
    addresses: tuple[str, ...]
    allowed_host: bool  # named in BINDER_ALLOWED_SOURCE_HOSTS

    def curl_resolve(self) -> str:
        """``HOST:PORT:ADDR[,ADDR]`` for curl's ``--resolve`` / git's ``http.curloptResolve``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        addresses = ",".join(f"[{a}]" if ":" in a else a for a in self.addresses)
        return f"{host}:{self.port}:{addresses}"


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), without repeats."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnknownHost(f"The host {host[:100]} cannot be resolved.",
                          suggestions=["Check the host name in the URL."]) from exc
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone
        if address not in addresses:
            addresses.append(address)
    return addresses


def literal_address(host: str) -> str | None:
    """The address ``host`` spells, in any form getaddrinfo reads (``127.1``, ``0x7f000001``,
    ``2130706433``, ``::ffff:127.0.0.1``), or ``None`` for a host name."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except (OSError, UnicodeError, ValueError):
        return None


def is_public_address(address: str) -> bool:
    """True for a global unicast address, including IPv4 carried inside IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local:
            return False
        # NAT64 (64:ff9b::/96) counts as reserved above; these carry IPv4 inside.
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        return all(is_public_address(str(v4)) for v4 in embedded if v4 is not None)
    return True


def is_plain_host(host: str) -> bool:
    """True for a lower-case ASCII host name or an IPv6 address without a zone: a host
    that git's curl connects to under the very name this module resolves and pins."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return "%" not in host
    return _PLAIN_NAME.fullmatch(host) is not None


def split_host_port(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` as (lower-case host, port)."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    return host, (int(port) if port.isdigit() else None)


def host_is_allowed(host: str, port: int, allowed_hosts: Iterable[str]) -> bool:
    """True when ``host:port`` is named in ``allowed_hosts`` (an entry without a port names
    every port of its host)."""
    host = host.lower()
    for entry in allowed_hosts:
        allowed_host, allowed_port = split_host_port(entry)
        if allowed_host == host and allowed_port in (None, port):
            return True
    return False


def host_addresses(host: str, port: int, resolve: Resolver = resolve_host) -> tuple[str, ...]:
    """The addresses ``host`` stands for: the one it spells, else those ``resolve`` finds;
    ``UnknownHost`` when it finds none."""
    literal = literal_address(host)
    if literal is not None:
        return (literal,)
    addresses = tuple(resolve(host, port))
    if not addresses:
        raise UnknownHost(f"The host {host[:100]} cannot be resolved.",
                          suggestions=["Check the host name in the URL."])
    return addresses


def leads_inward(host: str, port: int, resolve: Resolver = resolve_host) -> bool:
    """True when ``host`` (an address literal, or a name resolved with ``resolve``) stands
    for any loopback, private, link-local or otherwise non-public address; a name that
    does not resolve raises ``UnknownHost``."""
    return not all(is_public_address(address)
                   for address in host_addresses(host, port, resolve))


def check_url(url: str, allowed_hosts: Iterable[str],
              resolve: Resolver | None = resolve_host) -> CheckedTarget:
    """Check ``url`` against the address rule (see the module docstring).

    Raises ``ForbiddenAddress`` (or ``BadRepoSource`` for a URL that names
    no plainly spelled host, has credentials or an unknown scheme, ``UnknownHost`` when the
    name does not resolve) with a sentence that does not repeat the URL.
    With ``resolve=None`` only addresses written in the URL are checked and
    host names pass unresolved (``addresses`` is empty): a quick refusal
    where no DNS lookup is wanted; whoever connects checks again, resolving.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or scheme not in DEFAULT_PORTS:
        raise BadRepoSource("The URL must be http(s)://HOST/... .",
                            suggestions=["Use an https URL."])
    if parts.username is not None or parts.password is not None:
        raise BadRepoSource("URLs with credentials are not accepted.",
                            suggestions=["Give the URL without user name or password."])
    if not is_plain_host(host):
        raise BadRepoSource("The URL's host must be written in ASCII letters, digits, dots "
                            "and dashes, or as an IP address.",
                            suggestions=["Write the host without %-escapes; an international "
                                         "name in its xn-- form."])
    port = port or DEFAULT_PORTS[scheme]
    allowed = list(allowed_hosts)
    named = host_is_allowed(host, port, allowed)
    if scheme == "http" and not named:
        raise ForbiddenAddress(
            f"Plain http is not accepted for {host[:100]}.",
            suggestions=["Use an https URL; operators may allow plain http for a host in "
                         "BINDER_ALLOWED_SOURCE_HOSTS."])
    if resolve is None:
        literal = literal_address(host)
        addresses: tuple[str, ...] = (literal,) if literal is not None else ()
    else:
        addresses = host_addresses(host, port, resolve)
    if not named:
        private = [address for address in addresses if not is_public_address(address)]
        if private:
            raise ForbiddenAddress(
                f"{host[:100]} leads to a loopback, private or link-local address, which this "
                "farm does not fetch from.",
                suggestions=["Use a repository on a public host; operators may allow a host "
                             "in BINDER_ALLOWED_SOURCE_HOSTS."])
    return CheckedTarget(url, scheme, host, port, addresses, named)


__all__ = ["CheckedTarget", "ForbiddenAddress", "Resolver", "UnknownHost", "check_url",
           "host_addresses", "host_is_allowed", "is_plain_host", "is_public_address",
           "leads_inward", "literal_address", "resolve_host", "split_host_port"]
