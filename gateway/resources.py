"""What one gateway worker holds for its whole life, opened and closed by the app's
lifespan, and the dependency that hands it to routes."""

from __future__ import annotations

import asyncio
import functools
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import AsyncIterator

import httpx
from fastapi import Request

from docparse.client import AsyncTritonClient
from docparse.jobs.runner import JobRunner
from docparse.jobs.store import JobStore
from docparse.scheduling import Priority
from docparse.settings import Settings
from gateway.limits import Slots
from gateway.keys import load_keyring
from gateway.quotas import JobPageCharges
from gateway.webhooks import WebhookSender


@dataclass
class Gateway:
    settings: Settings
    triton: AsyncTritonClient
    inference_slots: Slots  # parsing requests in Triton at once
    other_slots: Slots  # health, metrics, docs
    http: httpx.AsyncClient  # readiness checks of the VLM
    jobs: JobStore  # the async jobs API's store (docparse/jobs/)
    runner: JobRunner  # runs stored jobs in this worker's background
    models: tuple[str, ...] = ()  # names a request's `model` may give (VLM profiles), the default first

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator["Gateway"]:
        """The worker's clients and job runner, closed while its loop still runs; jobs
        this worker was running go back to the queue for another worker."""
        limits = settings.gateway
        triton = AsyncTritonClient(limits.triton_url, limits.max_body_bytes)
        jobs = JobStore.open(settings.jobs.store_url(), settings.jobs.store_max_mb)
        webhooks = WebhookSender(limits, settings.jobs)
        gateway = cls(
            settings=settings,
            triton=triton,
            inference_slots=Slots("inference", limits.max_concurrent_requests, limits.queue_timeout),
            other_slots=Slots("other", limits.max_concurrent_other_requests, limits.queue_timeout),
            http=httpx.AsyncClient(trust_env=False),
            jobs=jobs,
            models=model_names(settings),
            runner=JobRunner(  # jobs rank below synchronous requests (docparse.scheduling)
                jobs, functools.partial(triton.events, priority=Priority.BATCH), settings.jobs,
                stall_timeout=limits.inference_timeout, callbacks=webhooks,
                page_charges=JobPageCharges(load_keyring(settings.auth).keys) or None,
            ),
        )
        running = asyncio.create_task(gateway.runner.run(), name="job-runner")
        try:
            yield gateway
        finally:
            running.cancel()
            with suppress(asyncio.CancelledError):
                await running
            jobs.close()
            await webhooks.close()
            await gateway.triton.close()
            await gateway.http.aclose()


def model_names(settings: Settings) -> tuple[str, ...]:
    """The VLM profiles' names, or the CPU recognizer's (read once per worker, so that a
    request naming none of them is refused before it reaches Triton)."""
    if settings.recognition.engine != "vlm":
        from docparse.recognition.cpu_ocr import CpuOcrRecognizer

        return (CpuOcrRecognizer.name,)
    return tuple(profile.name for profile in settings.vlm.profile_list)


async def get_gateway(request: Request) -> Gateway:
    """The worker's resources (a FastAPI dependency; ``async`` so that FastAPI calls it
    on the event loop, not in its thread pool)."""
    gateway: Gateway = request.app.state.gateway
    return gateway
