"""Job callbacks: the signature receivers verify (docparse.jobs.webhook_signature), and
the sender (gateway.webhooks) against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from docparse.jobs.webhook_signature import signature, verify_signature
from docparse.settings import GatewaySettings, JobSettings
from gateway.webhooks import WebhookError, WebhookSender
from tests.support.scripted_http import Disconnect, Reply, ScriptedServer

BODY = b'{"jobId":"abc","status":"succeeded"}'


def signed(secret: str = "s3cret", body: bytes = BODY, at: float | None = None) -> tuple[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return timestamp, signature(secret, timestamp, body)


def test_a_good_signature_verifies():
    timestamp, header = signed()
    assert header.startswith("sha256=") and len(header) == len("sha256=") + 64
    assert verify_signature("s3cret", timestamp, BODY, header)
    assert verify_signature("s3cret", int(timestamp), BODY, header)


def test_a_wrong_secret_fails():
    timestamp, header = signed()
    assert not verify_signature("other", timestamp, BODY, header)


def test_a_tampered_body_or_timestamp_fails():
    timestamp, header = signed()
    assert not verify_signature("s3cret", timestamp, BODY.replace(b"succeeded", b"failed"), header)
    assert not verify_signature("s3cret", str(int(timestamp) + 1), BODY, header)


def test_an_old_timestamp_fails_even_when_signed():
    timestamp, header = signed(at=time.time() - 600)
    assert not verify_signature("s3cret", timestamp, BODY, header)
    assert verify_signature("s3cret", timestamp, BODY, header, tolerance=900)


@pytest.mark.parametrize("timestamp, header", [(None, "sha256=00"), ("1.5", "sha256=00"), ("x", "sha256=00"),
                                                ("{now}", None), ("{now}", ""), ("{now}", "sha256=ünïcode")])
def test_missing_or_malformed_headers_fail(timestamp, header):
    timestamp = timestamp and timestamp.format(now=int(time.time()))
    assert not verify_signature("s3cret", timestamp, BODY, header)


# --- the sender -------------------------------------------------------------------------------


def sender(secret: str | None = "s3cret", allow_private: bool = True, timeout: float = 5) -> WebhookSender:
    jobs = JobSettings(webhook_secret=secret, webhook_timeout=timeout)
    return WebhookSender(GatewaySettings(url_allow_private=allow_private), jobs)


async def test_a_delivery_is_a_signed_json_post():
    webhooks = sender()
    try:
        async with ScriptedServer(Reply(204)) as server:
            await webhooks.send(f"{server.url}hook", BODY)
    finally:
        await webhooks.close()
    [received] = server.requests
    assert received.method == "POST" and received.path == "/v1/hook" and received.body == BODY
    headers = received.headers
    assert headers["content-type"] == "application/json" and headers["x-docparse-event"] == "job.finished"
    assert abs(int(headers["x-docparse-timestamp"]) - time.time()) < 5
    assert verify_signature("s3cret", headers["x-docparse-timestamp"], BODY, headers["x-docparse-signature"])


async def test_without_a_secret_nothing_is_signed():
    assert "X-DocParse-Signature" not in sender(secret=None).headers(BODY)


@pytest.mark.parametrize(
    "reply, reason",
    [
        (Reply(500, text="database down"), "answered HTTP 500: database down"),
        (Reply(302, headers={"Location": "/elsewhere"}), r"answered HTTP 302 \(redirects are not followed\)"),
        (Disconnect(), "could not be reached"),
        (Reply(delay=2), r"did not answer within 0.5 s \(HPS_WEBHOOK_TIMEOUT\)"),
    ],
)
async def test_a_refusal_says_why(reply, reason):
    webhooks = sender(timeout=0.5)
    try:
        async with ScriptedServer(reply) as server:
            with pytest.raises(WebhookError, match=reason):
                await webhooks.send(server.url, BODY)
    finally:
        await webhooks.close()
    assert len(server.requests) == 1  # a redirect is not followed


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_addresses_are_not_sent_to_unless_allowed(host):
    webhooks = sender(allow_private=False)
    try:
        async with ScriptedServer(Reply()) as server:
            with pytest.raises(WebhookError, match=r"not sent: field 'callbackUrl': .*non-public address"):
                await webhooks.send(f"http://{host}:{server.port}/hook", BODY)
    finally:
        await webhooks.close()
    assert server.requests == []
