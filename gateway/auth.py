"""API keys and their quotas, for every route at once: a pure ASGI middleware between the
access log (which then logs the key's name) and the routes.

A request needs a key unless its path is open (HPS_AUTH_OPEN_PATHS) or it is an OPTIONS
request (a CORS preflight; no route answers OPTIONS otherwise). The key comes as
``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; none, or one that is not
configured, is a 401 with ``WWW-Authenticate``. A parsing request of a key with a quota
is admitted by the quota store (``gateway/quotas.py``) or refused with 429.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from docparse.errors import QuotaExceededError, UnauthenticatedError
from docparse.protocol import new_log_id
from gateway import metrics
from gateway.access import JOBS_ROUTE, PARSING_ROUTES
from gateway.errors import ModelResponse, error_answer
from gateway.keys import ApiKey, KeyRing
from gateway.quotas import Quota, process_store
from gateway.routes import web

REALM = 'Bearer realm="DocParse HPS"'
HOW_TO_SEND = "send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


class AuthMiddleware:
    def __init__(self, app: ASGIApp, keyring: KeyRing, open_paths: tuple[str, ...]) -> None:
        self.app = app
        self.keyring = keyring
        self.open_paths = frozenset(open_paths)
        self.quotas = {key.name: Quota.of(key.limits) for key in keyring.keys}
        # Built on the app's first request, so in the worker process, never before a fork.
        self.store = process_store() if any(q.active for q in self.quotas.values()) else None

    def _open(self, path: str) -> bool:
        """Answered without a key: the configured open paths and the web page."""
        return path in self.open_paths or web.is_public(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or self._open(scope["path"]):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        presented = presented_key(Headers(scope=scope))
        key = self.keyring.find(presented) if presented else None
        if key is None:
            metrics.REJECTIONS.labels(reason="unauthenticated").inc()
            await unauthenticated(state, scope["path"], wrong=presented is not None)(scope, receive, send)
            return
        state["api_key"] = key.name
        quota = self.quotas[key.name]
        submits = scope["path"] in PARSING_ROUTES or (scope["path"] == JOBS_ROUTE and scope["method"] == "POST")
        if self.store is None or not quota.active or not submits:
            await self.app(scope, receive, send)
            return
        await self._within_quota(key, quota, state, scope, receive, send)

    async def _within_quota(
        self, key: ApiKey, quota: Quota, state: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        assert self.store is not None
        try:
            self.store.admit(key.name, quota)
        except QuotaExceededError as exc:
            metrics.REJECTIONS.labels(reason="quota").inc()
            await error_answer(log_id_of(state), exc, scope["path"])(scope, receive, send)
            return
        started = time.monotonic()
        try:
            await self.app(scope, receive, send)
        finally:
            self.store.release(key.name, quota, time.monotonic() - started, state.get("pages") or 0)


def presented_key(headers: Headers) -> str | None:
    """The key a request sends: ``Authorization: Bearer`` first, else ``X-API-Key``."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key", "").strip() or None


def unauthenticated(state: dict[str, Any], path: str, wrong: bool) -> ModelResponse:
    """401 for a request with no key (``wrong``: with one that is not configured)."""
    message = f"the API key is not valid; {HOW_TO_SEND}" if wrong else f"an API key is required: {HOW_TO_SEND}"
    answer = error_answer(log_id_of(state), UnauthenticatedError(message), path)
    # RFC 6750: a key that was sent but is not valid is an "invalid_token".
    answer.headers["WWW-Authenticate"] = REALM + (', error="invalid_token"' if wrong else "")
    return answer


def log_id_of(state: dict[str, Any]) -> str:
    """The request's logId: refused before its body is read, it gets one of its own."""
    log_id: str = state.setdefault("log_id", new_log_id())
    return log_id
