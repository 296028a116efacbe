"""Operations: liveness, readiness (each part the service needs, named when it fails)
and the Prometheus metrics of all workers."""

from __future__ import annotations

import asyncio
from typing import Awaitable

import httpx
from fastapi import APIRouter, Depends
from starlette.responses import Response

from docparse.errors import BackendUnavailableError, describe
from docparse.recognition.cpu_ocr import CpuOcrRecognizer
from docparse.responses import Liveness, Readiness
from gateway import metrics
from gateway.errors import ModelResponse
from gateway.resources import Gateway, get_gateway

router = APIRouter(tags=["operations"])
HEALTH_PEEK_SECONDS = 1.0  # /health's look at the VLM and Triton: liveness must answer fast


@router.get("/health", summary="Liveness: the gateway process answers", response_model=Liveness)
async def health(gateway: Gateway = Depends(get_gateway)) -> ModelResponse:
    """Always 200 while the gateway runs; ``vllm`` and ``layout_model`` are a quick look
    (at most ``HEALTH_PEEK_SECONDS``) for the GLM-OCR server's clients."""
    settings = gateway.settings
    timeout = min(settings.gateway.health_check_timeout, HEALTH_PEEK_SECONDS)
    uses_vlm = settings.recognition.engine == "vlm"

    async def vlm_answers() -> bool | None:
        if not uses_vlm:
            return None
        return await check_part(check_vlm(gateway.http, settings.vlm.health_url, timeout), timeout) == "ok"

    async def layout_ready() -> bool:
        try:
            return await asyncio.wait_for(gateway.triton.model_ready("layout_detection", timeout), timeout)
        except TimeoutError:
            return False

    vllm, layout = await asyncio.gather(vlm_answers(), layout_ready())
    return ModelResponse(Liveness(
        vllm=vllm,
        layout_model=layout,
        model=settings.vlm.model if uses_vlm else CpuOcrRecognizer.name,
    ))


@router.get(
    "/health/ready",
    summary="Readiness: Triton, each model and the VLM answer",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A part is not ready; `failing` names it."}},
)
async def ready(gateway: Gateway = Depends(get_gateway)) -> ModelResponse:
    timeout = gateway.settings.gateway.health_check_timeout
    checks: dict[str, Awaitable[None]] = {"triton": gateway.triton.check_ready(timeout)}
    vlm = gateway.settings.vlm
    if gateway.settings.recognition.engine == "vlm" and vlm.profiles is None:
        checks["vlm"] = check_vlm(gateway.http, vlm.health_url, timeout)
    elif gateway.settings.recognition.engine == "vlm":  # each profile's server, by name
        for profile in vlm.profile_list:
            checks[f"vlm:{profile.name}"] = check_vlm(gateway.http, profile.health_url, timeout)
    names = list(checks)
    outcomes = await asyncio.gather(*(check_part(checks[name], timeout) for name in names))
    results = dict(zip(names, outcomes))
    failing = [f"{name}: {result}" for name, result in results.items() if result != "ok"]
    if failing:
        readiness = Readiness(status="unavailable", failing="; ".join(failing), checks=results)
        return ModelResponse(readiness, status_code=503)
    return ModelResponse(Readiness(status="ready", checks=results))


@router.get("/metrics", summary="Prometheus metrics of all workers")
async def prometheus(gateway: Gateway = Depends(get_gateway)) -> Response:
    if gateway.settings.recognition.engine == "vlm":
        metrics.describe_profiles(gateway.settings.vlm.profile_list)
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


async def check_part(check: Awaitable[None], timeout: float) -> str:
    """``ok``, or why the part is not ready."""
    try:
        await asyncio.wait_for(check, timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - reported, named
        return describe(exc)
    return "ok"


async def check_vlm(http: httpx.AsyncClient, url: str, timeout: float) -> None:
    try:
        response = await http.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise BackendUnavailableError(f"the VLM at {url} did not answer: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise BackendUnavailableError(f"the VLM at {url} answered {response.status_code}")
