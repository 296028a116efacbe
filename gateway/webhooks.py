"""Job callbacks (webhooks): when a job ends, the job runner POSTs its JobInfo to the
job's callbackUrl through ``WebhookSender`` (docparse.jobs.runner retries a failed
delivery with backoff 1, 2, 4… s, at most 300, HPS_WEBHOOK_ATTEMPTS times in all).

A delivery is ``POST <callbackUrl>`` with ``Content-Type: application/json``, the body
the job's JobInfo (as ``GET /jobs/{id}`` answers it), and the headers

- ``X-DocParse-Event: job.finished``
- ``X-DocParse-Timestamp: <unix seconds>``, when it was sent
- ``X-DocParse-Signature: sha256=<hex>`` when HPS_WEBHOOK_SECRET is set: the
  HMAC-SHA256, keyed with the secret, of ``f"{timestamp}."`` followed by the body's
  bytes. The timestamp is signed too, so that a receiver refusing old timestamps
  refuses replays; ``docparse.jobs.webhook_signature.verify_signature`` checks both.

A 2xx answer is a delivery; anything else (a redirect too: none is followed), a
connection that fails or an answer slower than HPS_WEBHOOK_TIMEOUT is a failed one, its
reason kept in the job's ``callback.error``. The URL rules of URL inputs apply to the
address connected to (gateway.urls: no private addresses unless HPS_URL_ALLOW_PRIVATE).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from docparse.errors import InvalidRequestError
from docparse.jobs.webhook_signature import EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from docparse.settings import GatewaySettings, JobSettings
from gateway.urls import CheckedResolver, url_resolver

EVENT = "job.finished"
ERROR_BODY_CHARS = 200  # of a refusal's body, in callback.error


class WebhookError(Exception):
    """A delivery that was not accepted; the message says why."""


class WebhookSender:
    """Delivers callbacks (a ``CallbackSender``) over one connection pool, opened at
    the first delivery; ``close`` it when the worker stops."""

    def __init__(self, gateway: GatewaySettings, jobs: JobSettings, resolver: CheckedResolver | None = None) -> None:
        self.secret = jobs.webhook_secret
        self.timeout = jobs.webhook_timeout
        self.resolver = resolver or url_resolver(gateway, "callbackUrl")
        self._session: aiohttp.ClientSession | None = None

    def headers(self, body: bytes, now: float | None = None) -> dict[str, str]:
        timestamp = str(int(time.time() if now is None else now))
        headers = {"Content-Type": "application/json", EVENT_HEADER: EVENT, TIMESTAMP_HEADER: timestamp}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, timestamp, body)
        return headers

    async def send(self, url: str, body: bytes) -> None:
        """POST ``body`` to ``url``; WebhookError unless it answered 2xx in time."""
        try:
            self.resolver.check_url(url)  # an address in the URL is not resolved: checked here
            async with asyncio.timeout(self.timeout):
                posting = self._open().post(url, data=body, headers=self.headers(body), allow_redirects=False)
                async with posting as answer:
                    if not 200 <= answer.status < 300:
                        raise WebhookError(await refusal(answer))
        except TimeoutError:
            raise WebhookError(
                f"the callbackUrl did not answer within {self.timeout:g} s (HPS_WEBHOOK_TIMEOUT)"
            ) from None
        except InvalidRequestError as exc:  # the URL rules (gateway.urls), on the address connected to
            raise WebhookError(f"not sent: {exc.message}") from None
        except aiohttp.ClientError as exc:
            raise WebhookError(f"the callbackUrl could not be reached: {exc or type(exc).__name__}") from None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No DNS cache: every new connection resolves, so every one is checked.
            connector = aiohttp.TCPConnector(resolver=self.resolver, use_dns_cache=False)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def refusal(answer: aiohttp.ClientResponse) -> str:
    """Why a non-2xx answer is not a delivery: its status and the start of its body."""
    reason = f"the callbackUrl answered HTTP {answer.status}"
    if 300 <= answer.status < 400:
        reason += " (redirects are not followed)"
    try:
        text = (await answer.content.read(ERROR_BODY_CHARS)).decode(errors="replace").strip()
    except aiohttp.ClientError:
        text = ""
    return f"{reason}: {text}" if text else reason
