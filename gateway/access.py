"""One structured log line and the metrics of every request; the second, larger limit
on concurrent non-parsing requests (health, metrics, docs)."""

from __future__ import annotations

import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docparse.errors import OverloadedError
from docparse.protocol import new_log_id
from docparse.settings import GatewaySettings
from gateway import metrics
from gateway.errors import error_answer

access_log = logging.getLogger("docparse.gateway.access")

# The routes that take an inference slot (and count against a key's request quotas).
PARSING_ROUTES = (
    "/layout-parsing", "/layout-parsing/stream",
    "/api/ocr/recognize", "/api/ocr/extract", "/api/ocr/batch", "/api/ocr/document", "/api/ocr/document/stream",
    "/convert/file", "/convert/url",
)
QUIET_ROUTES = ("/health", "/health/ready", "/metrics")
JOBS_ROUTE = "/jobs"  # POST submits a job; a job's own paths are counted as "other"
KNOWN_ROUTES = PARSING_ROUTES + QUIET_ROUTES + (JOBS_ROUTE, "/docs", "/redoc", "/openapi.json")


class AccessLogMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): streaming responses and cancellation pass
    through untouched."""

    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in KNOWN_ROUTES else "other"
        started = time.perf_counter()
        # Every request has a logId from here on (a parsing request replaces it with the
        # caller's): the log line and the error answer of a failure name the same one.
        scope.setdefault("state", {})["log_id"] = new_log_id()
        status = {"code": 500}

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        metrics.IN_FLIGHT.labels(route=route).inc()
        try:
            if route in PARSING_ROUTES:  # they take an inference slot in the route
                await self.app(scope, receive, send_and_record)
            else:
                await self._with_other_slot(scope, receive, send_and_record)
        finally:
            seconds = time.perf_counter() - started
            metrics.IN_FLIGHT.labels(route=route).dec()
            metrics.REQUESTS.labels(route=route, status=str(status["code"])).inc()
            metrics.LATENCY.labels(route=route).observe(seconds)
            metrics.count_for_key(scope.get("state", {}), route, status["code"])
            if route not in QUIET_ROUTES or self.settings.log_health_checks:
                self._log(scope, route, status["code"], seconds)

    async def _with_other_slot(self, scope: Scope, receive: Receive, send: Send) -> None:
        slots = scope["app"].state.gateway.other_slots
        try:
            taken = await slots.acquire()
        except OverloadedError as exc:
            await error_answer(scope["state"]["log_id"], exc)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release(taken)

    @staticmethod
    def _log(scope: Scope, route: str, status: int, seconds: float) -> None:
        state = scope.get("state", {})
        line = {
            "logId": state.get("log_id"),
            "method": scope["method"],
            "route": scope["path"] if route != "other" else route,
            "status": status,
            "pages": state.get("pages"),
            "seconds": round(seconds, 3),
        }
        if state.get("api_key"):  # the key's name (gateway/auth.py), never the key
            line["key"] = state["api_key"]
        if state.get("stream_error"):
            line["streamError"] = state["stream_error"]
        access_log.info(json.dumps(line))
