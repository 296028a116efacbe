"""CORS: which web pages may call the gateway from a browser (HPS_CORS_ORIGINS), off when
none is listed. Outermost, so that preflights are answered before the API key check and
error answers (401, 429, 503) carry the headers a browser needs to read them."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

ALLOWED_HEADERS = ("Authorization", "X-API-Key", "Content-Type")
EXPOSED_HEADERS = ("X-Log-Id", "Retry-After", "WWW-Authenticate")
PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight's answer


def add_cors(app: FastAPI, origins: tuple[str, ...]) -> None:
    """Call last: the middleware added last is the outermost. Keys travel in headers, not
    cookies, so credentials stay off (and ``*`` means any origin)."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        allow_headers=list(ALLOWED_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        max_age=PREFLIGHT_MAX_AGE,
    )
