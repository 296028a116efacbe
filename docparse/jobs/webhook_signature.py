"""The signature of job callbacks (webhooks), one definition for the gateway that signs
and for receivers that verify: importable without the gateway.

A delivery carries ``X-DocParse-Timestamp: <unix seconds>`` and, when the server has
HPS_WEBHOOK_SECRET, ``X-DocParse-Signature: sha256=<hex>``: the HMAC-SHA256, keyed with
the secret, of ``f"{timestamp}."`` followed by the body's exact bytes. The timestamp is
inside the signed text, so a receiver that refuses old timestamps refuses replays of a
delivery it saw before. A receiver verifies the raw body (before any JSON parsing)::

    from docparse.jobs.webhook_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

    if not verify_signature(secret, headers[TIMESTAMP_HEADER], raw_body, headers.get(SIGNATURE_HEADER)):
        return 401
"""

from __future__ import annotations

import hashlib
import hmac
import time

EVENT_HEADER = "X-DocParse-Event"
TIMESTAMP_HEADER = "X-DocParse-Timestamp"
SIGNATURE_HEADER = "X-DocParse-Signature"
SCHEME = "sha256="


def signature(secret: str, timestamp: str | int, body: bytes) -> str:
    """The X-DocParse-Signature value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def verify_signature(
    secret: str, timestamp: str | int | None, body: bytes, header: str | None, tolerance: float = 300
) -> bool:
    """True when ``header`` (X-DocParse-Signature) signs ``body`` (the raw bytes received)
    at ``timestamp`` (X-DocParse-Timestamp, as received) with ``secret``, and the
    timestamp is within ``tolerance`` seconds of now (older: possibly a replay)."""
    if not header or timestamp is None:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - sent) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body).encode(), header.strip().encode())
