"""URL inputs: only http(s), and never to non-public addresses unless allowed (no SSRF);
the address checked is the address connected to, redirects included.

The rebinding tests run real HTTP servers on two loopback addresses: 127.0.0.2 plays a
public host and 127.0.0.1 the private one an attacker aims at, with a DNS of the test's
own whose answers change from one lookup to the next."""

from __future__ import annotations

import ipaddress
import socket
from contextlib import asynccontextmanager
from typing import AsyncIterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from docparse.errors import InvalidRequestError
from docparse.settings import GatewaySettings
from gateway.urls import CheckedResolver, IPAddress, fetch_url, is_public
from tests.support.scripted_http import Outcome, Received, Reply, ScriptedServer

PRIVATE = ipaddress.ip_address("127.0.0.1")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/doc.pdf",
        "http://10.1.2.3/doc.pdf",
        "http://192.168.0.10:8080/doc.pdf",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::1]/doc.pdf",
        "http://[::ffff:127.0.0.1]/doc.pdf",  # IPv4 inside IPv6
        "http://0.0.0.0/doc.pdf",
    ],
)
def test_non_public_addresses_are_refused(url):
    with pytest.raises(InvalidRequestError, match="non-public address"):
        CheckedResolver(is_public).check_url(url)


async def test_names_of_non_public_addresses_are_refused_when_resolved():
    with pytest.raises(InvalidRequestError, match=r"non-public address \((127\.0\.0\.1|::1)\)"):
        await CheckedResolver(is_public).resolve("localhost", 80)


@pytest.mark.parametrize("url", ["ftp://example.com/doc.pdf", "file:///etc/passwd", "http:///nohost"])
def test_only_http_urls_are_accepted(url):
    with pytest.raises(InvalidRequestError, match="only http:// and https://"):
        CheckedResolver(lambda _: True).check_url(url)


def test_public_and_allowed_private_addresses_pass():
    CheckedResolver(is_public).check_url("https://8.8.8.8/doc.pdf")
    CheckedResolver(lambda _: True).check_url("http://10.1.2.3/doc.pdf")


# --- pinned connections: real servers, the test's own DNS -----------------------------------


@asynccontextmanager
async def sites(*public_replies: Outcome) -> AsyncIterator[tuple[ScriptedServer, ScriptedServer, int]]:
    """A "public" server on 127.0.0.2 answering ``public_replies`` and a "private" one
    on 127.0.0.1, on the same port; each answers with its address."""
    replies = public_replies or (Reply(text="127.0.0.2"),)
    for _ in range(20):
        async with ScriptedServer(*replies, host="127.0.0.2") as public:
            try:
                private = ScriptedServer(Reply(text="127.0.0.1"), port=public.port)
                await private.__aenter__()
            except OSError:  # the port is taken on 127.0.0.1: another one
                continue
            try:
                yield public, private, public.port
            finally:
                await private.__aexit__()
            return
    raise RuntimeError("no port free on both loopback addresses")


class ScriptedDns(AbstractResolver):
    """Answers each lookup of a name with the next address of its script."""

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = script
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups.append(host)
        address = self.script[host].pop(0)
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


def not_the_private_one(address: IPAddress) -> bool:
    """The test's policy: 127.0.0.1 is private, 127.0.0.2 public."""
    return address != PRIVATE


SETTINGS = GatewaySettings(url_fetch_timeout=10, max_body_bytes=1024 * 1024)


async def test_the_address_checked_is_the_address_connected_to():
    """A name that answers a public address to one lookup and the private one to the
    next (DNS rebinding) reaches only the public one: it is looked up once."""
    async with sites() as (public, private, port):
        dns = ScriptedDns({"docs.test": ["127.0.0.2", "127.0.0.1"]})
        document = await fetch_url(f"http://docs.test:{port}/doc.pdf", SETTINGS, CheckedResolver(not_the_private_one, dns))
        assert document == b"127.0.0.2" and len(public.requests) == 1
        assert public.requests[0].headers["host"] == f"docs.test:{port}"  # the URL's host, not the address
        assert dns.lookups == ["docs.test"] and private.requests == []


async def test_a_name_of_the_private_address_never_reaches_it():
    async with sites() as (_, private, port):
        resolver = CheckedResolver(not_the_private_one, ScriptedDns({"inside.test": ["127.0.0.1"]}))
        with pytest.raises(InvalidRequestError, match=r"non-public address \(127\.0\.0\.1\)"):
            await fetch_url(f"http://inside.test:{port}/doc.pdf", SETTINGS, resolver)
        assert private.requests == []


@pytest.mark.parametrize("target", ["http://inside.test:{port}/doc.pdf", "http://127.0.0.1:{port}/doc.pdf"])
async def test_redirects_are_checked_the_same_way(target):
    async def redirect(received: Received) -> Reply:
        port = received.headers["host"].rsplit(":", 1)[1]
        return Reply(302, headers={"Location": target.format(port=port)})

    async with sites(redirect) as (public, private, port):
        dns = ScriptedDns({"docs.test": ["127.0.0.2"], "inside.test": ["127.0.0.1"]})
        with pytest.raises(InvalidRequestError, match=r"non-public address \(127\.0\.0\.1\)"):
            await fetch_url(f"http://docs.test:{port}/doc.pdf", SETTINGS, CheckedResolver(not_the_private_one, dns))
        assert len(public.requests) == 1 and private.requests == []


async def test_a_redirect_to_an_allowed_address_is_followed():
    async with sites(Reply(302, headers={"Location": "/doc.pdf"}), Reply(text="127.0.0.2")) as (public, _, port):
        resolver = CheckedResolver(not_the_private_one, ScriptedDns({"docs.test": ["127.0.0.2"] * 2}))
        document = await fetch_url(f"http://docs.test:{port}/old.pdf", SETTINGS, resolver)
        assert document == b"127.0.0.2" and [r.path for r in public.requests] == ["/old.pdf", "/doc.pdf"]
