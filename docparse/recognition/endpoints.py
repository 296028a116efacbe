"""Several VLM servers behind one client (GitHub issue #20): which server takes a call.

A VLM URL setting may list several servers (comma-separated), and an ``http://`` URL's
host name is looked up every ``dns_refresh`` seconds, each address a server of its own
(a Kubernetes headless Service resolves to every ready pod); the call then goes to the
address with the name kept in the Host header. ``https://`` URLs are used as written
(a certificate names the host, not the address).

Each server (``Endpoint``) has its own bound on calls in flight (the profile's
``max_concurrency``, so it matches each vLLM's ``--max-num-seqs``) and its own circuit
breaker: one found down leaves the rotation and is probed (``/health``) once its open
time is over, while the others carry the load. A call goes to the server in rotation
with the fewest calls in flight (round robin among equals). The client's fair queue
(``FairSlots``) is bounded by the sum of the bounds of the servers in rotation, kept up
to date through ``on_capacity``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

from docparse.errors import RecognitionUnavailableError
from docparse.recognition.breaker import CircuitBreaker
from docparse.settings_env import vllm_health_url

log = logging.getLogger("docparse.vlm")

#: Looks a host name up: its addresses (IPv4 or IPv6 text), in the resolver's order.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
Probe = Callable[["Endpoint"], Awaitable[bool]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives (``getaddrinfo``, TCP), each once."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(eq=False)
class Endpoint:
    """One VLM server: where calls go, the Host header they carry, its bound and health."""

    url: str  # base URL, e.g. http://10.1.2.3:8000/v1
    host: str | None  # the Host header when ``url`` holds an address looked up for a name
    limit: int
    breaker: CircuitBreaker
    in_flight: int = 0
    calls: int = 0
    failures: int = 0  # calls that failed on it (any error), since it was first seen
    probing: bool = field(default=False, repr=False)

    @property
    def chat_url(self) -> str:
        return self.url + "/chat/completions"

    @property
    def health_url(self) -> str:
        return vllm_health_url(self.url)

    @property
    def headers(self) -> dict[str, str]:
        return {"Host": self.host} if self.host else {}

    @property
    def in_rotation(self) -> bool:
        """Not found down (or found back by a probe): calls may go to it."""
        return not self.breaker.tripped

    @property
    def state(self) -> str:
        return "up" if self.in_rotation else "down"

    def snapshot(self) -> dict[str, object]:
        return {
            "url": self.url, "host": self.host, "state": self.state, "in_flight": self.in_flight,
            "limit": self.limit, "calls": self.calls, "failures": self.failures,
        }


def expandable(url: str) -> tuple[str, int] | None:
    """The host name and port of an ``http://`` URL whose host is a name (not an
    address), to be looked up; ``None`` for the rest."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    try:
        ipaddress.ip_address(parts.hostname)
        return None
    except ValueError:
        return parts.hostname, parts.port or 80


