"""URL inputs: the document at an http(s) URL, fetched only from public addresses unless
allowed (no server-side request forgery), bounded in size, time and redirects.

The address checked is the address connected to: the host is resolved once, for the
connection itself, by ``CheckedResolver``, which refuses the lot when any address is not
public. Resolving once to check and again to connect let a name answer a public address
to the check and a private one to the connection (DNS rebinding). Every redirect target
goes through the same check. The Host header and TLS's server name stay the URL's host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Callable
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from docparse.errors import InvalidRequestError, LimitExceededError
from docparse.settings import GatewaySettings

MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address (an IPv4 address inside IPv6 is judged as
    the IPv4 address it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def anywhere(_address: IPAddress) -> bool:
    """HPS_URL_ALLOW_PRIVATE: every address may be fetched from."""
    return True


class CheckedResolver(AbstractResolver):
    """Resolves a URL's host for the connection and refuses it unless every address is
    allowed. ``dns`` is the system resolver unless a test gives its own."""

    def __init__(
        self, allowed: Callable[[IPAddress], bool], dns: AbstractResolver | None = None, field: str = "file"
    ) -> None:
        self._allowed = allowed
        self._dns = dns
        self.field = field  # the request field the URL came in, named in errors

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        dns = self._dns or aiohttp.ThreadedResolver()
        try:
            answers = await dns.resolve(host, port, family)
        except OSError as exc:
            raise InvalidRequestError(f"field '{self.field}': the URL's host cannot be resolved: {exc}") from None
        for answer in answers:
            self.check_address(ipaddress.ip_address(answer["host"]))
        return answers

    async def close(self) -> None:
        if self._dns is not None:
            await self._dns.close()

    def check_address(self, address: IPAddress) -> None:
        if not self._allowed(address):
            raise InvalidRequestError(
                f"field '{self.field}': the URL points to a non-public address ({address}); "
                "such URLs are refused (HPS_URL_ALLOW_PRIVATE)"
            )

    def check_url(self, url: str) -> None:
        """Only http(s) URLs with a host; a host written as an address is checked here,
        since no resolving happens for it."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequestError(f"field '{self.field}': only http:// and https:// URLs are accepted")
        try:
            address = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return  # a name: checked when it is resolved for the connection
        self.check_address(address)


def url_resolver(settings: GatewaySettings, field: str = "file") -> CheckedResolver:
    """The resolver that applies this server's rules (HPS_URL_ALLOW_PRIVATE)."""
    return CheckedResolver(anywhere if settings.url_allow_private else is_public, field=field)


async def check_callback_url(url: str, settings: GatewaySettings) -> None:
    """Refuse a callbackUrl the webhook could not be sent to under the URL rules: not
    http(s), or a host that is or resolves to a non-public address. The delivery checks
    again, on the address it connects to."""
    resolver = url_resolver(settings, "callbackUrl")
    resolver.check_url(url)
    host = urlsplit(url).hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        await resolver.resolve(host, urlsplit(url).port or 0)


async def fetch_url(url: str, settings: GatewaySettings, resolver: CheckedResolver | None = None) -> bytes:
    """The document at ``url``: http(s) only, public addresses only (unless allowed),
    at most HPS_MAX_BODY_BYTES, within HPS_URL_FETCH_TIMEOUT seconds, few redirects."""
    resolver = resolver or url_resolver(settings)
    # No DNS cache: every connection resolves, so every one is checked.
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    try:
        async with asyncio.timeout(settings.url_fetch_timeout):
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
                for _ in range(MAX_REDIRECTS + 1):
                    resolver.check_url(url)
                    async with session.get(url, allow_redirects=False) as response:
                        if response.status in REDIRECTS and "Location" in response.headers:
                            url = urljoin(url, response.headers["Location"])
                            continue
                        if response.status != 200:
                            raise InvalidRequestError(f"field 'file': fetching the URL gave HTTP {response.status}")
                        return await read_limited(response, settings.max_body_bytes)
                raise InvalidRequestError(f"field 'file': more than {MAX_REDIRECTS} redirects")
    except TimeoutError:
        raise InvalidRequestError(
            f"field 'file': the URL did not deliver within {settings.url_fetch_timeout:g} s"
        ) from None
    except aiohttp.ClientError as exc:
        raise InvalidRequestError(f"field 'file': the URL could not be fetched: {exc}") from None


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > limit:
            raise LimitExceededError(
                f"field 'file': the document at the URL is larger than {limit} bytes "
                "(HPS_MAX_BODY_BYTES)"
            )
        chunks.append(chunk)
    return b"".join(chunks)
