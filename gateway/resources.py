"""What one gateway worker holds for its whole life, opened and closed by the app's
lifespan, and the dependency that hands it to routes."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

import httpx
from fastapi import Request

from docparse.client import AsyncTritonClient
from docparse.settings import Settings
from gateway.limits import Slots


@dataclass
class Gateway:
    settings: Settings
    triton: AsyncTritonClient
    inference_slots: Slots  # parsing requests in Triton at once
    other_slots: Slots  # health, metrics, docs
    http: httpx.AsyncClient  # readiness checks of the VLM

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator["Gateway"]:
        """The worker's clients, closed while its loop still runs."""
        limits = settings.gateway
        gateway = cls(
            settings=settings,
            triton=AsyncTritonClient(limits.triton_url, limits.max_body_bytes),
            inference_slots=Slots("inference", limits.max_concurrent_requests, limits.queue_timeout),
            other_slots=Slots("other", limits.max_concurrent_other_requests, limits.queue_timeout),
            http=httpx.AsyncClient(trust_env=False),
        )
        try:
            yield gateway
        finally:
            await gateway.triton.close()
            await gateway.http.aclose()


async def get_gateway(request: Request) -> Gateway:
    """The worker's resources (a FastAPI dependency; ``async`` so that FastAPI calls it
    on the event loop, not in its thread pool)."""
    gateway: Gateway = request.app.state.gateway
    return gateway