def address_url(url: str, address: str) -> tuple[str, str]:
    """``url`` with ``address`` in place of its host name, and the Host header to send."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc)), parts.netloc.rsplit("@", 1)[-1]


class EndpointPool:
    """The servers behind one VLM client, their bounds and health (the module's docstring)."""

    def __init__(
        self, urls: Sequence[str], limit: int, *, failures: int, open_seconds: float, dns_refresh: float,
        resolver: Resolver = system_resolver, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.urls = tuple(urls)
        self.limit = limit
        self.dns_refresh = dns_refresh
        self._failures, self._open_seconds = failures, open_seconds
        self._resolver, self._clock = resolver, clock
        self.endpoints: list[Endpoint] = [self._new(url, None) for url in self.urls]
        self._resolved_at: float | None = None
        self._refreshing: asyncio.Task | None = None
        self._turn = itertools.count()
        self._changed: asyncio.Event | None = None
        self.on_capacity: Callable[[int], None] = lambda capacity: None
        self.probe: Probe | None = None

    def _new(self, url: str, host: str | None) -> Endpoint:
        return Endpoint(url, host, self.limit, CircuitBreaker(self._failures, self._open_seconds, self._clock))

    @property
    def capacity(self) -> int:
        """Calls the servers in rotation take at once (at least 1: a queue needs a bound)."""
        return max(1, sum(e.limit for e in self.endpoints if e.in_rotation))

    @property
    def total_limit(self) -> int:
        """Calls every known server takes at once, in rotation or not."""
        return sum(e.limit for e in self.endpoints)

    # -- DNS --------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Look each name up now; a server still listed keeps its state and calls, a new
        one joins, one gone leaves (its calls in flight end where they are). A failed
        look-up keeps what the last one found."""
        self._resolved_at = self._clock()
        wanted: list[tuple[str, str | None]] = []
        for url in self.urls:
            target = expandable(url) if self.dns_refresh > 0 else None
            if target is None:
                wanted.append((url, None))
                continue
            try:
                addresses = await self._resolver(*target)
            except (OSError, UnicodeError) as exc:
                kept = [(e.url, e.host) for e in self.endpoints if e.host == urlsplit(url).netloc]
                log.warning("VLM URL %s: DNS look-up failed (%s); keeping its last addresses", url, exc)
                wanted += kept or [(url, None)]
                continue
            wanted += [address_url(url, address) for address in addresses] or [(url, None)]
        self._replace(dict.fromkeys(wanted))

    def _replace(self, wanted: dict[tuple[str, str | None], None]) -> None:
        known = {(e.url, e.host): e for e in self.endpoints}
        endpoints = [known.get(key) or self._new(*key) for key in wanted]
        if [id(e) for e in endpoints] != [id(e) for e in self.endpoints]:
            log.info("VLM servers now: %s", ", ".join(e.url for e in endpoints))
            self.endpoints = endpoints
            self._changed_now()

    def _refresh_due(self) -> None:
        """Start a look-up in the background when the last one is ``dns_refresh`` old."""
        if self.dns_refresh <= 0 or self._resolved_at is None:
            return
        if self._refreshing is None and self._clock() - self._resolved_at >= self.dns_refresh:
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh_in_background())

    async def _refresh_in_background(self) -> None:
        try:
            await self.refresh()
        finally:
            self._refreshing = None

    # -- choice -----------------------------------------------------------------------

    async def acquire(self, exclude: Sequence[Endpoint] = ()) -> Endpoint | None:
        """The server in rotation with the fewest calls in flight and room for one more,
        outside ``exclude`` (servers this call already failed on), counted as taken;
        waits for room. ``None`` when no server outside ``exclude`` is in rotation."""
        if self._resolved_at is None:
            await self.refresh()
        while True:
            self._refresh_due()
            self._probe_due()
            live = [e for e in self.endpoints if e.in_rotation and e not in exclude]
            if not live:
                return None
            free = [e for e in live if e.in_flight < e.limit]
            if free:
                turn = next(self._turn)
                chosen = min(free, key=lambda e: (e.in_flight, (self.endpoints.index(e) - turn) % len(self.endpoints)))
                chosen.in_flight += 1
                chosen.calls += 1
                return chosen
            await self._wait_for_change()

    def release(self, endpoint: Endpoint, *, outcome: str | None) -> None:
        """A call on ``endpoint`` ended: ``ok`` closes its breaker, ``down`` (the outcome
        says the server is down: ``vlm.says_down``) feeds it, ``failed`` (an error it
        answered) only counts; ``None`` (cancelled) does neither."""
        endpoint.in_flight -= 1
        was_in = endpoint.in_rotation
        if outcome in ("down", "failed"):
            endpoint.failures += 1
        if outcome == "down":
            endpoint.breaker.record_failure()
        elif outcome == "ok":
            endpoint.breaker.record_success()
        if was_in and not endpoint.in_rotation:
            log.warning("VLM server %s is down; the others take its calls for %g s", endpoint.url, self._open_seconds)
        self._changed_now()

    def retry_after(self) -> int:
        """Whole seconds until a server found down may be called again (the soonest)."""
        tripped = [e.breaker.retry_after() for e in self.endpoints if e.breaker.tripped]
        return min(tripped) if tripped else self.endpoints[0].breaker.retry_after()

    async def ensure_available(self, what: str) -> None:
        """Return when some server is in rotation, probing the ones whose open time is
        over first; else raise ``RecognitionUnavailableError`` (the client is down only
        when every server is)."""
        if any(e.in_rotation for e in self.endpoints):
            return
        refusals = []
        for endpoint in list(self.endpoints):
            try:
                await endpoint.breaker.admit(self._name(what, endpoint), self._probe_of(endpoint))
                self._changed_now()
                return
            except RecognitionUnavailableError as exc:
                refusals.append(exc)
        soonest = min(refusals, key=lambda exc: exc.retry_after or 0)
        raise soonest if len(refusals) == 1 else RecognitionUnavailableError(
            f"{what}: all {len(refusals)} servers are down; the first back in {soonest.retry_after} s: {soonest}",
            retry_after=soonest.retry_after,
        )

    def _name(self, what: str, endpoint: Endpoint) -> str:
        return what if len(self.endpoints) == 1 else f"{what} ({endpoint.url})"

    def _probe_of(self, endpoint: Endpoint) -> Callable[[], Awaitable[bool]]:
        async def probe() -> bool:
            return self.probe is not None and await self.probe(endpoint)

        return probe

    def _probe_due(self) -> None:
        """Probe, in the background, each server found down whose open time is over
        (the others carry the calls meanwhile); a healthy one rejoins the rotation."""
        for endpoint in self.endpoints:
            if endpoint.breaker.tripped and not endpoint.breaker.is_open and not endpoint.probing:
                endpoint.probing = True
                asyncio.get_running_loop().create_task(self._probe_in_background(endpoint))

    async def _probe_in_background(self, endpoint: Endpoint) -> None:
        try:
            await endpoint.breaker.admit(endpoint.url, self._probe_of(endpoint))
            log.info("VLM server %s is back", endpoint.url)
        except RecognitionUnavailableError:
            pass
        finally:
            endpoint.probing = False
            self._changed_now()

    # -- change notices ---------------------------------------------------------------

    def _changed_now(self) -> None:
        """Wake whoever waits for room, and give the client's queue its new bound."""
        self.on_capacity(self.capacity)
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait_for_change(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        await self._changed.wait()

    def snapshot(self) -> list[dict[str, object]]:
        """Each server's state, calls in flight and failures (``/metrics``, logs)."""
        return [endpoint.snapshot() for endpoint in self.endpoints]
