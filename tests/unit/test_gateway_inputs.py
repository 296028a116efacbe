"""URL inputs: only http(s), and never to non-public addresses unless allowed (no SSRF)."""

from __future__ import annotations

import pytest

from docparse.errors import InvalidRequestError
from gateway.inputs import check_url_target


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/doc.pdf",
        "http://10.1.2.3/doc.pdf",
        "http://192.168.0.10:8080/doc.pdf",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::1]/doc.pdf",
        "http://0.0.0.0/doc.pdf",
        "http://localhost/doc.pdf",
    ],
)
async def test_non_public_addresses_are_refused(url):
    with pytest.raises(InvalidRequestError, match="non-public address"):
        await check_url_target(url, allow_private=False)


@pytest.mark.parametrize("url", ["ftp://example.com/doc.pdf", "file:///etc/passwd", "http:///nohost"])
async def test_only_http_urls_are_accepted(url):
    with pytest.raises(InvalidRequestError, match="only http:// and https://"):
        await check_url_target(url, allow_private=True)


async def test_public_and_allowed_private_addresses_pass():
    await check_url_target("https://8.8.8.8/doc.pdf", allow_private=False)
    await check_url_target("http://10.1.2.3/doc.pdf", allow_private=True)
