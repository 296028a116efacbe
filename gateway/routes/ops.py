"""Operations: liveness, readiness (each part the service needs, named when it fails)
and the Prometheus metrics of all workers."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable

import httpx
from fastapi import APIRouter, Depends
from starlette.responses import Response

from docparse.errors import BackendUnavailableError, describe
from docparse.recognition.endpoints import EndpointPool
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
    vlms: dict[str, tuple[str, ...]] = {}  # each VLM's name in checks, and its URLs
    if gateway.settings.recognition.engine == "vlm" and vlm.profiles is None:
        vlms["vlm"] = vlm.urls
    elif gateway.settings.recognition.engine == "vlm":  # each profile's server, by name
        vlms = {f"vlm:{profile.name}": profile.urls for profile in vlm.profile_list}
    for name, urls in vlms.items():
        checks[name] = check_vlm_servers(gateway.http, urls, vlm.dns_refresh, timeout)
    names = list(checks)
    outcomes = await asyncio.gather(*(check_part(checks[name], timeout) for name in names))
    results: dict[str, str] = {}
    for name, outcome in zip(names, outcomes):
        results[name] = outcome if isinstance(outcome, str) else summary(outcome)
        if not isinstance(outcome, str) and len(outcome) > 1:  # several servers: each by its URL
            results |= {f"{name}@{url}": state for url, state in outcome.items()}
    failing = [f"{name}: {results[name]}" for name in names if results[name] != "ok"]
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


async def check_part(check: Awaitable[object], timeout: float) -> Any:
    """``ok`` (or what the check gives back), or why the part is not ready."""
    try:
        result = await asyncio.wait_for(check, timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - reported, named
        return describe(exc)
    return "ok" if result is None else result


async def check_vlm_servers(http: httpx.AsyncClient, urls: tuple[str, ...], dns_refresh: float, timeout: float) -> dict[str, str]:
    """Each server of one VLM (its URLs, a DNS name's every address, as the orchestrator
    sees them: ``docparse.recognition.endpoints``): ``ok`` or why not, by its URL."""
    pool = EndpointPool(urls, 1, failures=1, open_seconds=1, dns_refresh=dns_refresh)
    await pool.refresh()
    endpoints = pool.endpoints
    outcomes = await asyncio.gather(*(
        check_part(check_vlm(http, e.health_url, timeout, e.headers), timeout) for e in endpoints
    ))
    return {e.url: outcome for e, outcome in zip(endpoints, outcomes)}


def summary(servers: dict[str, str]) -> str:
    """A VLM is ready while one of its servers answers; else the first one's reason."""
    if any(state == "ok" for state in servers.values()):
        return "ok"
    reasons = list(servers.values())
    return reasons[0] if len(reasons) == 1 else f"none of its {len(reasons)} servers answers: {reasons[0]}"


async def check_vlm(http: httpx.AsyncClient, url: str, timeout: float, headers: dict[str, str] | None = None) -> None:
    try:
        response = await http.get(url, timeout=timeout, headers=headers)
    except httpx.HTTPError as exc:
        raise BackendUnavailableError(f"the VLM at {url} did not answer: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise BackendUnavailableError(f"the VLM at {url} answered {response.status_code}")
