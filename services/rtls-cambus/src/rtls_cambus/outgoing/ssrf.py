"""Where webhooks may be sent: the target's host is resolved once, every address is checked, and the request
goes to the checked address (the connection is pinned to it), so DNS cannot answer differently between the check
and the connect.

Refused unless `webhook_allowed_targets` lists them: loopback, private (RFC 1918, unique local), link-local
(including the cloud metadata addresses 169.254.169.254 and fd00:ec2::254), multicast, reserved and unspecified
addresses, and IPv4-mapped forms of these. Redirects are never followed (a 3xx is a failed delivery), so a
receiver cannot bounce a request to an internal address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
K = TypeVar("K")
V = TypeVar("V")

RESOLVED_MAX = 10_000
"""Hosts whose addresses, and URLs whose targets, a policy keeps at most (subscriptions name a few; emptied when
full)."""
_METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))


class TargetRefusedError(ValueError):
    """The URL is not one webhooks may be sent to; the message says why, without secrets."""


@dataclass(frozen=True)
class Target:
    """A checked destination: the URL as given, its host and port, and the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: IpAddress

    @cached_property
    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address, so the connection cannot be re-resolved."""
        parts = urlsplit(self.url)
        host = f"[{self.address}]" if isinstance(self.address, ipaddress.IPv6Address) else str(self.address)
        return urlunsplit((parts.scheme, f"{host}:{self.port}", parts.path or "/", parts.query, ""))

    @cached_property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


class TargetPolicy:
    """Allowed exceptions are CIDRs (`127.0.0.0/8`, `::1/128`) or host names (`receiver.local`).

    `cache_seconds` (the dispatcher's): a host's addresses, and a URL's checked target, are reused for that long
    instead of a DNS lookup and a check before every attempt (the check depends only on the addresses and this
    policy, which does not change). Failed lookups and refused targets are not kept.
    """

    def __init__(self, allowed: Iterable[str] = (), *, cache_seconds: float = 0.0) -> None:
        self.networks: list[IpNetwork] = []
        self.hosts: set[str] = set()
        self.cache_seconds = cache_seconds
        self.lookups = 0
        """DNS lookups made (not counting literal addresses and addresses reused)."""
        self._resolved: dict[tuple[str, int], tuple[float, list[IpAddress]]] = {}
        self._targets: dict[str, tuple[float, Target]] = {}
        for item in allowed:
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.add(item.lower().rstrip("."))

    def address_allowed(self, address: IpAddress, host: str) -> bool:
        if host in self.hosts or any(address in network for network in self.networks):
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return not (
            address in _METADATA
            or address.is_loopback
            or address.is_private
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
            or not address.is_global
        )

    async def resolve(self, url: str) -> Target:
        """The checked target of `url`; `TargetRefusedError` when any resolved address is refused."""
        known = self._targets.get(url)
        if known is not None and known[0] > time.monotonic():
            return known[1]
        target = await self._check(url)
        if self.cache_seconds > 0:
            _keep(self._targets, url, (time.monotonic() + self.cache_seconds, target))
        return target

    async def _check(self, url: str) -> Target:
        scheme, host, port = split_url(url)
        try:
            literal: IpAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        addresses = [literal] if literal is not None else await self._addresses(host, port)
        # Every address must pass: a name with one public and one private address is refused as a whole.
        for address in addresses:
            if not self.address_allowed(address, host):
                raise TargetRefusedError(f"{host} resolves to {address}, an address webhooks may not be sent to")
        return Target(url=url, scheme=scheme, host=host, port=port, address=addresses[0])

    async def _addresses(self, host: str, port: int) -> list[IpAddress]:
        now = time.monotonic()
        known = self._resolved.get((host, port))
        if known is not None and known[0] > now:
            return known[1]
        self.lookups += 1
        addresses = await _lookup(host, port)
        if self.cache_seconds > 0:
            _keep(self._resolved, (host, port), (now + self.cache_seconds, addresses))
        return addresses


def _keep(cache: dict[K, V], key: K, value: V) -> None:
    if len(cache) >= RESOLVED_MAX:
        cache.clear()
    cache[key] = value


def split_url(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefusedError(f"not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefusedError("only http and https URLs are accepted")
    if not parts.hostname:
        raise TargetRefusedError("the URL has no host")
    if parts.username or parts.password:
        raise TargetRefusedError("the URL must not carry credentials")
    host = parts.hostname.lower().rstrip(".")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


async def _lookup(host: str, port: int) -> list[IpAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise TargetRefusedError(f"{host} does not resolve: {error}") from None
    found: list[IpAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise TargetRefusedError(f"{host} does not resolve")
    return found
