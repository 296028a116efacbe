"""Prometheus metrics of the gateway.

Under gunicorn every worker is its own process: ``gunicorn.conf.py`` sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start, and ``/metrics`` then sums all
workers' files, so one scrape sees the whole gateway whichever worker answers it.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

REQUESTS = Counter(
    "hps_requests_total", "Requests answered, by route and HTTP status.", ["route", "status"]
)
LATENCY = Histogram(
    "hps_request_duration_seconds",
    "Seconds from request to the end of the response, by route.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "hps_requests_in_flight",
    "Requests being served now, by route.",
    ["route"],
    multiprocess_mode="livesum",
)
SLOT_WAIT = Histogram(
    "hps_slot_wait_seconds",
    "Seconds a request waited for a concurrency slot.",
    ["kind"],
    buckets=(0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60),
)
REJECTIONS = Counter(
    "hps_rejections_total",
    "Requests refused before any work: busy (503), too large (413), no valid API key "
    "(unauthenticated, 401), over a key's quota (quota, 429).",
    ["reason"],
)
TIMEOUTS = Counter(
    "hps_timeouts_total", "Parsing requests that passed HPS_INFERENCE_TIMEOUT (504)."
)
PAGES = Counter("hps_pages_total", "Pages returned to clients.")
KEY_REQUESTS = Counter(
    "hps_key_requests_total", "Requests with a valid API key, by the key's name, route and HTTP status.",
    ["key", "route", "status"],
)
KEY_PAGES = Counter("hps_key_pages_total", "Pages returned, by the API key's name.", ["key"])
VLM_PROFILES = Gauge(
    "hps_vlm_profile_info",
    "1 for each VLM profile a request may name with `model` (HPS_VLM_PROFILES).",
    ["name", "model", "mode", "url", "max_concurrency"],
    multiprocess_mode="max",
)


def describe_profiles(profiles: Any) -> None:
    """One ``hps_vlm_profile_info`` series per profile (set at each scrape: cheap)."""
    for profile in profiles:
        VLM_PROFILES.labels(
            name=profile.name, model=profile.model, mode=profile.mode, url=profile.url,
            max_concurrency=str(profile.max_concurrency),
        ).set(1)


def count_for_key(state: dict[str, Any], route: str, status: int) -> None:
    """A request's counts under its API key's name (``gateway/auth.py`` puts it in the
    request's state), when it came with one."""
    key = state.get("api_key")
    if key:
        KEY_REQUESTS.labels(key=key, route=route, status=str(status)).inc()
        if state.get("pages"):
            KEY_PAGES.labels(key=key).inc(state["pages"])


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
